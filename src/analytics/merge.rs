//! Merging each reference model with its Horde data
//! (`merge_category_with_horde_data`).
//!
//! Per model: the aggregated status (worker count, queue figures), the usage
//! over its name variants (none when no period is above zero) and, for the
//! text view with backend variations, the per-backend breakdown. The lookups
//! are [`HordeIndex`]'s: a model's name variants are looked up lower-cased in
//! one reusable buffer per category merge (no string per variant), and base
//! names come memoised from [`BaseNames`]. The only allocations per model are
//! those of the result (the backend variations and their names).

use crate::input::horde::{
    Backend, BaseNames, HordeIndex, HordeModelStats, HordeModelStatus, LookupScratch, Usage, UsageCount,
};

/// One backend's share of a model (`BackendVariation`).
#[derive(Debug, Clone, PartialEq)]
pub struct BackendVariation {
    pub backend: Backend,
    /// The name the Horde reports for this backend (from its status when it
    /// has one, else built from the backend prefix and the model name).
    pub variant_name: String,
    pub worker_count: i64,
    pub performance: Option<f64>,
    pub queued: Option<f64>,
    pub queued_jobs: Option<f64>,
    pub eta: Option<i64>,
    pub usage: Usage,
}

/// A reference model's Horde runtime data (`CombinedModelStatistics`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergedModel {
    /// Workers from the aggregated status; 0 without one.
    pub worker_count: i64,
    pub queued_jobs: Option<f64>,
    pub performance: Option<f64>,
    pub eta: Option<i64>,
    pub queued: Option<f64>,
    /// Usage, `None` when no period is above zero.
    pub usage: Option<Usage>,
    /// Per-backend breakdown; `Some` (possibly empty) only when asked for.
    pub backend_variations: Option<Vec<BackendVariation>>,
}

/// The indexed Horde data of one category, built once per cycle.
#[derive(Debug)]
pub struct HordeData<'a> {
    pub index: HordeIndex<'a>,
}

impl<'a> HordeData<'a> {
    pub fn new(status: &'a [HordeModelStatus], stats: &HordeModelStats, base_names: &mut BaseNames) -> Self {
        HordeData { index: HordeIndex::new(status, stats, base_names) }
    }
}

/// Merge one model (`merge_model_with_horde_data`).
pub fn merge_model(
    name: &str,
    horde: &HordeData<'_>,
    base_names: &mut BaseNames,
    include_backend_variations: bool,
) -> MergedModel {
    merge_model_with(name, horde, base_names, include_backend_variations, &mut LookupScratch::default())
}

/// [`merge_model`] with reusable lookup buffers.
fn merge_model_with(
    name: &str,
    horde: &HordeData<'_>,
    base_names: &mut BaseNames,
    include_backend_variations: bool,
    scratch: &mut LookupScratch,
) -> MergedModel {
    let (status, usage, backend_variations) = if include_backend_variations {
        let found = horde.index.with_variations(name, scratch);
        let present = |backend: Backend| {
            found.status_by_backend[backend as usize].is_some()
                || !found.usage_by_backend[backend as usize].is_zero()
        };
        let mut variations = Vec::with_capacity(Backend::ALL.into_iter().filter(|&b| present(b)).count());
        for backend in Backend::ALL {
            if !present(backend) {
                continue;
            }
            let status = found.status_by_backend[backend as usize];
            let usage = found.usage_by_backend[backend as usize];
            let variant_name = match (status, backend) {
                (Some(s), _) => s.name.clone(),
                (None, Backend::Canonical) => name.to_string(),
                (None, other) => format!("{}/{name}", other.as_str()),
            };
            variations.push(BackendVariation {
                backend,
                variant_name,
                worker_count: status.map_or(0, |s| s.count),
                performance: status.and_then(|s| s.performance),
                queued: status.and_then(|s| s.queued),
                queued_jobs: status.and_then(|s| s.jobs),
                eta: status.and_then(|s| s.eta),
                usage,
            });
        }
        (found.status, found.usage, Some(variations))
    } else {
        let (status, usage) = horde.index.aggregated(name, base_names.base_key(name), scratch);
        (status, usage, None)
    };
    MergedModel {
        worker_count: status.map_or(0, |s| s.count),
        queued_jobs: status.and_then(|s| s.jobs),
        performance: status.and_then(|s| s.performance),
        eta: status.and_then(|s| s.eta),
        queued: status.and_then(|s| s.queued),
        usage: usage.any_positive().then_some(usage),
        backend_variations,
    }
}

/// Merge every model of a category, in the order given.
pub fn merge_category<'n>(
    model_names: impl IntoIterator<Item = &'n str>,
    horde: &HordeData<'_>,
    base_names: &mut BaseNames,
    include_backend_variations: bool,
) -> Vec<MergedModel> {
    let mut scratch = LookupScratch::default();
    model_names
        .into_iter()
        .map(|name| merge_model_with(name, horde, base_names, include_backend_variations, &mut scratch))
        .collect()
}

/// The category's monthly usage: the sum over the models that have usage.
pub fn category_total_month(merged: &[MergedModel]) -> UsageCount {
    merged.iter().filter_map(|m| m.usage).fold(0, |acc: UsageCount, u| acc.saturating_add(u.month))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::horde::parse_stats;

    fn status(name: &str, count: i64, performance: f64) -> HordeModelStatus {
        HordeModelStatus {
            performance: Some(performance),
            queued: Some(1.5),
            jobs: Some(2.0),
            eta: Some(3),
            model_type: Some(crate::input::horde::HordeModelType::Text),
            name: name.into(),
            count,
        }
    }

    /// The Horde index tests' stats (`Foo-7B` and friends share the base name `foo`).
    fn stats() -> HordeModelStats {
        crate::input::horde::tests::foo_stats()
    }

    // Expected values: the reference's merge_model_with_horde_data on the same data.
    #[test]
    fn merges_aggregated_status_and_usage() {
        let statuses = [status("koboldcpp/Foo-7B", 3, 2.0), status("Org/Foo-7B", 1, 1.0)];
        let stats = stats();
        let mut base_names = BaseNames::new();
        let horde = HordeData::new(&statuses, &stats, &mut base_names);

        let foo = merge_model("Org/Foo-7B", &horde, &mut base_names, false);
        assert_eq!(foo.worker_count, 3);
        assert_eq!(
            (foo.performance, foo.queued, foo.queued_jobs, foo.eta),
            (Some(2.0), Some(1.5), Some(2.0), Some(3))
        );
        assert_eq!(foo.usage, Some(Usage { day: 10110, month: 202, total: 0 }));
        assert_eq!(foo.backend_variations, None);

        let bar = merge_model("Org/Bar-7B", &horde, &mut base_names, false);
        assert_eq!((bar.worker_count, bar.performance), (0, None));
        assert_eq!(bar.usage, Some(Usage { day: 1000, month: 0, total: 3 }));

        let unknown = merge_model("Alpha", &horde, &mut base_names, false);
        assert_eq!(unknown, MergedModel::default());

        let all = merge_category(["Org/Foo-7B", "Org/Bar-7B", "Alpha"], &horde, &mut base_names, false);
        assert_eq!(category_total_month(&all), 202);
    }

    #[test]
    fn merges_backend_variations() {
        let statuses = [status("koboldcpp/Foo-7B", 3, 2.0), status("Org/Foo-7B", 1, 1.0)];
        let stats = stats();
        let mut base_names = BaseNames::new();
        let horde = HordeData::new(&statuses, &stats, &mut base_names);

        let foo = merge_model("Org/Foo-7B", &horde, &mut base_names, true);
        assert_eq!(foo.worker_count, 3);
        assert_eq!(foo.usage, Some(Usage { day: 10010, month: 2, total: 0 }));
        let variations = foo.backend_variations.unwrap();
        let summary: Vec<(Backend, &str, i64, Option<f64>, Usage)> = variations
            .iter()
            .map(|v| (v.backend, v.variant_name.as_str(), v.worker_count, v.performance, v.usage))
            .collect();
        assert_eq!(
            summary,
            [
                (Backend::Canonical, "Org/Foo-7B", 1, Some(1.0), Usage { day: 10, month: 0, total: 0 }),
                (
                    Backend::Koboldcpp,
                    "koboldcpp/Foo-7B",
                    3,
                    Some(2.0),
                    Usage { day: 10000, month: 2, total: 0 }
                ),
            ]
        );

        // Usage without a status: the variant name is built from the model name.
        let bar = merge_model("Org/Bar-7B", &horde, &mut base_names, true).backend_variations.unwrap();
        assert_eq!(bar.len(), 1);
        assert_eq!(
            (bar[0].backend, bar[0].variant_name.as_str(), bar[0].worker_count),
            (Backend::Canonical, "Org/Bar-7B", 0)
        );
        assert_eq!(bar[0].performance, None);

        assert_eq!(merge_model("Alpha", &horde, &mut base_names, true).backend_variations, Some(Vec::new()));
    }

    // The reference on the same stats (Python integers): Big's day and month
    // are 2**63 (its two names summed), Huge's day 2**64, and the category's
    // monthly total 2**63 + 1; nothing saturates at i64::MAX.
    #[test]
    fn usage_beyond_i64_is_exact() {
        let stats = parse_stats(
            br#"{"day": {"Big": 4611686018427387904, "koboldcpp/Big": 4611686018427387904,
                         "Huge": 18446744073709551616},
                 "month": {"Big": 9223372036854775808, "Huge": 1}, "total": {}}"#,
        )
        .unwrap();
        let mut base_names = BaseNames::new();
        let horde = HordeData::new(&[], &stats, &mut base_names);
        let merged = merge_category(["Big", "Huge"], &horde, &mut base_names, false);
        assert_eq!(merged[0].usage, Some(Usage { day: 1 << 63, month: 1 << 63, total: 0 }));
        assert_eq!(merged[1].usage, Some(Usage { day: 1 << 64, month: 1, total: 0 }));
        assert_eq!(category_total_month(&merged), (1 << 63) + 1);
    }
}
