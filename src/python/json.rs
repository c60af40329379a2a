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
//!
//! Also Python's `str()` of a decoded value (the statistics count values by
//! it).

use serde::de::DeserializeOwned;
use serde_json::Value;
use std::borrow::Cow;

/// Parse `bytes` as Python's `json.loads` would, non-finite literals as `null`,
/// into any deserialisable type (a drop-in for `serde_json::from_slice`).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    parse_with(bytes, |bytes| serde_json::from_slice(bytes))
}

/// Run `parse` (any serde_json parse of a whole document) on `bytes`, or,
/// when it fails and `bytes` hold a non-finite literal outside a string, on
/// `bytes` with those read as `null` (the first error is reported).
pub fn parse_with<T>(
    bytes: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, serde_json::Error>,
) -> Result<T, serde_json::Error> {
    match parse(bytes) {
        Ok(value) => Ok(value),
        Err(error) => match non_finite_as_null(bytes) {
            Some(rewritten) => parse(&rewritten).map_err(|_| error),
            None => Err(error),
        },
    }
}

/// [`from_slice`] for a document whose numbers the reference reads as Python
/// integers of any size (the Horde stats): an integer literal too long for
/// `u64` becomes a string of its digits, which [`crate::python::lax::lax_wide_int`]
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

/// Python's `str(value)` of a JSON-decoded value.
pub fn py_str(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => {
            let mut out = String::new();
            py_repr(other, &mut out);
            Cow::Owned(out)
        }
    }
}

/// Python's `repr(value)` of a JSON-decoded value.
fn py_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(u)) => out.push_str(&u.to_string()),
            _ => out.push_str(&py_float_repr(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => py_str_repr(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_str_repr(k, out);
                out.push_str(": ");
                py_repr(v, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: the shortest round-tripping digits, positional
/// when the decimal exponent is in [-4, 16), scientific otherwise.
fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-5".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Python's `decpt`: the value is 0.DIGITS × 10^decpt.
    let decpt = exp + 1;
    let mut out = String::from(sign);
    if (-3..=16).contains(&decpt) {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = decpt as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        out.push_str(&format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.unsigned_abs()));
    }
    out
}

/// Python's `repr(str)`: single quotes unless the text has a single quote and
/// no double quote; backslash escapes for the quote, backslash, \t \n \r and
/// non-printable characters. (`str.isprintable` is approximated outside ASCII
/// by the common non-printable ranges: controls, format characters, separators,
/// private use.)
fn py_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !py_printable(c) => {
                let cp = c as u32;
                if cp <= 0xff {
                    out.push_str(&format!("\\x{cp:02x}"));
                } else if cp <= 0xffff {
                    out.push_str(&format!("\\u{cp:04x}"));
                } else {
                    out.push_str(&format!("\\U{cp:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// An approximation of Python's `str.isprintable` for one character.
fn py_printable(c: char) -> bool {
    let cp = c as u32;
    !matches!(cp,
        0x00..=0x1f | 0x7f..=0xa0 | 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f
        | 0x1680 | 0x180e | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x206f
        | 0x3000 | 0xd800..=0xf8ff | 0xfeff | 0xfff9..=0xfffb | 0xfffe..=0xffff
        | 0xe0001 | 0xe0020..=0xe007f | 0xf0000..=0x10ffff)
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
        assert_eq!(
            crate::python::lax::lax_wide_int(&v["day"]["a"]),
            Some(123_456_789_012_345_678_901_234_567)
        );
        assert!(long_ints_as_strings(br#"{"a": 1, "b": "123456789012345678901234"}"#).is_none());
    }

    #[test]
    fn standard_json_is_untouched_and_errors_stay_errors() {
        assert_eq!(from_slice::<Value>(br#"{"NaN": 1.5}"#).unwrap(), json!({"NaN": 1.5}));
        assert!(from_slice::<Value>(b"[1,").is_err());
        assert!(from_slice::<Value>(b"[NaN,").is_err());
        assert!(from_slice::<Value>(b"[nan]").is_err());
    }

    #[test]
    fn python_str_of_json_values() {
        // Each checked against CPython 3.12's str().
        let cases = [
            (json!("plain"), "plain"),
            (json!(3), "3"),
            (json!(-2), "-2"),
            (json!(true), "True"),
            (json!(1.0), "1.0"),
            (json!(1.5), "1.5"),
            (json!(1e16), "1e+16"),
            (json!(1e-5), "1e-05"),
            (json!(0.0001), "0.0001"),
            (json!(123456789.0), "123456789.0"),
            (json!(1234567890123456.0), "1234567890123456.0"),
            (json!(1.5e300), "1.5e+300"),
            (json!(-0.0), "-0.0"),
            (json!(0.1), "0.1"),
            (json!(["x", "it's", null]), r#"['x', "it's", None]"#),
            (json!({"k": "v'q\"", "n": 1}), r#"{'k': 'v\'q"', 'n': 1}"#),
            (
                json!(["tab\there", "back\\slash", "é🎉", "\u{1}"]),
                r"['tab\there', 'back\\slash', 'é🎉', '\x01']",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(py_str(&value), expected, "str({value})");
        }
    }
}
