//! The parity judge of `../shared/tools/compare.py`, in Rust.
//!
//! Two entries match when equal as JSON after normalisation: `computed_at`
//! ignored; `download_hosts` compared as sorted lists; `backend_variations`
//! sorted by `backend`; numbers equal within 1e-9 relative (1e-12 absolute),
//! integers exactly; everything else exact, list order included.

use serde_json::Value;

fn normalise(value: &Value, key: Option<&str>) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| *k != "computed_at")
                .map(|(k, v)| (k.clone(), normalise(v, Some(k))))
                .collect(),
        ),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(|v| normalise(v, None)).collect();
            match key {
                Some("download_hosts") => items.sort_by_key(|v| v.to_string()),
                Some("backend_variations") => {
                    items.sort_by_key(|v| v.get("backend").and_then(Value::as_str).unwrap_or("").to_string())
                }
                _ => {}
            }
            Value::Array(items)
        }
        other => other.clone(),
    }
}

fn is_int(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64()
}

fn diff(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    const LIMIT: usize = 8;
    if out.len() >= LIMIT {
        return;
    }
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            if is_int(e) && is_int(a) {
                if e != a {
                    out.push(format!("{path}: expected {e}, got {a}"));
                }
            } else {
                let (x, y) = (e.as_f64().unwrap_or(f64::NAN), a.as_f64().unwrap_or(f64::NAN));
                let tol = f64::max(1e-9 * f64::max(x.abs(), y.abs()), 1e-12);
                if (x - y).abs() > tol {
                    out.push(format!("{path}: expected {e}, got {a}"));
                }
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for k in e.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: missing"));
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("{path}.{k}: unexpected field"));
            }
            for (k, ev) in e {
                if let Some(av) = a.get(k) {
                    diff(ev, av, &format!("{path}.{k}"), out);
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{path}: expected {} items, got {}", e.len(), a.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(ev, av, &format!("{path}[{i}]"), out);
            }
        }
        (e, a) => {
            if e != a {
                out.push(format!("{path}: expected {e}, got {a}"));
            }
        }
    }
}

/// The first differences between an expected and an actual entry; empty when they match.
pub fn differences(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(&normalise(expected, None), &normalise(actual, None), "$", &mut out);
    out
}
