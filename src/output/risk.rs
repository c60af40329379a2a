//! A deletion-risk view's JSON (`CategoryDeletionRiskResponse` as the
//! reference's `model_dump_json()` writes it): the response's head, each
//! model's info as it is made, and the summary after the models. Field names
//! in the pydantic declaration order, computed fields (`is_critical`,
//! `has_warning`) last, `null` where the reference has `None` (and for a
//! non-finite float, as serde_json).

use crate::analytics::merge::{BackendVariation, MergedModel};
use crate::analytics::risk::{
    CategoryDeletionRiskSummary, DeletionRiskFlags, ModelDeletionRiskInfo, RecordFacts,
};
use crate::category::Category;
use crate::input::horde::UsageCount;
use crate::output::json::{
    bool_field, push_array, push_bool, push_float, push_int, push_int_fields, push_opt_float, push_opt_int,
    push_opt_str, push_plain, push_str,
};

/// Bytes per model of a serialised deletion-risk entry besides its strings
/// (name, baseline, hosts, variations: counted apiece), a little above what
/// the reference-shaped JSON takes, to size the buffer once (the generated
/// datasets fill about 80 % of the estimate; a buffer that must grow is
/// copied once).
const JSON_BYTES_PER_MODEL: usize = 960;

/// Bytes per backend variation written.
const JSON_BYTES_PER_VARIATION: usize = 160;

/// A buffer size that should hold the JSON of a view of these models
/// without growing (an estimate: pages of it never written are never
/// touched).
pub fn json_capacity(
    facts: &[RecordFacts],
    merged: &[MergedModel],
    include_backend_variations: bool,
) -> usize {
    let per_model: usize = facts
        .iter()
        .zip(merged)
        .map(|(f, m)| {
            let variations = match &m.backend_variations {
                Some(v) if include_backend_variations => {
                    v.iter().map(|bv| JSON_BYTES_PER_VARIATION + bv.variant_name.len()).sum()
                }
                _ => 0,
            };
            JSON_BYTES_PER_MODEL
                + 2 * f.name.len()
                + f.baseline.as_deref().map_or(0, str::len)
                + f.download_hosts.iter().map(|h| h.len() + 3).sum::<usize>()
                + variations
        })
        .sum();
    per_model + 1024
}

/// The fields of a response before its models.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead {
    pub category: Category,
    pub category_total_month_usage: UsageCount,
    pub total_count: usize,
    pub returned_count: usize,
    pub offset: usize,
    pub limit: Option<usize>,
}

impl ResponseHead {
    /// Everything up to and including the `[` of `models`.
    pub fn write(&self, out: &mut String) {
        out.push_str("{\"category\":");
        push_plain(out, self.category.as_str());
        out.push_str(",\"category_total_month_usage\":");
        push_int(out, self.category_total_month_usage);
        out.push_str(",\"total_count\":");
        push_int(out, self.total_count);
        out.push_str(",\"returned_count\":");
        push_int(out, self.returned_count);
        out.push_str(",\"offset\":");
        push_int(out, self.offset);
        out.push_str(",\"limit\":");
        push_opt_int(out, self.limit);
        out.push_str(",\"models\":[");
    }
}

/// Everything after the models: the summary and the closing brackets.
pub fn write_tail(summary: &CategoryDeletionRiskSummary, out: &mut String) {
    out.push_str("],\"summary\":");
    write_summary(summary, out);
    out.push('}');
}

/// Append one model's info as JSON.
pub fn write_model(m: &ModelDeletionRiskInfo<'_>, out: &mut String) {
    out.push_str("{\"name\":");
    push_str(out, &m.name);
    out.push_str(match m.category {
        Category::TextGeneration => ",\"category\":\"text_generation\",\"deletion_risk_flags\":",
        Category::ImageGeneration => ",\"category\":\"image_generation\",\"deletion_risk_flags\":",
    });
    write_flags(&m.deletion_risk_flags, out);
    bool_field!(out, ",\"at_risk\":", m.at_risk);
    out.push_str(",\"risk_score\":");
    push_int(out, m.risk_score);
    out.push_str(",\"worker_count\":");
    push_int(out, m.worker_count);
    push_usage(out, m.usage_day, m.usage_month, m.usage_total);
    if m.usage_hour.is_none() && m.usage_minute.is_none() {
        // Always so outside the grouping of hourly data the cycle never has.
        out.push_str(",\"usage_hour\":null,\"usage_minute\":null,\"usage_percentage_of_category\":");
    } else {
        out.push_str(",\"usage_hour\":");
        push_opt_int(out, m.usage_hour);
        out.push_str(",\"usage_minute\":");
        push_opt_int(out, m.usage_minute);
        out.push_str(",\"usage_percentage_of_category\":");
    }
    push_float(out, m.usage_percentage_of_category);
    out.push_str(",\"usage_trend\":{\"day_to_month_ratio\":");
    push_opt_float(out, m.usage_trend.day_to_month_ratio);
    out.push_str(",\"month_to_total_ratio\":");
    push_opt_float(out, m.usage_trend.month_to_total_ratio);
    out.push_str("},\"cost_benefit_score\":");
    push_opt_float(out, m.cost_benefit_score);
    out.push_str(",\"size_gb\":");
    push_opt_float(out, m.size_gb);
    out.push_str(",\"baseline\":");
    push_opt_str(out, m.baseline);
    out.push_str(",\"nsfw\":");
    match m.nsfw {
        Some(nsfw) => push_bool(out, nsfw),
        None => out.push_str("null"),
    }
    bool_field!(out, ",\"has_description\":", m.has_description);
    out.push_str(",\"download_count\":");
    push_int(out, m.download_count);
    out.push_str(",\"download_hosts\":");
    push_array(out, m.download_hosts.iter(), |out, host| push_str(out, host));
    out.push_str(",\"backend_variations\":");
    match m.backend_variations {
        Some(variations) => push_array(out, variations, write_backend_variation),
        None => out.push_str("null"),
    }
    bool_field!(out, ",\"is_critical\":", m.is_critical);
    bool_field!(out, ",\"has_warning\":", m.has_warning);
    out.push('}');
}

/// One backend's share of a text model (`BackendVariationStats`).
fn write_backend_variation(out: &mut String, bv: &BackendVariation) {
    out.push_str("{\"backend\":");
    push_plain(out, bv.backend.as_str());
    out.push_str(",\"variant_name\":");
    push_str(out, &bv.variant_name);
    out.push_str(",\"worker_count\":");
    push_int(out, bv.worker_count);
    out.push_str(",\"performance\":");
    push_opt_float(out, bv.performance);
    push_usage(out, bv.usage.day, bv.usage.month, bv.usage.total);
    out.push('}');
}

/// `,"usage_day":…,"usage_month":…,"usage_total":…`, as a model and a backend
/// variation both write them.
fn push_usage(out: &mut String, day: UsageCount, month: UsageCount, total: UsageCount) {
    out.push_str(",\"usage_day\":");
    push_int(out, day);
    out.push_str(",\"usage_month\":");
    push_int(out, month);
    out.push_str(",\"usage_total\":");
    push_int(out, total);
}

/// The flags object, one write a flag.
fn write_flags(f: &DeletionRiskFlags, out: &mut String) {
    bool_field!(out, "{\"zero_usage_day\":", f.zero_usage_day);
    bool_field!(out, ",\"zero_usage_month\":", f.zero_usage_month);
    bool_field!(out, ",\"zero_usage_total\":", f.zero_usage_total);
    bool_field!(out, ",\"no_active_workers\":", f.no_active_workers);
    bool_field!(out, ",\"has_multiple_hosts\":", f.has_multiple_hosts);
    bool_field!(out, ",\"has_non_preferred_host\":", f.has_non_preferred_host);
    bool_field!(out, ",\"has_unknown_host\":", f.has_unknown_host);
    bool_field!(out, ",\"no_download_urls\":", f.no_download_urls);
    bool_field!(out, ",\"missing_description\":", f.missing_description);
    bool_field!(out, ",\"missing_baseline\":", f.missing_baseline);
    bool_field!(out, ",\"low_usage\":", f.low_usage);
    out.push('}');
}

fn write_summary(s: &CategoryDeletionRiskSummary, out: &mut String) {
    push_int_fields(
        out,
        &[
            ("{\"total_models\":", s.total_models),
            (",\"models_at_risk\":", s.models_at_risk),
            (",\"models_critical\":", s.models_critical),
            (",\"models_with_warnings\":", s.models_with_warnings),
            (",\"models_with_zero_day_usage\":", s.models_with_zero_day_usage),
            (",\"models_with_zero_month_usage\":", s.models_with_zero_month_usage),
            (",\"models_with_zero_total_usage\":", s.models_with_zero_total_usage),
            (",\"models_with_no_active_workers\":", s.models_with_no_active_workers),
            (",\"models_with_no_downloads\":", s.models_with_no_downloads),
            (",\"models_with_non_preferred_hosts\":", s.models_with_non_preferred_hosts),
            (",\"models_with_multiple_hosts\":", s.models_with_multiple_hosts),
            (",\"models_with_low_usage\":", s.models_with_low_usage),
        ],
    );
    out.push_str(",\"average_risk_score\":");
    push_float(out, s.average_risk_score);
    out.push_str(",\"category_total_month_usage\":");
    push_int(out, s.category_total_month_usage);
    out.push('}');
}
