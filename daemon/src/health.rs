//! What the daemon tells systemd: `READY=1` once the store is open, the
//! index loaded and the control socket listening; `WATCHDOG=1` only while
//! the writer and the network loop answer a probe; `STATUS=` lines that
//! say what the post is doing.
//!
//! A ping proves more than that the process runs: each one follows a job
//! the writer answered (through the officers' queue, as an officer's
//! request would go) and a command the network loop answered. A writer
//! stuck on a hung disk, or a network loop stuck on anything, stops the
//! pings, and systemd restarts the daemon from what is on disk.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::net::{NetCommand, SharedNetState};
use crate::writer::{Caller, HealthSnapshot, WriteOp, WriterHandle, Written};

/// How often the STATUS= line is refreshed when no watchdog asks for more.
const STATUS_PERIOD: Duration = Duration::from_secs(10);

/// What the daemon probes.
#[derive(Debug, Clone)]
pub struct Probes {
    pub writer: WriterHandle,
    /// The network loop's command queue, when the post networks.
    pub net: Option<mpsc::UnboundedSender<NetCommand>>,
    pub net_state: Option<SharedNetState>,
}

/// Why a probe failed: which loop did not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    Writer,
    Network,
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Writer => "the writer",
            Self::Network => "the network loop",
        })
    }
}

/// What a probe found when both loops that run answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Healthy {
    pub snapshot: HealthSnapshot,
    /// The network loop has ended (it logged why): the post serves
    /// officers but no longer replicates. A restart would not mend what
    /// stopped it (a listen address taken, say), so this is reported, not
    /// treated as a stall.
    pub network_ended: bool,
}

impl Probes {
    /// The writer's answer to a health job within `within`, if it gave one.
    pub async fn writer_snapshot(&self, within: Duration) -> Option<HealthSnapshot> {
        match tokio::time::timeout(within, self.writer.submit(WriteOp::Health, &Caller::daemon())).await {
            Ok(Ok(Written::Health(snapshot))) => Some(snapshot),
            _ => None,
        }
    }

    /// Asks both loops at once, both within `within`.
    pub async fn probe(&self, within: Duration) -> Result<Healthy, Stalled> {
        let writer = self.writer_snapshot(within);
        let network = async {
            let Some(net) = &self.net else { return false };
            let (reply, answer) = oneshot::channel();
            if net.send(NetCommand::Probe(reply)).is_err() {
                // The loop's receiver is gone: it returned.
                return true;
            }
            // Dropped unanswered: the loop ended meanwhile.
            answer.await.is_err()
        };
        let deadline = tokio::time::Instant::now() + within;
        let (writer, network) = tokio::join!(writer, tokio::time::timeout_at(deadline, network));
        let Some(snapshot) = writer else { return Err(Stalled::Writer) };
        let network_ended = network.map_err(|_| Stalled::Network)?;
        Ok(Healthy { snapshot, network_ended })
    }

    fn peers_connected(&self) -> Option<usize> {
        let state = self.net_state.as_ref()?;
        let state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(state.connected_count())
    }
}

/// Bytes free to the daemon and in all on `dir`'s file system.
pub fn disk_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    let stats = nix::sys::statvfs::statvfs(dir).ok()?;
    // u64 on the 64-bit Linux targets the package is built for.
    let block = stats.fragment_size();
    Some((stats.blocks_available().saturating_mul(block), stats.blocks().saturating_mul(block)))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The STATUS= line for a healthy post.
pub fn status_line(healthy: &Healthy, peers_connected: Option<usize>) -> String {
    let snapshot = &healthy.snapshot;
    let mut line = match peers_connected {
        _ if healthy.network_ended => {
            "serving officers; THE NETWORK STOPPED: this post no longer replicates (see the journal)".to_string()
        }
        None => "serving officers; this post does not network".to_string(),
        Some(connected) => format!(
            "{}, {} ready; {} behind or ahead",
            plural(connected, "peer connected", "peers connected"),
            snapshot.peers_ready,
            plural(snapshot.documents_differing, "document", "documents")
        ),
    };
    if snapshot.held > 0 {
        line.push_str(&format!("; {} held for a roster", plural(snapshot.held as usize, "change", "changes")));
    }
    if snapshot.storage_failing {
        line.push_str("; STORAGE FAILING: writes are refused until it works again");
    }
    line
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(state) {
        tracing::warn!(error = %err, "cannot notify systemd");
    }
}

/// `READY=1`, with a first STATUS= line.
pub fn ready(status: &str) {
    notify(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(status)]);
}

pub fn stopping() {
    notify(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status("stopping")]);
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// Probes the loops and tells systemd, until `stop` turns true.
pub async fn supervise(probes: Probes, watchdog: Option<Duration>, mut stop: watch::Receiver<bool>) {
    // A probe may take half the interval and the next starts a quarter
    // later, so a healthy daemon pings at least every three quarters of it.
    let (pause, within) = match watchdog {
        Some(interval) => ((interval / 4).min(STATUS_PERIOD), interval / 2),
        None => (STATUS_PERIOD, STATUS_PERIOD),
    };
    let mut last_status = String::new();
    let mut stalled: Option<Stalled> = None;
    loop {
        let verdict = probes.probe(within).await;
        let status = match &verdict {
            Ok(healthy) => {
                if let Some(was) = stalled.take() {
                    tracing::warn!(stalled = %was, "answers again; watchdog pings resume");
                }
                if watchdog.is_some() {
                    notify(&[sd_notify::NotifyState::Watchdog]);
                }
                status_line(healthy, probes.peers_connected())
            }
            Err(which) => {
                if stalled != Some(*which) {
                    tracing::error!(stalled = %which, within_ms = within.as_millis() as u64,
                        "does not answer; withholding the watchdog ping, so systemd restarts outpostd if it stays stuck");
                    stalled = Some(*which);
                }
                format!("STALLED: {which} does not answer")
            }
        };
        if status != last_status {
            notify(&[sd_notify::NotifyState::Status(&status)]);
            last_status = status;
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_say_what_the_post_is_doing() {
        let healthy = |snapshot: HealthSnapshot| Healthy { snapshot, network_ended: false };
        let mut snapshot = HealthSnapshot { peers_ready: 2, documents_differing: 1, ..Default::default() };
        assert_eq!(
            status_line(&healthy(snapshot.clone()), Some(3)),
            "3 peers connected, 2 ready; 1 document behind or ahead"
        );
        snapshot.held = 4;
        snapshot.storage_failing = true;
        let line = status_line(&healthy(snapshot), Some(1));
        assert!(line.starts_with("1 peer connected"), "{line}");
        assert!(line.contains("4 changes held for a roster") && line.contains("STORAGE FAILING"), "{line}");
        assert_eq!(
            status_line(&healthy(HealthSnapshot::default()), None),
            "serving officers; this post does not network"
        );
        let ended = Healthy { snapshot: HealthSnapshot::default(), network_ended: true };
        assert!(status_line(&ended, Some(0)).contains("THE NETWORK STOPPED"));
    }
}
