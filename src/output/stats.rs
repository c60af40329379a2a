//! A statistics entry's JSON (`CategoryStatistics.model_dump_json()`):
//! fields in the pydantic declaration order, maps in their insertion order.

use crate::analytics::stats::{BaselineStats, CategoryStatistics, ParameterBucketStats, TagStats};
use crate::output::json::{
    push_array, push_float, push_int, push_int_fields, push_object, push_opt_int, push_str,
};

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
    out.push_str("{\"category\":");
    push_str(out, s.category);
    push_int_fields(
        out,
        &[
            (",\"total_models\":", s.total_models),
            (",\"returned_models\":", s.returned_models),
            (",\"offset\":", s.offset),
        ],
    );
    out.push_str(",\"limit\":");
    push_opt_int(out, s.limit);
    out.push_str(",\"nsfw_count\":");
    push_int(out, s.nsfw_count);
    out.push_str(",\"baseline_distribution\":");
    let baselines = s.baseline_distribution.iter().map(|(k, b)| (k.as_str(), b));
    push_object(out, baselines, write_baseline);
    let d = &s.download_stats;
    out.push_str(",\"download_stats\":{\"total_models_with_downloads\":");
    push_int(out, d.total_models_with_downloads);
    out.push_str(",\"total_download_entries\":");
    push_int(out, d.total_download_entries);
    out.push_str(",\"total_size_bytes\":");
    push_int(out, d.total_size_bytes);
    out.push_str(",\"models_with_size_info\":");
    push_int(out, d.models_with_size_info);
    out.push_str(",\"average_size_bytes\":");
    push_float(out, d.average_size_bytes);
    out.push_str(",\"hosts\":");
    push_object(out, d.hosts.iter().map(|(k, n)| (k.as_str(), *n)), push_int);
    out.push_str("},\"top_tags\":");
    push_array(out, &s.top_tags, write_tag);
    out.push_str(",\"top_styles\":");
    push_array(out, &s.top_styles, write_tag);
    out.push_str(",\"parameter_buckets\":");
    push_array(out, &s.parameter_buckets, write_bucket);
    push_int_fields(
        out,
        &[
            (",\"models_without_param_info\":", s.models_without_param_info),
            (",\"models_with_trigger_words\":", s.models_with_trigger_words),
            (",\"models_with_inpainting\":", s.models_with_inpainting),
            (",\"models_with_requirements\":", s.models_with_requirements),
            (",\"models_with_showcases\":", s.models_with_showcases),
        ],
    );
    out.push_str(",\"computed_at\":");
    push_int(out, s.computed_at);
    out.push('}');
}

/// `{"<name>":…,"count":…,"percentage":…}`, the shape of a baseline's and a
/// tag's share.
fn write_share(out: &mut String, name_key: &str, name: &str, count: usize, percentage: f64) {
    out.push_str(name_key);
    push_str(out, name);
    out.push_str(",\"count\":");
    push_int(out, count);
    out.push_str(",\"percentage\":");
    push_float(out, percentage);
    out.push('}');
}

fn write_baseline(out: &mut String, b: &BaselineStats) {
    write_share(out, "{\"baseline\":", &b.baseline, b.count, b.percentage);
}

fn write_tag(out: &mut String, t: &TagStats) {
    write_share(out, "{\"tag\":", &t.tag, t.count, t.percentage);
}

fn write_bucket(out: &mut String, b: &ParameterBucketStats) {
    out.push_str("{\"bucket_label\":");
    push_str(out, b.bucket_label);
    out.push_str(",\"min_params\":");
    push_opt_int(out, b.min_params);
    out.push_str(",\"max_params\":");
    push_opt_int(out, b.max_params);
    out.push_str(",\"count\":");
    push_int(out, b.count);
    out.push_str(",\"percentage\":");
    push_float(out, b.percentage);
    out.push('}');
}
