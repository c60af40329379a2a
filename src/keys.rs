//! The names of the cache entries: Redis keys, dump file names, channels.
//!
//! These are fixed by the reference (SPEC §2): its readers look for exactly
//! `P:deletion_risk:<category>:grouped=<bool>[:variations=true]` and
//! `P:stats:<category>:grouped=<bool>`.

use crate::category::Category;
use std::fmt;

/// Which analysis an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    DeletionRisk,
    Statistics,
}

impl EntryKind {
    fn as_str(self) -> &'static str {
        match self {
            EntryKind::DeletionRisk => "deletion_risk",
            EntryKind::Statistics => "stats",
        }
    }
}

/// One cache entry's identity: kind, category and variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    pub kind: EntryKind,
    pub category: Category,
    pub grouped: bool,
    /// Text deletion risk only: per-backend variations included.
    pub variations: bool,
}

impl EntryKey {
    pub const fn risk(category: Category, grouped: bool, variations: bool) -> Self {
        EntryKey { kind: EntryKind::DeletionRisk, category, grouped, variations }
    }

    pub const fn stats(category: Category, grouped: bool) -> Self {
        EntryKey { kind: EntryKind::Statistics, category, grouped, variations: false }
    }

    /// The entries one cycle writes for a category, in the order it writes them.
    pub fn for_category(category: Category) -> Vec<EntryKey> {
        let mut keys = vec![EntryKey::risk(category, false, false), EntryKey::risk(category, true, false)];
        if category.is_text() {
            keys.push(EntryKey::risk(category, false, true));
        }
        keys.push(EntryKey::stats(category, false));
        keys.push(EntryKey::stats(category, true));
        keys
    }

    /// The key after the prefix: `deletion_risk:text_generation:grouped=false:variations=true`.
    pub fn name(&self) -> String {
        let mut s = format!("{}:{}:grouped={}", self.kind.as_str(), self.category, self.grouped);
        if self.variations {
            s.push_str(":variations=true");
        }
        s
    }

    /// The full Redis key under `prefix`.
    pub fn redis_key(&self, prefix: &str) -> String {
        format!("{prefix}:{}", self.name())
    }

    /// The file name `once --dump` writes (and `expected/` uses): `:` written as `__`.
    pub fn dump_file_name(&self) -> String {
        format!("{}.json", self.name().replace(':', "__"))
    }
}

impl fmt::Display for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The channel on which the reference publishes a changed category.
pub fn invalidate_channel(prefix: &str) -> String {
    format!("{prefix}:invalidate")
}

/// The channel for operators' admin commands.
pub fn admin_channel(prefix: &str) -> String {
    format!("{prefix}:admin")
}

/// Where admin replies go unless a command names its own `reply_to`.
pub fn admin_reply_channel(prefix: &str) -> String {
    format!("{prefix}:admin:reply")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nine_entries_with_the_reference_names() {
        let names: Vec<String> = Category::ALL
            .iter()
            .flat_map(|c| EntryKey::for_category(*c))
            .map(|k| k.redis_key("horde:model_ref"))
            .collect();
        assert_eq!(
            names,
            [
                "horde:model_ref:deletion_risk:image_generation:grouped=false",
                "horde:model_ref:deletion_risk:image_generation:grouped=true",
                "horde:model_ref:stats:image_generation:grouped=false",
                "horde:model_ref:stats:image_generation:grouped=true",
                "horde:model_ref:deletion_risk:text_generation:grouped=false",
                "horde:model_ref:deletion_risk:text_generation:grouped=true",
                "horde:model_ref:deletion_risk:text_generation:grouped=false:variations=true",
                "horde:model_ref:stats:text_generation:grouped=false",
                "horde:model_ref:stats:text_generation:grouped=true",
            ]
        );
    }

    #[test]
    fn dump_names_match_expected_directory() {
        let k = EntryKey::risk(Category::TextGeneration, false, true);
        assert_eq!(k.dump_file_name(), "deletion_risk__text_generation__grouped=false__variations=true.json");
    }
}
