//! Text-model name handling, as the reference does it.
//!
//! OWNED BY the names work; stubs for now so the rest compiles.

/// `get_base_model_name`: the grouping key of a text model name.
pub fn base_model_name(name: &str) -> String {
    let _ = name;
    todo!("names::base_model_name")
}

/// `get_model_name_variants`: the names the Horde may report a model under.
pub fn name_variants(name: &str) -> Vec<String> {
    let _ = name;
    todo!("names::name_variants")
}

/// The stats index's quantisation-suffix stripping (`-Q4_K_M`, ...).
pub fn strip_quant_suffix(name: &str) -> String {
    let _ = name;
    todo!("names::strip_quant_suffix")
}
