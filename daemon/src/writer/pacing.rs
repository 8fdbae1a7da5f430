//! While officers are at work, peers' jobs get at most a share of the
//! writer's time. The writer already takes an officer's request before any
//! peer's frame, but on a 2-core post a peer flooding at full speed keeps
//! the writer busy all the time, and the officer's request then competes
//! for a core with the network and the search. Pausing peers' work leaves
//! the officer a core: measured by `outpost-bench hostile`.
//!
//! This is scheduling in the IO shell, on the machine's monotonic clock;
//! the simulator drives the writer's work without its thread, so none of
//! it touches what a seed replays.

use std::time::{Duration, Instant};

/// The share of the writer's time peers' jobs may take while officers are
/// at work, as a fraction.
pub(super) const PEER_SHARE: (u32, u32) = (1, 2);
/// Officers count as at work this long after their last request.
pub(super) const OFFICERS_AT_WORK_FOR: Duration = Duration::from_secs(10);
/// Time peers may have saved up from quiet moments, to take at once.
const PEER_BURST: Duration = Duration::from_millis(20);
/// The longest single pause: an officer's request ends any pause at once,
/// so this only bounds how long peers' frames wait.
const MAX_PAUSE: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub(super) struct PeerPacing {
    /// Time peers may still take, in microseconds; negative once they took
    /// more than their share.
    credit_us: i64,
    last: Instant,
    officers_seen: Option<Instant>,
}

impl PeerPacing {
    pub(super) fn new(now: Instant) -> Self {
        Self { credit_us: burst_us(), last: now, officers_seen: None }
    }

    pub(super) fn officer_job(&mut self, at: Instant) {
        self.officers_seen = Some(at);
    }

    /// A peer's job ran from `started` to `ended`.
    pub(super) fn peer_job(&mut self, started: Instant, ended: Instant) {
        // The share is of all the time that passed, the job's own included.
        self.accrue(ended);
        let took = i64::try_from(ended.saturating_duration_since(started).as_micros()).unwrap_or(i64::MAX);
        self.credit_us = self.credit_us.saturating_sub(took);
    }

    /// How long peers' jobs wait now (an officer's request is taken
    /// meanwhile); zero while peers are within their share, or officers
    /// are not at work.
    pub(super) fn pause(&mut self, now: Instant) -> Duration {
        self.accrue(now);
        let officers_at_work =
            self.officers_seen.is_some_and(|at| now.saturating_duration_since(at) < OFFICERS_AT_WORK_FOR);
        if !officers_at_work {
            // Peers owe nothing for the time officers did not need.
            self.credit_us = self.credit_us.max(0);
            return Duration::ZERO;
        }
        if self.credit_us >= 0 {
            return Duration::ZERO;
        }
        let (num, den) = PEER_SHARE;
        let owed_us = self.credit_us.unsigned_abs().saturating_mul(u64::from(den)) / u64::from(num.max(1));
        Duration::from_micros(owed_us).min(MAX_PAUSE)
    }

    fn accrue(&mut self, now: Instant) {
        let (num, den) = PEER_SHARE;
        let elapsed = i64::try_from(now.saturating_duration_since(self.last).as_micros()).unwrap_or(i64::MAX);
        let earned = elapsed.saturating_mul(i64::from(num)) / i64::from(den.max(1));
        self.credit_us = self.credit_us.saturating_add(earned).min(burst_us());
        self.last = self.last.max(now);
    }
}

fn burst_us() -> i64 {
    i64::try_from(PEER_BURST.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn peers_take_the_whole_writer_while_no_officer_is_at_work() {
        let start = Instant::now();
        let mut pacing = PeerPacing::new(start);
        let mut at = start;
        for _ in 0..100 {
            pacing.peer_job(at, at + 50 * MS);
            at += 50 * MS;
            assert_eq!(pacing.pause(at), Duration::ZERO);
        }
    }

    #[test]
    fn while_officers_work_peers_get_their_share_and_no_more() {
        let start = Instant::now();
        let mut pacing = PeerPacing::new(start);
        pacing.officer_job(start);
        let (mut at, mut busy, mut paused) = (start, Duration::ZERO, Duration::ZERO);
        while at < start + Duration::from_secs(5) {
            let pause = pacing.pause(at);
            if pause > Duration::ZERO {
                assert!(pause <= MAX_PAUSE);
                paused += pause;
                at += pause;
                continue;
            }
            pacing.peer_job(at, at + 10 * MS);
            busy += 10 * MS;
            at += 10 * MS;
        }
        let share = busy.as_secs_f64() / (busy + paused).as_secs_f64();
        assert!((0.45..=0.56).contains(&share), "peers took {share:.2} of the writer");
    }

    #[test]
    fn officers_count_as_at_work_for_a_while_after_their_last_request() {
        let start = Instant::now();
        let mut pacing = PeerPacing::new(start);
        pacing.officer_job(start);
        pacing.peer_job(start, start + 200 * MS);
        assert!(pacing.pause(start + 200 * MS) > Duration::ZERO);
        let later = start + OFFICERS_AT_WORK_FOR + MS;
        assert_eq!(pacing.pause(later), Duration::ZERO, "no debt once officers are gone");
    }
}
