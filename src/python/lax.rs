//! Python's and pydantic's answers for the reference's raw values: pydantic's
//! lax coercions (`"123"` → 123, `1.0` → 1, `"yes"` → true, integers beyond
//! `i64` as Python holds them), Python's `str.strip()` and the JSON type
//! names the warnings use. Each is tested against what Python (pydantic
//! 2.14's `TypeAdapter`) answers for the same input.

use serde_json::Value;

pub(crate) fn json_type_name(v: &Value) -> &'static str {
    JsonType::of(v).name()
}

/// The type of a JSON value (for warnings and Python type tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    pub(crate) fn of(v: &Value) -> Self {
        match v {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Bool,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    /// The type's name as the warnings write it ("a string").
    pub(crate) fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Bool => "a boolean",
            JsonType::Number => "a number",
            JsonType::String => "a string",
            JsonType::Array => "an array",
            JsonType::Object => "an object",
        }
    }
}

/// Python's `str.isspace()` for one character: Unicode White_Space plus the
/// four information separators U+001C..U+001F that Python also counts.
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` (no argument).
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// An integer as pydantic's lax `int` accepts it: integers, floats without a
/// fractional part, booleans and numeric strings (`" 1_000 "`, `"12.00"`).
/// `None` where pydantic raises (and for integers beyond `i64`).
pub fn lax_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Some(i);
            }
            if n.is_u64() {
                return None;
            }
            let f = n.as_f64()?;
            const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
            (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
        }
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => parse_int_str(s),
        _ => None,
    }
}

/// [`lax_int`] for Python integers beyond `i64` (up to `i128`): what the
/// reference accepts for counts and sizes that Python holds unbounded
/// (`2**63`, `"18446744073709551616"`). JSON integers beyond `u64` reach us as
/// floats (serde_json without arbitrary precision), so integral floats up to
/// 2^127 are accepted too (exact up to 2^53 and for powers of two).
pub fn lax_wide_int(value: &Value) -> Option<i128> {
    if let Some(i) = lax_int(value) {
        return Some(i128::from(i));
    }
    match value {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return Some(i128::from(u));
            }
            let f = n.as_f64()?;
            const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0; // 2^127
            (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i128)
        }
        Value::String(s) => lax_wide_int_str(s),
        _ => None,
    }
}

/// [`lax_wide_int`] of a string: pydantic's string-to-int (optional sign,
/// ASCII digits with single underscores between them, optionally `.` and
/// one or more zeros; Python's surrounding whitespace stripped), up to
/// `i128`.
pub(crate) fn lax_wide_int_str(s: &str) -> Option<i128> {
    let t = py_strip(s);
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let int_part = match body.split_once('.') {
        Some((i, f)) if !f.is_empty() && f.bytes().all(|b| b == b'0') => i,
        Some(_) => return None,
        None => body,
    };
    if !digits_with_underscores(int_part) {
        return None;
    }
    let magnitude: i128 = int_part.chars().filter(|c| *c != '_').collect::<String>().parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// [`lax_int`] of a string: [`lax_wide_int_str`] whose magnitude fits in
/// `i64` (so `-2^63` is out).
fn parse_int_str(s: &str) -> Option<i64> {
    lax_wide_int_str(s).and_then(|v| i64::try_from(v).ok()).filter(|v| *v != i64::MIN)
}

/// `1_000` yes; `_1`, `1_`, `1__0`, empty no.
fn digits_with_underscores(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('_')
        && !s.ends_with('_')
        && !s.contains("__")
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

/// A float as pydantic's lax `float` accepts it: numbers, booleans and
/// numeric strings (Python `float()` syntax: `" 1e3 "`, `"inf"`, `"1_0.5"`).
pub fn lax_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => parse_float_str(s),
        _ => None,
    }
}

fn parse_float_str(s: &str) -> Option<f64> {
    let t = py_strip(s);
    if !t.contains('_') {
        return t.parse().ok();
    }
    // An underscore is allowed only between two digits.
    let bytes = t.as_bytes();
    let ok = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'_'
            || (i > 0 && bytes[i - 1].is_ascii_digit() && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    });
    if !ok {
        return None;
    }
    t.replace('_', "").parse().ok()
}

/// A boolean as pydantic's lax `bool` accepts it: booleans, 0/1 and the
/// strings `true/false/yes/no/on/off/t/f/y/n/1/0` in any case.
pub fn lax_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if f == 0.0 {
                Some(false)
            } else if f == 1.0 {
                Some(true)
            } else {
                None
            }
        }
        Value::String(s) => lax_bool_str(s),
        _ => None,
    }
}

/// [`lax_bool`] of a string.
pub(crate) fn lax_bool_str(s: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["true", "yes", "on", "t", "y", "1"];
    const FALSE: [&str; 6] = ["false", "no", "off", "f", "n", "0"];
    if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| s.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lax_int_follows_pydantic() {
        // Answers of pydantic 2.14's TypeAdapter(int).validate_python.
        let ok = [
            (json!(5), 5),
            (json!(-3), -3),
            (json!(1.0), 1),
            (json!(true), 1),
            (json!("123"), 123),
            (json!(" 123 "), 123),
            (json!("1.0"), 1),
            (json!("1.00"), 1),
            (json!("-1.0"), -1),
            (json!("1_000"), 1000),
            (json!("+5"), 5),
            (json!("007"), 7),
            (json!("\t7\n"), 7),
        ];
        for (value, expected) in ok {
            assert_eq!(lax_int(&value), Some(expected), "{value}");
        }
        for value in [
            json!(1.5),
            json!(1e20),
            json!(null),
            json!("1e3"),
            json!("0x10"),
            json!("1."),
            json!(".0"),
            json!("_1"),
            json!("1__0"),
            json!(""),
            json!("１２"),
            json!([1]),
        ] {
            assert_eq!(lax_int(&value), None, "{value}");
        }
    }

    #[test]
    fn integer_strings_read_alike_at_both_widths() {
        for text in ["123", " -1_000.00 ", "+5", "007", "1.", "_1", "1e3", ""] {
            let value = json!(text);
            assert_eq!(lax_int(&value).map(i128::from), lax_wide_int(&value), "{value}");
            assert_eq!(lax_wide_int_str(text), lax_wide_int(&value), "{value}");
        }
        // Beyond i64: only the wide reading (a magnitude over i64::MAX).
        for (text, wide) in [
            ("9223372036854775807", Some(i128::from(i64::MAX))),
            ("9223372036854775808", Some(1i128 << 63)),
            ("-9223372036854775808", Some(-(1i128 << 63))),
            ("170141183460469231731687303715884105727", Some(i128::MAX)),
            ("170141183460469231731687303715884105728", None),
        ] {
            assert_eq!(lax_wide_int_str(text), wide, "{text}");
            assert_eq!(
                lax_int(&json!(text)),
                wide.filter(|w| w.unsigned_abs() <= i64::MAX as u128).map(|w| w as i64)
            );
        }
    }

    #[test]
    fn lax_float_and_bool_follow_pydantic() {
        assert_eq!(lax_float(&json!("1.5")), Some(1.5));
        assert_eq!(lax_float(&json!(" 2 ")), Some(2.0));
        assert_eq!(lax_float(&json!("1_0.5")), Some(10.5));
        assert_eq!(lax_float(&json!(true)), Some(1.0));
        assert_eq!(lax_float(&json!("1e3")), Some(1000.0));
        assert_eq!(lax_float(&json!("inf")), Some(f64::INFINITY));
        assert_eq!(lax_float(&json!("")), None);
        assert_eq!(lax_float(&json!(null)), None);
        for (value, expected) in [
            (json!("yes"), true),
            (json!("TRUE"), true),
            (json!("t"), true),
            (json!(1), true),
            (json!(1.0), true),
            (json!("off"), false),
            (json!("n"), false),
            (json!(0), false),
            (json!("0"), false),
        ] {
            assert_eq!(lax_bool(&value), Some(expected), "{value}");
        }
        for value in [json!(2), json!(" true"), json!(null), json!("maybe")] {
            assert_eq!(lax_bool(&value), None, "{value}");
        }
    }

    #[test]
    fn python_whitespace_includes_the_separators() {
        assert_eq!(py_strip("\u{1c} x \u{3000}"), "x");
        assert!(py_strip("\u{1f}\u{85}\u{a0}").is_empty());
        assert_eq!(py_strip("\u{200b}"), "\u{200b}"); // not whitespace in Python either
    }
}
