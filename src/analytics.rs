//! The reference's analytics over parsed inputs: model-name handling
//! ([`names`]), the join of the reference with the Horde data ([`merge`]),
//! the deletion-risk analysis ([`risk`]), text-model grouping
//! ([`grouping`]) and the category statistics ([`stats`]).

pub mod grouping;
pub mod merge;
pub mod names;
pub mod risk;
pub mod stats;
