//! A string interner: distinct strings stored end to end in one buffer,
//! each with a dense `u32` id (its insertion order).
//!
//! The Horde indexes hold a few thousand short names (x100: a few hundred
//! thousand); one `String` per name costs an allocation each and scatters
//! them over fresh heap pages, which in a fresh process costs as much as the
//! work itself (page faults). Here all the text shares one growing buffer and
//! the hash table holds only spans into it, so interning allocates nothing
//! per name and a lookup by `&str` needs no owned key.
//!
//! The table is an [`IndexMap`] used through its raw-entry API: it stores
//! each span's hash, so it never has to re-hash (and so never needs the text)
//! when it grows; lookups compare candidates against the buffer.

use foldhash::fast::RandomState;
use indexmap::map::RawEntryApiV1;
use indexmap::IndexMap;
use std::hash::BuildHasher;

/// Where one interned string lies in the buffer (`start..end`, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Span {
    start: usize,
    end: usize,
}

/// Distinct strings with dense ids. (An id is a `u32`: four billion
/// distinct strings would need over 64 GB for their spans alone, far beyond
/// any response the fetcher accepts.)
#[derive(Debug, Clone, Default)]
pub(crate) struct Interner {
    text: String,
    /// Spans in id order; the map's own index of an entry is its id. Its
    /// hasher hashes the text of a span (a per-instance seed, like the std
    /// maps); the map itself never hashes a span.
    spans: IndexMap<Span, (), RandomState>,
}

impl Interner {
    /// An interner sized for about `strings` strings of `bytes` bytes in all.
    pub(crate) fn with_capacity(strings: usize, bytes: usize) -> Self {
        Interner {
            text: String::with_capacity(bytes),
            spans: IndexMap::with_capacity_and_hasher(strings, RandomState::default()),
        }
    }

    /// Room for about `strings` more strings of `bytes` bytes in all.
    pub(crate) fn reserve(&mut self, strings: usize, bytes: usize) {
        self.text.reserve(bytes);
        self.spans.reserve(strings);
    }

    /// How many distinct strings.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The bytes of all the strings.
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The string with id `id` (empty for an unknown id).
    pub(crate) fn get_str(&self, id: u32) -> &str {
        self.spans.get_index(id as usize).map_or("", |(span, ())| self.slice(*span))
    }

    fn slice(&self, span: Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or("")
    }

    /// The id of `s`, if interned.
    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        let hash = self.spans.hasher().hash_one(s);
        let text = &self.text;
        self.spans
            .raw_entry_v1()
            .index_from_hash(hash, |span| text.get(span.start..span.end) == Some(s))
            .map(|i| i as u32)
    }

    /// The id of `s`, interning it when new.
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        let start = self.text.len();
        self.text.push_str(s);
        self.intern_tail(start)
    }

    /// The id of `s` lower-cased (Rust's full Unicode `to_lowercase`, which
    /// for ASCII is `to_ascii_lowercase`), interning it when new. An ASCII
    /// name is lower-cased in place in the buffer: no temporary string.
    pub(crate) fn intern_lowercase(&mut self, s: &str) -> u32 {
        self.intern_with(|text| push_lowercase(text, s))
    }

    /// The id of the string `write` appends to the buffer, interning it when
    /// new (so it is built in place, without a temporary string).
    pub(crate) fn intern_with(&mut self, write: impl FnOnce(&mut String)) -> u32 {
        let start = self.text.len();
        write(&mut self.text);
        self.intern_tail(start)
    }

    /// Intern the text pushed since `start`: keep it when new, else drop it
    /// and return the existing id.
    fn intern_tail(&mut self, start: usize) -> u32 {
        let end = self.text.len();
        let text = &self.text;
        let key = &text[start..end];
        let hash = self.spans.hasher().hash_one(key);
        let entry =
            self.spans.raw_entry_mut_v1().from_hash(hash, |span| text.get(span.start..span.end) == Some(key));
        match entry {
            indexmap::map::raw_entry_v1::RawEntryMut::Occupied(found) => {
                let id = found.index() as u32;
                self.text.truncate(start);
                id
            }
            indexmap::map::raw_entry_v1::RawEntryMut::Vacant(vacant) => {
                let id = vacant.index() as u32;
                vacant.insert_hashed_nocheck(hash, Span { start, end }, ());
                id
            }
        }
    }
}

/// Push `s` lower-cased (as `str::to_lowercase`) onto `out`; ASCII text is
/// lower-cased in place, without a temporary string.
pub(crate) fn push_lowercase(out: &mut String, s: &str) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        out[start..].make_ascii_lowercase();
    } else {
        // Full Unicode rules (final sigma depends on the neighbours): the
        // standard function on the whole string.
        out.push_str(&s.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_distinct_strings_with_dense_ids() {
        let mut interner = Interner::with_capacity(2, 8);
        assert_eq!(interner.intern("Foo"), 0);
        assert_eq!(interner.intern("bar"), 1);
        assert_eq!(interner.intern("Foo"), 0);
        assert_eq!(interner.intern_lowercase("FOO"), 2);
        assert_eq!(interner.intern_lowercase("BAR"), 1);
        assert_eq!(interner.intern(""), 3);
        assert_eq!(interner.len(), 4);
        assert_eq!((interner.get_str(0), interner.get_str(2), interner.get_str(3)), ("Foo", "foo", ""));
        assert_eq!(interner.get("foo"), Some(2));
        assert_eq!(interner.get("Bar"), None);
        // A duplicate leaves no text behind.
        assert_eq!(interner.text, "Foobarfoo");
    }

    #[test]
    fn lower_cases_like_the_standard_library() {
        for s in ["ÀB", "ΣΑΣ", "Σ", "x/ΣΑ", "İx", "Kelvin\u{212A}", "plain"] {
            let mut out = String::from("pre-");
            push_lowercase(&mut out, s);
            assert_eq!(out, format!("pre-{}", s.to_lowercase()), "{s}");
        }
        let mut interner = Interner::default();
        let id = interner.intern_lowercase("ΟΔΟΣ");
        assert_eq!(interner.get_str(id), "ΟΔΟΣ".to_lowercase());
    }
}
