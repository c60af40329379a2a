//! A statistics entry's JSON (`CategoryStatistics.model_dump_json()`):
//! fields in the pydantic declaration order, maps in their insertion order.

use crate::analytics::stats::{BaselineStats, CategoryStatistics, ParameterBucketStats, TagStats};
use crate::output::json::{fields, push_array, push_float, push_int, push_object, push_opt_int, push_str};

/// Bytes of an entry besides its strings, and per listed item (both a
/// little above what the reference-shaped JSON takes, so the buffer is
/// sized once).
const JSON_BYTES_FIXED: usize = 1024;
const JSON_BYTES_PER_ITEM: usize = 96;

/// `stats` as the reference's JSON.
pub fn to_json(stats: &CategoryStatistics) -> String {
    let d = &stats.download_stats;
    let items = stats.baseline_distribution.len()
        + d.hosts.len()
        + stats.top_tags.len()
        + stats.top_styles.len()
        + stats.parameter_buckets.len();
    let strings: usize = stats.baseline_distribution.keys().map(|k| 2 * k.len()).sum::<usize>()
        + d.hosts.keys().map(String::len).sum::<usize>()
        + stats.top_tags.iter().chain(&stats.top_styles).map(|t| t.tag.len()).sum::<usize>();
    let mut out = String::with_capacity(JSON_BYTES_FIXED + items * JSON_BYTES_PER_ITEM + strings);
    write_statistics(stats, &mut out);
    out
}

fn write_statistics(s: &CategoryStatistics, out: &mut String) {
    let baselines = s.baseline_distribution.iter().map(|(k, b)| (k.as_str(), b));
    let d = &s.download_stats;
    fields!(out, "{",
        "category" => push_str(s.category),
        "total_models" => push_int(s.total_models),
        "returned_models" => push_int(s.returned_models),
        "offset" => push_int(s.offset),
        "limit" => push_opt_int(s.limit),
        "nsfw_count" => push_int(s.nsfw_count),
        "baseline_distribution" => push_object(baselines, write_baseline),
        "download_stats" => {
            "total_models_with_downloads" => push_int(d.total_models_with_downloads),
            "total_download_entries" => push_int(d.total_download_entries),
            "total_size_bytes" => push_int(d.total_size_bytes),
            "models_with_size_info" => push_int(d.models_with_size_info),
            "average_size_bytes" => push_float(d.average_size_bytes),
            "hosts" => push_object(d.hosts.iter().map(|(k, n)| (k.as_str(), *n)), push_int),
        },
        "top_tags" => push_array(&s.top_tags, write_tag),
        "top_styles" => push_array(&s.top_styles, write_tag),
        "parameter_buckets" => push_array(&s.parameter_buckets, write_bucket),
        "models_without_param_info" => push_int(s.models_without_param_info),
        "models_with_trigger_words" => push_int(s.models_with_trigger_words),
        "models_with_inpainting" => push_int(s.models_with_inpainting),
        "models_with_requirements" => push_int(s.models_with_requirements),
        "models_with_showcases" => push_int(s.models_with_showcases),
        "computed_at" => push_int(s.computed_at),
    );
    out.push('}');
}

/// `{"<name>":…,"count":…,"percentage":…}`, the shape of a baseline's and a
/// tag's share.
fn write_share(out: &mut String, name_key: &str, name: &str, count: usize, percentage: f64) {
    out.push_str(name_key);
    push_str(out, name);
    fields!(out, ",", "count" => push_int(count), "percentage" => push_float(percentage));
    out.push('}');
}

fn write_baseline(out: &mut String, b: &BaselineStats) {
    write_share(out, "{\"baseline\":", &b.baseline, b.count, b.percentage);
}

fn write_tag(out: &mut String, t: &TagStats) {
    write_share(out, "{\"tag\":", &t.tag, t.count, t.percentage);
}

fn write_bucket(out: &mut String, b: &ParameterBucketStats) {
    fields!(out, "{",
        "bucket_label" => push_str(b.bucket_label),
        "min_params" => push_opt_int(b.min_params),
        "max_params" => push_opt_int(b.max_params),
        "count" => push_int(b.count),
        "percentage" => push_float(b.percentage),
    );
    out.push('}');
}
