//! The deletion-risk analysis (`deletion_risk_analysis.py`): flags per model,
//! the per-model info, the ordering and the category summary.
//!
//! Work is split by what it depends on: [`RecordFacts`] holds everything read
//! from a reference record (description, baseline, downloads and their hosts),
//! computed once per category and shared by the cycle's three deletion-risk
//! views; [`model_info`] combines it with one view's merged Horde data.
//!
//! A [`ModelDeletionRiskInfo`] borrows its name, baseline, download hosts and
//! backend variations from the facts and the merged data instead of copying
//! them per view, and no view's infos are kept: [`write_analysis`] builds
//! each model's info in [`ranking`] order, counts it ([`SummaryTally`]) and
//! writes it ([`crate::output::risk`]), then writes the summary (which
//! follows the models in the JSON).

use crate::analytics::merge::{BackendVariation, MergedModel};
use crate::category::Category;
use crate::input::horde::UsageCount;
use crate::input::reference::{Download, RawRecord};
use crate::output::risk::{write_model, write_tail, ResponseHead};
use crate::python;
use crate::settings::AnalysisSettings;
use std::borrow::Cow;

/// Usage trend ratios (`UsageTrend`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageTrend {
    /// day / month; `None` when month usage is zero.
    pub day_to_month_ratio: Option<f64>,
    /// month / total; `None` when total usage is zero.
    pub month_to_total_ratio: Option<f64>,
}

/// The reasons a model might be deleted (`DeletionRiskFlags`). Read back
/// from a written entry by the read API (a flag it lacks is `false`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct DeletionRiskFlags {
    pub zero_usage_day: bool,
    pub zero_usage_month: bool,
    pub zero_usage_total: bool,
    pub no_active_workers: bool,
    pub has_multiple_hosts: bool,
    pub has_non_preferred_host: bool,
    pub has_unknown_host: bool,
    pub no_download_urls: bool,
    pub missing_description: bool,
    pub missing_baseline: bool,
    pub low_usage: bool,
}

impl DeletionRiskFlags {
    /// Every flag, in declaration order.
    fn all(&self) -> [bool; 11] {
        [
            self.zero_usage_day,
            self.zero_usage_month,
            self.zero_usage_total,
            self.no_active_workers,
            self.has_multiple_hosts,
            self.has_non_preferred_host,
            self.has_unknown_host,
            self.no_download_urls,
            self.missing_description,
            self.missing_baseline,
            self.low_usage,
        ]
    }

    /// Any flag set (`at_risk`).
    pub fn any(&self) -> bool {
        self.count() > 0
    }

    /// How many flags are set (`risk_score`).
    pub fn count(&self) -> u32 {
        self.all().iter().filter(|f| **f).count() as u32
    }

    /// Host or download problems (`has_warning`).
    pub fn has_warning(&self) -> bool {
        self.has_multiple_hosts
            || self.has_non_preferred_host
            || self.has_unknown_host
            || self.no_download_urls
    }

    /// Logical OR of every flag (grouping).
    pub fn or(self, other: DeletionRiskFlags) -> DeletionRiskFlags {
        DeletionRiskFlags {
            zero_usage_day: self.zero_usage_day || other.zero_usage_day,
            zero_usage_month: self.zero_usage_month || other.zero_usage_month,
            zero_usage_total: self.zero_usage_total || other.zero_usage_total,
            no_active_workers: self.no_active_workers || other.no_active_workers,
            has_multiple_hosts: self.has_multiple_hosts || other.has_multiple_hosts,
            has_non_preferred_host: self.has_non_preferred_host || other.has_non_preferred_host,
            has_unknown_host: self.has_unknown_host || other.has_unknown_host,
            no_download_urls: self.no_download_urls || other.no_download_urls,
            missing_description: self.missing_description || other.missing_description,
            missing_baseline: self.missing_baseline || other.missing_baseline,
            low_usage: self.low_usage || other.low_usage,
        }
    }
}

/// One model's deletion-risk information (`ModelDeletionRiskInfo`).
///
/// `'a` is the cycle's per-category data ([`RecordFacts`] and the merged
/// Horde data): the strings and lists are borrowed from there; only the
/// grouping makes new ones (base names, unions of hosts).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDeletionRiskInfo<'a> {
    pub name: Cow<'a, str>,
    pub category: Category,
    pub deletion_risk_flags: DeletionRiskFlags,
    pub at_risk: bool,
    pub risk_score: u32,
    pub worker_count: i64,
    pub usage_day: UsageCount,
    pub usage_month: UsageCount,
    pub usage_total: UsageCount,
    pub usage_hour: Option<i64>,
    pub usage_minute: Option<i64>,
    pub usage_percentage_of_category: f64,
    pub usage_trend: UsageTrend,
    pub cost_benefit_score: Option<f64>,
    pub size_gb: Option<f64>,
    pub baseline: Option<&'a str>,
    pub nsfw: Option<bool>,
    pub has_description: bool,
    pub download_count: usize,
    pub download_hosts: Cow<'a, [String]>,
    /// Written as the reference's `BackendVariationStats` list.
    pub backend_variations: Option<&'a [BackendVariation]>,
    /// Computed: see [`is_critical`].
    pub is_critical: bool,
    /// Computed: [`DeletionRiskFlags::has_warning`].
    pub has_warning: bool,
}

impl ModelDeletionRiskInfo<'_> {
    /// Fill the computed fields from the others.
    pub fn with_computed_fields(mut self, settings: &AnalysisSettings) -> Self {
        self.is_critical = is_critical(
            self.category,
            &self.deletion_risk_flags,
            self.usage_month,
            self.worker_count,
            settings,
        );
        self.has_warning = self.deletion_risk_flags.has_warning();
        self
    }
}

/// `is_critical`: for text, month usage and workers both below the critical
/// thresholds; for other categories, zero month usage and no workers.
pub fn is_critical(
    category: Category,
    flags: &DeletionRiskFlags,
    usage_month: UsageCount,
    worker_count: i64,
    settings: &AnalysisSettings,
) -> bool {
    match category {
        Category::TextGeneration => {
            usage_month < UsageCount::from(settings.text_gen_critical_usage_threshold)
                && worker_count < settings.text_gen_critical_worker_threshold
        }
        Category::ImageGeneration => flags.zero_usage_month && flags.no_active_workers,
    }
}

/// The category summary (`CategoryDeletionRiskSummary`); `Default` is the
/// empty tally every count starts from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CategoryDeletionRiskSummary {
    pub total_models: usize,
    pub models_at_risk: usize,
    pub models_critical: usize,
    pub models_with_warnings: usize,
    pub models_with_zero_day_usage: usize,
    pub models_with_zero_month_usage: usize,
    pub models_with_zero_total_usage: usize,
    pub models_with_no_active_workers: usize,
    pub models_with_no_downloads: usize,
    pub models_with_non_preferred_hosts: usize,
    pub models_with_multiple_hosts: usize,
    pub models_with_low_usage: usize,
    pub average_risk_score: f64,
    pub category_total_month_usage: UsageCount,
}

/// A summary counted while its models go by (the views are written model by
/// model, the summary after them, as in the JSON).
#[derive(Debug, Clone, Default)]
pub struct SummaryTally {
    /// The counts; the average and the category total are set at the end.
    counts: CategoryDeletionRiskSummary,
    total_score: u64,
    month_usage: UsageCount,
}

/// What a summary counts of one model: the deletion-risk views read it from
/// the [`ModelDeletionRiskInfo`] they write, the read API's presets from a
/// written entry's model.
#[derive(Debug, Clone, Copy)]
pub struct TalliedModel<'f> {
    pub at_risk: bool,
    pub is_critical: bool,
    pub has_warning: bool,
    pub flags: &'f DeletionRiskFlags,
    pub risk_score: u64,
    pub usage_month: UsageCount,
}

impl SummaryTally {
    pub fn add(&mut self, m: &ModelDeletionRiskInfo<'_>) {
        self.count(TalliedModel {
            at_risk: m.at_risk,
            is_critical: m.is_critical,
            has_warning: m.has_warning,
            flags: &m.deletion_risk_flags,
            risk_score: u64::from(m.risk_score),
            usage_month: m.usage_month,
        });
    }

    /// Count one model; the score and the month usage add up saturating.
    pub fn count(&mut self, m: TalliedModel<'_>) {
        let s = &mut self.counts;
        let f = m.flags;
        s.total_models += 1;
        s.models_at_risk += usize::from(m.at_risk);
        s.models_critical += usize::from(m.is_critical);
        s.models_with_warnings += usize::from(m.has_warning);
        s.models_with_zero_day_usage += usize::from(f.zero_usage_day);
        s.models_with_zero_month_usage += usize::from(f.zero_usage_month);
        s.models_with_zero_total_usage += usize::from(f.zero_usage_total);
        s.models_with_no_active_workers += usize::from(f.no_active_workers);
        s.models_with_no_downloads += usize::from(f.no_download_urls);
        s.models_with_non_preferred_hosts += usize::from(f.has_non_preferred_host);
        s.models_with_multiple_hosts += usize::from(f.has_multiple_hosts);
        s.models_with_low_usage += usize::from(f.low_usage);
        self.total_score = self.total_score.saturating_add(m.risk_score);
        self.month_usage = self.month_usage.saturating_add(m.usage_month);
    }

    fn average(&self) -> f64 {
        match self.counts.total_models {
            0 => 0.0,
            n => self.total_score as f64 / n as f64,
        }
    }

    /// `from_risk_models` (and the read API's preset summary): the average
    /// rounded to 2 places (0 for no models), the category total as the sum
    /// of the models' month usage.
    pub fn ungrouped(self) -> CategoryDeletionRiskSummary {
        CategoryDeletionRiskSummary {
            average_risk_score: python::float::round(self.average(), 2),
            category_total_month_usage: self.month_usage,
            ..self.counts
        }
    }

    /// `recalculate_risk_summary`: the average unrounded, the category total
    /// as given.
    pub fn regrouped(self, category_total_usage: UsageCount) -> CategoryDeletionRiskSummary {
        CategoryDeletionRiskSummary {
            average_risk_score: self.average(),
            category_total_month_usage: category_total_usage,
            ..self.counts
        }
    }
}

/// The download-related flags (`validate_downloads`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadFlags {
    pub no_download_urls: bool,
    pub has_multiple_hosts: bool,
    pub has_non_preferred_host: bool,
    pub has_unknown_host: bool,
}

/// `validate_downloads`: text models skip the check when the settings say so;
/// no downloads at all is "no download URLs"; a URL counts as valid with a
/// scheme and a host; a host is preferred when a preferred host is a
/// substring of it; a URL Python cannot parse is an "unknown host".
pub fn download_flags(
    downloads: &[Download<'_>],
    category: Category,
    settings: &AnalysisSettings,
) -> DownloadFlags {
    if category == Category::TextGeneration && settings.text_gen_ignore_download_hosts {
        return DownloadFlags::default();
    }
    if downloads.is_empty() {
        return DownloadFlags { no_download_urls: true, ..DownloadFlags::default() };
    }
    let mut hosts: Vec<String> = Vec::new();
    let mut has_valid_url = false;
    let mut has_preferred_host = false;
    let mut has_unknown_host = false;
    for url in downloads.iter().filter_map(|d| d.file_url).filter(|u| !u.is_empty()) {
        match python::url::urlsplit(url) {
            Ok(parts) if !parts.scheme.is_empty() && !parts.netloc.is_empty() => {
                has_valid_url = true;
                if settings.preferred_file_hosts.iter().any(|h| parts.netloc.contains(h.as_str())) {
                    has_preferred_host = true;
                }
                if !hosts.contains(&parts.netloc) {
                    hosts.push(parts.netloc);
                }
            }
            Ok(_) => {}
            Err(_) => has_unknown_host = true,
        }
    }
    DownloadFlags {
        no_download_urls: !has_valid_url,
        has_multiple_hosts: hosts.len() > 1,
        has_non_preferred_host: has_valid_url && !has_preferred_host,
        has_unknown_host,
    }
}

/// The distinct hosts of the download URLs, in first-seen order (any URL with
/// a netloc, scheme or not; unparsable URLs skipped).
pub fn download_hosts(downloads: &[Download<'_>]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for url in downloads.iter().filter_map(|d| d.file_url).filter(|u| !u.is_empty()) {
        if let Ok(parts) = python::url::urlsplit(url) {
            if !parts.netloc.is_empty() && !hosts.contains(&parts.netloc) {
                hosts.push(parts.netloc);
            }
        }
    }
    hosts
}

/// What the analysis reads from one reference record, computed once per
/// category and shared by the deletion-risk views.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFacts {
    /// The record's key in the category (the model name the reference reports).
    pub name: String,
    pub missing_description: bool,
    pub missing_baseline: bool,
    /// The baseline as reported: image records report an empty one as `None`,
    /// text records report it verbatim.
    pub baseline: Option<String>,
    pub nsfw: Option<bool>,
    /// Image records only (text records have no size in the analysis).
    pub size_bytes: Option<i128>,
    pub download_count: usize,
    pub download_hosts: Vec<String>,
    pub download_flags: DownloadFlags,
}

impl RecordFacts {
    pub fn new(record: &RawRecord, category: Category, settings: &AnalysisSettings) -> Self {
        let downloads = record.downloads();
        let baseline = record.baseline(category);
        let reported_baseline = match category {
            Category::ImageGeneration => baseline.filter(|b| !b.is_empty()).map(str::to_string),
            Category::TextGeneration => baseline.map(str::to_string),
        };
        RecordFacts {
            name: record.name.to_owned(),
            missing_description: record.description_missing(),
            missing_baseline: baseline.is_none_or(str::is_empty),
            baseline: reported_baseline,
            nsfw: record.nsfw(category),
            size_bytes: match category {
                Category::ImageGeneration => record.size_on_disk_bytes(),
                Category::TextGeneration => None,
            },
            download_count: downloads.len(),
            download_hosts: download_hosts(&downloads),
            download_flags: download_flags(&downloads, category, settings),
        }
    }
}

/// The usage-related flags (`validate_statistics`): (zero day, zero month,
/// zero total, no active workers, low usage).
pub fn statistics_flags(
    merged: &MergedModel,
    category_total_usage: UsageCount,
    low_usage_threshold: f64,
) -> (bool, bool, bool, bool, bool) {
    let no_active_workers = merged.worker_count == 0;
    let Some(usage) = merged.usage else {
        return (false, false, false, no_active_workers, false);
    };
    let low_usage = category_total_usage > 0
        && (usage.month as f64 / category_total_usage as f64) * 100.0 < low_usage_threshold;
    (usage.day == 0, usage.month == 0, usage.total == 0, no_active_workers, low_usage)
}

/// The low-usage threshold (percent of the category's month) for a category.
pub fn low_usage_threshold(category: Category, settings: &AnalysisSettings) -> f64 {
    match category {
        Category::TextGeneration => settings.text_gen_low_usage_threshold_percentage,
        Category::ImageGeneration => settings.low_usage_threshold_percentage,
    }
}

/// One model's info (`_build_risk_info`), borrowing from `facts` and `merged`.
pub fn model_info<'a>(
    facts: &'a RecordFacts,
    merged: &'a MergedModel,
    category_total_usage: UsageCount,
    category: Category,
    settings: &AnalysisSettings,
    include_backend_variations: bool,
) -> ModelDeletionRiskInfo<'a> {
    let (zero_usage_day, zero_usage_month, zero_usage_total, no_active_workers, low_usage) =
        statistics_flags(merged, category_total_usage, low_usage_threshold(category, settings));
    let d = facts.download_flags;
    let flags = DeletionRiskFlags {
        zero_usage_day,
        zero_usage_month,
        zero_usage_total,
        no_active_workers,
        has_multiple_hosts: d.has_multiple_hosts,
        has_non_preferred_host: d.has_non_preferred_host,
        has_unknown_host: d.has_unknown_host,
        no_download_urls: d.no_download_urls,
        missing_description: facts.missing_description,
        missing_baseline: facts.missing_baseline,
        low_usage,
    };
    let usage = merged.usage.unwrap_or_default();
    let usage_percentage = if category_total_usage > 0 {
        python::float::round(usage.month as f64 / category_total_usage as f64 * 100.0, 4)
    } else {
        0.0
    };
    let usage_trend = UsageTrend {
        day_to_month_ratio: (usage.month > 0).then(|| usage.day as f64 / usage.month as f64),
        month_to_total_ratio: (usage.total > 0).then(|| usage.month as f64 / usage.total as f64),
    };
    let size_gb = facts.size_bytes.filter(|b| *b > 0).map(|b| b as f64 / 1_073_741_824.0);
    let cost_benefit_score = size_gb.filter(|g| *g > 0.0).map(|g| usage.month as f64 / g);
    let backend_variations =
        merged.backend_variations.as_deref().filter(|v| include_backend_variations && !v.is_empty());
    ModelDeletionRiskInfo {
        name: Cow::Borrowed(&facts.name),
        category,
        deletion_risk_flags: flags,
        at_risk: flags.any(),
        risk_score: flags.count(),
        worker_count: merged.worker_count,
        usage_day: usage.day,
        usage_month: usage.month,
        usage_total: usage.total,
        usage_hour: None,
        usage_minute: None,
        usage_percentage_of_category: usage_percentage,
        usage_trend,
        cost_benefit_score: cost_benefit_score.map(|c| python::float::round(c, 2)),
        size_gb: size_gb.map(|g| python::float::round(g, 2)),
        baseline: facts.baseline.as_deref(),
        nsfw: facts.nsfw,
        has_description: !facts.missing_description,
        download_count: facts.download_count,
        download_hosts: Cow::Borrowed(&facts.download_hosts),
        backend_variations,
        is_critical: false,
        has_warning: false,
    }
    .with_computed_fields(settings)
}

/// The order of a view's models (`create_deletion_risk_response` sorts by
/// month usage, descending and stable): indices into the aligned `merged`
/// (and facts) data. Sorted on (month, index) pairs, so an unstable sort
/// keeps ties in record order; the infos are then built in this order and
/// never moved.
pub fn ranking(merged: &[MergedModel]) -> Vec<usize> {
    let mut order: Vec<(std::cmp::Reverse<UsageCount>, usize)> = merged
        .iter()
        .enumerate()
        .map(|(i, m)| (std::cmp::Reverse(m.usage.map_or(0, |u| u.month)), i))
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, i)| i).collect()
}

/// The whole deletion-risk response of a category
/// (`create_deletion_risk_response`) written to `out` as JSON, model by
/// model: one info per record in [`ranking`] order (`order`), each built,
/// counted and written (no info is kept), then the summary. `facts` and
/// `merged` are aligned (same model at the same index). Answers the summary.
#[allow(clippy::too_many_arguments)]
pub fn write_analysis(
    category: Category,
    facts: &[RecordFacts],
    merged: &[MergedModel],
    order: &[usize],
    category_total_usage: UsageCount,
    settings: &AnalysisSettings,
    include_backend_variations: bool,
    out: &mut String,
) -> CategoryDeletionRiskSummary {
    let head = ResponseHead {
        category,
        category_total_month_usage: category_total_usage,
        total_count: order.len(),
        returned_count: order.len(),
        offset: 0,
        limit: None,
    };
    head.write(out);
    let mut tally = SummaryTally::default();
    for (n, i) in order.iter().enumerate() {
        let info = model_info(
            &facts[*i],
            &merged[*i],
            category_total_usage,
            category,
            settings,
            include_backend_variations,
        );
        tally.add(&info);
        if n > 0 {
            out.push(',');
        }
        write_model(&info, out);
    }
    let summary = tally.ungrouped();
    write_tail(&summary, out);
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::horde::{Backend, Usage};
    use serde_json::json;

    #[test]
    fn the_summary_tally_saturates_and_rounds_its_average() {
        let flags = DeletionRiskFlags { zero_usage_day: true, low_usage: true, ..Default::default() };
        let model = |risk_score, usage_month| TalliedModel {
            at_risk: true,
            is_critical: false,
            has_warning: true,
            flags: &flags,
            risk_score,
            usage_month,
        };
        assert_eq!(SummaryTally::default().ungrouped(), CategoryDeletionRiskSummary::default());
        let mut tally = SummaryTally::default();
        for (score, usage) in [(1, 5), (1, 6), (0, 7)] {
            tally.count(model(score, usage));
        }
        let s = tally.ungrouped();
        assert_eq!(
            (s.total_models, s.models_at_risk, s.models_critical, s.models_with_warnings),
            (3, 3, 0, 3)
        );
        assert_eq!(
            (s.models_with_zero_day_usage, s.models_with_low_usage, s.models_with_no_downloads),
            (3, 3, 0)
        );
        assert_eq!(s.average_risk_score, 0.67); // 2 / 3 rounded to 2 places
        assert_eq!(s.category_total_month_usage, 18);
        let mut huge = SummaryTally::default();
        huge.count(model(u64::MAX, UsageCount::MAX));
        huge.count(model(u64::MAX, UsageCount::MAX));
        let s = huge.ungrouped();
        assert_eq!(s.average_risk_score, u64::MAX as f64 / 2.0);
        assert_eq!(s.category_total_month_usage, UsageCount::MAX);
    }

    fn model_json(info: &ModelDeletionRiskInfo<'_>) -> String {
        let mut out = String::new();
        write_model(info, &mut out);
        out
    }

    fn downloads(urls: &[&'static str]) -> Vec<Download<'static>> {
        urls.iter().map(|u| Download { file_url: Some(u) }).collect()
    }

    fn flags(urls: &[&'static str], category: Category) -> DownloadFlags {
        download_flags(&downloads(urls), category, &AnalysisSettings::default())
    }

    #[test]
    fn download_flags_follow_validate_downloads() {
        let image = Category::ImageGeneration;
        assert_eq!(flags(&[], image), DownloadFlags { no_download_urls: true, ..Default::default() });
        assert_eq!(
            flags(&["https://huggingface.co/a", "https://huggingface.co/b"], image),
            DownloadFlags::default()
        );
        assert_eq!(
            flags(&["https://huggingface.co/a", "https://civitai.com/b"], image),
            DownloadFlags { has_multiple_hosts: true, ..Default::default() }
        );
        assert_eq!(
            flags(&["https://civitai.com/b"], image),
            DownloadFlags { has_non_preferred_host: true, ..Default::default() }
        );
        // The preferred-host test is a case-sensitive substring test.
        assert_eq!(
            flags(&["https://HuggingFace.CO/b"], image),
            DownloadFlags { has_non_preferred_host: true, ..Default::default() }
        );
        // No scheme or no host: not a valid URL; Python's ValueError: unknown host.
        assert_eq!(
            flags(&["huggingface.co/x", "//huggingface.co/x", ""], image),
            DownloadFlags { no_download_urls: true, ..Default::default() }
        );
        assert_eq!(
            flags(&["http://[::1/x", "https://huggingface.co/a"], image),
            DownloadFlags { has_unknown_host: true, ..Default::default() }
        );
        // Text models skip the check by default.
        assert_eq!(flags(&[], Category::TextGeneration), DownloadFlags::default());
        let strict =
            AnalysisSettings { text_gen_ignore_download_hosts: false, ..AnalysisSettings::default() };
        assert!(download_flags(&[], Category::TextGeneration, &strict).no_download_urls);
    }

    #[test]
    fn download_hosts_are_netlocs_in_first_seen_order() {
        let urls = downloads(&[
            "https://b.example/x",
            "//a.example/y",
            "https://b.example/z",
            "http://[::1/x",
            "nohost/x",
            "https://User@a.example:8080/",
        ]);
        assert_eq!(download_hosts(&urls), ["b.example", "a.example", "User@a.example:8080"]);
    }

    fn image_facts(name: &str) -> RecordFacts {
        let reference = crate::input::reference::parse_reference(
            json!({ name: {
                "name": name, "description": "d", "baseline": "stable_diffusion_1", "nsfw": false,
                "size_on_disk_bytes": 5214865159u64,
                "config": {"download": [{"file_name": "f", "file_url": "https://huggingface.co/f"}]}
            }})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let record = reference.records().next().unwrap();
        RecordFacts::new(&record, Category::ImageGeneration, &AnalysisSettings::default())
    }

    fn merged(workers: i64, usage: Option<(i64, i64, i64)>) -> MergedModel {
        MergedModel {
            worker_count: workers,
            usage: usage.map(|(day, month, total)| Usage {
                day: day.into(),
                month: month.into(),
                total: total.into(),
            }),
            ..MergedModel::default()
        }
    }

    #[test]
    fn model_info_serialises_exactly_as_the_reference() {
        // The reference's `model_dump_json()` of `create_risk_info` for the
        // same record and statistics (pydantic field order, computed fields
        // last, Python's float repr).
        let settings = AnalysisSettings::default();
        let facts = image_facts("A");
        let used = merged(0, Some((7, 300, 1000)));
        let info = model_info(&facts, &used, 3_634_291, Category::ImageGeneration, &settings, false);
        assert_eq!(
            model_json(&info),
            r#"{"name":"A","category":"image_generation","deletion_risk_flags":{"zero_usage_day":false,"zero_usage_month":false,"zero_usage_total":false,"no_active_workers":true,"has_multiple_hosts":false,"has_non_preferred_host":false,"has_unknown_host":false,"no_download_urls":false,"missing_description":false,"missing_baseline":false,"low_usage":false},"at_risk":true,"risk_score":1,"worker_count":0,"usage_day":7,"usage_month":300,"usage_total":1000,"usage_hour":null,"usage_minute":null,"usage_percentage_of_category":0.0083,"usage_trend":{"day_to_month_ratio":0.023333333333333334,"month_to_total_ratio":0.3},"cost_benefit_score":61.77,"size_gb":4.86,"baseline":"stable_diffusion_1","nsfw":false,"has_description":true,"download_count":1,"download_hosts":["huggingface.co"],"backend_variations":null,"is_critical":false,"has_warning":false}"#
        );
        // 200 of 3,634,291 is 0.0055 % < 0.0065 %: low usage.
        let little = merged(0, Some((7, 200, 1000)));
        let low = model_info(&facts, &little, 3_634_291, Category::ImageGeneration, &settings, false);
        assert!(low.deletion_risk_flags.low_usage);
        assert_eq!(
            (low.risk_score, low.usage_percentage_of_category, low.cost_benefit_score),
            (2, 0.0055, Some(41.18))
        );
    }

    #[test]
    fn usage_flags_and_critical_state() {
        let settings = AnalysisSettings::default();
        let facts = image_facts("A");
        // No usage at all: no zero-usage flags (the reference only sets them with usage data).
        let unused = merged(0, None);
        let none = model_info(&facts, &unused, 100, Category::ImageGeneration, &settings, false);
        assert!(!none.deletion_risk_flags.zero_usage_month && none.deletion_risk_flags.no_active_workers);
        assert!(!none.is_critical);
        assert_eq!(none.usage_trend, UsageTrend::default());
        let old_usage = merged(0, Some((0, 0, 5)));
        let zero_month = model_info(&facts, &old_usage, 100, Category::ImageGeneration, &settings, false);
        assert!(zero_month.deletion_risk_flags.zero_usage_month && zero_month.is_critical);
        assert!(zero_month.deletion_risk_flags.low_usage);
        // Text: month usage < 10 and workers < 1.
        let text = RecordFacts { name: "t".into(), ..facts };
        let (no_workers, one_worker) = (merged(0, Some((1, 9, 9))), merged(1, Some((1, 9, 9))));
        let quiet = model_info(&text, &no_workers, 100, Category::TextGeneration, &settings, false);
        assert!(quiet.is_critical);
        let served = model_info(&text, &one_worker, 100, Category::TextGeneration, &settings, false);
        assert!(!served.is_critical);
    }

    #[test]
    fn analysis_sorts_by_month_usage_stably_and_summarises() {
        let settings = AnalysisSettings::default();
        let facts: Vec<RecordFacts> = ["a", "b", "c", "d"].into_iter().map(image_facts).collect();
        let merged = vec![
            merged(1, Some((1, 10, 10))),
            merged(0, None),
            merged(2, Some((1, 50, 60))),
            merged(0, Some((0, 10, 20))),
        ];
        let mut written = String::new();
        let summary = write_analysis(
            Category::ImageGeneration,
            &facts,
            &merged,
            &ranking(&merged),
            70,
            &settings,
            false,
            &mut written,
        );
        let response: serde_json::Value = serde_json::from_str(&written).unwrap();
        let order: Vec<&str> =
            response["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(order, ["c", "a", "d", "b"]);
        let s = &summary;
        assert_eq!(
            (s.total_models, s.models_at_risk, s.models_critical, s.models_with_warnings),
            (4, 2, 0, 0)
        );
        assert_eq!((s.models_with_zero_day_usage, s.models_with_no_active_workers), (1, 2));
        assert_eq!(s.average_risk_score, 0.75); // (a 0 + b 1 + c 0 + d 2) / 4
        assert_eq!(s.category_total_month_usage, 70);
        let js = &response["summary"];
        assert_eq!(
            (js["total_models"].as_u64(), js["models_at_risk"].as_u64(), js["average_risk_score"].as_f64()),
            (Some(4), Some(2), Some(0.75))
        );
        assert_eq!(js["category_total_month_usage"], 70);
        assert_eq!(
            (&response["total_count"], &response["returned_count"], &response["offset"], &response["limit"]),
            (&json!(4), &json!(4), &json!(0), &serde_json::Value::Null)
        );
        let keys: Vec<&str> = response.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "category",
                "category_total_month_usage",
                "total_count",
                "returned_count",
                "offset",
                "limit",
                "models",
                "summary"
            ]
        );
    }

    #[test]
    fn backend_variations_only_when_asked_and_present() {
        use crate::analytics::merge::BackendVariation;
        let settings = AnalysisSettings::default();
        let mut m = merged(2, Some((1, 2, 3)));
        m.backend_variations = Some(vec![BackendVariation {
            backend: Backend::Koboldcpp,
            variant_name: "koboldcpp/t".into(),
            worker_count: 2,
            performance: Some(3.5),
            queued: Some(1.5),
            queued_jobs: Some(0.5),
            eta: None,
            usage: Usage { day: 1, month: 2, total: 3 },
        }]);
        let facts = image_facts("t");
        let with = model_info(&facts, &m, 2, Category::TextGeneration, &settings, true);
        let written = model_json(&with);
        assert!(
            written.contains(r#","backend_variations":[{"backend":"koboldcpp","variant_name":"koboldcpp/t","worker_count":2,"performance":3.5,"usage_day":1,"usage_month":2,"usage_total":3}],"#),
            "{written}"
        );
        assert!(model_info(&facts, &m, 2, Category::TextGeneration, &settings, false)
            .backend_variations
            .is_none());
        m.backend_variations = Some(Vec::new());
        assert!(model_info(&facts, &m, 2, Category::TextGeneration, &settings, true)
            .backend_variations
            .is_none());
    }
}
