//! Python's `urllib.parse.urlparse`, as far as the analytics look at it.
//!
//! The reference decides "has a valid URL", "which hosts" and "unknown host"
//! from `urlparse(url).scheme` and `.netloc`, and counts a `ValueError` from
//! `urlparse` as an unknown host. A Rust URL library normalises hosts (case,
//! IDNA, ports) and rejects things Python accepts, so this module reproduces
//! CPython 3.12's `urlsplit` instead: the scheme and the raw netloc exactly as
//! Python returns them, and an error exactly where Python raises.

use core::net::Ipv6Addr;

/// Where Python's `urlsplit` raises `ValueError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("invalid IPv6 URL (unbalanced brackets) in {0:?}")]
    UnbalancedBrackets(String),
    #[error("invalid bracketed host {0:?}")]
    BadBracketedHost(String),
    #[error("netloc {0:?} contains characters that NFKC-normalise to URL delimiters")]
    NfkcDelimiter(String),
}

/// Characters Python strips from the start of a URL (C0 controls and space).
fn is_c0_or_space(c: char) -> bool {
    c <= ' '
}

/// Characters Python removes anywhere in a URL.
fn is_unsafe_byte(c: char) -> bool {
    matches!(c, '\t' | '\r' | '\n')
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// The non-ASCII characters whose NFKC form contains one of `/?#@:`
/// (computed with Python 3.12's `unicodedata`, Unicode 15.0). Python's
/// `_checknetloc` rejects a netloc holding any of them.
const NFKC_DELIMITERS: [char; 19] = [
    '\u{2047}', '\u{2048}', '\u{2049}', '\u{2100}', '\u{2101}', '\u{2105}', '\u{2106}', '\u{2a74}',
    '\u{fe13}', '\u{fe16}', '\u{fe55}', '\u{fe56}', '\u{fe5f}', '\u{fe6b}', '\u{ff03}', '\u{ff0f}',
    '\u{ff1a}', '\u{ff1f}', '\u{ff20}',
];

/// Python's `_check_bracketed_host`: an IPvFuture literal or an IPv6 address
/// (an IPv4 address in brackets is an error).
fn bracketed_host_is_valid(host: &str) -> bool {
    if let Some(rest) = host.strip_prefix('v') {
        // \Av[a-fA-F0-9]+\..+\Z
        let hex_len = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex_len == 0 {
            return false;
        }
        let after = &rest[hex_len..];
        return after.strip_prefix('.').is_some_and(|tail| !tail.is_empty() && !tail.contains('\n'));
    }
    // ipaddress.ip_address: IPv6 with an optional non-empty `%scope`.
    let (addr, scope) = match host.split_once('%') {
        Some((addr, scope)) => (addr, Some(scope)),
        None => (host, None),
    };
    if scope.is_some_and(|s| s.is_empty() || s.contains('%')) {
        return false;
    }
    addr.parse::<Ipv6Addr>().is_ok()
}

/// `urllib.parse.urlsplit(url)`'s scheme and netloc, or the error Python raises.
pub fn urlsplit(url: &str) -> Result<UrlParts, UrlError> {
    let trimmed = url.trim_start_matches(is_c0_or_space);
    let cleaned: std::borrow::Cow<'_, str> = if trimmed.contains(is_unsafe_byte) {
        trimmed.chars().filter(|c| !is_unsafe_byte(*c)).collect::<String>().into()
    } else {
        trimmed.into()
    };
    let mut rest: &str = &cleaned;
    let mut scheme = String::new();
    if let Some(i) = rest.find(':') {
        let candidate = &rest[..i];
        let first_ok = candidate.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if i > 0 && first_ok && candidate.chars().all(is_scheme_char) {
            scheme = candidate.to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    let mut netloc = "";
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = &after[..end];
        let (open, close) = (netloc.contains('['), netloc.contains(']'));
        if open != close {
            return Err(UrlError::UnbalancedBrackets(netloc.to_string()));
        }
        if open {
            let inside = netloc.split_once('[').map_or("", |(_, r)| r);
            let host = inside.split_once(']').map_or(inside, |(h, _)| h);
            if !bracketed_host_is_valid(host) {
                return Err(UrlError::BadBracketedHost(host.to_string()));
            }
        }
    }
    if !netloc.is_ascii() && netloc.contains(NFKC_DELIMITERS) {
        return Err(UrlError::NfkcDelimiter(netloc.to_string()));
    }
    Ok(UrlParts { scheme, netloc: netloc.to_string() })
}

/// [`urlsplit`]'s answer: the parts of a URL the analytics read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlParts {
    /// The scheme, lower-cased as Python does; empty when there is none.
    pub scheme: String,
    /// The network location (`user@host:port`), verbatim; empty when there is none.
    pub netloc: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, String) {
        let p = urlsplit(url).unwrap();
        (p.scheme, p.netloc)
    }

    #[test]
    fn splits_like_python() {
        // Answers checked against CPython 3.12.1's urllib.parse.urlparse.
        assert_eq!(parts("https://huggingface.co/a/b?x#y"), ("https".into(), "huggingface.co".into()));
        assert_eq!(parts("HTTPS://User@Host.COM:8080/x"), ("https".into(), "User@Host.COM:8080".into()));
        assert_eq!(parts("  \thttps://h\n.com/x"), ("https".into(), "h.com".into()));
        assert_eq!(parts("huggingface.co/x"), ("".into(), "".into()));
        assert_eq!(parts("//host.org/x"), ("".into(), "host.org".into()));
        assert_eq!(parts("file:///tmp/x"), ("file".into(), "".into()));
        assert_eq!(parts("mailto:a@b.c"), ("mailto".into(), "".into()));
        assert_eq!(parts("1http://x.org"), ("".into(), "".into()));
        assert_eq!(parts("ht_tp://x.org"), ("".into(), "".into()));
        assert_eq!(parts("http:x.org"), ("http".into(), "".into()));
        assert_eq!(parts("http://[::1]:80/x"), ("http".into(), "[::1]:80".into()));
        assert_eq!(parts("http://[v1.x]/"), ("http".into(), "[v1.x]".into()));
        assert_eq!(parts("http://bücher.de/x"), ("http".into(), "bücher.de".into()));
        assert_eq!(parts(""), ("".into(), "".into()));
    }

    #[test]
    fn raises_where_python_raises() {
        assert!(urlsplit("http://[::1/x").is_err());
        assert!(urlsplit("http://::1]/x").is_err());
        assert!(urlsplit("http://[1.2.3.4]/x").is_err());
        assert!(urlsplit("http://[nothost]/x").is_err());
        assert!(urlsplit("http://[v.x]/").is_err());
        assert!(urlsplit("http://[fe80::1%]/").is_err());
        assert!(urlsplit("http://[fe80::1%eth0]/").is_ok());
        assert!(urlsplit("http://exa\u{2100}mple.com/").is_err());
        assert!(urlsplit("http://ex\u{ff0f}ample.com/").is_err());
    }

    #[test]
    fn netloc_like_urlparse() {
        // Each checked against CPython 3.12.1's urllib.parse.urlparse(url).netloc.
        let ok = [
            ("https://huggingface.co/x?download=true", "huggingface.co"),
            ("huggingface.co/x", ""),
            ("file:///x", ""),
            ("//nohost.com/x", "nohost.com"),
            ("  HTTPS://User@Host.Example:99/p?q#f", "User@Host.Example:99"),
            ("http://ex\tample.com/", "example.com"),
            ("http://h\r\n.com", "h.com"),
            ("\u{0} http://n.com", "n.com"),
            ("http:// sp.com/", " sp.com"),
            ("https://例え.jp/f", "例え.jp"),
            ("https://\u{ff21}b/", "\u{ff21}b"),
            ("http://[::1]:8080/a", "[::1]:8080"),
            ("http://u@[::1]:80/", "u@[::1]:80"),
            ("http://x[::1]/", "x[::1]"),
            ("http://[v1a.x]/", "[v1a.x]"),
            ("http://[fe80::1%eth0]/", "[fe80::1%eth0]"),
            ("http://[::ffff:1.2.3.4]/", "[::ffff:1.2.3.4]"),
            ("h:ttp://x", ""),
            ("a+b-c.d://host/", "host"),
            ("1http://digit.scheme/", ""),
            ("://x", ""),
            ("http:\\\\x", ""),
            ("mailto:someone@example.com", ""),
            ("http://a.com?x=1", "a.com"),
            ("http://b.com#frag", "b.com"),
        ];
        for (url, netloc) in ok {
            assert_eq!(urlsplit(url).map(|p| p.netloc).as_deref(), Ok(netloc), "{url:?}");
        }
        let raises = [
            "http://[bad/a",
            "http://bad]/a",
            "http://[1.2.3.4]/",
            "http://[::1%]/",
            "http://[::1%a%b]/",
            "http://a]b[c/",
            "http://[::ffff:01.2.3.4]/",
            "http://[12345::]/",
            "http://[v.x]/",
            "http://[v1.]/",
            "https://a\u{ff0f}b/",
            "https://a\u{2100}b/",
        ];
        for url in raises {
            assert!(urlsplit(url).is_err(), "{url:?} must raise");
        }
    }
}
