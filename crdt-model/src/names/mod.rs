//! Names across scripts: romanisation tables, the folding of any spelling
//! to one skeleton, given-name equivalents, and word-level scoring. The
//! watchlist index in [`crate::search`] is built on these.

pub mod equivalents;
pub mod fold;
pub mod score;
pub mod translit;

pub use fold::{NameRole, NameWord, name_tokens, name_words, phonetic_key, role_of, skeleton};
pub use score::{MatchHow, TokenSim, align_into, token_similarity};
pub use translit::{Romanization, mrz_name};
