//! Link events in the journal, rate-limited per peer. A flapping HF link
//! connects and drops every few seconds for hours; one line per event
//! would flood the journal. In each peer's window (five minutes) the
//! first event of each kind is logged in full, later ones are only
//! counted, and when the window ends one summary line gives the counts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a peer's repeated events are summarised instead of logged.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Peers (or addresses) tracked at once: dial failures and refused
/// connections are keyed by address, which a stranger can vary, so the
/// map is bounded; a peer pushed out merely logs its next event in full.
pub const MAX_TRACKED: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkEvent {
    Connected,
    Closed,
    DialFailed,
    /// An incoming connection refused in the key exchange.
    Refused,
}

impl LinkEvent {
    fn index(self) -> usize {
        match self {
            Self::Connected => 0,
            Self::Closed => 1,
            Self::DialFailed => 2,
            Self::Refused => 3,
        }
    }
}

/// What a window held beyond the lines already logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub connected: u32,
    pub closed: u32,
    pub dial_failed: u32,
    pub refused: u32,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    counts: [u32; 4],
}

#[derive(Debug)]
pub struct LinkLog {
    window: Duration,
    windows: HashMap<String, Window>,
}

impl LinkLog {
    pub fn new(window: Duration) -> Self {
        Self { window, windows: HashMap::new() }
    }

    /// Counts `event` for `key`; says whether to log it in full (the first
    /// of its kind in the key's window).
    pub fn admit(&mut self, now: Instant, key: &str, event: LinkEvent) -> bool {
        if !self.windows.contains_key(key) && self.windows.len() >= MAX_TRACKED {
            let oldest = self.windows.iter().min_by_key(|(_, w)| w.started).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.windows.remove(&oldest);
            }
        }
        let window = self.windows.entry(key.to_string()).or_insert(Window { started: now, counts: [0; 4] });
        let count = &mut window.counts[event.index()];
        *count = count.saturating_add(1);
        *count == 1
    }

    /// The windows that ended by `now` with events that were not logged
    /// one by one, to log as summaries; ended windows are forgotten.
    pub fn ended(&mut self, now: Instant) -> Vec<(String, Summary)> {
        let mut due = Vec::new();
        self.windows.retain(|key, window| {
            if now.duration_since(window.started) < self.window {
                return true;
            }
            // The first of each kind was logged already.
            let beyond = |n: u32| n.saturating_sub(1);
            let summary = Summary {
                connected: beyond(window.counts[0]),
                closed: beyond(window.counts[1]),
                dial_failed: beyond(window.counts[2]),
                refused: beyond(window.counts[3]),
            };
            if summary != Summary::default() {
                due.push((key.clone(), summary));
            }
            false
        });
        due.sort_by(|a, b| a.0.cmp(&b.0));
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_of_each_kind_is_logged_and_repeats_are_summarised_once() {
        let start = Instant::now();
        let mut log = LinkLog::new(Duration::from_secs(60));
        assert!(log.admit(start, "peer-a", LinkEvent::Connected));
        assert!(log.admit(start, "peer-a", LinkEvent::Closed));
        for n in 1..=20 {
            let at = start + Duration::from_secs(n);
            assert!(!log.admit(at, "peer-a", LinkEvent::Connected));
            assert!(!log.admit(at, "peer-a", LinkEvent::Closed));
        }
        assert!(log.admit(start, "peer-b", LinkEvent::Connected), "each peer has its own window");
        assert!(log.ended(start + Duration::from_secs(59)).is_empty());
        let due = log.ended(start + Duration::from_secs(60));
        assert_eq!(due, vec![("peer-a".to_string(), Summary { connected: 20, closed: 20, ..Summary::default() })]);
        // peer-b had nothing beyond its first line; both windows are gone.
        assert!(log.admit(start + Duration::from_secs(61), "peer-a", LinkEvent::Connected));
        assert!(log.admit(start + Duration::from_secs(61), "peer-b", LinkEvent::Connected));
    }

    #[test]
    fn strangers_varying_their_address_cannot_grow_the_map() {
        let start = Instant::now();
        let mut log = LinkLog::new(WINDOW);
        for n in 0..(MAX_TRACKED * 3) {
            log.admit(start + Duration::from_millis(n as u64), &format!("10.0.0.{n}"), LinkEvent::Refused);
        }
        assert_eq!(log.windows.len(), MAX_TRACKED);
    }
}
