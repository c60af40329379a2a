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

use serde::de::DeserializeOwned;

/// Parse `bytes` as Python's `json.loads` would, non-finite literals as `null`,
/// into any deserialisable type (a drop-in for `serde_json::from_slice`).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(error) => match non_finite_as_null(bytes) {
            Some(rewritten) => serde_json::from_slice(&rewritten).map_err(|_| error),
            None => Err(error),
        },
    }
}

/// [`from_slice`] for a document whose numbers the reference reads as Python
/// integers of any size (the Horde stats): an integer literal too long for
/// `u64` becomes a string of its digits, which [`crate::records::lax_wide_int`]
/// reads exactly (pydantic's lax int treats the two alike), where serde_json
/// would round it to a float.
pub fn from_slice_exact_ints<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match long_ints_as_strings(bytes) {
        Some(rewritten) => from_slice(&rewritten),
        None => from_slice(bytes),
    }
}

/// `bytes` with every integer literal of 20 or more digits outside a string
/// quoted; `None` when there is none.
fn long_ints_as_strings(bytes: &[u8]) -> Option<Vec<u8>> {
    const LONG: usize = 20; // u64::MAX has 20 digits; shorter ones parse exactly
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0; // bytes[..copied] are in `out` (when it exists)
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let starts_number =
            b.is_ascii_digit() || (b == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit));
        if !starts_number {
            i += 1;
            continue;
        }
        let start = i;
        i += usize::from(b == b'-');
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if matches!(bytes.get(i), Some(b'.' | b'e' | b'E')) {
            // A float: skip the rest of its token (fraction and exponent).
            while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                i += 1;
            }
            continue;
        }
        if i - digits_start >= LONG {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len() + 16));
            buf.extend_from_slice(&bytes[copied..start]);
            buf.push(b'"');
            buf.extend_from_slice(&bytes[start..i]);
            buf.push(b'"');
            copied = i;
        }
    }
    let mut buf = out?;
    buf.extend_from_slice(&bytes[copied..]);
    Some(buf)
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
    use serde_json::{json, Value};

    // Python: json.loads('{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN \\" Infinity"}')
    // → {'a': nan, 'b': [inf, -inf], 'c': 'NaN " Infinity'}; the reference
    // writes those floats as null.
    #[test]
    fn reads_pythons_non_finite_literals_as_null() {
        let v: Value =
            from_slice(br#"{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN \" Infinity"}"#).unwrap();
        assert_eq!(v, json!({"a": null, "b": [null, null], "c": "NaN \" Infinity"}));
    }

    // Python: json.loads('{"day": {"a": 123456789012345678901234567, "b": -99999999999999999999,
    // "c": 1.5e30, "12345678901234567890123": 1}}') keeps the integers exact;
    // long integers become their digits as strings, nothing else changes.
    #[test]
    fn long_integers_stay_exact() {
        let v: Value = from_slice_exact_ints(
            br#"{"day": {"a": 123456789012345678901234567, "b": -99999999999999999999, "c": 1.5e30,
                 "d": 18446744073709551615, "f": 1.12345678901234567890123, "12345678901234567890123": 1,
                 "e": [NaN]}}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"day": {"a": "123456789012345678901234567", "b": "-99999999999999999999", "c": 1.5e30,
                   "d": "18446744073709551615", "f": 1.123_456_789_012_345_7, "12345678901234567890123": 1,
                   "e": [null]}})
        );
        assert_eq!(crate::records::lax_wide_int(&v["day"]["a"]), Some(123_456_789_012_345_678_901_234_567));
        assert!(long_ints_as_strings(br#"{"a": 1, "b": "123456789012345678901234"}"#).is_none());
    }

    #[test]
    fn standard_json_is_untouched_and_errors_stay_errors() {
        assert_eq!(from_slice::<Value>(br#"{"NaN": 1.5}"#).unwrap(), json!({"NaN": 1.5}));
        assert!(from_slice::<Value>(b"[1,").is_err());
        assert!(from_slice::<Value>(b"[NaN,").is_err());
        assert!(from_slice::<Value>(b"[nan]").is_err());
    }
}
