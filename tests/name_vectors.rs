//! Every vector of `vectors/text_model_names.json` (the reference's answers
//! for 1,500+ text model names) against `names::{base_model_name,
//! name_variants, strip_quant_suffix}`.

mod common;

use horde_hydrator::analytics::names::{base_model_name, name_variants, strip_quant_suffix};
use serde::Deserialize;

/// One vector: a name and what the reference answers for it.
#[derive(Deserialize)]
struct Vector {
    name: String,
    base_model_name: String,
    name_variants: Vec<String>,
    strip_quant_suffix: String,
}

#[test]
fn every_vector_matches_the_reference() {
    let Some(dir) = common::conformance_dir() else {
        return;
    };
    let path = dir.join("vectors/text_model_names.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let vectors: Vec<Vector> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad {}: {e}", path.display()));
    assert!(vectors.len() > 1000, "only {} vectors in {}", vectors.len(), path.display());

    let mut mismatches = Vec::new();
    for v in &vectors {
        let base = base_model_name(&v.name);
        if base != v.base_model_name {
            mismatches
                .push(format!("base_model_name({:?}) = {base:?}, reference {:?}", v.name, v.base_model_name));
        }
        let variants = name_variants(&v.name);
        if variants != v.name_variants {
            mismatches
                .push(format!("name_variants({:?}) = {variants:?}, reference {:?}", v.name, v.name_variants));
        }
        let stripped = strip_quant_suffix(&v.name);
        if stripped != v.strip_quant_suffix {
            mismatches.push(format!(
                "strip_quant_suffix({:?}) = {stripped:?}, reference {:?}",
                v.name, v.strip_quant_suffix
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches over {} vectors; first 20:\n{}",
        mismatches.len(),
        vectors.len(),
        mismatches.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}
