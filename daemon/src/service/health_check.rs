//! `outpost status --check`: the post's health against the thresholds in
//! `[health]`, for a timer or a monitoring agent. Each check says what it
//! found; the CLI turns the most severe failure into an exit code.

use std::time::Duration;

use outpost_model::api::{HealthCheck, HealthCheckKind, HealthReport};
use outpost_model::date::Timestamp;

use super::Service;
use crate::writer::{Caller, HealthSnapshot, WriteOp, Written};

/// How long the store's probe write may take before the store counts as
/// not taking writes.
const STORE_WAIT: Duration = Duration::from_secs(10);

fn check(check: HealthCheckKind, ok: bool, detail: String) -> HealthCheck {
    HealthCheck { check, ok, detail }
}

fn ago(now: Timestamp, then: Timestamp) -> Duration {
    Duration::from_millis(u64::try_from(now.as_millis().saturating_sub(then.as_millis())).unwrap_or(0))
}

fn hours(duration: Duration) -> String {
    format!("{:.1} h", duration.as_secs_f64() / 3600.0)
}

impl Service {
    pub(super) async fn health_check(&self) -> Result<HealthReport, outpost_model::api::ApiError> {
        let thresholds = self.info.health;
        let mut checks = Vec::new();

        // One deadline for both writer jobs: a stuck writer must give exit
        // 10 within it, not leave the check waiting for the CLI to give up.
        let deadline = tokio::time::Instant::now() + STORE_WAIT;
        let probe = tokio::time::timeout_at(deadline, self.writer.submit(WriteOp::ProbeStore, &Caller::daemon())).await;
        let writer_answers = probe.is_ok();
        checks.push(match probe {
            Ok(Ok(Written::StoreProbed)) => check(HealthCheckKind::Store, true, "a durable write succeeded".into()),
            Ok(Ok(_)) => check(HealthCheckKind::Store, false, "the writer gave an unexpected answer".into()),
            Ok(Err(err)) => check(HealthCheckKind::Store, false, err.message),
            Err(_) => check(
                HealthCheckKind::Store,
                false,
                format!("the writer did not answer within {} s", STORE_WAIT.as_secs()),
            ),
        });

        let data_dir = self.info.data_dir.clone();
        let space = tokio::task::spawn_blocking(move || crate::health::disk_space(&data_dir)).await.ok().flatten();
        let min_mib = thresholds.disk_min_free >> 20;
        checks.push(match space {
            Some((free, _)) => check(
                HealthCheckKind::Disk,
                free >= thresholds.disk_min_free,
                format!("{} MiB free, at least {min_mib} MiB wanted", free >> 20),
            ),
            None => check(HealthCheckKind::Disk, false, "the data directory's file system cannot be read".into()),
        });

        let now = crate::now();
        checks.push(self.peers_check(now));
        let snapshot = if writer_answers {
            match tokio::time::timeout_at(deadline, self.writer.submit(WriteOp::Health, &Caller::daemon())).await {
                Ok(Ok(Written::Health(snapshot))) => Some(snapshot),
                _ => None,
            }
        } else {
            None
        };
        checks.push(self.roster_check(snapshot.as_ref()));
        checks.sort_by_key(|c| c.check);
        Ok(HealthReport { checks })
    }

    fn peers_check(&self, now: Timestamp) -> HealthCheck {
        let limit = self.info.health.no_peer_for;
        let Some(net) = &self.info.net else {
            return check(HealthCheckKind::Peers, true, "this post does not network".into());
        };
        let state = net.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let connected = state.connected_count();
        if connected > 0 {
            return check(HealthCheckKind::Peers, true, format!("{connected} connected"));
        }
        // Silence counts from the last peer heard, or from the start.
        let last = state.peers.values().filter_map(|p| p.last_seen).max();
        let since = last.unwrap_or(self.info.started_at);
        let silent = ago(now, since);
        let detail = match last {
            Some(_) => format!("no peer heard for {}; at most {} wanted", hours(silent), hours(limit)),
            None => format!("no peer heard since start {} ago; at most {} wanted", hours(silent), hours(limit)),
        };
        check(HealthCheckKind::Peers, silent <= limit, detail)
    }

    fn roster_check(&self, snapshot: Option<&HealthSnapshot>) -> HealthCheck {
        let limit = self.info.health.roster_max_age;
        let Some(snapshot) = snapshot else {
            return check(HealthCheckKind::Roster, false, "the writer did not answer".into());
        };
        if !snapshot.roster_expected {
            return check(HealthCheckKind::Roster, true, "this post runs without a signed roster".into());
        }
        let now = crate::engine_now();
        let (since, what) = match snapshot.roster_confirmed_at {
            Some(at) => (ago(now, at), "confirmed the newest"),
            None => (self.info.started.elapsed(), "not confirmed since start,"),
        };
        let held = match snapshot.roster_version {
            0 => "no roster held".to_string(),
            version => format!("roster version {version}"),
        };
        check(
            HealthCheckKind::Roster,
            snapshot.roster_version > 0 && since <= limit,
            format!("{held}, {what} {} ago; at most {} wanted", hours(since), hours(limit)),
        )
    }
}
