//! What a cycle reads, parsed: the model reference's records
//! ([`reference`]), the AI Horde's model status and usage statistics and
//! their index by name ([`horde`]), and where each source lives — the
//! snapshot directory's file layout and the HTTP endpoints ([`source`]).

pub mod horde;
pub mod reference;
pub mod source;
