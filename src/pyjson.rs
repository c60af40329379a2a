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

/// What a rewrite does at one position outside any string literal.
enum Step {
    /// Leave this many bytes as they are.
    Keep(usize),
    /// Replace this many bytes by `with`.
    Replace { len: usize, with: Vec<u8> },
}

/// `bytes` with the tokens `step` chooses (it sees the text from each
/// position outside a string literal) replaced; `None` when it replaced
/// nothing. String literals (escapes included) are never looked into.
fn rewrite_outside_strings(bytes: &[u8], mut step: impl FnMut(&[u8]) -> Step) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0; // bytes[..copied] are in `out` (when it exists)
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            // Skip to just past the closing quote.
            i += 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            continue;
        }
        match step(&bytes[i..]) {
            Step::Keep(len) => i += len.max(1),
            Step::Replace { len, with } => {
                let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len() + 16));
                buf.extend_from_slice(&bytes[copied..i]);
                buf.extend_from_slice(&with);
                i += len;
                copied = i;
            }
        }
    }
    let mut buf = out?;
    buf.extend_from_slice(&bytes[copied.min(bytes.len())..]);
    Some(buf)
}

/// `bytes` with every integer literal of 20 or more digits outside a string
/// quoted; `None` when there is none.
fn long_ints_as_strings(bytes: &[u8]) -> Option<Vec<u8>> {
    const LONG: usize = 20; // u64::MAX has 20 digits; shorter ones parse exactly
    rewrite_outside_strings(bytes, |rest| {
        let sign = usize::from(rest[0] == b'-');
        let digits = rest[sign..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Step::Keep(1);
        }
        let int_len = sign + digits;
        if matches!(rest.get(int_len), Some(b'.' | b'e' | b'E')) {
            // A float: keep the rest of its token (fraction and exponent) too.
            let tail = rest[int_len..]
                .iter()
                .take_while(|b| matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                .count();
            return Step::Keep(int_len + tail);
        }
        if digits < LONG {
            return Step::Keep(int_len);
        }
        let mut with = Vec::with_capacity(int_len + 2);
        with.push(b'"');
        with.extend_from_slice(&rest[..int_len]);
        with.push(b'"');
        Step::Replace { len: int_len, with }
    })
}

/// `bytes` with every `NaN`, `Infinity` and `-Infinity` outside a string
/// replaced by `null`; `None` when there is none.
fn non_finite_as_null(bytes: &[u8]) -> Option<Vec<u8>> {
    const LITERALS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    rewrite_outside_strings(bytes, |rest| match LITERALS.iter().find(|l| rest.starts_with(l)) {
        Some(literal) => Step::Replace { len: literal.len(), with: b"null".to_vec() },
        None => Step::Keep(1),
    })
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
