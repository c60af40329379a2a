//! Category statistics (stub: the statistics work replaces this file).
//!
//! Only the signature the cycle calls is fixed here so that the crate builds.

use crate::category::Category;
use crate::records::ParsedReference;

/// The statistics entry of `category` (grouped or not) as JSON, and its model count.
pub fn compute_statistics(
    category: Category,
    reference: &ParsedReference,
    grouped: bool,
    computed_at: i64,
) -> (String, usize) {
    let _ = (category, reference, grouped, computed_at);
    todo!("stats::compute_statistics")
}
