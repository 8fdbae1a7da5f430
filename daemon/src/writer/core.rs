//! `WriterCore`: the writer's work without its thread and queues, and
//! what it does when a job panics.

use std::sync::Arc;

use outpost_model::api::{ApiError, ErrorKind};
use outpost_model::replication::engine::Engine;

use super::Writer;
use super::api::{Caller, Replication, SharedIndex, WriteOp, WriterSettings, Written};
use crate::net::NetCommand;
use crate::store::Store;

/// The writer's work without its thread and queues: jobs handled one at a
/// time, in the caller's thread. The daemon runs it on the writer thread;
/// the fleet simulator drives it directly, on simulated time and storage.
pub struct WriterCore(Writer);

impl std::fmt::Debug for WriterCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterCore").field("post", &self.0.settings.post).finish_non_exhaustive()
    }
}

impl WriterCore {
    /// Takes over `store`: signs history from before fleet trust, hands
    /// the engine the stored inventory, and logs who this node is.
    pub fn start(
        store: Arc<Store>,
        index: SharedIndex,
        settings: WriterSettings,
        replication: Option<Replication>,
    ) -> Self {
        let mut writer = Writer::new(store, index, settings, replication);
        writer.sign_legacy_history();
        writer.prime_inventory();
        writer.log_identity();
        WriterCore(writer)
    }

    /// Handles one job. Automerge panics on some changes a peer can craft,
    /// and not only where the model guards it: a job that panics is
    /// answered with an error and the writer goes on, rather than the
    /// daemon stopping (and stopping again after each restart, as the peer
    /// sends the same change again).
    pub fn handle(&mut self, op: WriteOp, caller: &Caller) -> Result<Written, ApiError> {
        let writer = &mut self.0;
        let result = match outpost_model::error::guard(|| writer.handle(op, caller)) {
            Ok(result) => result,
            Err(panic) => {
                writer.after_panic(&panic);
                Err(ApiError::new(ErrorKind::Internal, format!("outpostd failed on this request: {panic}")))
            }
        };
        for doc in std::mem::take(&mut writer.audit_to_push) {
            writer.push_local(&doc);
        }
        result
    }

    /// The replication engine, when networking is on: for the
    /// simulator's checks of what this node holds and may hold.
    pub fn engine(&self) -> Option<&Engine> {
        self.0.replication.as_ref().map(|r| &r.engine)
    }

    /// Compacts one document whose changes piled up, if any; says whether
    /// it did (the writer calls it while no job waits).
    pub fn compact_one(&mut self) -> bool {
        let writer = &mut self.0;
        match outpost_model::error::guard(|| writer.compact_one()) {
            Ok(did) => did,
            Err(panic) => {
                writer.after_panic(&panic);
                true
            }
        }
    }
}

impl Writer {
    /// After a job panicked: every document in memory is dropped (each is
    /// reloaded from what was stored), and the peer whose frame it was is
    /// disconnected, so that nothing half-applied is stored or sent.
    pub(super) fn after_panic(&mut self, panic: &str) {
        tracing::error!(panic, peer = ?self.received_from, "a job failed inside outpostd; documents are reloaded from storage");
        let loaded = self.cache.forget_all();
        self.audit_to_push.clear();
        if let (Some(peer), Some(replication)) = (self.received_from.take(), self.replication.as_ref()) {
            let _ = replication.net.send(NetCommand::Disconnect { peer });
        }
        // The engine may have taken in what was then not stored: each
        // document that was in memory goes back to its stored state in the
        // engine's inventory, and its sessions start over, as after a
        // failed store.
        let now = self.settings.clock.monotonic();
        let mut effects = Vec::new();
        if let Some(replication) = self.replication.as_mut() {
            for doc in &loaded {
                effects.extend(replication.engine.handle_store_failed(now, doc, &mut self.cache));
            }
        }
        if !effects.is_empty() {
            // Guarded too: a second panic here must not end the writer.
            if let Err(again) = outpost_model::error::guard(|| self.carry_out(effects, Default::default())) {
                tracing::error!(panic = again, "starting sessions over failed too; they start over at the next check");
                self.cache.forget_all();
            }
        }
    }
}
