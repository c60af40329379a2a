//! Text-model grouping of a deletion-risk response
//! (`apply_text_model_grouping_to_risk_response`).
//!
//! Models are grouped by base model name in order of first appearance (the
//! response is already sorted by month usage, and the groups are not sorted
//! again). A one-member group keeps its model, renamed to the base name; a
//! larger group ORs the flags, sums the usage, takes the most workers, weights
//! the trend ratios by month usage and unions the hosts. The summary is
//! recomputed; `total_count` keeps the ungrouped count. Other categories pass
//! through unchanged.
//!
//! Shaped for speed: each model's base name is looked up once
//! (memoised in [`BaseNames`]) and numbered in an insertion-ordered set; the
//! members of every group are then listed with one counting pass, so no
//! per-group vector is built and no info is moved more than once. A single
//! member is kept (its borrowed strings stay borrowed); only a real group
//! makes a new host list.

use crate::analytics::merge::MergedModel;
use crate::analytics::risk::{
    self, CategoryDeletionRiskSummary, DeletionRiskFlags, ModelDeletionRiskInfo, RecordFacts, SummaryTally,
    UsageTrend,
};
use crate::category::Category;
use crate::input::horde::{BaseNames, UsageCount};
use crate::output::risk::{write_model, write_tail, ResponseHead};
use crate::settings::AnalysisSettings;
use indexmap::IndexSet;
use std::borrow::Cow;

/// `merge_usage_trends`: ratios averaged with the given weights (month
/// usage); a zero or missing ratio is left out of the sum but not of the
/// total weight; no weight at all gives no ratios. `trends` yields each
/// member's (trend, weight), in member order. (Float sums here start at
/// -0.0, as Rust's `Iterator::sum` does, so the bytes stay those of the
/// earlier `sum()`-based code.)
pub fn merge_usage_trends(trends: impl Iterator<Item = (UsageTrend, UsageCount)> + Clone) -> UsageTrend {
    let total_weight = trends.clone().fold(0, |acc: UsageCount, (_, w)| acc.saturating_add(w));
    if total_weight == 0 {
        return UsageTrend::default();
    }
    let weighted = |ratio: fn(&UsageTrend) -> Option<f64>| -> Option<f64> {
        let (sum, any) = trends
            .clone()
            .filter_map(|(t, w)| ratio(&t).filter(|r| *r != 0.0).map(|r| r * w as f64))
            .fold((-0.0, false), |(sum, _), term| (sum + term, true));
        any.then(|| sum / total_weight as f64)
    };
    UsageTrend {
        day_to_month_ratio: weighted(|t| t.day_to_month_ratio),
        month_to_total_ratio: weighted(|t| t.month_to_total_ratio),
    }
}

/// One group of two or more variants, folded into one model.
fn merge_group<'a>(
    base_name: String,
    variants: &[ModelDeletionRiskInfo<'a>],
    settings: &AnalysisSettings,
) -> ModelDeletionRiskInfo<'a> {
    let first = &variants[0];
    let sum = |f: fn(&ModelDeletionRiskInfo<'a>) -> UsageCount| {
        variants.iter().fold(0, |acc: UsageCount, v| acc.saturating_add(f(v)))
    };
    let usage_month = sum(|v| v.usage_month);
    let flags = variants.iter().fold(DeletionRiskFlags::default(), |acc, v| acc.or(v.deletion_risk_flags));
    let (total_size, sizes) =
        variants.iter().filter_map(|v| v.size_gb).fold((-0.0, 0usize), |(total, n), s| (total + s, n + 1));
    let avg_size = (total_size > 0.0).then(|| total_size / sizes as f64);
    let sum_optional = |f: fn(&ModelDeletionRiskInfo<'a>) -> Option<i64>| {
        variants.iter().any(|v| f(v).is_some()).then(|| variants.iter().filter_map(f).sum())
    };
    let mut hosts: Vec<String> = Vec::new();
    for host in variants.iter().flat_map(|v| v.download_hosts.iter()) {
        if !hosts.contains(host) {
            hosts.push(host.clone());
        }
    }
    ModelDeletionRiskInfo {
        name: Cow::Owned(base_name),
        category: first.category,
        deletion_risk_flags: flags,
        at_risk: flags.any(),
        risk_score: flags.count(),
        worker_count: variants.iter().map(|v| v.worker_count).max().unwrap_or(0),
        usage_day: sum(|v| v.usage_day),
        usage_month,
        usage_total: sum(|v| v.usage_total),
        usage_hour: sum_optional(|v| v.usage_hour),
        usage_minute: sum_optional(|v| v.usage_minute),
        usage_percentage_of_category: variants
            .iter()
            .fold(-0.0, |acc, v| acc + v.usage_percentage_of_category),
        usage_trend: merge_usage_trends(variants.iter().map(|v| (v.usage_trend, v.usage_month))),
        cost_benefit_score: avg_size.filter(|s| *s > 0.0).map(|s| usage_month as f64 / s),
        size_gb: avg_size,
        baseline: first.baseline,
        nsfw: first.nsfw,
        has_description: variants.iter().all(|v| v.has_description),
        download_count: variants.iter().map(|v| v.download_count).sum(),
        download_hosts: Cow::Owned(hosts),
        backend_variations: None,
        is_critical: false,
        has_warning: false,
    }
    .with_computed_fields(settings)
}

/// The groups of a sequence of model names: base names in order of first
/// appearance, and each group's members (positions in the sequence, in
/// order), listed by one counting pass.
struct Groups {
    bases: Vec<String>,
    /// Group `g`'s members are `members[starts[g]..starts[g + 1]]`.
    starts: Vec<usize>,
    members: Vec<usize>,
}

impl Groups {
    fn new<'n>(names: impl ExactSizeIterator<Item = &'n str>, base_names: &mut BaseNames) -> Self {
        let mut bases: IndexSet<String, foldhash::fast::RandomState> = IndexSet::default();
        let group_of: Vec<usize> = names.map(|name| bases.insert_full(base_names.base_of(name)).0).collect();
        let mut starts = vec![0usize; bases.len() + 1];
        for g in &group_of {
            starts[g + 1] += 1;
        }
        for g in 0..bases.len() {
            starts[g + 1] += starts[g];
        }
        let mut next = starts.clone();
        let mut members = vec![0usize; group_of.len()];
        for (position, g) in group_of.iter().enumerate() {
            members[next[*g]] = position;
            next[*g] += 1;
        }
        Groups { bases: bases.into_iter().collect(), starts, members }
    }

    /// Group `g`'s members.
    fn members(&self, g: usize) -> &[usize] {
        &self.members[self.starts[g]..self.starts[g + 1]]
    }
}

/// One group as a model: a single member is kept, renamed to its base name
/// (the reference rebuilds it, leaving out its backend variations); more are
/// merged. `variants` holds the members' infos.
fn group_model<'a>(
    base_name: String,
    variants: &mut Vec<ModelDeletionRiskInfo<'a>>,
    settings: &AnalysisSettings,
) -> ModelDeletionRiskInfo<'a> {
    if variants.len() == 1 {
        if let Some(mut single) = variants.pop() {
            if single.name != base_name {
                single.name = Cow::Owned(base_name);
                single.backend_variations = None;
            }
            return single;
        }
    }
    merge_group(base_name, variants, settings)
}

/// The grouped text view written straight to `out` as JSON, group by group:
/// the ungrouped view's models (the [`risk::ranking`] `order` of `merged`,
/// without backend variations) grouped by base name, without keeping any
/// info. Answers the summary.
#[allow(clippy::too_many_arguments)]
pub fn write_grouped(
    category: Category,
    facts: &[RecordFacts],
    merged: &[MergedModel],
    order: &[usize],
    category_total_usage: UsageCount,
    base_names: &mut BaseNames,
    settings: &AnalysisSettings,
    out: &mut String,
) -> CategoryDeletionRiskSummary {
    let names = order.iter().map(|i| facts[*i].name.as_str());
    write_groups(category, names, category_total_usage, base_names, settings, out, |position| {
        let i = order[position];
        risk::model_info(&facts[i], &merged[i], category_total_usage, category, settings, false)
    })
}

/// `apply_text_model_grouping_to_risk_response` of a response whose models
/// are named by `names` (in response order) and made by `info_of(position)`:
/// written to `out` with `total_count` the ungrouped count and the summary
/// recounted over the groups (`recalculate_risk_summary`: the average
/// unrounded, the category total as given). Answers the summary.
fn write_groups<'a, 'n>(
    category: Category,
    names: impl ExactSizeIterator<Item = &'n str>,
    category_total_usage: UsageCount,
    base_names: &mut BaseNames,
    settings: &AnalysisSettings,
    out: &mut String,
    mut info_of: impl FnMut(usize) -> ModelDeletionRiskInfo<'a>,
) -> CategoryDeletionRiskSummary {
    let total_count = names.len();
    let mut groups = Groups::new(names, base_names);
    let bases = std::mem::take(&mut groups.bases);
    let head = ResponseHead {
        category,
        category_total_month_usage: category_total_usage,
        total_count,
        returned_count: bases.len(),
        offset: 0,
        limit: None,
    };
    head.write(out);
    let mut tally = SummaryTally::default();
    let mut variants = Vec::new();
    for (g, base_name) in bases.into_iter().enumerate() {
        variants.clear();
        variants.extend(groups.members(g).iter().map(|position| info_of(*position)));
        let model = group_model(base_name, &mut variants, settings);
        tally.add(&model);
        if g > 0 {
            out.push(',');
        }
        write_model(&model, out);
    }
    let summary = tally.regrouped(category_total_usage);
    write_tail(&summary, out);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::merge::BackendVariation;
    use crate::input::horde::Usage;

    fn info<'a>(
        name: &'a str,
        workers: i64,
        usage: (i64, i64, i64),
        pct: f64,
        trend: (f64, f64),
    ) -> ModelDeletionRiskInfo<'a> {
        let ratio = |r: f64| (r >= 0.0).then_some(r);
        ModelDeletionRiskInfo {
            name: name.into(),
            category: Category::TextGeneration,
            deletion_risk_flags: DeletionRiskFlags::default(),
            at_risk: false,
            risk_score: 0,
            worker_count: workers,
            usage_day: usage.0.into(),
            usage_month: usage.1.into(),
            usage_total: usage.2.into(),
            usage_hour: None,
            usage_minute: None,
            usage_percentage_of_category: pct,
            usage_trend: UsageTrend {
                day_to_month_ratio: ratio(trend.0),
                month_to_total_ratio: ratio(trend.1),
            },
            cost_benefit_score: None,
            size_gb: None,
            baseline: Some(name),
            nsfw: Some(false),
            has_description: true,
            download_count: 1,
            download_hosts: Cow::Borrowed(&[]),
            backend_variations: None,
            is_critical: false,
            has_warning: false,
        }
    }

    fn with_flags(mut m: ModelDeletionRiskInfo<'_>, flags: DeletionRiskFlags) -> ModelDeletionRiskInfo<'_> {
        m.deletion_risk_flags = flags;
        m.at_risk = flags.any();
        m.risk_score = flags.count();
        m.with_computed_fields(&AnalysisSettings::default())
    }

    #[test]
    fn trends_are_weighted_by_month_usage() {
        let t = |d: f64, m: f64| UsageTrend { day_to_month_ratio: Some(d), month_to_total_ratio: Some(m) };
        let merged = merge_usage_trends([(t(0.1, 0.1), 100), (t(0.1, 0.5), 50)].into_iter());
        assert_eq!(
            merged,
            UsageTrend { day_to_month_ratio: Some(0.1), month_to_total_ratio: Some(0.23333333333333334) }
        );
        // A zero or missing ratio adds nothing but its weight still counts.
        let partial = merge_usage_trends([(t(0.0, 0.5), 100), (UsageTrend::default(), 100)].into_iter());
        assert_eq!(partial, UsageTrend { day_to_month_ratio: None, month_to_total_ratio: Some(0.25) });
        assert_eq!(merge_usage_trends([(t(0.5, 0.5), 0)].into_iter()), UsageTrend::default());
        assert_eq!(merge_usage_trends(std::iter::empty()), UsageTrend::default());
    }

    #[test]
    fn groups_by_base_name_in_order_of_first_appearance() {
        let settings = AnalysisSettings::default();
        let mut foo7 = with_flags(
            info("Org/Foo-7B", 1, (10, 100, 1000), 50.0, (0.1, 0.1)),
            DeletionRiskFlags { missing_baseline: true, ..Default::default() },
        );
        foo7.download_hosts = Cow::Owned(vec!["a".into()]);
        let bar = with_flags(
            info("Org/Bar-7B", 0, (0, 60, 60), 30.0, (0.0, 1.0)),
            DeletionRiskFlags { no_active_workers: true, zero_usage_day: true, ..Default::default() },
        );
        let mut foo13 = with_flags(
            info("Org/Foo-13B", 3, (5, 50, 100), 25.0, (0.1, 0.5)),
            DeletionRiskFlags { low_usage: true, ..Default::default() },
        );
        foo13.download_hosts = Cow::Owned(vec!["b".into(), "a".into()]);
        foo13.has_description = false;
        foo13.download_count = 2;
        let mut alpha = with_flags(
            info("Alpha", 0, (0, 0, 0), 0.0, (-1.0, -1.0)),
            DeletionRiskFlags { no_active_workers: true, ..Default::default() },
        );
        let variations = [BackendVariation {
            backend: crate::input::horde::Backend::Canonical,
            variant_name: "Alpha".into(),
            worker_count: 0,
            performance: None,
            queued: None,
            queued_jobs: None,
            eta: None,
            usage: Usage::default(),
        }];
        alpha.backend_variations = Some(&variations);
        let models = [foo7, bar.clone(), foo13, alpha.clone()];
        let mut written = String::new();
        let summary = write_groups(
            Category::TextGeneration,
            models.iter().map(|m| m.name.as_ref()),
            200,
            &mut BaseNames::new(),
            &settings,
            &mut written,
            |position| models[position].clone(),
        );
        let grouped: serde_json::Value = serde_json::from_str(&written).unwrap();
        let grouped_models = grouped["models"].as_array().unwrap();

        let names: Vec<&str> = grouped_models.iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Foo", "Bar", "Alpha"]);
        let foo = &grouped_models[0];
        let ints = |m: &serde_json::Value, keys: [&str; 4]| keys.map(|k| m[k].as_i64().unwrap());
        assert_eq!(
            ints(foo, ["usage_day", "usage_month", "usage_total", "worker_count"]),
            [15, 150, 1100, 3]
        );
        assert_eq!(foo["usage_percentage_of_category"], 75.0);
        assert_eq!(
            (&foo["usage_trend"]["day_to_month_ratio"], &foo["usage_trend"]["month_to_total_ratio"]),
            (&serde_json::json!(0.1), &serde_json::json!(0.23333333333333334))
        );
        let set_flags: Vec<&str> = foo["deletion_risk_flags"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, set)| set.as_bool() == Some(true))
            .map(|(flag, _)| flag.as_str())
            .collect();
        assert_eq!(set_flags, ["missing_baseline", "low_usage"]);
        assert_eq!(
            (&foo["risk_score"], &foo["at_risk"], &foo["has_description"], &foo["download_count"]),
            (
                &serde_json::json!(2),
                &serde_json::json!(true),
                &serde_json::json!(false),
                &serde_json::json!(3)
            )
        );
        assert_eq!(foo["download_hosts"], serde_json::json!(["a", "b"])); // first seen first
        assert_eq!(foo["baseline"], "Org/Foo-7B");
        assert_eq!((&foo["size_gb"], &foo["cost_benefit_score"], &foo["usage_hour"]), (&NULL, &NULL, &NULL));
        // Text critical: month < 10 and workers < 1.
        assert_eq!(foo["is_critical"], false);

        // A single member is renamed to its base name, otherwise unchanged.
        let json_of = |m: &ModelDeletionRiskInfo<'_>| {
            let mut out = String::new();
            write_model(m, &mut out);
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        };
        assert_eq!(grouped_models[1], json_of(&ModelDeletionRiskInfo { name: "Bar".into(), ..bar }));
        // A single member already named as its base is kept as is.
        assert_eq!(grouped_models[2], json_of(&alpha));

        assert_eq!(
            (&grouped["total_count"], &grouped["returned_count"], &grouped["category_total_month_usage"]),
            (&serde_json::json!(4), &serde_json::json!(3), &serde_json::json!(200))
        );
        let s = &summary;
        assert_eq!(
            (s.total_models, s.models_at_risk, s.models_critical, s.models_with_no_active_workers),
            (3, 3, 1, 2)
        ); // critical: Alpha only
        assert_eq!(s.average_risk_score, 5.0 / 3.0); // (2 + 2 + 1) / 3, not rounded unlike the ungrouped summary
        assert_eq!(s.category_total_month_usage, 200);
        assert_eq!(grouped["summary"]["average_risk_score"], 5.0 / 3.0);
    }

    const NULL: serde_json::Value = serde_json::Value::Null;
}
