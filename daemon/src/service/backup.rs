//! `outpost backup`: who may take one, and its record in the audit log.
//! The bytes are streamed by the control connection (`control/stream.rs`).

use outpost_model::api::{ApiError, BackupStarted, Request};

use super::{Service, internal};
use crate::now;
use crate::roles::authorise;
use crate::store::backup::Snapshot;
use crate::writer::Caller;

impl Service {
    /// Authorises the caller, records the backup in the audit log, and
    /// takes the snapshot, which so holds its own audit record.
    pub async fn begin_backup(&self, caller: &Caller) -> Result<(Snapshot, BackupStarted), ApiError> {
        let caller = &authorise(caller, &Request::Backup, &self.info.roles)?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.backup_possible()).await.map_err(internal)?.map_err(internal)?;
        self.audit(caller, "store.backup", None, "a backup of the whole store".into(), Vec::new()).await?;
        let taken_at = now();
        let store = self.store.clone();
        let snapshot = tokio::task::spawn_blocking(move || store.backup_snapshot(taken_at.as_millis()))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let started = BackupStarted {
            node_id: snapshot.info().node_id.clone(),
            taken_at,
            outpostd: snapshot.info().outpostd.clone(),
        };
        Ok((snapshot, started))
    }
}
