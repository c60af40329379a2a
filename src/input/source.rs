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
        format!("{}.json", self.stem())
    }

    /// The snapshot's folder and file name (without `.json`): the one place
    /// that names them ([`SourceId::file_name`], and `Display` as
    /// `folder/stem`, which the logs, metrics and errors use).
    fn folder_and_stem(self) -> (&'static str, &'static str) {
        use Category::{ImageGeneration as Image, TextGeneration as Text};
        match self {
            SourceId::Reference(c) => ("model_reference", c.as_str()),
            SourceId::Status(Image) => ("horde", "status_models_image"),
            SourceId::Status(Text) => ("horde", "status_models_text"),
            SourceId::Stats(Image) => ("horde", "stats_img_models"),
            SourceId::Stats(Text) => ("horde", "stats_text_models"),
        }
    }

    fn stem(self) -> &'static str {
        self.folder_and_stem().1
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
        let (folder, stem) = self.folder_and_stem();
        write!(f, "{folder}/{stem}")
    }
}

/// The Horde's name of a category in its `type=` parameters and file names.
fn horde_type(c: Category) -> &'static str {
    match c {
        Category::ImageGeneration => "image",
        Category::TextGeneration => "text",
    }
}
