//! Where each of a category's inputs lives: its file in a snapshot
//! directory (SPEC §2, the layout of the conformance datasets' `horde/`) and
//! its path below the service's base URL. The fetcher reads from one or the
//! other; the tests and the benchmark read snapshot directories by the same
//! names.

use crate::category::Category;
use std::fmt;

/// The two services a cycle reads from; each has its own circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Horde,
    ModelReference,
}

/// One source of a category's inputs, named like its snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceId {
    Reference(Category),
    Status(Category),
    Stats(Category),
}

impl SourceId {
    /// The service that answers for this source.
    pub fn service(self) -> Service {
        match self {
            SourceId::Reference(_) => Service::ModelReference,
            SourceId::Status(_) | SourceId::Stats(_) => Service::Horde,
        }
    }

    /// The file of this source in a snapshot directory (SPEC §2).
    pub fn file_name(self) -> String {
        match self {
            SourceId::Reference(c) => format!("{c}.json"),
            SourceId::Status(c) => format!("status_models_{}.json", horde_type(c)),
            SourceId::Stats(Category::ImageGeneration) => "stats_img_models.json".to_string(),
            SourceId::Stats(Category::TextGeneration) => "stats_text_models.json".to_string(),
        }
    }

    /// The path of this source below its service's base URL.
    pub fn http_path(self) -> String {
        match self {
            SourceId::Reference(c) => format!("/model_references/v2/{c}"),
            SourceId::Status(c) => format!("/v2/status/models?type={}&model_state=known", horde_type(c)),
            SourceId::Stats(Category::ImageGeneration) => {
                "/v2/stats/img/models?model_state=known".to_string()
            }
            SourceId::Stats(Category::TextGeneration) => {
                "/v2/stats/text/models?model_state=known".to_string()
            }
        }
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceId::Reference(c) => write!(f, "model_reference/{c}"),
            SourceId::Status(c) => write!(f, "horde/status_models_{}", horde_type(*c)),
            SourceId::Stats(Category::ImageGeneration) => f.write_str("horde/stats_img_models"),
            SourceId::Stats(Category::TextGeneration) => f.write_str("horde/stats_text_models"),
        }
    }
}

/// The Horde's name of a category in its `type=` parameters and file names.
fn horde_type(c: Category) -> &'static str {
    match c {
        Category::ImageGeneration => "image",
        Category::TextGeneration => "text",
    }
}
