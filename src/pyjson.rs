//! JSON as the reference reads it (Python's `json.loads`).
//!
//! Python's reader accepts three literals standard JSON lacks: `NaN`,
//! `Infinity` and `-Infinity` (and Python's `json.dumps` writes them for
//! non-finite floats, so datasets and mirrors can hold them). serde_json
//! rejects them, which would make a whole source unusable where the
//! reference carries on. Where the reference survives such a value (a float
//! field such as a status `performance`, or a value nobody reads), it writes
//! it as `null` or ignores it, so reading the literal as `null` gives the
//! same entries; in any other field the reference rejects the input anyway.
//!
//! The standard parse runs first; only input it rejects and that holds one
//! of the literals outside a string is rewritten and parsed again.

use serde_json::Value;

/// Parse `bytes` as Python's `json.loads` would, non-finite literals as `null`.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(error) => match non_finite_as_null(bytes) {
            Some(rewritten) => serde_json::from_slice(&rewritten).map_err(|_| error),
            None => Err(error),
        },
    }
}

/// `bytes` with every `NaN`, `Infinity` and `-Infinity` outside a string
/// replaced by `null`; `None` when there is none.
fn non_finite_as_null(bytes: &[u8]) -> Option<Vec<u8>> {
    const LITERALS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    let mut out = Vec::with_capacity(bytes.len());
    let mut replaced = false;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            match b {
                b'\\' => {
                    if let Some(next) = bytes.get(i + 1) {
                        out.push(*next);
                        i += 1;
                    }
                }
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
        } else if let Some(literal) = LITERALS.iter().find(|l| bytes[i..].starts_with(l)) {
            out.extend_from_slice(b"null");
            i += literal.len();
            replaced = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    replaced.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Python: json.loads('{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN \\" Infinity"}')
    // → {'a': nan, 'b': [inf, -inf], 'c': 'NaN " Infinity'}; the reference
    // writes those floats as null.
    #[test]
    fn reads_pythons_non_finite_literals_as_null() {
        let v = from_slice(br#"{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN \" Infinity"}"#).unwrap();
        assert_eq!(v, json!({"a": null, "b": [null, null], "c": "NaN \" Infinity"}));
    }

    #[test]
    fn standard_json_is_untouched_and_errors_stay_errors() {
        assert_eq!(from_slice(br#"{"NaN": 1.5}"#).unwrap(), json!({"NaN": 1.5}));
        assert!(from_slice(b"[1,").is_err());
        assert!(from_slice(b"[NaN,").is_err());
        assert!(from_slice(b"[nan]").is_err());
    }
}
