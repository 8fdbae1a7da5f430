//! Library half of the `outpost` CLI, so tests and tools can reuse the
//! client and the rendering.

pub mod args;
pub mod backup;
pub mod client;
pub mod failure;
pub mod fleet;
pub mod keys;
pub mod paths;
pub mod render;
