//! Parity of the category statistics with the reference: for every dataset of
//! the conformance corpus, and for the hand-made edge cases of
//! `tests/fixtures/stats_edge` (made and checked with the oracle by its
//! `make.py`), `stats::compute_statistics` of both categories and both grouped
//! values must equal `expected/stats__<category>__grouped=<bool>.json` under
//! compare.py's rules. Every mismatch of every entry is listed.

mod common;

use horde_hydrator::analytics::stats::compute_statistics;
use horde_hydrator::category::Category;
use horde_hydrator::input::reference;
use serde_json::Value;
use std::path::PathBuf;

/// The hand-made edge cases, always checked.
fn edge_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stats_edge")
}

/// Mismatches of one statistics entry over every dataset.
fn mismatches(category: Category, grouped: bool) -> (usize, Vec<String>) {
    let mut datasets = vec![edge_fixture()];
    if let Some(root) = common::conformance_dir() {
        datasets.extend(common::datasets(&root));
    }
    let mut checked = 0;
    let mut out = Vec::new();
    for dataset in datasets {
        let path = dataset.join("model_reference").join(format!("{category}.json"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reference = reference::parse_reference(&bytes).unwrap();
        {
            let name = format!("stats__{category}__grouped={grouped}.json");
            let expected_path = dataset.join("expected").join(&name);
            let expected: Value = serde_json::from_slice(&std::fs::read(&expected_path).unwrap()).unwrap();
            let (json, models) = compute_statistics(category, &reference, grouped, 1_700_000_000);
            let actual: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(
                Some(models as u64),
                expected["total_models"].as_u64(),
                "{}: {name}: model count",
                dataset.display()
            );
            assert_eq!(actual["computed_at"], 1_700_000_000, "computed_at is the given time");
            for d in common::compare::differences(&expected, &actual) {
                out.push(format!("{}: {name}: {d}", dataset.display()));
            }
            checked += 1;
        }
    }
    (checked, out)
}

fn assert_parity(category: Category, grouped: bool) {
    let (checked, found) = mismatches(category, grouped);
    assert!(checked > 0, "no dataset found");
    assert!(found.is_empty(), "{} mismatches:\n{}", found.len(), found.join("\n"));
}

#[test]
fn image_statistics_match_reference() {
    assert_parity(Category::ImageGeneration, false);
}

#[test]
fn image_grouped_statistics_match_reference() {
    assert_parity(Category::ImageGeneration, true);
}

#[test]
fn text_statistics_match_reference() {
    assert_parity(Category::TextGeneration, false);
}

#[test]
fn text_grouped_statistics_match_reference() {
    assert_parity(Category::TextGeneration, true);
}

/// Fields in the reference's declaration order (what `model_dump_json` writes).
#[test]
fn fields_in_declaration_order() {
    let reference = reference::parse_reference(br#"{"a": {"baseline": "x", "tags": ["t"]}}"#).unwrap();
    let (json, models) = compute_statistics(Category::ImageGeneration, &reference, false, 42);
    assert_eq!(models, 1);
    assert_eq!(
        json,
        concat!(
            r#"{"category":"image_generation","total_models":1,"returned_models":1,"offset":0,"limit":null,"#,
            r#""nsfw_count":0,"baseline_distribution":{"x":{"baseline":"x","count":1,"percentage":100.0}},"#,
            r#""download_stats":{"total_models_with_downloads":0,"total_download_entries":0,"total_size_bytes":0,"#,
            r#""models_with_size_info":0,"average_size_bytes":0.0,"hosts":{}},"#,
            r#""top_tags":[{"tag":"t","count":1,"percentage":100.0}],"top_styles":[],"parameter_buckets":[],"#,
            r#""models_without_param_info":0,"models_with_trigger_words":0,"models_with_inpainting":0,"#,
            r#""models_with_requirements":0,"models_with_showcases":0,"computed_at":42}"#
        )
    );
}
