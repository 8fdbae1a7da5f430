//! The clocks the writer reads, behind a trait so that the fleet simulator
//! runs the real writer on simulated time (one seed replays exactly).

use outpost_model::date::Timestamp;

/// Where the writer reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The wall clock: what is recorded (changes, audit records, what
    /// officers see).
    fn wall(&self) -> Timestamp;
    /// The monotonic clock, for deadlines (the replication engine's, the
    /// storage's retries): never stepped back or forward.
    fn monotonic(&self) -> Timestamp;
    /// A new record id: a UUIDv7, its time from the wall clock and the
    /// rest random.
    fn new_uuid(&self) -> uuid::Uuid;
}

/// The machine's clocks: [`crate::now`] and [`crate::engine_now`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> Timestamp {
        crate::now()
    }

    fn monotonic(&self) -> Timestamp {
        crate::engine_now()
    }

    fn new_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
}
