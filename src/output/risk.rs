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
    fields, push_array, push_float, push_int, push_opt_bool, push_opt_float, push_opt_int, push_opt_str,
    push_plain, push_str,
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
        fields!(out, "{",
            "category" => push_plain(self.category.as_str()),
            "category_total_month_usage" => push_int(self.category_total_month_usage),
            "total_count" => push_int(self.total_count),
            "returned_count" => push_int(self.returned_count),
            "offset" => push_int(self.offset),
            "limit" => push_opt_int(self.limit),
        );
        out.push_str(",\"models\":[");
    }
}

/// Everything after the models: the summary and the closing brackets.
pub fn write_tail(summary: &CategoryDeletionRiskSummary, out: &mut String) {
    out.push_str("],\"summary\":");
    write_summary(out, summary);
    out.push('}');
}

/// Append one model's info as JSON.
pub fn write_model(m: &ModelDeletionRiskInfo<'_>, out: &mut String) {
    fields!(out, "{", "name" => push_str(&m.name));
    out.push_str(match m.category {
        Category::TextGeneration => ",\"category\":\"text_generation\",\"deletion_risk_flags\":",
        Category::ImageGeneration => ",\"category\":\"image_generation\",\"deletion_risk_flags\":",
    });
    write_flags(out, &m.deletion_risk_flags);
    fields!(out, ",",
        "at_risk" => push_bool(m.at_risk),
        "risk_score" => push_int(m.risk_score),
        "worker_count" => push_int(m.worker_count),
        "usage_day" => push_int(m.usage_day),
        "usage_month" => push_int(m.usage_month),
        "usage_total" => push_int(m.usage_total),
    );
    if m.usage_hour.is_none() && m.usage_minute.is_none() {
        // Always so outside the grouping of hourly data the cycle never has.
        out.push_str(",\"usage_hour\":null,\"usage_minute\":null,\"usage_percentage_of_category\":");
    } else {
        fields!(out, ",", "usage_hour" => push_opt_int(m.usage_hour), "usage_minute" => push_opt_int(m.usage_minute));
        out.push_str(",\"usage_percentage_of_category\":");
    }
    push_float(out, m.usage_percentage_of_category);
    fields!(out, ",",
        "usage_trend" => {
            "day_to_month_ratio" => push_opt_float(m.usage_trend.day_to_month_ratio),
            "month_to_total_ratio" => push_opt_float(m.usage_trend.month_to_total_ratio),
        },
        "cost_benefit_score" => push_opt_float(m.cost_benefit_score),
        "size_gb" => push_opt_float(m.size_gb),
        "baseline" => push_opt_str(m.baseline),
        "nsfw" => push_opt_bool(m.nsfw),
        "has_description" => push_bool(m.has_description),
        "download_count" => push_int(m.download_count),
        "download_hosts" => push_array(m.download_hosts.iter(), |out, host| push_str(out, host)),
        "backend_variations" => write_backend_variations(m.backend_variations),
        "is_critical" => push_bool(m.is_critical),
        "has_warning" => push_bool(m.has_warning),
    );
    out.push('}');
}

/// A text model's backend variations (`BackendVariationStats`), `null` for
/// other models.
fn write_backend_variations(out: &mut String, variations: Option<&[BackendVariation]>) {
    match variations {
        Some(variations) => push_array(out, variations, write_backend_variation),
        None => out.push_str("null"),
    }
}

/// One backend's share of a text model (`BackendVariationStats`).
fn write_backend_variation(out: &mut String, bv: &BackendVariation) {
    fields!(out, "{",
        "backend" => push_plain(bv.backend.as_str()),
        "variant_name" => push_str(&bv.variant_name),
        "worker_count" => push_int(bv.worker_count),
        "performance" => push_opt_float(bv.performance),
        "usage_day" => push_int(bv.usage.day),
        "usage_month" => push_int(bv.usage.month),
        "usage_total" => push_int(bv.usage.total),
    );
    out.push('}');
}

/// The flags object.
fn write_flags(out: &mut String, f: &DeletionRiskFlags) {
    fields!(out, "{",
        "zero_usage_day" => push_bool(f.zero_usage_day),
        "zero_usage_month" => push_bool(f.zero_usage_month),
        "zero_usage_total" => push_bool(f.zero_usage_total),
        "no_active_workers" => push_bool(f.no_active_workers),
        "has_multiple_hosts" => push_bool(f.has_multiple_hosts),
        "has_non_preferred_host" => push_bool(f.has_non_preferred_host),
        "has_unknown_host" => push_bool(f.has_unknown_host),
        "no_download_urls" => push_bool(f.no_download_urls),
        "missing_description" => push_bool(f.missing_description),
        "missing_baseline" => push_bool(f.missing_baseline),
        "low_usage" => push_bool(f.low_usage),
    );
    out.push('}');
}

fn write_summary(out: &mut String, s: &CategoryDeletionRiskSummary) {
    fields!(out, "{",
        "total_models" => push_int(s.total_models),
        "models_at_risk" => push_int(s.models_at_risk),
        "models_critical" => push_int(s.models_critical),
        "models_with_warnings" => push_int(s.models_with_warnings),
        "models_with_zero_day_usage" => push_int(s.models_with_zero_day_usage),
        "models_with_zero_month_usage" => push_int(s.models_with_zero_month_usage),
        "models_with_zero_total_usage" => push_int(s.models_with_zero_total_usage),
        "models_with_no_active_workers" => push_int(s.models_with_no_active_workers),
        "models_with_no_downloads" => push_int(s.models_with_no_downloads),
        "models_with_non_preferred_hosts" => push_int(s.models_with_non_preferred_hosts),
        "models_with_multiple_hosts" => push_int(s.models_with_multiple_hosts),
        "models_with_low_usage" => push_int(s.models_with_low_usage),
        "average_risk_score" => push_float(s.average_risk_score),
        "category_total_month_usage" => push_int(s.category_total_month_usage),
    );
    out.push('}');
}
