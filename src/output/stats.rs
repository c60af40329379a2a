//! A statistics entry's JSON (`CategoryStatistics.model_dump_json()`):
//! fields in the pydantic declaration order, maps in their insertion order.

use crate::analytics::stats::{CategoryStatistics, ParameterBucketStats, TagStats};
use crate::output::json::{push_float, push_int, push_str};

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
    out.push_str(",\"total_models\":");
    push_int(out, s.total_models);
    out.push_str(",\"returned_models\":");
    push_int(out, s.returned_models);
    out.push_str(",\"offset\":");
    push_int(out, s.offset);
    out.push_str(",\"limit\":");
    match s.limit {
        Some(limit) => push_int(out, limit),
        None => out.push_str("null"),
    }
    out.push_str(",\"nsfw_count\":");
    push_int(out, s.nsfw_count);
    out.push_str(",\"baseline_distribution\":{");
    for (i, (key, b)) in s.baseline_distribution.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, key);
        out.push_str(":{\"baseline\":");
        push_str(out, &b.baseline);
        out.push_str(",\"count\":");
        push_int(out, b.count);
        out.push_str(",\"percentage\":");
        push_float(out, b.percentage);
        out.push('}');
    }
    let d = &s.download_stats;
    out.push_str("},\"download_stats\":{\"total_models_with_downloads\":");
    push_int(out, d.total_models_with_downloads);
    out.push_str(",\"total_download_entries\":");
    push_int(out, d.total_download_entries);
    out.push_str(",\"total_size_bytes\":");
    push_int(out, d.total_size_bytes);
    out.push_str(",\"models_with_size_info\":");
    push_int(out, d.models_with_size_info);
    out.push_str(",\"average_size_bytes\":");
    push_float(out, d.average_size_bytes);
    out.push_str(",\"hosts\":{");
    for (i, (host, count)) in d.hosts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, host);
        out.push(':');
        push_int(out, *count);
    }
    out.push_str("}},\"top_tags\":");
    write_tags(&s.top_tags, out);
    out.push_str(",\"top_styles\":");
    write_tags(&s.top_styles, out);
    out.push_str(",\"parameter_buckets\":[");
    for (i, bucket) in s.parameter_buckets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_bucket(bucket, out);
    }
    let counts = [
        ("],\"models_without_param_info\":", s.models_without_param_info),
        (",\"models_with_trigger_words\":", s.models_with_trigger_words),
        (",\"models_with_inpainting\":", s.models_with_inpainting),
        (",\"models_with_requirements\":", s.models_with_requirements),
        (",\"models_with_showcases\":", s.models_with_showcases),
    ];
    for (key, count) in counts {
        out.push_str(key);
        push_int(out, count);
    }
    out.push_str(",\"computed_at\":");
    push_int(out, s.computed_at);
    out.push('}');
}

fn write_tags(tags: &[TagStats], out: &mut String) {
    out.push('[');
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"tag\":");
        push_str(out, &t.tag);
        out.push_str(",\"count\":");
        push_int(out, t.count);
        out.push_str(",\"percentage\":");
        push_float(out, t.percentage);
        out.push('}');
    }
    out.push(']');
}

fn write_bucket(b: &ParameterBucketStats, out: &mut String) {
    out.push_str("{\"bucket_label\":");
    push_str(out, b.bucket_label);
    for (key, bound) in [(",\"min_params\":", b.min_params), (",\"max_params\":", b.max_params)] {
        out.push_str(key);
        match bound {
            Some(v) => push_int(out, v),
            None => out.push_str("null"),
        }
    }
    out.push_str(",\"count\":");
    push_int(out, b.count);
    out.push_str(",\"percentage\":");
    push_float(out, b.percentage);
    out.push('}');
}
