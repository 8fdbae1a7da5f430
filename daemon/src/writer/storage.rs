//! A failing disk: the error officers are given, and opening the database
//! again (redb refuses everything after an IO error until it is).

use outpost_model::api::{ApiError, ErrorKind};

use super::Writer;
use crate::store::StoreError;

/// What an officer is told when a commit failed: nothing was stored, and
/// whether the daemon recovers by itself.
pub(super) fn storage_failed(err: StoreError) -> ApiError {
    tracing::error!(error = %err, disk_full = err.disk_full(), "commit failed; nothing was stored");
    if err.disk_full() {
        return ApiError::new(
            ErrorKind::Unavailable,
            "the disk is full: nothing was stored; outpostd goes on by itself once there is room, and reads still work",
        );
    }
    if err.needs_reopen() {
        return ApiError::new(
            ErrorKind::Unavailable,
            format!(
                "the storage failed, nothing was stored ({err}); outpostd reopens the database and retries by itself"
            ),
        );
    }
    ApiError::new(ErrorKind::Internal, format!("storage failed, nothing was stored: {err}"))
}

/// How often a broken store is opened again while nothing else asks (ms).
const REOPEN_EVERY_MS: i64 = 1000;

impl Writer {
    /// After a storage error: the database is opened again (redb refuses
    /// everything until it is), so that the next write can succeed once
    /// the disk works or has room again. For a second, and until a reopen
    /// works, peers' frames are dropped rather than applied and refused.
    pub(super) fn storage_failed_now(&mut self) {
        let reopened = match self.store.reopen() {
            Ok(()) => {
                self.prime_inventory();
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot reopen the database; retried every second");
                false
            }
        };
        self.storage_broken = Some((self.settings.clock.monotonic(), reopened));
    }

    /// Before a job: a database that could not be reopened is tried again
    /// (for an officer's request at once, for peers' input at most once a
    /// second), and a second after a storage error peers' frames are taken
    /// again.
    pub(super) fn storage_retry(&mut self, officer: bool) {
        let Some((since, reopened)) = self.storage_broken else { return };
        let due = self.settings.clock.monotonic().as_millis() - since.as_millis() >= REOPEN_EVERY_MS;
        if reopened {
            if due {
                self.storage_broken = None;
            }
            return;
        }
        if !due && !officer {
            return;
        }
        match self.store.reopen() {
            Ok(()) => {
                self.storage_broken = None;
                tracing::info!("the database is open again; peers' changes are taken again");
                // Documents whose store failed while nothing could be read
                // were taken out of the engine's inventory; what is stored
                // goes back in.
                self.prime_inventory();
            }
            Err(err) => {
                tracing::warn!(error = %err, "the database still cannot be reopened");
                self.storage_broken = Some((self.settings.clock.monotonic(), false));
            }
        }
    }
}
