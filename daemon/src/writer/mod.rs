//! The single writer: the only thread that changes documents or storage.
//!
//! Requests that change data arrive as [`Job`]s over a bounded channel. For
//! each, the writer validates through the model, applies the change to the
//! in-memory Automerge document, and commits the change, the projection rows
//! it produced and the audit record in one durable redb transaction. Only
//! then does it update the search index and reply. If the commit fails, the
//! document is dropped from memory and reloaded from disk on next use, so
//! memory never holds a change that storage lacks.
//!
//! The writer also hosts the replication engine: documents change only
//! here, so changes received from peers take the same path as an officer's
//! (stored with their projection rows and index records in one transaction
//! before anything is sent on), and an officer's committed change is handed
//! to the engine, which pushes it to every connected peer.
//!
//! One job per file:
//! - `api`: requests, answers, reports and settings;
//! - `thread`: the thread and its two queues, officers' first;
//! - `pacing`: while officers are at work, peers' jobs get half the
//!   writer's time;
//! - `core`: `WriterCore`, the work without the thread (which the fleet
//!   simulator drives), and what a panicking job leaves behind;
//! - `storage`: a failing disk: officers' errors, reopening the database;
//! - this file: the writer's state and the dispatch of each request;
//! - `audit`: this node's audit records mirrored, signed, into its audit
//!   document; other posts' records checked as they arrive;
//! - `cache`: documents in memory, and the engine's `DocHost`;
//! - `commit`: `commit_and_index`, the one path anything is stored by;
//! - `officer`: officers' writes;
//! - `replication`: the engine's inputs and effects;
//! - `trust`: this node's standing in the fleet, signing, rosters,
//!   attestations and the history from before fleet trust;
//! - `quarantine`: changes that wait for a roster, within bounds;
//! - `compaction`: snapshots of documents whose changes piled up, when idle.

mod audit;
pub use audit::AuditLog;
mod cache;
mod commit;
mod compaction;
mod officer;
mod quarantine;
pub use quarantine::QuarantineLimits;
mod replication;
pub mod trust;

mod api;
pub use api::{
    Caller, HealthSnapshot, Job, PeerDocs, PeerHealth, Replication, ReplicationInput, SharedIndex, SyncReport,
    TrustReport, WriteOp, WriterSettings, Written,
};
mod core;
pub use self::core::WriterCore;
mod pacing;
mod storage;
mod thread;
pub use thread::{PEER_JOBS, WriterHandle, WriterThread, spawn};

use std::sync::Arc;

use outpost_model::DocId;
use outpost_model::api::{ApiError, ErrorKind};
use outpost_model::replication::engine::PeerKey;

use self::cache::DocCache;
use crate::store::{Batch, Store};

impl Writer {
    fn new(store: Arc<Store>, index: SharedIndex, settings: WriterSettings, replication: Option<Replication>) -> Self {
        let threshold = settings.compact_after_changes;
        let backlog = match store.changes_per_doc() {
            Ok(counts) => counts.into_iter().filter(|(_, n)| *n >= threshold).map(|(id, _)| id).collect(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot count stored changes; compaction waits for new writes");
                Vec::new()
            }
        };
        let cache = DocCache::new(store.clone(), settings.actor.clone(), settings.max_loaded_docs);
        let quarantine = quarantine::Quarantine::load(&store);
        Writer {
            store,
            index,
            settings,
            cache,
            backlog,
            replication,
            quarantine,
            audit_head: None,
            audit_to_push: Vec::new(),
            received_from: None,
            storage_broken: None,
        }
    }
}

struct Writer {
    store: Arc<Store>,
    index: SharedIndex,
    settings: WriterSettings,
    cache: DocCache,
    /// Documents found at start with enough stored changes to compact.
    backlog: Vec<DocId>,
    replication: Option<Replication>,
    /// What the store's quarantine holds, from whom.
    quarantine: quarantine::Quarantine,
    /// The number and hash of this node's last audit record (`None`: read
    /// it from the store).
    audit_head: Option<(u64, String)>,
    /// Audit documents stored since the last job, to push to peers.
    audit_to_push: Vec<DocId>,
    /// The peer whose frame the engine's effects being carried out answer.
    received_from: Option<PeerKey>,
    /// When the storage last failed, and whether the database has been
    /// reopened since.
    storage_broken: Option<(outpost_model::date::Timestamp, bool)>,
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, err.to_string())
}

impl Writer {
    fn handle(&mut self, op: WriteOp, caller: &Caller) -> Result<Written, ApiError> {
        self.storage_retry(!matches!(op, WriteOp::Replication(_)));
        if self.storage_broken.is_some() {
            // Frames would be applied in memory and then fail to store;
            // they are dropped instead, and the sessions they belong to
            // start over once the storage works (peers are never told of
            // changes that were not stored).
            if let WriteOp::Replication(ReplicationInput::Frame(..)) = op {
                return Ok(Written::Replicated);
            }
        }
        match op {
            WriteOp::Audit(event) => {
                self.commit_and_index(Batch::default(), Vec::new(), vec![event])?;
                Ok(Written::Audited)
            }
            WriteOp::AuditLog { post } => self.audit_log(&post).map(|log| Written::AuditLog(Box::new(log))),
            WriteOp::Replication(input) => {
                self.replicate(input);
                Ok(Written::Replicated)
            }
            WriteOp::SyncReport => Ok(Written::SyncReport(Box::new(self.sync_report()))),
            WriteOp::TrustReport => Ok(Written::TrustReport(Box::new(self.trust_report()))),
            WriteOp::Health => Ok(Written::Health(self.health())),
            WriteOp::ProbeStore => match self.store.write_probe(self.settings.clock.wall()) {
                Ok(()) => Ok(Written::StoreProbed),
                Err(err) => {
                    let failed = format!("a durable write failed: {err}");
                    // As after any failed commit: the database is opened
                    // again, or officers' next writes would be refused too.
                    if err.needs_reopen() {
                        self.storage_failed_now();
                    }
                    Err(ApiError::new(ErrorKind::Unavailable, failed))
                }
            },
            WriteOp::PublishRoster(bytes) => self.publish_roster(&bytes, caller).map(Written::RosterPublished),
            WriteOp::RevocationCut { peer } => self.cut_for(&peer, caller).map(Written::Cut),
            officer => self.officer_write(officer, caller),
        }
    }
}
