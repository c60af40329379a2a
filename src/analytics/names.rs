//! Text-model name handling, exactly as the reference does it.
//!
//! Three reference functions live here, because grouping and the Horde stats
//! lookups must agree with the reference on every name, odd ones included:
//!
//! * [`base_model_name`] — `analytics.text_model_parser.get_base_model_name`:
//!   the grouping key of a text model (`koboldcpp/Org/Llama-3-8B-Instruct-Q4_K_M`
//!   → `Llama-3`);
//! * [`name_variants`] — `text_backend_names.get_model_name_variants`: the
//!   names the Horde may report a model under;
//! * [`strip_quant_suffix`] — `integrations.horde_api_models._strip_quantization_suffix`.
//!
//! The reference uses Python `re` patterns with look-behind, `\b`, `\d` and
//! `re.IGNORECASE`. Rather than translating them into a regex engine with
//! different Unicode rules, each pattern is a small hand-written matcher that
//! reproduces what Python's backtracking engine returns (leftmost start, then
//! the first success in backtracking order), with Python's character classes:
//!
//! * `\d` is Unicode general category `Nd`; a word character (for `\b`) is
//!   `L*`/`N*` or `_` (tables in [`crate::python::unicode`], Unicode 15.0 like Python 3.12);
//! * under `IGNORECASE`, an ASCII letter also matches its case partner and
//!   Python's extra case-equivalents: `i` ~ `İ` `ı`, `k` ~ `K` (Kelvin),
//!   `s` ~ `ſ`; unflagged classes such as the date patterns' `[a-zA-Z0-9]`
//!   stay plain ASCII.
//!
//! Only the matched spans matter here (the reference's size/quant/variant
//! values never reach the base name), so the matchers return positions only.
//! Every function works on `char`s (Python indexes by code point). The base
//! name parser keeps its buffers in a reusable [`NameScratch`] (the memo of
//! base names parses thousands of names with one), and keeps, per pattern
//! start class, a bit mask of the positions that can start it, so a leftmost
//! search visits only those: `parsed_base_name_into` costs about 2,500
//! instructions for a typical 30-character name. [`quant_stripped`] looks at
//! the last 7 characters only and borrows its answer from the input.

use crate::python::unicode;

use std::borrow::Cow;

/// The legacy backend prefix of aphrodite duplicates (`aphrodite/<canonical>`).
pub const APHRODITE_PREFIX: &str = "aphrodite/";
/// The legacy backend prefix of koboldcpp duplicates (`koboldcpp/<name without org>`).
pub const KOBOLDCPP_PREFIX: &str = "koboldcpp/";

/// The backend prefixes in the reference's order (`TEXT_LEGACY_BACKEND_PREFIXES`).
const BACKEND_PREFIXES: [&str; 2] = [APHRODITE_PREFIX, KOBOLDCPP_PREFIX];

/// `strip_backend_prefix`: `name` without a leading `aphrodite/` or
/// `koboldcpp/` (case-sensitive, at most one, aphrodite checked first).
pub fn strip_backend_prefix(name: &str) -> &str {
    BACKEND_PREFIXES.iter().find_map(|prefix| name.strip_prefix(prefix)).unwrap_or(name)
}

/// Everything after the first `/` (the org or author part), or `name` itself
/// when it has no `/`, as `get_base_model_name` does after stripping the
/// backend prefix (`a/b/c` → `b/c`).
pub fn strip_org_prefix(name: &str) -> &str {
    name.split_once('/').map_or(name, |(_, rest)| rest)
}

/// `get_base_model_name`: the grouping key of a text model name.
///
/// Strips a backend prefix, then an org prefix, then takes the base name
/// the reference's parser finds in the rest (see [`parsed_base_name`]).
pub fn base_model_name(name: &str) -> String {
    parsed_base_name(strip_org_prefix(strip_backend_prefix(name)))
}

/// `parse_text_model_name(name).base_name`: `name` with its leading dotted
/// version, then its first size, version, quantisation, variant and date
/// token removed (each kind: the first of its patterns that matches, at its
/// leftmost match), runs of a separator (`-`, `_`, space, `.`) collapsed and
/// separators trimmed from both ends. When nothing is left, `name` itself.
/// No prefix is stripped here.
pub fn parsed_base_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    parsed_base_name_into(name, &mut NameScratch::default(), &mut out);
    out
}

/// Reusable buffers for [`parsed_base_name_into`]: a caller parsing many
/// names (the memo of base names) allocates them once.
#[derive(Debug, Default)]
pub struct NameScratch {
    parsing: Parsing,
}

/// [`parsed_base_name`], appended to `out`, with `scratch`'s buffers.
pub fn parsed_base_name_into(name: &str, scratch: &mut NameScratch, out: &mut String) {
    let text = &mut scratch.parsing;
    text.reset(name);
    if let Some(end) = leading_version_end(&text.chars) {
        text.remove(0, end);
    }
    for group in [SIZES, VERSIONS, QUANTS, VARIANTS, DATES] {
        text.remove_first_match(group);
    }
    if !push_collapsed_and_trimmed(&text.chars, out) {
        out.push_str(name);
    }
}

/// `get_model_name_variants`: the names the Horde may report a model under —
/// the name itself, `aphrodite/<name>` and `koboldcpp/<name without org>`,
/// in that order, without duplicates.
///
/// The koboldcpp form equals the name exactly when the name starts with
/// `koboldcpp/`; it never equals the aphrodite form.
pub fn name_variants(name: &str) -> Vec<String> {
    let mut variants = Vec::with_capacity(3);
    variants.push(name.to_string());
    variants.push([APHRODITE_PREFIX, name].concat());
    if !name.starts_with(KOBOLDCPP_PREFIX) {
        variants.push([KOBOLDCPP_PREFIX, strip_org_prefix(name)].concat());
    }
    variants
}

/// `_strip_quantization_suffix`: removes a trailing `-Q4_K_M`, `_Q8_0`,
/// `-Q4`, `-GGUF`, `-fp16`, ... (case-insensitive; the size stays).
///
/// Like the reference, the five suffix patterns are applied one after the
/// other, each to the previous result, so `x-Q4-GGUF` → `x-Q4` but
/// `x-GGUF-Q4` → `x`. Python's `$` also matches before a final `\n`, which
/// is kept.
pub fn strip_quant_suffix(name: &str) -> String {
    quant_stripped(name).into_owned()
}

/// [`strip_quant_suffix`], borrowed from `name` (the result is a prefix of
/// it, except when a final `\n` is kept after a removed suffix).
///
/// Every pattern is anchored at the end and spans at most 7 characters (a
/// separator and `Q4_K_M`), so each is matched against a window of the last
/// 7 characters only: no buffer of the whole name.
pub fn quant_stripped(name: &str) -> Cow<'_, str> {
    const WINDOW: usize = 7;
    // The text is `name[..cut]`, followed by a `\n` when `newline_kept`.
    let mut cut = name.len();
    let mut newline_kept = false;
    // The last characters of `name[..window_end]` and their byte offsets:
    // `window[first..]`, built again only when the text changed.
    let mut window = ['\0'; WINDOW];
    let mut offsets = [0; WINDOW];
    let mut first = WINDOW;
    let mut window_end = None;
    for suffix in [
        quant_k_suffix as SuffixMatcher,
        quant_legacy_suffix,
        quant_bare_suffix,
        quant_format_suffix,
        quant_precision_suffix,
    ] {
        // `$`: the end, or just before a final newline.
        let before_newline = !newline_kept && name[..cut].ends_with('\n');
        let end = if before_newline { cut - 1 } else { cut };
        let region = &name[..end];
        // Fast path: every suffix pattern ends in one of these characters.
        if !region.chars().next_back().is_some_and(|c| in_class_ignorecase(c, "ksmlhfq012345678")) {
            continue;
        }
        if window_end != Some(end) {
            window_end = Some(end);
            first = WINDOW;
            for (offset, c) in region.char_indices().rev().take(WINDOW) {
                first -= 1;
                window[first] = c;
                offsets[first] = offset;
            }
        }
        if let Some(start) = suffix(&window[first..]) {
            cut = offsets[first + start];
            newline_kept |= before_newline;
        }
    }
    if !newline_kept {
        Cow::Borrowed(&name[..cut])
    } else if name[cut..].starts_with('\n') {
        Cow::Borrowed(&name[..=cut])
    } else {
        Cow::Owned(format!("{}\n", &name[..cut]))
    }
}

// ---------------------------------------------------------------------------
// Character classes, with Python's semantics.

/// Python `\d`: a decimal digit of any script (general category `Nd`).
fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        unicode::in_ranges(unicode::NON_ASCII_DIGIT, c)
    }
}

/// A Python word character (the `\b` definition): a letter or number of any
/// script, or `_`.
fn is_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '_'
    } else {
        unicode::in_ranges(unicode::NON_ASCII_WORD, c)
    }
}

/// `c` case-folded the way Python's `re.IGNORECASE` compares it with ASCII
/// pattern characters: ASCII is lower-cased, and the four non-ASCII letters
/// Python treats as equal to an ASCII one (`İ` `ı` ~ `i`, `ſ` ~ `s`,
/// Kelvin `K` ~ `k`) become that letter. Any other character matches no
/// ASCII pattern character.
fn fold_ignorecase(c: char) -> Option<char> {
    match c {
        '\u{130}' | '\u{131}' => Some('i'),
        '\u{17F}' => Some('s'),
        '\u{212A}' => Some('k'),
        c if c.is_ascii() => Some(c.to_ascii_lowercase()),
        _ => None,
    }
}

/// `c` matches the pattern character `lower` (a lower-case ASCII letter, a
/// digit or punctuation) under `re.IGNORECASE`.
fn eq_ignorecase(c: char, lower: char) -> bool {
    fold_ignorecase(c) == Some(lower)
}

/// `[a-zA-Z]` under `re.IGNORECASE`.
fn is_letter_ignorecase(c: char) -> bool {
    fold_ignorecase(c).is_some_and(|l| l.is_ascii_lowercase())
}

/// `[a-zA-Z0-9]` under `re.IGNORECASE` (the digits are ASCII only).
fn is_alnum_ignorecase(c: char) -> bool {
    c.is_ascii_digit() || is_letter_ignorecase(c)
}

/// `c` is one of `class` (lower-case ASCII letters) under `re.IGNORECASE`.
fn in_class_ignorecase(c: char, class: &str) -> bool {
    // The fold is ASCII, so a byte search of the (ASCII) class is exact.
    fold_ignorecase(c).is_some_and(|l| class.bytes().any(|b| char::from(b) == l))
}

// ---------------------------------------------------------------------------
// Matching machinery.

/// One pattern anchored at a start position: the end of the match Python's
/// engine would return when starting there, if any.
type Matcher = fn(&[char], usize) -> Option<usize>;

/// Which patterns' matches a character can start, one bit per kind of
/// first character (a character may have several). Computed once per
/// character, it spares the matchers nearly every start position.
type StartClasses = u8;
/// `\d`: sizes and dates.
const START_DIGIT: StartClasses = 1;
/// `[vV]`: versions.
const START_V: StartClasses = 1 << 1;
/// `q` (ignoring case): the `Q...` quantisations.
const START_Q: StartClasses = 1 << 2;
/// `g`, `a`, `e`: GGUF, GGML, GPTQ, AWQ, EXL2.
const START_FORMAT: StartClasses = 1 << 3;
/// `f`, `i`: fp16, fp32, int8, int4.
const START_PRECISION: StartClasses = 1 << 4;
/// `i`, `c`, `b`, `u`, `f`: Instruct, Chat, Code, Base, Uncensored, Finetune, FT.
const START_KIND: StartClasses = 1 << 5;
/// `t`, `r`: Thinking, Reasoning.
const START_REASONING: StartClasses = 1 << 6;
/// `t`, `p`, `l`: turbo, preview, latest.
const START_RELEASE: StartClasses = 1 << 7;

/// The start classes of `c` (letters compared as `re.IGNORECASE` does).
fn start_classes(c: char) -> StartClasses {
    if c.is_ascii() {
        ASCII_START_CLASSES[c as usize]
    } else if is_digit(c) {
        START_DIGIT
    } else {
        // `İ` `ı` `ſ` `K` count as their ASCII letter; nothing else can start a match.
        fold_ignorecase(c).map_or(0, |l| letter_start_classes(l as u8))
    }
}

/// [`start_classes`] of every ASCII character, computed at compile time.
const ASCII_START_CLASSES: [StartClasses; 128] = {
    let mut table = [0; 128];
    let mut c = 0;
    while c < 128 {
        let byte = c as u8;
        table[c] =
            if byte.is_ascii_digit() { START_DIGIT } else { letter_start_classes(byte.to_ascii_lowercase()) };
        c += 1;
    }
    table
};

/// The start classes of a lower-case ASCII letter (0 for anything else).
const fn letter_start_classes(l: u8) -> StartClasses {
    const fn bit(yes: bool, class: StartClasses) -> StartClasses {
        if yes {
            class
        } else {
            0
        }
    }
    bit(l == b'v', START_V)
        | bit(l == b'q', START_Q)
        | bit(matches!(l, b'g' | b'a' | b'e'), START_FORMAT)
        | bit(matches!(l, b'f' | b'i'), START_PRECISION)
        | bit(matches!(l, b'i' | b'c' | b'b' | b'u' | b'f'), START_KIND)
        | bit(matches!(l, b't' | b'r'), START_REASONING)
        | bit(matches!(l, b't' | b'p' | b'l'), START_RELEASE)
}

/// One of the parser's patterns: the class its first character is in, and
/// its matcher.
struct Pattern {
    first: StartClasses,
    matcher: Matcher,
}

/// `SIZE_PATTERNS`.
const SIZES: &[Pattern] = &[
    Pattern { first: START_DIGIT, matcher: size_decimal },
    Pattern { first: START_DIGIT, matcher: size_mixture },
];
/// `VERSION_PATTERNS`.
const VERSIONS: &[Pattern] = &[
    Pattern { first: START_V, matcher: version_dotted },
    Pattern { first: START_V, matcher: version_plain },
];
/// `QUANT_PATTERNS`.
const QUANTS: &[Pattern] = &[
    Pattern { first: START_Q, matcher: quant_k },
    Pattern { first: START_Q, matcher: quant_legacy },
    Pattern { first: START_Q, matcher: quant_bare },
    Pattern { first: START_FORMAT, matcher: quant_format },
    Pattern { first: START_PRECISION, matcher: quant_precision },
];
/// `VARIANT_PATTERNS`.
const VARIANTS: &[Pattern] = &[
    Pattern { first: START_KIND, matcher: variant_kind },
    Pattern { first: START_REASONING, matcher: variant_reasoning },
    Pattern { first: START_RELEASE, matcher: variant_release },
];
/// `DATE_PATTERNS`.
const DATES: &[Pattern] = &[
    Pattern { first: START_DIGIT, matcher: date_month_year },
    Pattern { first: START_DIGIT, matcher: date_year_month },
    Pattern { first: START_DIGIT, matcher: date_four_digits },
];

/// A name being parsed: its characters (Python indexes by code point, so the
/// matchers do too).
///
/// For names of up to 64 characters (nearly all real ones), `masks` holds, per
/// start class, the positions whose character can start it, so a search
/// visits only those positions (a removal shifts the masks). Longer names
/// test every position's start classes instead.
#[derive(Debug, Default)]
struct Parsing {
    chars: Vec<char>,
    /// Per start class bit: a bit per position (when `masked`).
    masks: [u64; 8],
    /// The name had at most 64 characters: `masks` are kept.
    masked: bool,
}

impl Parsing {
    fn reset(&mut self, name: &str) {
        self.chars.clear();
        self.chars.extend(name.chars());
        self.masks = [0; 8];
        self.masked = self.chars.len() <= 64;
        if self.masked {
            for (pos, &c) in self.chars.iter().enumerate() {
                let mut bits = start_classes(c);
                while bits != 0 {
                    self.masks[bits.trailing_zeros() as usize] |= 1 << pos;
                    bits &= bits - 1;
                }
            }
        }
    }

    /// `re.search`: the leftmost match of `pattern`, as `(start, end)`. (No
    /// pattern matches the empty string, so the end position is no start.)
    fn search(&self, pattern: &Pattern) -> Option<(usize, usize)> {
        let matcher = |start: usize| (pattern.matcher)(&self.chars, start).map(|end| (start, end));
        if self.masked {
            let mut mask = self.masks[pattern.first.trailing_zeros() as usize];
            while mask != 0 {
                let start = mask.trailing_zeros() as usize;
                if let Some(found) = matcher(start) {
                    return Some(found);
                }
                mask &= mask - 1;
            }
            None
        } else {
            (0..self.chars.len())
                .filter(|&start| start_classes(self.chars[start]) & pattern.first != 0)
                .find_map(matcher)
        }
    }

    /// The reference's "for pattern in PATTERNS: if re.search(...): remove;
    /// break".
    fn remove_first_match(&mut self, group: &[Pattern]) {
        if let Some((start, end)) = group.iter().find_map(|p| self.search(p)) {
            self.remove(start, end);
        }
    }

    /// Remove the characters `start..end`.
    fn remove(&mut self, start: usize, end: usize) {
        if self.masked {
            // Keep the bits below the range, shift those above it down.
            let below = (1u64 << start) - 1;
            for mask in &mut self.masks {
                let above = if end >= 64 { 0 } else { *mask >> end };
                *mask = (*mask & below) | (above << start);
            }
        }
        let len = self.chars.len();
        self.chars.copy_within(end..len, start);
        self.chars.truncate(len - (end - start));
    }
}

/// The end of the (possibly empty) run of `\d` starting at `from`.
fn digits_end(text: &[char], from: usize) -> usize {
    let run = text.get(from..).unwrap_or_default();
    from + run.iter().take_while(|&&c| is_digit(c)).count()
}

/// The end of `literal` (lower-case ASCII) at `start` under `re.IGNORECASE`.
fn literal_ignorecase(text: &[char], start: usize, literal: &str) -> Option<usize> {
    let candidate = text.get(start..start + literal.len())?;
    // `literal` is ASCII: one byte per character.
    candidate
        .iter()
        .zip(literal.bytes())
        .all(|(&c, lower)| eq_ignorecase(c, char::from(lower)))
        .then_some(start + literal.len())
}

/// The character at `pos` satisfies `pred` (false past the end).
fn char_is(text: &[char], pos: usize, pred: impl Fn(char) -> bool) -> bool {
    text.get(pos).is_some_and(|&c| pred(c))
}

/// `\b` before a match that starts with a word character.
fn word_boundary_before(text: &[char], start: usize) -> bool {
    start == 0 || !is_word(text[start - 1])
}

/// `\b` after a match that ends with a word character.
fn word_boundary_after(text: &[char], end: usize) -> bool {
    !char_is(text, end, is_word)
}

/// `\b(alt1|alt2|...)\b` under `re.IGNORECASE`: the first alternative that
/// matches at `start` and is followed by a boundary.
fn word_alternatives(text: &[char], start: usize, alternatives: &[&str]) -> Option<usize> {
    if !word_boundary_before(text, start) {
        return None;
    }
    // Only the alternatives with the right first letter can match.
    let first = fold_ignorecase(*text.get(start)?)?;
    alternatives
        .iter()
        .filter(|alt| alt.as_bytes().first().map(|&b| char::from(b)) == Some(first))
        .find_map(|alt| literal_ignorecase(text, start, alt).filter(|&end| word_boundary_after(text, end)))
}

/// `Q[2-8]` under `re.IGNORECASE`: the end of it at `start`.
fn quant_level(text: &[char], start: usize) -> Option<usize> {
    let is_q = char_is(text, start, |c| eq_ignorecase(c, 'q'));
    let is_level = char_is(text, start + 1, |c| ('2'..='8').contains(&c));
    (is_q && is_level).then_some(start + 2)
}

// ---------------------------------------------------------------------------
// The parser's patterns (`text_model_parser`), one matcher each.

/// `^(\d+\.\d+(?:\.\d+)?)[_\-]` (no flags): the end of a leading dotted
/// version and its separator (`4.2.0-Broken-Tutu` → 6).
fn leading_version_end(text: &[char]) -> Option<usize> {
    let major_end = digits_end(text, 0);
    if major_end == 0 || !char_is(text, major_end, |c| c == '.') {
        return None;
    }
    let minor_end = digits_end(text, major_end + 1);
    if minor_end == major_end + 1 {
        return None;
    }
    let is_separator = |c| c == '_' || c == '-';
    if char_is(text, minor_end, |c| c == '.') {
        let patch_end = digits_end(text, minor_end + 1);
        if patch_end > minor_end + 1 && char_is(text, patch_end, is_separator) {
            return Some(patch_end + 1);
        }
    }
    // Without the patch part, the separator must follow the minor digits.
    char_is(text, minor_end, is_separator).then_some(minor_end + 1)
}

/// `(?<![a-zA-Z])(\d+\.?\d*[BMK]\d*)(?![a-zA-Z])`, `re.IGNORECASE`:
/// `7B`, `1.5B`, `7B1`.
fn size_decimal(text: &[char], start: usize) -> Option<usize> {
    if start > 0 && is_letter_ignorecase(text[start - 1]) {
        return None;
    }
    let integer_end = digits_end(text, start);
    if integer_end == start {
        return None;
    }
    // Greedy `\.?\d*`; backing off any of it only puts a digit or a dot where
    // `[BMK]` must match, so the unit follows the longest run or nothing does.
    let unit = if char_is(text, integer_end, |c| c == '.') {
        digits_end(text, integer_end + 1)
    } else {
        integer_end
    };
    if !char_is(text, unit, |c| in_class_ignorecase(c, "bmk")) {
        return None;
    }
    let tail_end = digits_end(text, unit + 1);
    if !char_is(text, tail_end, is_letter_ignorecase) {
        Some(tail_end)
    } else if tail_end > unit + 1 {
        // Giving back one trailing digit puts a digit (not a letter) after it.
        Some(tail_end - 1)
    } else {
        None
    }
}

/// `(?<![a-zA-Z])(\d+x\d+[BMK])(?![a-zA-Z])`, `re.IGNORECASE`: `8x7B`.
fn size_mixture(text: &[char], start: usize) -> Option<usize> {
    if start > 0 && is_letter_ignorecase(text[start - 1]) {
        return None;
    }
    let experts_end = digits_end(text, start);
    if experts_end == start || !char_is(text, experts_end, |c| eq_ignorecase(c, 'x')) {
        return None;
    }
    let size_end = digits_end(text, experts_end + 1);
    if size_end == experts_end + 1 || !char_is(text, size_end, |c| in_class_ignorecase(c, "bmk")) {
        return None;
    }
    let end = size_end + 1;
    (!char_is(text, end, is_letter_ignorecase)).then_some(end)
}

/// `(?<![a-zA-Z0-9])([vV]\d+(?:\.\d+)+)(?![a-zA-Z0-9])`, `re.IGNORECASE`:
/// `v0.1`, `V2.1.3`.
fn version_dotted(text: &[char], start: usize) -> Option<usize> {
    if start > 0 && is_alnum_ignorecase(text[start - 1]) {
        return None;
    }
    if !char_is(text, start, |c| c == 'v' || c == 'V') {
        return None;
    }
    let major_end = digits_end(text, start + 1);
    if major_end == start + 1 {
        return None;
    }
    // Greedy `(?:\.\d+)+`: take every `.digits` part; remember the last two.
    let mut previous_part_end = None;
    let mut last_part: Option<(usize, usize)> = None;
    let mut pos = major_end;
    while char_is(text, pos, |c| c == '.') {
        let part_end = digits_end(text, pos + 1);
        if part_end == pos + 1 {
            break;
        }
        previous_part_end = last_part.map(|(_, end)| end);
        last_part = Some((pos + 1, part_end));
        pos = part_end;
    }
    let (last_start, last_end) = last_part?;
    // Backtracking order: the last part's digits from longest to one, then
    // the parts before it (which end at a '.', so the look-ahead holds).
    let not_alnum_after = |end: usize| !char_is(text, end, is_alnum_ignorecase);
    (last_start + 1..=last_end)
        .rev()
        .find(|&end| not_alnum_after(end))
        .or(previous_part_end.filter(|&end| not_alnum_after(end)))
}

/// `(?<![a-zA-Z0-9])([vV]\d+)(?![a-zA-Z0-9.])`, `re.IGNORECASE`: `v2`.
fn version_plain(text: &[char], start: usize) -> Option<usize> {
    if start > 0 && is_alnum_ignorecase(text[start - 1]) {
        return None;
    }
    if !char_is(text, start, |c| c == 'v' || c == 'V') {
        return None;
    }
    let digits_stop = digits_end(text, start + 1);
    // `\d+` gives digits back one by one until the look-ahead holds (a
    // non-ASCII digit is not in `[0-9]`).
    (start + 2..=digits_stop).rev().find(|&end| !char_is(text, end, |c| c == '.' || is_alnum_ignorecase(c)))
}

/// `\b(Q[2-8]_K(?:_[SMLH])?)\b`, `re.IGNORECASE`: `Q4_K_M`, `Q6_K`.
fn quant_k(text: &[char], start: usize) -> Option<usize> {
    if !word_boundary_before(text, start) {
        return None;
    }
    let level_end = quant_level(text, start)?;
    let k_end = literal_ignorecase(text, level_end, "_k")?;
    if char_is(text, k_end, |c| c == '_')
        && char_is(text, k_end + 1, |c| in_class_ignorecase(c, "smlh"))
        && word_boundary_after(text, k_end + 2)
    {
        return Some(k_end + 2);
    }
    word_boundary_after(text, k_end).then_some(k_end)
}

/// `\b(Q[2-8]_[01])\b`, `re.IGNORECASE`: `Q4_0`, `Q5_1`.
fn quant_legacy(text: &[char], start: usize) -> Option<usize> {
    if !word_boundary_before(text, start) {
        return None;
    }
    let level_end = quant_level(text, start)?;
    let ok = char_is(text, level_end, |c| c == '_')
        && char_is(text, level_end + 1, |c| c == '0' || c == '1')
        && word_boundary_after(text, level_end + 2);
    ok.then_some(level_end + 2)
}

/// `\b(Q[2-8])\b`, `re.IGNORECASE`: `Q4`.
fn quant_bare(text: &[char], start: usize) -> Option<usize> {
    if !word_boundary_before(text, start) {
        return None;
    }
    quant_level(text, start).filter(|&end| word_boundary_after(text, end))
}

/// `\b(GGUF|GGML|GPTQ|AWQ|EXL2)\b`, `re.IGNORECASE`.
fn quant_format(text: &[char], start: usize) -> Option<usize> {
    word_alternatives(text, start, &QUANT_FORMATS)
}

/// `\b(fp16|fp32|int8|int4)\b`, `re.IGNORECASE`.
fn quant_precision(text: &[char], start: usize) -> Option<usize> {
    word_alternatives(text, start, &QUANT_PRECISIONS)
}

/// The quantisation formats of `QUANT_PATTERNS`, lower case.
const QUANT_FORMATS: [&str; 5] = ["gguf", "ggml", "gptq", "awq", "exl2"];
/// The precisions of `QUANT_PATTERNS`, lower case.
const QUANT_PRECISIONS: [&str; 4] = ["fp16", "fp32", "int8", "int4"];

/// `\b(Instruct|Chat|Code|Base|Uncensored|Finetune|FT)\b`, `re.IGNORECASE`.
fn variant_kind(text: &[char], start: usize) -> Option<usize> {
    word_alternatives(text, start, &["instruct", "chat", "code", "base", "uncensored", "finetune", "ft"])
}

/// `\b(Thinking|Reasoning)\b`, `re.IGNORECASE`.
fn variant_reasoning(text: &[char], start: usize) -> Option<usize> {
    word_alternatives(text, start, &["thinking", "reasoning"])
}

/// `\b(turbo|preview|latest)\b`, `re.IGNORECASE`.
fn variant_release(text: &[char], start: usize) -> Option<usize> {
    word_alternatives(text, start, &["turbo", "preview", "latest"])
}

/// `(?<![a-zA-Z0-9])` + `\d{before}-\d{after}` (or `\d{before}` alone when
/// `after` is 0) + `(?![a-zA-Z0-9])`, no flags: the date patterns.
fn date(text: &[char], start: usize, before: usize, after: usize) -> Option<usize> {
    let ascii_alnum = |c: char| c.is_ascii_alphanumeric();
    if start > 0 && ascii_alnum(text[start - 1]) {
        return None;
    }
    let digits = |from: usize, count: usize| (from..from + count).all(|i| char_is(text, i, is_digit));
    if !digits(start, before) {
        return None;
    }
    let mut end = start + before;
    if after > 0 {
        if !char_is(text, end, |c| c == '-') || !digits(end + 1, after) {
            return None;
        }
        end += 1 + after;
    }
    (!char_is(text, end, ascii_alnum)).then_some(end)
}

/// `(?<![a-zA-Z0-9])(\d{2}-\d{4})(?![a-zA-Z0-9])`: `08-2024`.
fn date_month_year(text: &[char], start: usize) -> Option<usize> {
    date(text, start, 2, 4)
}

/// `(?<![a-zA-Z0-9])(\d{4}-\d{2})(?![a-zA-Z0-9])`: `2024-08`.
fn date_year_month(text: &[char], start: usize) -> Option<usize> {
    date(text, start, 4, 2)
}

/// `(?<![a-zA-Z0-9])(\d{4})(?![a-zA-Z0-9])`: `2407`.
fn date_four_digits(text: &[char], start: usize) -> Option<usize> {
    date(text, start, 4, 0)
}

/// The reference's clean-up: every run of one separator (`-`, `_`, space,
/// `.`) becomes one, then separators are stripped from both ends; appended
/// to `out`. False when nothing is left.
/// (Trimming first gives the same result: collapsing only touches runs.)
fn push_collapsed_and_trimmed(text: &[char], out: &mut String) -> bool {
    let is_separator = |c: char| matches!(c, '-' | '_' | ' ' | '.');
    let (Some(first), Some(last)) =
        (text.iter().position(|&c| !is_separator(c)), text.iter().rposition(|&c| !is_separator(c)))
    else {
        return false;
    };
    let mut previous = None;
    for &c in &text[first..=last] {
        if !(is_separator(c) && previous == Some(c)) {
            out.push(c);
        }
        previous = Some(c);
    }
    true
}

// ---------------------------------------------------------------------------
// `_strip_quantization_suffix`'s patterns, each anchored at the end.

/// One `[-_](TOKEN)$` pattern: where its match (the `-` or `_` before
/// TOKEN) starts, if `text` ends with it.
type SuffixMatcher = fn(&[char]) -> Option<usize>;

/// Where `[-_]` + the `token_len` trailing characters start, if `matches`
/// accepts the token (given its start).
fn suffix_of_len(text: &[char], token_len: usize, matches: impl Fn(usize) -> bool) -> Option<usize> {
    let start = text.len().checked_sub(token_len)?;
    let separated = start > 0 && matches!(text[start - 1], '-' | '_');
    (separated && matches(start)).then(|| start - 1)
}

/// `[-_](Q[2-8]_K(?:_[SMLH])?)$`: the longer form starts further left, so
/// Python's leftmost search tries it first.
fn quant_k_suffix(text: &[char]) -> Option<usize> {
    let with_size = |start| {
        quant_level(text, start)
            .and_then(|end| literal_ignorecase(text, end, "_k_"))
            .is_some_and(|end| char_is(text, end, |c| in_class_ignorecase(c, "smlh")))
    };
    let without_size =
        |start| quant_level(text, start).and_then(|end| literal_ignorecase(text, end, "_k")).is_some();
    suffix_of_len(text, 6, with_size).or_else(|| suffix_of_len(text, 4, without_size))
}

/// `[-_](Q[2-8]_[01])$`.
fn quant_legacy_suffix(text: &[char]) -> Option<usize> {
    suffix_of_len(text, 4, |start| {
        quant_level(text, start).is_some() && text[start + 2] == '_' && matches!(text[start + 3], '0' | '1')
    })
}

/// `[-_](Q[2-8])$`.
fn quant_bare_suffix(text: &[char]) -> Option<usize> {
    suffix_of_len(text, 2, |start| quant_level(text, start).is_some())
}

/// `[-_](GGUF|GGML|GPTQ|AWQ|EXL2)$`.
fn quant_format_suffix(text: &[char]) -> Option<usize> {
    suffix_alternatives(text, &QUANT_FORMATS)
}

/// `[-_](fp16|fp32|int8|int4)$`.
fn quant_precision_suffix(text: &[char]) -> Option<usize> {
    suffix_alternatives(text, &QUANT_PRECISIONS)
}

/// The leftmost start among `[-_](alt)$` for the alternatives.
fn suffix_alternatives(text: &[char], alternatives: &[&str]) -> Option<usize> {
    alternatives
        .iter()
        .filter_map(|alt| {
            // `alt` is ASCII: its length in bytes is its length in chars.
            suffix_of_len(text, alt.len(), |start| literal_ignorecase(text, start, alt).is_some())
        })
        .min()
}

#[cfg(test)]
mod tests {
    //! Expected values are the reference's answers (Python 3.12,
    //! horde-model-reference 8.6.2) for the same inputs.
    use super::*;

    #[test]
    fn base_name_of_common_names() {
        assert_eq!(base_model_name("Llama-3-8B-Instruct-Q4_K_M"), "Llama-3");
        assert_eq!(base_model_name("Mistral-7B-v0.1"), "Mistral");
        assert_eq!(base_model_name("Qwen2.5-7B-Instruct"), "Qwen2.5");
        assert_eq!(base_model_name("Mistral-Nemo-Instruct-2407"), "Mistral-Nemo");
        assert_eq!(base_model_name("c4ai-command-r-08-2024"), "c4ai-command-r");
        assert_eq!(base_model_name("gemma-2-9b-it"), "gemma-2-it");
        assert_eq!(base_model_name("Model 7B  Chat"), "Model");
        assert_eq!(base_model_name("Model-Q5_k_s"), "Model");
        assert_eq!(base_model_name("Model-v0.1-7B"), "Model");
    }

    #[test]
    fn base_name_strips_backend_then_org() {
        assert_eq!(
            base_model_name("koboldcpp/sophosympatheia/StrawberryLemonade-L3-70B-v1.2"),
            "StrawberryLemonade-L3"
        );
        assert_eq!(base_model_name("aphrodite/ReadyArt/Broken-Tutu-24B"), "Broken-Tutu");
        // One backend prefix only, then the first path part is the org.
        assert_eq!(base_model_name("koboldcpp/aphrodite/x-7B"), "x");
        assert_eq!(base_model_name("a/b/c"), "b/c");
        // The prefix check is case-sensitive: `KoboldCPP` is an org here.
        assert_eq!(base_model_name("KoboldCPP/x-7B"), "x");
    }

    #[test]
    fn base_name_falls_back_to_the_unprefixed_name_when_nothing_is_left() {
        assert_eq!(base_model_name(""), "");
        assert_eq!(base_model_name("koboldcpp/"), "");
        assert_eq!(base_model_name("---"), "---");
        assert_eq!(base_model_name("7B"), "7B");
        assert_eq!(base_model_name("Org/7B-Q4"), "7B-Q4");
        assert_eq!(base_model_name("GGUF"), "GGUF");
    }

    #[test]
    fn base_name_follows_the_regex_quirks() {
        // Leading dotted version: two or three parts, then `-` or `_`.
        assert_eq!(base_model_name("4.2.0-Broken-Tutu-24B"), "Broken-Tutu");
        assert_eq!(base_model_name("1.2-Model"), "Model");
        assert_eq!(base_model_name("1.2.3.4-Model"), "1.2.3.4-Model");
        // A size may start inside a digit run, after a letter it may not.
        assert_eq!(base_model_name("Mixtral-8x22B-v0.1"), "Mixtral-8x2");
        assert_eq!(base_model_name("8x7B"), "8x7B");
        // `\d*` after the unit gives back a digit to satisfy the look-ahead.
        assert_eq!(base_model_name("x-7B1a"), "x-1a");
        assert_eq!(base_model_name("x-7B12a"), "x-2a");
        // Versions: backtracking into the dotted parts.
        assert_eq!(base_model_name("Model-v1.2.3x"), "Model-.3x");
        assert_eq!(base_model_name("Model-v2"), "Model");
        assert_eq!(base_model_name("Model-v2."), "Model-v2");
        // `\b` needs a non-word character around quantisation tokens.
        assert_eq!(base_model_name("Model_Q4_K_M"), "Model_Q4_K_M");
        assert_eq!(base_model_name("Model-Q4_K_Mx"), "Model-Q4_K_Mx");
        assert_eq!(base_model_name("Model-Q4_K_M-7B"), "Model");
        // Four digits are a date only when no ASCII letter or digit touches them.
        assert_eq!(base_model_name("Model-12345"), "Model-12345");
        assert_eq!(base_model_name("Model-0414-Chat"), "Model");
        // Separators are kept in the middle, including a newline.
        assert_eq!(base_model_name("Model-7B-Q4\n"), "Model-\n");
    }

    #[test]
    fn base_name_uses_python_unicode_rules() {
        // `re.IGNORECASE`: `ı` ~ `i`, `İ` ~ `i`, `ſ` ~ `s`.
        assert_eq!(base_model_name("Model-ınstruct"), "Model");
        assert_eq!(base_model_name("Model-İnt8"), "Model");
        assert_eq!(base_model_name("Model-Q4_K_ſ"), "Model");
        // `\d` is any decimal digit: Arabic-Indic digits make a date.
        assert_eq!(base_model_name("Model-١٢٣٤"), "Model");
        assert_eq!(base_model_name("Model-v1.2٣x"), "Model-٣x");
        // `²` is a word character but not a digit; a combining mark is neither.
        assert_eq!(base_model_name("Model ²B"), "Model ²B");
        assert_eq!(base_model_name("Model-7B\u{301}"), "Model-\u{301}");
        assert_eq!(base_model_name("Modél-7B"), "Modél");
    }

    #[test]
    fn variants_add_both_backend_forms_without_duplicates() {
        assert_eq!(
            name_variants("ReadyArt/Broken-Tutu-24B"),
            ["ReadyArt/Broken-Tutu-24B", "aphrodite/ReadyArt/Broken-Tutu-24B", "koboldcpp/Broken-Tutu-24B"]
        );
        assert_eq!(name_variants("a/b/c"), ["a/b/c", "aphrodite/a/b/c", "koboldcpp/b/c"]);
        assert_eq!(name_variants("koboldcpp/"), ["koboldcpp/", "aphrodite/koboldcpp/"]);
        assert_eq!(name_variants("aphrodite/"), ["aphrodite/", "aphrodite/aphrodite/", "koboldcpp/"]);
        assert_eq!(name_variants(""), ["", "aphrodite/", "koboldcpp/"]);
    }

    #[test]
    fn quant_suffix_is_stripped_pattern_by_pattern() {
        assert_eq!(strip_quant_suffix("Llama-3-8B-Instruct-Q4_K_M"), "Llama-3-8B-Instruct");
        assert_eq!(strip_quant_suffix("Lumimaid-v0.2-8B-Q8_0"), "Lumimaid-v0.2-8B");
        assert_eq!(strip_quant_suffix("koboldcpp/Lumimaid-v0.2-8B-Q4_K_M"), "koboldcpp/Lumimaid-v0.2-8B");
        assert_eq!(strip_quant_suffix("Model_Q4_K_M"), "Model");
        assert_eq!(strip_quant_suffix("Model-EXL2"), "Model");
        assert_eq!(strip_quant_suffix("Model-İnt8"), "Model");
        assert_eq!(strip_quant_suffix("Model-Q4_K_ſ"), "Model");
        // Later patterns see the earlier ones' result.
        assert_eq!(strip_quant_suffix("x-GGUF-Q4"), "x");
        assert_eq!(strip_quant_suffix("x-Q4-GGUF"), "x-Q4");
        // `$` matches before a final newline, which stays.
        assert_eq!(strip_quant_suffix("Model-7B-Q4\n"), "Model-7B\n");
        // The separator is part of the match, even at the very start.
        assert_eq!(strip_quant_suffix("-Q4"), "");
        assert_eq!(strip_quant_suffix("GGUF"), "GGUF");
        assert_eq!(strip_quant_suffix("Model-Q4_K_M-7B"), "Model-Q4_K_M-7B");
        assert_eq!(strip_quant_suffix("koboldcpp/"), "koboldcpp/");
        // A newline the text ends with after a removal counts for `$` too.
        assert_eq!(strip_quant_suffix("x-Q4\n-Q4_K_M"), "x\n");
        assert_eq!(strip_quant_suffix("ab-GGUF\n-Q4"), "ab\n");
        assert_eq!(strip_quant_suffix("x-Q4\n\n"), "x-Q4\n\n");
        assert_eq!(strip_quant_suffix("\n-Q4"), "\n");
        assert_eq!(strip_quant_suffix("-Q4\n"), "\n");
        assert_eq!(strip_quant_suffix("Σ-Q4_K_ſ"), "Σ");
        assert_eq!(strip_quant_suffix("x-Q4_K_M-GGUF"), "x-Q4_K_M");
    }

    #[test]
    fn quant_stripped_borrows_when_it_can() {
        assert!(matches!(quant_stripped("Model-Q4_K_M"), Cow::Borrowed("Model")));
        assert!(matches!(quant_stripped("Model-7B-Q4\n"), Cow::Owned(s) if s == "Model-7B\n"));
        assert!(matches!(quant_stripped("Model\n"), Cow::Borrowed("Model\n")));
    }

    #[test]
    fn long_names_parse_like_short_ones() {
        // Over 64 characters the searches scan every position instead of
        // the position masks; the answer is the same.
        let long = format!("{}-Model-7B-Instruct-Q4_K_M", "x".repeat(70));
        assert_eq!(base_model_name(&long), format!("{}-Model", "x".repeat(70)));
        let short = "x-Model-7B-Instruct-Q4_K_M";
        assert_eq!(base_model_name(short), "x-Model");
        let edge = format!("{}-7B", "y".repeat(61));
        assert_eq!(base_model_name(&edge), "y".repeat(61));
        // Longer than 64 until a removal makes it shorter.
        let shrinking = format!("foo{}-v1.2--Q4", "x".repeat(56));
        assert_eq!(base_model_name(&shrinking), format!("foo{}", "x".repeat(56)));
    }

    #[test]
    fn prefix_helpers() {
        assert_eq!(strip_backend_prefix("aphrodite/koboldcpp/x"), "koboldcpp/x");
        assert_eq!(strip_backend_prefix("koboldcpp/Org/x"), "Org/x");
        assert_eq!(strip_backend_prefix("Aphrodite/x"), "Aphrodite/x");
        assert_eq!(strip_org_prefix("Org/x/y"), "x/y");
        assert_eq!(strip_org_prefix("x"), "x");
    }

    #[test]
    fn python_character_classes() {
        assert!(is_digit('٣') && is_digit('7') && !is_digit('²') && !is_digit('Ⅻ'));
        assert!(is_word('²') && is_word('Ⅻ') && is_word('é') && is_word('_'));
        assert!(!is_word('\u{301}') && !is_word('‿') && !is_word('-'));
        assert!(is_letter_ignorecase('\u{212A}') && !is_letter_ignorecase('é'));
    }
}
