//! Parity with the reference: for every dataset of the conformance corpus
//! (`$HORDE_CONFORMANCE_DIR`, default `../shared/conformance`), the nine
//! entries of a cycle computed from the dataset's files must equal its
//! `expected/` under compare.py's rules. Every mismatching entry is listed
//! with its first differences.
//!
//! The hand-made edge cases of `tests/fixtures/risk_edge` and of every case
//! under `tests/fixtures/redteam` (made by their `make.py`, checked with the
//! oracle) are always checked: colliding names, unicode, odd URLs, lax and
//! huge numbers, missing fields. Their image statistics are not there (the
//! reference's statistics raise on URLs Python cannot parse), so that dataset
//! is compared on the entries it has.

mod common;

use horde_hydrator::category::Category;
use horde_hydrator::cycle::{compute_category, CategoryInputs, ComputedEntry};
use horde_hydrator::input::source::SourceId;
use horde_hydrator::input::{horde, reference};
use horde_hydrator::keys::EntryKind;
use horde_hydrator::settings::AnalysisSettings;
use serde_json::Value;
use std::path::Path;

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The inputs of one category from a dataset directory.
fn inputs(dataset: &Path, category: Category) -> CategoryInputs {
    let (status_file, stats_file) =
        (SourceId::Status(category).file_name(), SourceId::Stats(category).file_name());
    let reference_path = dataset.join("model_reference").join(SourceId::Reference(category).file_name());
    let horde_dir = dataset.join("horde");
    CategoryInputs {
        reference: reference::parse_reference(&read(&reference_path))
            .unwrap_or_else(|e| panic!("{}: {e}", reference_path.display())),
        status: horde::parse_status(&read(&horde_dir.join(&status_file)))
            .unwrap_or_else(|e| panic!("{}: {status_file}: {e}", dataset.display())),
        stats: horde::parse_stats(&read(&horde_dir.join(&stats_file)))
            .unwrap_or_else(|e| panic!("{}: {stats_file}: {e}", dataset.display())),
    }
}

/// The mismatches of one computed entry against `expected/`, as report lines.
fn check_entry(dataset: &Path, entry: &ComputedEntry) -> Vec<String> {
    let label = format!("{}: {}", dataset.display(), entry.key);
    let expected_path = dataset.join("expected").join(entry.key.dump_file_name());
    let expected: Value = match serde_json::from_slice(&read(&expected_path)) {
        Ok(v) => v,
        Err(e) => return vec![format!("{label}: expected file unreadable: {e}")],
    };
    let actual: Value = match serde_json::from_str(&entry.json) {
        Ok(v) => v,
        Err(e) => return vec![format!("{label}: output is not JSON: {e}")],
    };
    let mut out: Vec<String> = common::compare::differences(&expected, &actual)
        .into_iter()
        .map(|d| format!("{label}: {d}"))
        .collect();
    let expected_models =
        expected.get("summary").unwrap_or(&expected).get("total_models").and_then(Value::as_u64);
    if expected_models != Some(entry.models as u64) {
        out.push(format!("{label}: models count {} but the entry says {expected_models:?}", entry.models));
    }
    out
}

/// The hand-made edge cases, always checked: `risk_edge` and every case of
/// `redteam` (a directory with `expected/`).
#[test]
fn edge_cases_match_the_reference() {
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut datasets = vec![fixtures.join("risk_edge"), fixtures.join("risk_thresholds")];
    datasets.extend(common::datasets(&fixtures.join("redteam")));
    assert!(datasets.len() >= 6, "risk_edge and the redteam cases: {datasets:?}");
    let settings = AnalysisSettings::default();
    let mut failures = Vec::new();
    for dataset in &datasets {
        let mut checked = 0;
        for category in Category::ALL {
            for entry in compute_category(category, &inputs(dataset, category), &settings, 1_700_000_000) {
                if !dataset.join("expected").join(entry.key.dump_file_name()).exists() {
                    assert_eq!(entry.key.kind, EntryKind::Statistics, "{}: expected file missing", entry.key);
                    continue;
                }
                checked += 1;
                failures.extend(check_entry(dataset, &entry));
            }
        }
        assert!(checked >= 5, "{}: the five deletion-risk entries at least", dataset.display());
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
}

/// `risk_thresholds` holds models exactly at both low-usage thresholds and at
/// the critical thresholds (its make.py); what the reference answered there,
/// and that the daemon's entries say the same (so `<` → `<=` fails).
#[test]
fn thresholds_hold_at_their_boundaries() {
    let dataset = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/risk_thresholds");
    let settings = AnalysisSettings::default();
    // (category, model, low usage, critical), as the reference answered.
    let cases = [
        (Category::ImageGeneration, "Edge Exact", false, false),
        (Category::ImageGeneration, "Edge Below", true, false),
        (Category::ImageGeneration, "Edge Above", false, false),
        (Category::ImageGeneration, "Critical Zero", true, true),
        (Category::ImageGeneration, "Zero Month One Worker", true, false),
        (Category::ImageGeneration, "One Month No Worker", true, false),
        (Category::TextGeneration, "Edge/Exact-7B", false, false),
        (Category::TextGeneration, "Edge/Zero-7B", true, false),
        (Category::TextGeneration, "Crit/Nine-NoWorker-7B", false, true),
        (Category::TextGeneration, "Crit/Ten-NoWorker-7B", false, false),
        (Category::TextGeneration, "Crit/Nine-OneWorker-7B", false, false),
    ];
    for category in Category::ALL {
        let name = format!("deletion_risk__{category}__grouped=false.json");
        let expected: Value = serde_json::from_slice(&read(&dataset.join("expected").join(&name))).unwrap();
        let entries = compute_category(category, &inputs(&dataset, category), &settings, 1_700_000_000);
        let ours = entries.iter().find(|e| e.key.dump_file_name() == name).expect("the ungrouped entry");
        let ours: Value = serde_json::from_slice(ours.json.as_bytes()).unwrap();
        for (_, model, low, critical) in cases.iter().filter(|c| c.0 == category) {
            for (who, doc) in [("reference", &expected), ("daemon", &ours)] {
                let m = doc["models"].as_array().unwrap().iter().find(|m| m["name"] == *model).unwrap();
                let said = (m["deletion_risk_flags"]["low_usage"].as_bool(), m["is_critical"].as_bool());
                assert_eq!(said, (Some(*low), Some(*critical)), "{who}: {model} (low usage, critical)");
            }
        }
    }
}

#[test]
fn every_dataset_matches_the_reference() {
    let Some(root) = common::conformance_dir() else { return };
    let datasets = common::datasets(&root);
    assert!(!datasets.is_empty(), "no dataset (a directory with expected/) under {}", root.display());
    let settings = AnalysisSettings::default();
    let mut checked = 0;
    let mut failures: Vec<String> = Vec::new();
    for dataset in &datasets {
        for category in Category::ALL {
            let entries = compute_category(category, &inputs(dataset, category), &settings, 1_700_000_000);
            let keys: Vec<_> = entries.iter().map(|e| e.key).collect();
            assert_eq!(
                keys,
                horde_hydrator::keys::EntryKey::for_category(category),
                "{}: entries of {category}",
                dataset.display()
            );
            for entry in &entries {
                checked += 1;
                failures.extend(check_entry(dataset, entry));
            }
        }
    }
    assert_eq!(checked, datasets.len() * 9, "nine entries per dataset");
    assert!(
        failures.is_empty(),
        "{} differences over {checked} entries:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
