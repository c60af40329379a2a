//! The model-reference categories this daemon hydrates.
//!
//! The reference knows more categories (clip, controlnet, ...), but the
//! analytics caches exist only for image and text generation, so anything else
//! is rejected where it enters (settings, pub/sub, admin commands).

use std::fmt;
use std::str::FromStr;

/// A category whose analytics are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    ImageGeneration,
    TextGeneration,
}

impl Category {
    /// Every category, in the order a cycle computes them.
    pub const ALL: [Category; 2] = [Category::ImageGeneration, Category::TextGeneration];

    /// The reference's name for the category (`image_generation`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::ImageGeneration => "image_generation",
            Category::TextGeneration => "text_generation",
        }
    }

    pub fn is_text(self) -> bool {
        self == Category::TextGeneration
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not a category this daemon caches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown category {0:?}: expected \"image_generation\" or \"text_generation\"")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "image_generation" => Ok(Category::ImageGeneration),
            "text_generation" => Ok(Category::TextGeneration),
            other => Err(UnknownCategory(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        }
        assert!("clip".parse::<Category>().is_err());
        assert!("Image_Generation".parse::<Category>().is_err());
    }
}
