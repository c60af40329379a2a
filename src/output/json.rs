//! The JSON writer every entry is written with: serde_json's compact format
//! byte for byte (its integer formatter `itoa`, its float formatter `zmij`,
//! its string escapes), into a buffer the caller sized once. The callers
//! list an object's fields with `fields!`, which writes each field's name
//! as one literal together with its punctuation (`,"key":`), so a field
//! costs one copy and one formatted value.
//!
//! Why a writer and not `#[derive(Serialize)]`: docs/PERFORMANCE.md ("One
//! serialiser") has the measurement.

/// An object's fields in their order, each `"key" => writer(args…)` (the
/// value written by `writer(out, args…)`) or `"key" => { fields… }` (a nested
/// object). `$lead` is what goes before the first key: `"{"` opens the
/// object, `","` goes on with one; the caller closes it. The punctuation
/// and the keys between two values go out as one literal (a nested object's
/// braces with the keys next to them, a `push_bool` field with its value),
/// so a field costs one copy and one formatted value.
macro_rules! fields {
    // The state: the literals not yet written, and the separator the next
    // key needs.
    (@go $out:expr, [], $sep:literal;) => {};
    (@go $out:expr, [$($pending:literal),+], $sep:literal;) => {
        $out.push_str(concat!($($pending),+))
    };
    (@go $out:expr, $pending:tt, $sep:literal; , $($rest:tt)*) => {
        $crate::output::json::fields!(@go $out, $pending, $sep; $($rest)*)
    };
    (@go $out:expr, [$($pending:literal),*], $sep:literal; $key:literal => { $($inner:tt)* } $($rest:tt)*) => {
        $crate::output::json::fields!(
            @go $out, [$($pending,)* $sep, "\"", $key, "\":{"], ""; $($inner)* @close $($rest)*
        )
    };
    (@go $out:expr, [$($pending:literal),*], $sep:literal; @close $($rest:tt)*) => {
        $crate::output::json::fields!(@go $out, [$($pending,)* "}"], ","; $($rest)*)
    };
    (@go $out:expr, [$($pending:literal),*], $sep:literal; $key:literal => push_bool($value:expr) $($rest:tt)*) => {
        $out.push_str(if $value {
            concat!($($pending,)* $sep, "\"", $key, "\":true")
        } else {
            concat!($($pending,)* $sep, "\"", $key, "\":false")
        });
        $crate::output::json::fields!(@go $out, [], ","; $($rest)*)
    };
    (@go $out:expr, [$($pending:literal),*], $sep:literal; $key:literal => $write:ident($($arg:expr),* $(,)?) $($rest:tt)*) => {
        $out.push_str(concat!($($pending,)* $sep, "\"", $key, "\":"));
        $write($out, $($arg),*);
        $crate::output::json::fields!(@go $out, [], ","; $($rest)*)
    };
    ($out:expr, $lead:literal $(, $($fields:tt)*)?) => {
        $crate::output::json::fields!(@go $out, [$lead], ""; $($($fields)*)?)
    };
}
pub(crate) use fields;

/// A string known to need no escape (names of enum values), quoted.
pub fn push_plain(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    out.push_str(s);
    out.push('"');
}

pub fn push_bool(out: &mut String, value: bool) {
    out.push_str(if value { "true" } else { "false" });
}

pub fn push_int(out: &mut String, value: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(value));
}

pub fn push_opt_int(out: &mut String, value: Option<impl itoa::Integer>) {
    match value {
        Some(v) => push_int(out, v),
        None => out.push_str("null"),
    }
}

/// A float as serde_json writes it: shortest round-trip form, `null` when
/// not finite.
pub fn push_float(out: &mut String, value: f64) {
    if value.is_finite() {
        out.push_str(zmij::Buffer::new().format_finite(value));
    } else {
        out.push_str("null");
    }
}

pub fn push_opt_bool(out: &mut String, value: Option<bool>) {
    match value {
        Some(b) => push_bool(out, b),
        None => out.push_str("null"),
    }
}

pub fn push_opt_float(out: &mut String, value: Option<f64>) {
    match value {
        Some(v) => push_float(out, v),
        None => out.push_str("null"),
    }
}

pub fn push_opt_str(out: &mut String, value: Option<&str>) {
    match value {
        Some(s) => push_str(out, s),
        None => out.push_str("null"),
    }
}

/// A JSON array of `items`, each written by `write`.
pub fn push_array<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut String, T),
) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(out, item);
    }
    out.push(']');
}

/// A JSON object of `(key, value)` pairs in their order, each value written
/// by `write`.
pub fn push_object<'k, T>(
    out: &mut String,
    pairs: impl IntoIterator<Item = (&'k str, T)>,
    mut write: impl FnMut(&mut String, T),
) {
    out.push('{');
    for (i, (key, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, key);
        out.push(':');
        write(out, value);
    }
    out.push('}');
}

/// A JSON string literal, escaped as serde_json does: `"` and `\\`, the
/// short escapes for backspace, form feed, newline, carriage return and tab,
/// `\u00XX` (lower-case hex) for the other control characters; everything
/// else (non-ASCII included) verbatim.
pub fn push_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Almost every string needs no escape: test all bytes at once (a fold
    // without early exit, which the compiler vectorises).
    let needs_escape = s.bytes().fold(false, |any, b| any | (b < 0x20) | (b == b'"') | (b == b'\\'));
    if !needs_escape {
        push_plain(out, s);
        return;
    }
    out.push('"');
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let short = match byte {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x00..=0x1f => None,
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices end on char boundaries.
        out.push_str(&s[start..i]);
        match short {
            Some(escape) => out.push_str(escape),
            None => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_write_an_object_as_serde_json_does() {
        let out = &mut String::new();
        fields!(out, "{",
            "a" => push_int(1),
            "b" => { "c" => push_bool(true), "d" => push_opt_float(None), "e" => {} },
            "f" => push_str("x\"y"),
            "g" => { "h" => push_array([1, 2], push_int) },
        );
        out.push('}');
        let expected = serde_json::json!({"a": 1, "b": {"c": true, "d": null, "e": {}}, "f": "x\"y", "g": {"h": [1, 2]}});
        assert_eq!(*out, serde_json::to_string(&expected).unwrap());
        let out = &mut String::from("{\"z\":0");
        fields!(out, ",", "y" => push_bool(false));
        assert_eq!(out, "{\"z\":0,\"y\":false");
    }

    #[test]
    fn strings_and_numbers_are_written_as_serde_json_writes_them() {
        for text in [
            "plain",
            "quote \" and \\ back",
            "\u{0}\u{1}\u{8}\u{9}\n\u{b}\u{c}\r\u{1f}\u{7f}",
            "ünï/cødé 🙂",
            "",
        ] {
            let mut out = String::new();
            push_str(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).unwrap());
        }
        for value in [
            0.0,
            -0.0,
            0.1,
            1e16,
            1.5e-7,
            123456789.125,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
        ] {
            let mut out = String::new();
            push_float(&mut out, value);
            assert_eq!(out, serde_json::to_string(&value).unwrap());
        }
        for value in [i128::MIN, -1, 0, 9_223_372_036_854_775_808, i128::MAX] {
            let mut out = String::new();
            push_int(&mut out, value);
            assert_eq!(out, serde_json::to_string(&value).unwrap());
        }
    }
}
