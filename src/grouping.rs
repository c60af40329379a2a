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

use crate::category::Category;
use crate::horde::BaseNames;
use crate::risk::{
    CategoryDeletionRiskResponse, CategoryDeletionRiskSummary, DeletionRiskFlags, ModelDeletionRiskInfo,
    UsageTrend,
};
use crate::settings::AnalysisSettings;
use indexmap::IndexMap;

/// `merge_usage_trends`: ratios averaged with the given weights (month
/// usage); a zero or missing ratio is left out of the sum but not of the
/// total weight; no weight at all gives no ratios.
pub fn merge_usage_trends(trends: &[UsageTrend], weights: &[i64]) -> UsageTrend {
    let total_weight = weights.iter().fold(0i64, |acc, w| acc.saturating_add(*w));
    if trends.is_empty() || total_weight == 0 {
        return UsageTrend::default();
    }
    let weighted = |ratio: fn(&UsageTrend) -> Option<f64>| -> Option<f64> {
        let terms: Vec<f64> = trends
            .iter()
            .zip(weights)
            .filter_map(|(t, w)| ratio(t).filter(|r| *r != 0.0).map(|r| r * *w as f64))
            .collect();
        (!terms.is_empty()).then(|| terms.iter().sum::<f64>() / total_weight as f64)
    };
    UsageTrend {
        day_to_month_ratio: weighted(|t| t.day_to_month_ratio),
        month_to_total_ratio: weighted(|t| t.month_to_total_ratio),
    }
}

/// One group of two or more variants, folded into one model.
fn merge_group(
    base_name: String,
    variants: &[ModelDeletionRiskInfo],
    settings: &AnalysisSettings,
) -> ModelDeletionRiskInfo {
    let first = &variants[0];
    let sum =
        |f: fn(&ModelDeletionRiskInfo) -> i64| variants.iter().fold(0i64, |acc, v| acc.saturating_add(f(v)));
    let usage_month = sum(|v| v.usage_month);
    let flags = variants.iter().fold(DeletionRiskFlags::default(), |acc, v| acc.or(v.deletion_risk_flags));
    let sizes: Vec<f64> = variants.iter().filter_map(|v| v.size_gb).collect();
    let total_size: f64 = sizes.iter().sum();
    let avg_size = (total_size > 0.0).then(|| total_size / sizes.len() as f64);
    let trends: Vec<UsageTrend> = variants.iter().map(|v| v.usage_trend).collect();
    let weights: Vec<i64> = variants.iter().map(|v| v.usage_month).collect();
    let sum_optional = |f: fn(&ModelDeletionRiskInfo) -> Option<i64>| {
        variants.iter().any(|v| f(v).is_some()).then(|| variants.iter().filter_map(f).sum())
    };
    let mut hosts: Vec<String> = Vec::new();
    for host in variants.iter().flat_map(|v| &v.download_hosts) {
        if !hosts.contains(host) {
            hosts.push(host.clone());
        }
    }
    ModelDeletionRiskInfo {
        name: base_name,
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
        usage_percentage_of_category: variants.iter().map(|v| v.usage_percentage_of_category).sum(),
        usage_trend: merge_usage_trends(&trends, &weights),
        cost_benefit_score: avg_size.filter(|s| *s > 0.0).map(|s| usage_month as f64 / s),
        size_gb: avg_size,
        baseline: first.baseline.clone(),
        nsfw: first.nsfw,
        has_description: variants.iter().all(|v| v.has_description),
        download_count: variants.iter().map(|v| v.download_count).sum(),
        download_hosts: hosts,
        backend_variations: None,
        is_critical: false,
        has_warning: false,
    }
    .with_computed_fields(settings)
}

/// `group_risk_models`: the grouped models, in order of first appearance.
pub fn group_risk_models(
    models: Vec<ModelDeletionRiskInfo>,
    base_names: &mut BaseNames,
    settings: &AnalysisSettings,
) -> Vec<ModelDeletionRiskInfo> {
    let mut groups: IndexMap<String, Vec<ModelDeletionRiskInfo>> = IndexMap::new();
    for model in models {
        groups.entry(base_names.base_of(&model.name)).or_default().push(model);
    }
    groups
        .into_iter()
        .map(|(base_name, mut variants)| {
            if variants.len() == 1 {
                if let Some(mut single) = variants.pop() {
                    if single.name != base_name {
                        // The reference rebuilds the model under the base
                        // name, leaving out its backend variations.
                        single.name = base_name;
                        single.backend_variations = None;
                    }
                    return single;
                }
            }
            merge_group(base_name, &variants, settings)
        })
        .collect()
}

/// `recalculate_risk_summary`: counts over the grouped models, the average
/// risk score unrounded, the category total as given.
pub fn recalculate_risk_summary(
    models: &[ModelDeletionRiskInfo],
    category_total_usage: i64,
) -> CategoryDeletionRiskSummary {
    let total_score: u64 = models.iter().map(|m| u64::from(m.risk_score)).sum();
    let average = if models.is_empty() { 0.0 } else { total_score as f64 / models.len() as f64 };
    CategoryDeletionRiskSummary::count(models, average, category_total_usage)
}

/// Group a text category's response; any other category is returned as is.
pub fn apply_text_model_grouping(
    response: CategoryDeletionRiskResponse,
    base_names: &mut BaseNames,
    settings: &AnalysisSettings,
) -> CategoryDeletionRiskResponse {
    if response.category != Category::TextGeneration {
        return response;
    }
    let CategoryDeletionRiskResponse {
        category,
        category_total_month_usage,
        total_count,
        offset,
        limit,
        models,
        ..
    } = response;
    let models = group_risk_models(models, base_names, settings);
    let summary = recalculate_risk_summary(&models, category_total_month_usage);
    CategoryDeletionRiskResponse {
        category,
        category_total_month_usage,
        total_count,
        returned_count: models.len(),
        offset,
        limit,
        models,
        summary,
    }
}
