//! # outpost-model
//!
//! All of Outpost's pure logic: the domain (watchlist entries, incidents),
//! validation, the mapping to Automerge documents, the search seam, the audit
//! chain and the control-socket API types.
//!
//! **Architecture invariant:** this crate does no IO. It opens no file or
//! socket, reads no clock and draws no random number: callers pass `now`,
//! ids and actor nonces in. It depends on neither tokio nor libp2p nor redb.

pub mod admission;
pub mod api;
pub mod audit;
pub mod country;
pub mod date;
pub mod error;
pub mod ids;
pub mod incident;
pub mod names;
pub mod normalize;
pub mod replication;
pub mod schema;
pub mod search;
#[cfg(test)]
mod test_support;
pub mod trust;
pub mod validate;
pub mod vocab;
pub mod watchlist;

pub use error::{ModelError, ValidationError};
pub use ids::{DocId, EntryId, IncidentId, NodeId};
