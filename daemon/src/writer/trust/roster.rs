//! Rosters an administrator hands in on this node, and the audit record of
//! each fleet operation.

use outpost_model::api::{ApiError, ErrorKind};

use super::{replication_version, trust_error};
use crate::store::Batch;
use crate::writer::{Caller, Writer};

impl Writer {
    /// A roster an administrator signed: installed and spread if valid.
    /// Either way, who handed it in and what it changes (or why it was
    /// refused) goes into the audit log.
    pub(in crate::writer) fn publish_roster(&mut self, bytes: &[u8], caller: &Caller) -> Result<u64, ApiError> {
        let Some(replication) = self.replication.as_mut() else {
            return Err(ApiError::new(ErrorKind::BadInput, "this post does not network, so it holds no roster"));
        };
        let before = replication.engine.fleet().map(|f| f.roster.clone());
        self.cache.pinned = true;
        let effects = replication
            .engine
            .handle_roster(self.settings.clock.monotonic(), bytes, &mut self.cache)
            .map_err(trust_error);
        self.cache.pinned = false;
        let (detail, outcome) = match effects {
            Ok(effects) => {
                let version = replication_version(&effects).unwrap_or_default();
                self.carry_out(effects, Default::default());
                let changes = match self.replication.as_ref().and_then(|r| r.engine.fleet()) {
                    Some(fleet) => fleet.roster.changes_from(before.as_ref()),
                    None => Vec::new(),
                };
                (format!("installed roster version {version}: {}", changes.join("; ")), Ok(version))
            }
            Err(err) => (format!("refused a roster: {}", err.message), Err(err)),
        };
        self.audit_fleet(caller, "fleet.roster", detail);
        outcome
    }

    /// An audit record of a fleet operation asked for on this node.
    pub(in crate::writer) fn audit_fleet(&mut self, caller: &Caller, action: &str, detail: String) {
        let event = caller.audit_event(self.settings.clock.wall(), action, None, detail, Vec::new());
        if let Err(err) = self.commit_and_index(Batch::default(), Vec::new(), vec![event]) {
            tracing::error!(error = %err.message, action, "cannot write the audit record of a fleet operation");
        }
    }
}
