//! Test support for Outpost: real-process harness, seeded sample data, the
//! labelled name-matching evaluation set.
//! Binaries: `outpost-demo` (a post with sample data) and `outpost-bench`.

// Test support code: a failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fleet_sim;
pub mod harness;
pub mod link_emulator;
pub mod names_eval;
pub mod rogue;
pub mod sample;
