//! The Horde data of one category, indexed for the merge.
//!
//! The index answers the reference's lookups (`IndexedHordeModelStatus`,
//! `IndexedHordeModelStats`) in O(1) per model:
//!
//! * status: by lower-cased name (a later duplicate wins); aggregated over a
//!   model's name variants by the largest `count` (first wins on ties);
//! * stats: by lower-cased name; aggregated over the name variants plus every
//!   stats name with the same base model name (of its last `/` segment), or,
//!   with backend variations, over the names equal up to a quantisation suffix,
//!   split per backend. Group sums are precomputed when the index is built, so
//!   no lookup scans the Horde names.
//!
//! Shaped for speed: status and stats names share one table of
//! lower-cased names (one lookup answers both), every table is an
//! [`Interner`] (no `String` per name), each distinct name is lower-cased
//! once, and a model's name variants are never built as strings: the
//! lower-cased model name is written once into a reusable buffer behind the
//! `aphrodite/` prefix, so the name and its aphrodite variant are two slices of
//! it, and the koboldcpp variant is a second buffer.
//!
//! Variants follow `get_model_name_variants`: `name`, `aphrodite/<name>` and,
//! unless `name` starts with `koboldcpp/` (then it is `name` itself),
//! `koboldcpp/<name without org>`. Lower-casing commutes with these
//! concatenations (the only context-dependent lower-casing, a final sigma,
//! never looks across a `/`), so the variants' lower-cased forms are the
//! lower-cased name's variants.

use super::interner::{push_lowercase, Interner};
use super::{HordeModelStats, HordeModelStatus, Period, Usage};
use crate::analytics::names;
use crate::input::horde::{Backend, APHRODITE, KOBOLDCPP};

/// The part after the last `/` (Python's `name.split("/")[-1]`).
fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// A `u32` slot not yet set.
const UNSET: u32 = u32::MAX;

/// `names::base_model_name`, memoised for one cycle: each distinct input is
/// parsed once, however many Horde names, reference names and groupings ask.
#[derive(Debug, Default)]
pub struct BaseNames {
    /// What was parsed (the memo keys, see [`BaseNames::base_of`]).
    pub(super) inputs: Interner,
    /// Per input id: the id of its base name.
    base_of_input: Vec<u32>,
    /// Distinct base names.
    bases: Interner,
    /// Per base id: the id of its lower-cased form in `keys`, or [`UNSET`].
    key_of_base: Vec<u32>,
    /// Distinct lower-cased base names.
    keys: Interner,
    /// The parser's buffers, reused for every parse.
    scratch: names::NameScratch,
}

impl BaseNames {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `get_base_model_name(name)` in `bases`.
    ///
    /// The reference strips a backend prefix and then an author prefix before
    /// parsing; when what remains has no `/`, parsing it directly gives the
    /// same answer, so the memo is keyed by that remainder and e.g.
    /// `koboldcpp/Foo-7B`, `Org/Foo-7B` and `Foo-7B` share one parse.
    fn base_id(&mut self, name: &str) -> u32 {
        let unprefixed = names::strip_org_prefix(names::strip_backend_prefix(name));
        let key = if unprefixed.contains('/') { name } else { unprefixed };
        if let Some(input) = self.inputs.get(key) {
            return self.base_of_input[input as usize];
        }
        let scratch = &mut self.scratch;
        let base = self.bases.intern_with(|out| names::parsed_base_name_into(unprefixed, scratch, out));
        if base as usize == self.key_of_base.len() {
            self.key_of_base.push(UNSET);
        }
        self.inputs.intern(key);
        self.base_of_input.push(base);
        base
    }

    /// Room for about `names` more inputs of `bytes` bytes in all.
    pub fn reserve(&mut self, names: usize, bytes: usize) {
        self.inputs.reserve(names, bytes);
        self.base_of_input.reserve(names);
        self.bases.reserve(names, bytes);
        self.key_of_base.reserve(names);
        self.keys.reserve(names, bytes);
    }

    /// `get_base_model_name(name)`.
    pub fn base_of(&mut self, name: &str) -> String {
        self.base_str(name).to_owned()
    }

    /// `get_base_model_name(name)`, borrowed from the memo.
    pub fn base_str(&mut self, name: &str) -> &str {
        let id = self.base_id(name);
        self.bases.get_str(id)
    }

    /// The stats index's key for a name: the lower-cased base name of its last
    /// `/` segment.
    pub fn base_key(&mut self, name: &str) -> &str {
        let base = self.base_id(last_segment(name)) as usize;
        let mut key = self.key_of_base[base];
        if key == UNSET {
            key = self.keys.intern_lowercase(self.bases.get_str(base as u32));
            self.key_of_base[base] = key;
        }
        self.keys.get_str(key)
    }
}

/// The stats names sharing a base key: `members[start..end]` of the index
/// (their name ids, sorted, distinct) and their precomputed sum.
#[derive(Debug, Clone, Copy, Default)]
struct BaseGroup {
    start: u32,
    end: u32,
    sum: Usage,
}

/// The stats names equal up to a quantisation suffix, of one backend.
#[derive(Debug, Clone, Copy, Default)]
struct SizeGroup {
    /// Sum over every name of the group.
    all: Usage,
    /// Sum over the names with any usage above zero (what the reference
    /// attributes to the backend).
    positive: Usage,
}

/// Reusable buffers for the lower-cased variants of one model name.
#[derive(Debug, Default)]
pub struct LookupScratch {
    /// `aphrodite/` + the lower-cased name.
    aphrodite: String,
    /// `koboldcpp/` + the lower-cased name without its org.
    koboldcpp: String,
}

/// A model's name variants, looked up: per variant (the name, the aphrodite
/// and the koboldcpp form) its id in the index when the Horde knows it.
struct Variants {
    ids: [Option<u32>; 3],
}

/// The Horde status and stats of one category, indexed
/// (`IndexedHordeModelStatus` + `IndexedHordeModelStats`).
#[derive(Debug, Default)]
pub struct HordeIndex<'a> {
    /// Lower-cased status and stats names.
    names: Interner,
    /// Per name id: its status (of names equal up to case, the later).
    status: Vec<Option<&'a HordeModelStatus>>,
    /// Per name id: its usage, each period from its own lower-cased dict (a
    /// later duplicate up to case wins); zeros for a name only in the status.
    usage: Vec<Usage>,
    /// Base keys ([`BaseNames::base_key`]) of the stats names, each with its
    /// group in `base_groups`.
    base_keys: Interner,
    base_groups: Vec<BaseGroup>,
    /// The name ids of every base group, group after group.
    base_members: Vec<u32>,
    /// Quantisation keys of the stats names (lower-cased last segment without
    /// the quantisation suffix), each with its group per [`Backend`]: an
    /// index into `size_groups`, or [`UNSET`] (most keys have one backend, so
    /// the groups are not stored three per key).
    size_keys: Interner,
    size_slots: Vec<[u32; 3]>,
    size_groups: Vec<SizeGroup>,
}

impl<'a> HordeIndex<'a> {
    /// Index `statuses` and `stats`; every distinct stats name's base name is
    /// computed once (through `base_names`).
    pub fn new(
        statuses: &'a [HordeModelStatus],
        stats: &HordeModelStats,
        base_names: &mut BaseNames,
    ) -> Self {
        let capacity = statuses.len() + stats.name_count();
        let bytes = statuses.iter().map(|s| s.name.len()).sum::<usize>() + stats.names.text_len();
        let mut index = HordeIndex {
            names: Interner::with_capacity(capacity, bytes),
            status: Vec::with_capacity(capacity),
            usage: Vec::with_capacity(capacity),
            ..HordeIndex::default()
        };
        for status in statuses {
            let id = index.intern(&status.name);
            index.status[id] = Some(status);
        }

        // Each distinct original-case stats name is lower-cased once,
        // whatever the number of periods it appears in.
        let mut lower_of = vec![UNSET; stats.name_count()];
        for period in Period::ALL {
            for (name_id, count) in stats.period_ids(period) {
                let slot = &mut lower_of[name_id as usize];
                if *slot == UNSET {
                    *slot = index.intern(stats.name(name_id)) as u32;
                }
                let usage = &mut index.usage[*slot as usize];
                match period {
                    Period::Day => usage.day = count,
                    Period::Month => usage.month = count,
                    Period::Total => usage.total = count,
                }
            }
        }

        // Base-name groups: keyed by each distinct original-case name.
        base_names.reserve(stats.name_count(), stats.names.text_len());
        index.base_keys = Interner::with_capacity(stats.name_count(), stats.names.text_len());
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(stats.name_count());
        let mut in_stats = vec![false; index.names.len()];
        for (name_id, &id) in lower_of.iter().enumerate() {
            if id == UNSET {
                continue; // only in a period that was replaced or dropped
            }
            in_stats[id as usize] = true;
            let key = base_names.base_key(stats.name(name_id as u32));
            pairs.push((index.base_keys.intern(key), id));
        }
        pairs.sort_unstable();
        pairs.dedup();
        index.base_groups = vec![BaseGroup::default(); index.base_keys.len()];
        index.base_members = Vec::with_capacity(pairs.len());
        for (group, id) in pairs {
            let entry = &mut index.base_groups[group as usize];
            if entry.start == entry.end {
                entry.start = index.base_members.len() as u32;
            }
            index.base_members.push(id);
            entry.end = index.base_members.len() as u32;
            entry.sum.add(index.usage[id as usize]);
        }

        // Quantisation groups: keyed by each distinct lower-cased stats name.
        let stats_names = in_stats.iter().filter(|&&is| is).count();
        index.size_keys = Interner::with_capacity(stats_names, stats.names.text_len());
        index.size_slots = Vec::with_capacity(stats_names);
        index.size_groups = Vec::with_capacity(stats_names);
        for (id, _) in in_stats.iter().enumerate().filter(|(_, &is)| is) {
            let lower = index.names.get_str(id as u32);
            let usage = index.usage[id];
            let key = index.size_keys.intern(&names::quant_stripped(last_segment(lower))) as usize;
            if key == index.size_slots.len() {
                index.size_slots.push([UNSET; 3]);
            }
            let slot = &mut index.size_slots[key][Backend::of_name(lower) as usize];
            if *slot == UNSET {
                *slot = index.size_groups.len() as u32;
                index.size_groups.push(SizeGroup::default());
            }
            let group = &mut index.size_groups[*slot as usize];
            group.all.add(usage);
            if usage.any_positive() {
                group.positive.add(usage);
            }
        }
        index
    }

    /// The id of `name` lower-cased, interned; the per-id tables grown.
    fn intern(&mut self, name: &str) -> usize {
        let id = self.names.intern_lowercase(name) as usize;
        if id == self.status.len() {
            self.status.push(None);
            self.usage.push(Usage::default());
        }
        id
    }

    /// The lower-cased name variants of `name` (left in `scratch`), looked up.
    fn variants(&self, name: &str, scratch: &mut LookupScratch) -> Variants {
        let aphrodite = &mut scratch.aphrodite;
        aphrodite.clear();
        aphrodite.push_str(APHRODITE);
        push_lowercase(aphrodite, name);
        let lower = &aphrodite[APHRODITE.len()..];
        let koboldcpp = if name.starts_with(KOBOLDCPP) {
            None // the koboldcpp variant is the name itself
        } else {
            let kobold = &mut scratch.koboldcpp;
            kobold.clear();
            kobold.push_str(KOBOLDCPP);
            kobold.push_str(names::strip_org_prefix(lower));
            self.names.get(kobold)
        };
        Variants { ids: [self.names.get(lower), self.names.get(aphrodite), koboldcpp] }
    }

    /// The status of `name`, case-insensitively.
    pub fn status(&self, name: &str) -> Option<&'a HordeModelStatus> {
        let mut lower = String::with_capacity(name.len());
        push_lowercase(&mut lower, name);
        self.names.get(&lower).and_then(|id| self.status[id as usize])
    }

    /// The usage of one name, case-insensitively (zeros when unknown).
    pub fn usage(&self, name: &str) -> Usage {
        let mut lower = String::with_capacity(name.len());
        push_lowercase(&mut lower, name);
        self.names.get(&lower).map_or_else(Usage::default, |id| self.usage[id as usize])
    }

    /// `get_aggregated_status` and `get_aggregated_stats` of the model `name`.
    ///
    /// The status: the one with the most workers among the name variants
    /// (the first wins on ties). The usage: the sum over the distinct names
    /// among the variants and every stats name whose base key is `base_key`
    /// (see [`BaseNames::base_key`] of `name`).
    pub fn aggregated(
        &self,
        name: &str,
        base_key: &str,
        scratch: &mut LookupScratch,
    ) -> (Option<&'a HordeModelStatus>, Usage) {
        let variants = self.variants(name, scratch);
        let status =
            first_max_by_count(variants.ids.iter().flatten().filter_map(|&id| self.status[id as usize]));
        let group = self.base_keys.get(base_key).map(|g| self.base_groups[g as usize]);
        let members = group.map_or(&[][..], |g| &self.base_members[g.start as usize..g.end as usize]);
        let mut usage = group.map_or_else(Usage::default, |g| g.sum);
        let mut counted: [Option<u32>; 3] = [None; 3];
        for (i, &id) in variants.ids.iter().enumerate() {
            let Some(id) = id else { continue };
            if members.binary_search(&id).is_ok() || counted[..i].contains(&Some(id)) {
                continue;
            }
            counted[i] = Some(id);
            usage.add(self.usage[id as usize]);
        }
        (status, usage)
    }

    /// `get_status_with_variations` and `get_stats_with_variations` of the
    /// model `name`: the aggregated status, the status per backend (indexed
    /// by [`Backend`]), the usage summed over the variants and their
    /// quantisation variants, and the part of it per backend.
    pub fn with_variations(&self, name: &str, scratch: &mut LookupScratch) -> Variations<'a> {
        let variants = self.variants(name, scratch);
        // The variants are the canonical, aphrodite and koboldcpp ones.
        let mut status = [None; 3];
        for (slot, id) in status.iter_mut().zip(variants.ids) {
            *slot = id.and_then(|id| self.status[id as usize]);
        }
        let aggregated = first_max_by_count(status.iter().flatten().copied());

        // The variants' quantisation keys are the aphrodite and koboldcpp
        // groups of the lower-cased name's key, and its canonical group when
        // it has no backend prefix (else its key is one of the other two).
        let lower = &scratch.aphrodite[APHRODITE.len()..];
        let mut usage = Usage::default();
        let mut usage_by_backend = [Usage::default(); 3];
        let key = names::quant_stripped(last_segment(lower));
        if let Some(key) = self.size_keys.get(&key) {
            let with_canonical = Backend::of_name(lower) == Backend::Canonical;
            for backend in Backend::ALL {
                let slot = self.size_slots[key as usize][backend as usize];
                if slot == UNSET || (backend == Backend::Canonical && !with_canonical) {
                    continue;
                }
                let group = self.size_groups[slot as usize];
                usage.add(group.all);
                usage_by_backend[backend as usize].add(group.positive);
            }
        }
        Variations { status: aggregated, status_by_backend: status, usage, usage_by_backend }
    }
}

/// What [`HordeIndex::with_variations`] finds for a model.
#[derive(Debug, Clone, Copy)]
pub struct Variations<'a> {
    /// The status with the most workers among the backends' (first on ties,
    /// in [`Backend::ALL`] order).
    pub status: Option<&'a HordeModelStatus>,
    /// Per backend (indexed by `Backend as usize`): its status.
    pub status_by_backend: [Option<&'a HordeModelStatus>; 3],
    pub usage: Usage,
    /// Per backend: its part of the usage (zero: the backend has none).
    pub usage_by_backend: [Usage; 3],
}

/// Python's `max(statuses, key=lambda s: s.count)`: the first maximum.
fn first_max_by_count<'a>(
    statuses: impl Iterator<Item = &'a HordeModelStatus>,
) -> Option<&'a HordeModelStatus> {
    let mut best: Option<&'a HordeModelStatus> = None;
    for s in statuses {
        if best.is_none_or(|b| s.count > b.count) {
            best = Some(s);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The merge's lookups build a name's variants in place (`variants`); they
    /// must find exactly what `names::name_variants` (checked against the
    /// reference's answers in tests/name_vectors.rs) names, up to case.
    #[test]
    fn variants_are_the_lookups_of_name_variants() {
        let names = [
            "Org/Foo-7B",
            "Foo-7B",
            "koboldcpp/Foo-7B",
            "KOBOLDCPP/Org/Foo-7B",
            "aphrodite/Org/Foo-7B",
            "koboldcpp/Org/Foo-7B",
            "A/B/C",
            "ÄÖ/Ünïcode-ΣΑΣ",
            "",
        ];
        // Every variant of every name is a Horde name, plus one unrelated name.
        let horde_names: Vec<String> =
            names.iter().flat_map(|n| names::name_variants(n)).chain(["unrelated".to_string()]).collect();
        let statuses: Vec<HordeModelStatus> = horde_names
            .iter()
            .map(|name| HordeModelStatus {
                performance: None,
                queued: None,
                jobs: None,
                eta: None,
                model_type: None,
                name: name.clone(),
                count: 1,
            })
            .collect();
        let index = HordeIndex::new(&statuses, &HordeModelStats::default(), &mut BaseNames::new());
        let scratch = &mut LookupScratch::default();
        for name in names {
            let found = index.variants(name, scratch);
            let mut expected: Vec<Option<u32>> = names::name_variants(name)
                .iter()
                .map(|variant| {
                    let mut lower = String::new();
                    push_lowercase(&mut lower, variant);
                    index.names.get(&lower)
                })
                .collect();
            // The koboldcpp slot is empty when the name is its own koboldcpp form.
            expected.resize(3, None);
            assert_eq!(found.ids.to_vec(), expected, "{name:?}");
            assert!(found.ids[..2].iter().all(Option::is_some), "{name:?}");
        }
    }
}
