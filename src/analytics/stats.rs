//! Category statistics: the reference's `calculate_category_statistics`.
//!
//! The reference computes these over the RAW model-reference dicts, not over
//! validated records, so this module reads [`RawRecord`] fields the way Python
//! reads a dict: `.get` with defaults, Python truthiness, `str()` of whatever
//! value is there, `isinstance` checks. (The parse keeps each field reduced to
//! exactly those answers — see [`crate::input::reference`] — and the counters borrow
//! their keys from the parsed reference's text.) Where the reference would crash on odd
//! input (a download URL that is not a string or that `urlparse` rejects, a
//! text group whose `config` cannot take more downloads) the piece is treated
//! as absent and a warning is logged; everything else follows the reference.
//!
//! Two behaviours come from the way the expected statistics are produced (the
//! reference's hydrator leaves statistics unimplemented; its endpoint is
//! mirrored): a text model's size is read from `parameters_count` when that key
//! exists, else from `parameters` (the records carry `parameters`, which the
//! reference misses); and for text with grouped=true, records are first folded
//! by base model name in order of first appearance — a group is its first
//! member's record, with the later members' `config.download` entries appended.
//! Image statistics ignore grouping.
//!
//! Pieces, in the order the output declares them: counts and NSFW, baseline
//! distribution, download statistics and hosts, top 20 tags and styles,
//! parameter buckets (text), triggers/inpainting/requirements (image),
//! showcases. Every step is one pass plus a stable sort: O(n log n).

use foldhash::{HashMap, HashMapExt};
use std::borrow::Cow;

use indexmap::IndexMap;

use crate::analytics::names;
use crate::category::Category;
use crate::input::reference::{ConfigDownload, DownloadItems, ParsedReference, RawFileUrl, RawRecord};
use crate::python;

/// How many tags (and styles) the statistics list.
const TOP_LIMIT: usize = 20;

/// The reference's `PARAMETER_BUCKETS`: `[min, max)` ranges of a text model's
/// size, in order; `None` is the open-ended last bucket.
const PARAMETER_BUCKETS: [(i128, Option<i128>, &str); 8] = [
    (0, Some(3_000_000_000), "< 3B"),
    (3_000_000_000, Some(6_000_000_000), "3B-6B"),
    (6_000_000_000, Some(9_000_000_000), "6B-9B"),
    (9_000_000_000, Some(13_000_000_000), "9B-13B"),
    (13_000_000_000, Some(20_000_000_000), "13B-20B"),
    (20_000_000_000, Some(35_000_000_000), "20B-35B"),
    (35_000_000_000, Some(70_000_000_000), "35B-70B"),
    (70_000_000_000, None, "> 70B"),
];

// ---------------------------------------------------------------------------
// The response: the reference's pydantic models, fields in declaration order.
// ---------------------------------------------------------------------------

/// `CategoryStatistics` (its `sfw_count` is a plain property: not serialised).
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryStatistics {
    pub category: &'static str,
    pub total_models: usize,
    pub returned_models: usize,
    pub offset: usize,
    pub limit: Option<u64>,
    pub nsfw_count: usize,
    pub baseline_distribution: IndexMap<String, BaselineStats>,
    pub download_stats: DownloadStats,
    pub top_tags: Vec<TagStats>,
    pub top_styles: Vec<TagStats>,
    pub parameter_buckets: Vec<ParameterBucketStats>,
    pub models_without_param_info: usize,
    pub models_with_trigger_words: usize,
    pub models_with_inpainting: usize,
    pub models_with_requirements: usize,
    pub models_with_showcases: usize,
    pub computed_at: i64,
}

/// `BaselineStats`: one baseline's share of the category.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineStats {
    pub baseline: String,
    pub count: usize,
    pub percentage: f64,
}

/// `DownloadStats`: download entries, sizes on disk and download hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadStats {
    pub total_models_with_downloads: usize,
    pub total_download_entries: usize,
    /// A Python int in the reference: the sum of `int(size)`; wide enough
    /// for any realistic sum, saturating beyond.
    pub total_size_bytes: u128,
    pub models_with_size_info: usize,
    pub average_size_bytes: f64,
    /// `netloc` of each download URL → entries, most frequent first.
    pub hosts: IndexMap<String, usize>,
}

/// `TagStats`: one tag's (or style's) share of the category.
#[derive(Debug, Clone, PartialEq)]
pub struct TagStats {
    pub tag: String,
    pub count: usize,
    pub percentage: f64,
}

/// `ParameterBucketStats`: text models whose size falls in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterBucketStats {
    pub bucket_label: &'static str,
    pub min_params: Option<i128>,
    pub max_params: Option<i128>,
    pub count: usize,
    pub percentage: f64,
}

// ---------------------------------------------------------------------------
// Entry point.
// ---------------------------------------------------------------------------

/// The statistics entry of `category`: the reference's
/// `CategoryStatistics.model_dump_json()` with `computed_at` set, and the
/// number of models it describes (`total_models`; text groups when grouped).
pub fn compute_statistics(
    category: Category,
    reference: &ParsedReference,
    grouped: bool,
    computed_at: i64,
) -> (String, usize) {
    let stats = statistics(category, reference, grouped, computed_at);
    (crate::output::stats::to_json(&stats), stats.total_models)
}

/// The statistics of `category` as a value (`calculate_category_statistics`).
pub fn statistics(
    category: Category,
    reference: &ParsedReference,
    grouped: bool,
    computed_at: i64,
) -> CategoryStatistics {
    if grouped && category.is_text() {
        calculate(category, text_groups(reference).into_iter(), computed_at)
    } else {
        calculate(category, reference.records().map(StatsModel::of), computed_at)
    }
}

// ---------------------------------------------------------------------------
// The models the statistics read (text grouping folds them first).
// ---------------------------------------------------------------------------

/// One model as the statistics read it: its record, and its download list
/// (which a text group's fold may have extended).
#[derive(Debug, Clone)]
struct StatsModel<'a> {
    record: RawRecord<'a>,
    downloads: Downloads<'a>,
}

/// What `config.download` holds, as far as the statistics can tell.
#[derive(Debug, Clone)]
enum Downloads<'a> {
    /// No `config`, or a `config` object without `download`: nothing counted,
    /// but a fold may create the list (Python's `setdefault`).
    Missing,
    /// `config.download` is a list.
    List(DownloadList<'a>),
    /// `config` is not an object or `download` is not a list: nothing counted
    /// and nothing can be appended.
    Unusable,
}

/// A download list, possibly assembled from several records.
#[derive(Debug, Clone, Default)]
struct DownloadList<'a> {
    /// The model's own list (none when a fold created the list).
    own: Option<DownloadItems<'a>>,
    /// The lists of later group members (no allocation unless a member
    /// contributes a list).
    folded: Vec<DownloadItems<'a>>,
    /// Items that are never objects: Python's `list.extend` of a string (its
    /// characters) or of an object (its keys).
    opaque_items: usize,
}

impl<'a> DownloadList<'a> {
    fn len(&self) -> usize {
        self.own.map_or(0, |own| own.len())
            + self.folded.iter().map(|l| l.len()).sum::<usize>()
            + self.opaque_items
    }

    /// The `file_url` of the items that are objects (the only ones whose
    /// URL is read), in order.
    fn urls(&self) -> impl Iterator<Item = RawFileUrl<'a>> + '_ {
        self.own.into_iter().chain(self.folded.iter().copied()).flat_map(DownloadItems::file_urls)
    }

    /// Python's `list.extend(value)` with a member's `config.download`;
    /// `false` when Python would raise.
    fn extend(&mut self, value: ConfigDownload<'a>) -> bool {
        match value {
            ConfigDownload::List(items) => self.folded.push(items),
            ConfigDownload::Extends { items } => self.opaque_items += items,
            ConfigDownload::Scalar(_) | ConfigDownload::Missing | ConfigDownload::ConfigNotObject { .. } => {
                return false
            }
        }
        true
    }
}

impl<'a> StatsModel<'a> {
    fn of(record: RawRecord<'a>) -> Self {
        let downloads = match record.config_download() {
            ConfigDownload::Missing => Downloads::Missing,
            ConfigDownload::List(own) => {
                Downloads::List(DownloadList { own: Some(own), ..DownloadList::default() })
            }
            ConfigDownload::Extends { .. }
            | ConfigDownload::Scalar(_)
            | ConfigDownload::ConfigNotObject { .. } => Downloads::Unusable,
        };
        StatsModel { record, downloads }
    }
}

/// The models to count for text with grouped=true: one per base model name
/// in order of first appearance (the others count the records as they are).
fn text_groups(reference: &ParsedReference) -> Vec<StatsModel<'_>> {
    let records = reference.records();
    let mut models: Vec<StatsModel<'_>> = Vec::new();
    let mut by_base: HashMap<String, usize> = HashMap::with_capacity(records.len());
    for record in records {
        let base = names::base_model_name(record.name);
        match by_base.get(&base) {
            Some(&at) => fold_downloads(&mut models[at], record),
            None => {
                by_base.insert(base, models.len());
                models.push(StatsModel::of(record));
            }
        }
    }
    models
}

/// A later member of a text group: append its `config.download` to the
/// group's, as the grouping does (`existing.setdefault("config", {})
/// .setdefault("download", []).extend(...)`, guarded by
/// `"config" in data and "download" in data["config"]`).
fn fold_downloads<'a>(group: &mut StatsModel<'a>, member: RawRecord<'a>) {
    let incoming = match member.config_download() {
        ConfigDownload::Missing => return,
        // `"download" in config` is a substring / element test on strings and
        // arrays, which Python answers without error when it is false.
        ConfigDownload::ConfigNotObject { download_in: Some(false), .. } => return,
        ConfigDownload::ConfigNotObject { .. } => {
            log::warn!(
                "statistics: text model {:?}: config is not an object; its downloads are not added to its group",
                member.name
            );
            return;
        }
        download => download,
    };
    if matches!(group.downloads, Downloads::Missing) {
        // `setdefault("download", [])`
        group.downloads = Downloads::List(DownloadList::default());
    }
    let Downloads::List(list) = &mut group.downloads else {
        log::warn!(
            "statistics: text group of {:?}: its config.download is not a list; downloads of {:?} not added",
            group.record.name,
            member.name
        );
        return;
    };
    if !list.extend(incoming) {
        let found = match incoming {
            ConfigDownload::Scalar(ty) => ty.name(),
            _ => "not a list",
        };
        log::warn!(
            "statistics: text model {:?}: config.download is {found}; not added to its group",
            member.name
        );
    }
}

// ---------------------------------------------------------------------------
// The calculation.
// ---------------------------------------------------------------------------

/// Counts in first-seen order (Python's `defaultdict(int)`). Keys borrow
/// the reference's text; only Python `str()`s of non-strings are owned.
type Counter<'a> = IndexMap<Cow<'a, str>, usize, foldhash::fast::RandomState>;

fn count<'a>(counter: &mut Counter<'a>, key: Cow<'a, str>) {
    if let Some(n) = counter.get_mut(key.as_ref()) {
        *n += 1;
    } else {
        counter.insert(key, 1);
    }
}

/// Python's `sorted(counter.items(), key=count, reverse=True)`: most frequent
/// first, ties in first-seen order (the sort is stable).
fn by_count_desc(counter: Counter<'_>) -> Vec<(Cow<'_, str>, usize)> {
    let mut items: Vec<(Cow<'_, str>, usize)> = counter.into_iter().collect();
    items.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    items
}

/// `round(count / total * 100.0, 2)`, in the reference's operation order.
fn percentage(count: usize, total: usize) -> f64 {
    python::float::round((count as f64 / total as f64) * 100.0, 2)
}

/// The label index of the bucket a positive size falls in.
fn bucket_of(params: i128) -> Option<usize> {
    PARAMETER_BUCKETS.iter().position(|&(min, max, _)| params >= min && max.is_none_or(|max| params < max))
}

/// Everything the statistics accumulate in their one pass over the models.
#[derive(Debug, Default)]
struct Tally<'a> {
    nsfw: usize,
    baselines: Counter<'a>,
    models_with_downloads: usize,
    download_entries: usize,
    total_size_bytes: u128,
    models_with_size: usize,
    hosts: Counter<'a>,
    tags: Counter<'a>,
    styles: Counter<'a>,
    bucket_counts: [usize; PARAMETER_BUCKETS.len()],
    models_with_params: usize,
    models_without_params: usize,
    triggers: usize,
    inpainting: usize,
    requirements: usize,
    showcases: usize,
}

impl<'a> Tally<'a> {
    fn add(&mut self, category: Category, model: &StatsModel<'a>) {
        let f = model.record.stats_fields();
        self.nsfw += usize::from(f.nsfw);
        if let Some(baseline) = f.baseline {
            count(&mut self.baselines, baseline);
        }
        self.add_downloads(model);
        if let Some(size) = f.size_on_disk_bytes {
            self.models_with_size += 1;
            self.total_size_bytes = self.total_size_bytes.saturating_add(size as u128);
        }
        for tag in model.record.tags() {
            count(&mut self.tags, Cow::Borrowed(tag));
        }
        if let Some(style) = f.style {
            count(&mut self.styles, style);
        }
        match category {
            Category::TextGeneration => match f.parameters {
                Some(params) => {
                    self.models_with_params += 1;
                    if let Some(b) = bucket_of(params) {
                        self.bucket_counts[b] += 1;
                    }
                }
                None => self.models_without_params += 1,
            },
            Category::ImageGeneration => {
                self.triggers += usize::from(f.trigger);
                self.inpainting += usize::from(f.inpainting);
                self.requirements += usize::from(f.requirements);
            }
        }
        self.showcases += usize::from(f.showcases);
    }

    fn add_downloads(&mut self, model: &StatsModel<'a>) {
        let Downloads::List(list) = &model.downloads else {
            return;
        };
        let entries = list.len();
        if entries == 0 {
            return;
        }
        self.models_with_downloads += 1;
        self.download_entries += entries;
        let name = model.record.name;
        for file_url in list.urls() {
            match file_url {
                RawFileUrl::Str { url, netloc } if !url.is_empty() => match netloc {
                    Some(host) if !host.is_empty() => count(&mut self.hosts, Cow::Borrowed(host)),
                    Some(_) => {}
                    None => {
                        let error = crate::python::url::urlsplit(url)
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default();
                        log::warn!(
                            "statistics: model {name:?}: download URL {url:?} is not a valid URL ({error}); its host is not counted"
                        )
                    }
                },
                RawFileUrl::Other { ty, truthy: true } => log::warn!(
                    "statistics: model {name:?}: download file_url is {}, not a string; its host is not counted",
                    ty.name()
                ),
                _ => {}
            }
        }
    }
}

fn calculate<'a>(
    category: Category,
    models: impl ExactSizeIterator<Item = StatsModel<'a>>,
    computed_at: i64,
) -> CategoryStatistics {
    let total = models.len();
    let mut tally = Tally::default();
    for model in models {
        tally.add(category, &model);
    }

    let mut baseline_distribution = IndexMap::new();
    let mut top_tags = Vec::new();
    let mut top_styles = Vec::new();
    let mut parameter_buckets = Vec::new();
    if total > 0 {
        for (baseline, n) in by_count_desc(tally.baselines) {
            let baseline = baseline.into_owned();
            let stats =
                BaselineStats { baseline: baseline.clone(), count: n, percentage: percentage(n, total) };
            baseline_distribution.insert(baseline, stats);
        }
        top_tags = top_list(tally.tags, total);
        top_styles = top_list(tally.styles, total);
        if category.is_text() && tally.models_with_params > 0 {
            for (&(min, max, label), &n) in PARAMETER_BUCKETS.iter().zip(&tally.bucket_counts) {
                if n > 0 {
                    parameter_buckets.push(ParameterBucketStats {
                        bucket_label: label,
                        min_params: Some(min),
                        max_params: max,
                        count: n,
                        percentage: percentage(n, total),
                    });
                }
            }
        }
    }

    let average_size_bytes = if tally.models_with_size > 0 {
        python::float::round(tally.total_size_bytes as f64 / tally.models_with_size as f64, 2)
    } else {
        0.0
    };
    CategoryStatistics {
        category: category.as_str(),
        total_models: total,
        returned_models: total,
        offset: 0,
        limit: None,
        nsfw_count: tally.nsfw,
        baseline_distribution,
        download_stats: DownloadStats {
            total_models_with_downloads: tally.models_with_downloads,
            total_download_entries: tally.download_entries,
            total_size_bytes: tally.total_size_bytes,
            models_with_size_info: tally.models_with_size,
            average_size_bytes,
            hosts: by_count_desc(tally.hosts).into_iter().map(|(h, n)| (h.into_owned(), n)).collect(),
        },
        top_tags,
        top_styles,
        parameter_buckets,
        models_without_param_info: tally.models_without_params,
        models_with_trigger_words: tally.triggers,
        models_with_inpainting: tally.inpainting,
        models_with_requirements: tally.requirements,
        models_with_showcases: tally.showcases,
        computed_at,
    }
}

/// The 20 most frequent tags (or styles) with their share of `total`.
fn top_list(counter: Counter<'_>, total: usize) -> Vec<TagStats> {
    by_count_desc(counter)
        .into_iter()
        .take(TOP_LIMIT)
        .map(|(tag, n)| TagStats { tag: tag.into_owned(), count: n, percentage: percentage(n, total) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn reference(value: Value) -> ParsedReference {
        crate::input::reference::parse_reference(value.to_string().as_bytes()).unwrap()
    }

    fn stats_of(category: Category, value: Value) -> CategoryStatistics {
        let parsed = reference(value);
        calculate(category, parsed.records().map(StatsModel::of), 7)
    }

    #[test]
    fn parameter_bucket_edges() {
        let label = |p| bucket_of(p).map(|i| PARAMETER_BUCKETS[i].2);
        assert_eq!(label(0), Some("< 3B"));
        assert_eq!(label(2_999_999_999), Some("< 3B"));
        assert_eq!(label(3_000_000_000), Some("3B-6B"));
        assert_eq!(label(69_999_999_999), Some("35B-70B"));
        assert_eq!(label(70_000_000_000), Some("> 70B"));
        assert_eq!(label(i128::MAX), Some("> 70B"));
    }

    #[test]
    fn counts_flags_and_distributions() {
        let s = stats_of(
            Category::ImageGeneration,
            json!({
                "a": {"nsfw": true, "baseline": "sdxl", "tags": ["x", null, "", "y", "x"], "style": "anime",
                      "trigger": ["t"], "inpainting": true, "requirements": {"clip_skip": 2}, "showcases": ["s"],
                      "size_on_disk_bytes": 3, "config": {"download": [{"file_url": "https://h.co/a"}, {"file_url": "https://h.co/b"}]}},
                "b": {"nsfw": "yes", "baseline": "sd1", "tags": ["y"], "style": "anime", "trigger": [],
                      "inpainting": 0, "requirements": {}, "showcases": "s", "size_on_disk_bytes": 4.9,
                      "config": {"download": [{"file_url": "https://o.org/a"}, "entry", {"file_url": 42}]}},
                "c": {"baseline": "sdxl", "config": null, "size_on_disk_bytes": "8"},
            }),
        );
        assert_eq!((s.total_models, s.returned_models, s.nsfw_count), (3, 3, 2));
        let baselines: Vec<_> =
            s.baseline_distribution.values().map(|b| (b.baseline.as_str(), b.count, b.percentage)).collect();
        assert_eq!(baselines, [("sdxl", 2, 66.67), ("sd1", 1, 33.33)]);
        // "x" is counted twice on one model, as the reference does.
        let tags: Vec<_> = s.top_tags.iter().map(|t| (t.tag.as_str(), t.count, t.percentage)).collect();
        assert_eq!(tags, [("x", 2, 66.67), ("y", 2, 66.67)]);
        assert_eq!(s.top_styles, [TagStats { tag: "anime".into(), count: 2, percentage: 66.67 }]);
        let d = &s.download_stats;
        assert_eq!((d.total_models_with_downloads, d.total_download_entries), (2, 5));
        assert_eq!((d.total_size_bytes, d.models_with_size_info, d.average_size_bytes), (7, 2, 3.5));
        assert_eq!(
            d.hosts.iter().map(|(h, n)| (h.as_str(), *n)).collect::<Vec<_>>(),
            [("h.co", 2), ("o.org", 1)]
        );
        assert_eq!(
            (
                s.models_with_trigger_words,
                s.models_with_inpainting,
                s.models_with_requirements,
                s.models_with_showcases
            ),
            (1, 1, 1, 1)
        );
        assert!(s.parameter_buckets.is_empty());
        assert_eq!(s.models_without_param_info, 0);
    }

    #[test]
    fn top_twenty_keeps_first_seen_order_on_ties() {
        let tags: Vec<String> = (0..25).map(|i| format!("t{i:02}")).collect();
        let s =
            stats_of(Category::ImageGeneration, json!({"a": {"tags": tags}, "b": {"tags": ["t24", "t23"]}}));
        let got: Vec<&str> = s.top_tags.iter().map(|t| t.tag.as_str()).collect();
        let mut want = vec!["t23", "t24"];
        want.extend(tags[..18].iter().map(String::as_str));
        assert_eq!(got, want);
        assert_eq!(s.top_tags[0].percentage, 100.0);
        assert_eq!(s.top_tags[2].percentage, 50.0);
    }

    #[test]
    fn text_parameter_buckets() {
        let s = stats_of(
            Category::TextGeneration,
            json!({
                "a": {"parameters": 7_000_000_000u64},
                "b": {"parameters": 2.5},
                "c": {"parameters": "13000000000"},
                "d": {"parameters": 7e9, "parameters_count": null},
                "e": {"parameters_count": 80_000_000_000u64},
                "f": {"parameters": 8_999_999_999.9},
                "g": {},
            }),
        );
        let buckets: Vec<_> = s
            .parameter_buckets
            .iter()
            .map(|b| (b.bucket_label, b.min_params, b.max_params, b.count, b.percentage))
            .collect();
        assert_eq!(
            buckets,
            [
                ("< 3B", Some(0), Some(3_000_000_000), 1, 14.29),
                ("6B-9B", Some(6_000_000_000), Some(9_000_000_000), 2, 28.57),
                ("> 70B", Some(70_000_000_000), None, 1, 14.29),
            ]
        );
        assert_eq!(s.models_without_param_info, 3);
        // Image-only counters stay zero for text.
        assert_eq!(s.models_with_trigger_words, 0);
    }

    #[test]
    fn empty_category() {
        let s = stats_of(Category::TextGeneration, json!({}));
        assert_eq!(s.total_models, 0);
        assert!(
            s.baseline_distribution.is_empty() && s.top_tags.is_empty() && s.parameter_buckets.is_empty()
        );
        assert_eq!(s.download_stats.average_size_bytes, 0.0);
    }

    #[test]
    fn download_list_extends_like_python() {
        let items = json!([{"file_url": "https://a/"}, "s"]);
        let (text, object, null) = (json!("héllo"), json!({"k": 1, "j": 2}), json!(null));
        let number = json!(3);
        let parsed = reference(json!({
            "items": {"config": {"download": items}}, "text": {"config": {"download": text}},
            "object": {"config": {"download": object}}, "null": {"config": {"download": (null)}},
            "number": {"config": {"download": number}},
        }));
        fn extend<'a>(parsed: &'a ParsedReference, list: &mut DownloadList<'a>, name: &str) -> bool {
            let record = parsed.records().find(|r| r.name == name).unwrap();
            list.extend(record.config_download())
        }
        let mut list = DownloadList::default();
        assert!(extend(&parsed, &mut list, "items"));
        assert!(extend(&parsed, &mut list, "text"));
        assert!(extend(&parsed, &mut list, "object"));
        assert!(!extend(&parsed, &mut list, "null"));
        assert!(!extend(&parsed, &mut list, "number"));
        assert_eq!(list.len(), 2 + 5 + 2);
        assert_eq!(list.urls().count(), 1);
    }

    /// Text folding, including the inputs on which the reference's fold
    /// raises (those members' downloads are left out): the group's download
    /// entries after folding `later` into `first`, or what its field is.
    fn fold(first: Value, later: Value) -> Result<usize, &'static str> {
        let parsed = reference(json!({"first": first, "later": later}));
        let (first, later) = (parsed.records().next().unwrap(), parsed.records().nth(1).unwrap());
        let mut group = StatsModel::of(first);
        fold_downloads(&mut group, later);
        match group.downloads {
            Downloads::List(list) => Ok(list.len()),
            Downloads::Missing => Err("missing"),
            Downloads::Unusable => Err("unusable"),
        }
    }

    #[test]
    fn text_group_fold() {
        let dl = json!({"config": {"download": [{"file_url": "https://h/"}]}});
        // Appended to a list, created where config or download is missing.
        assert_eq!(fold(json!({"config": {"download": [1, 2]}}), dl.clone()), Ok(3));
        assert_eq!(fold(json!({}), dl.clone()), Ok(1));
        assert_eq!(fold(json!({"config": {}}), dl.clone()), Ok(1));
        // A string extends by its characters, an object by its keys.
        assert_eq!(fold(json!({}), json!({"config": {"download": "xyz"}})), Ok(3));
        assert_eq!(fold(json!({}), json!({"config": {"download": {"a": 1}}})), Ok(1));
        // Nothing to add.
        assert_eq!(fold(json!({}), json!({"config": {"other": 1}})), Err("missing"));
        assert_eq!(fold(json!({}), json!({"config": "no dl"})), Err("missing"));
        assert_eq!(fold(json!({}), json!({"config": ["x"]})), Err("missing"));
        // The reference raises on these; the member's downloads are left out.
        assert_eq!(fold(json!({"config": null}), dl.clone()), Err("unusable"));
        assert_eq!(fold(json!({"config": {"download": null}}), dl), Err("unusable"));
        let null_download = json!({"config": {"download": null}});
        assert_eq!(fold(json!({"config": {"download": [1]}}), null_download), Ok(1));
        assert_eq!(fold(json!({}), json!({"config": null})), Err("missing"));
        assert_eq!(fold(json!({}), json!({"config": "download"})), Err("missing"));
        assert_eq!(fold(json!({}), json!({"config": 5})), Err("missing"));
    }

    #[test]
    fn unhostable_urls_count_as_entries_only() {
        let s = stats_of(
            Category::ImageGeneration,
            json!({"a": {"config": {"download": [
                {"file_url": 42}, {"file_url": true}, {"file_url": ["x"]}, {"file_url": "http://[bad/"},
                {"file_url": "https://a\u{2100}b/"}, {"file_url": "no-host"}, {"file_url": "https://ok.example/"},
            ]}}}),
        );
        assert_eq!(s.download_stats.total_download_entries, 7);
        assert_eq!(s.download_stats.hosts.len(), 1);
        assert_eq!(s.download_stats.hosts.get("ok.example"), Some(&1));
    }

    #[test]
    fn image_ignores_grouping_and_serialises_in_order() {
        let parsed = reference(json!({"org/Model-7B": {"tags": ["a"]}, "org/Model-7B-Q4": {"tags": ["a"]}}));
        let (json, models) = compute_statistics(Category::ImageGeneration, &parsed, true, 99);
        assert_eq!(models, 2);
        assert!(json.starts_with(r#"{"category":"image_generation","total_models":2,"returned_models":2,"offset":0,"limit":null,"nsfw_count":0,"#));
        assert!(json.ends_with(r#""models_with_showcases":0,"computed_at":99}"#));
        assert!(json.contains(r#""top_tags":[{"tag":"a","count":2,"percentage":100.0}]"#));
    }
}
