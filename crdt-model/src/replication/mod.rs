//! The sans-IO replication engine (issue 4), built up piece by piece.
//! The wire design is in `docs/replication.md`.
//!
//! - [`digest`]: which documents two peers hold differently, found by
//!   range-based set reconciliation before any per-document sync.
//! - [`frame`]: the frames two nodes exchange, checked on decode.
//! - [`session`]: one document's Automerge sync with one peer, with a
//!   round cap, stall detection and reset.

pub mod bundle;
pub mod digest;
pub mod engine;
pub mod frame;
pub mod session;
