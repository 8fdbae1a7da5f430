//! The sans-IO replication engine (issue 4), built up piece by piece.
//! The wire design is in `docs/replication.md`.
//!
//! - [`digest`]: which documents two peers hold differently, found by
//!   range-based set reconciliation before any per-document sync.
//! - [`frame`]: the frames two nodes exchange, checked on decode.
//! - [`received`]: what a peer's chunks may expand to, bounded before
//!   Automerge sees them.
//! - [`session`]: one document's Automerge sync with one peer, with a
//!   round cap, stall detection and reset.
//! - [`bundle`]: catch-up bundles, compressed and split into parts.
//! - [`engine`]: the engine itself, peers to sessions to effects.
//! - [`pair`]: two engines joined in memory, for tests and benchmarks.

pub mod bundle;
pub mod digest;
pub mod engine;
pub mod frame;
pub mod pair;
pub mod received;
pub mod session;
