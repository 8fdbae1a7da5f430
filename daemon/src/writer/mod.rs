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

use std::sync::{Arc, RwLock};

use automerge::ActorId;
use outpost_model::api::{AmendInput, ApiError, ErrorKind, NewEntryInput, NewIncidentInput};
use outpost_model::audit::AuditEvent;
use outpost_model::date::Timestamp;
use outpost_model::incident::Incident;
use outpost_model::replication::engine::{Engine, PeerKey, PeerSummary};
use outpost_model::search::WatchlistIndex;
use outpost_model::vocab::{EntryStatus, FollowUp};
use outpost_model::watchlist::Entry;
use outpost_model::{DocId, EntryId, IncidentId};
use time::UtcOffset;
use tokio::sync::{mpsc, oneshot};

use self::cache::DocCache;
use crate::net::NetCommand;
use crate::store::{Batch, Store, StoreError};

pub type SharedIndex = Arc<RwLock<Box<dyn WatchlistIndex>>>;

/// The Unix user and process behind a request, from SO_PEERCRED, with
/// its login name and roles (see `roles`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub pid: Option<i32>,
    pub user: String,
    pub roles: std::collections::BTreeSet<outpost_model::api::Role>,
    /// The role the current request is allowed under.
    pub acting: Option<outpost_model::api::Role>,
}

impl Caller {
    /// The daemon itself, for its own requests to the writer.
    pub fn daemon() -> Self {
        Self::daemon_as(nix::unistd::geteuid().as_raw())
    }

    /// The daemon, running as `uid` (the simulator fixes it, so that a
    /// seed's audit records, and so its frames, are the same on every
    /// machine).
    pub fn daemon_as(uid: u32) -> Self {
        Caller {
            uid,
            pid: None,
            user: "outpostd".into(),
            roles: std::collections::BTreeSet::from([outpost_model::api::Role::Admin]),
            acting: Some(outpost_model::api::Role::Admin),
        }
    }

    /// The role name written to the audit log.
    pub fn role_name(&self) -> String {
        self.acting.map(|r| r.as_str().to_string()).unwrap_or_default()
    }

    /// An audit record of `action` by this caller at `at`.
    pub fn audit_event(
        &self,
        at: Timestamp,
        action: &str,
        purpose: Option<String>,
        detail: String,
        result_ids: Vec<String>,
    ) -> AuditEvent {
        AuditEvent {
            at,
            uid: self.uid,
            pid: self.pid,
            user: self.user.clone(),
            role: self.role_name(),
            action: action.into(),
            purpose,
            detail,
            result_ids,
        }
    }
}

#[derive(Debug)]
pub enum WriteOp {
    AddEntries {
        inputs: Vec<NewEntryInput>,
    },
    Amend {
        id: EntryId,
        input: Box<AmendInput>,
    },
    SetStatus {
        id: EntryId,
        status: EntryStatus,
        reason: String,
    },
    LogIncident {
        input: Box<NewIncidentInput>,
    },
    Note {
        id: IncidentId,
        text: String,
    },
    FollowUp {
        id: IncidentId,
        follow_up: FollowUp,
        note: Option<String>,
    },
    /// Records a consultation; the reply waits until it is durable.
    Audit(AuditEvent),
    /// An input for the replication engine, from the network.
    Replication(ReplicationInput),
    /// What the engine knows about peers and how stale documents are.
    SyncReport,
    /// Where this node stands in the fleet, without the per-peer counts.
    TrustReport,
    /// A roster an administrator signed, to install and spread.
    PublishRoster(Vec<u8>),
    /// The cut a revocation of this peer would record.
    RevocationCut {
        peer: String,
    },
    /// A post's audit log as this node holds it, checked.
    AuditLog {
        post: String,
    },
}

#[derive(Debug)]
pub enum ReplicationInput {
    Connected(PeerKey),
    Disconnected(PeerKey),
    Frame(PeerKey, Vec<u8>),
    Timer,
    /// `outpost sync [PEER]`: a digest exchange now.
    SyncNow(Option<PeerKey>),
}

/// What one connected peer holds differently, for `outpost peers`.
#[derive(Debug, Clone)]
pub struct PeerDocs {
    pub peer: PeerKey,
    pub summary: PeerSummary,
    /// Differing documents with how many of our changes the peer may lack
    /// (counted from the last heads both were known to hold).
    pub behind: Vec<(DocId, usize)>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    pub peers: Vec<PeerDocs>,
    /// The document longest since shown to agree with any peer, and when.
    pub stalest: Option<(DocId, Option<Timestamp>)>,
    pub documents: usize,
    pub trust: TrustReport,
}

/// Where this node stands in the fleet, for `outpost status` and
/// `outpost fleet roster`.
#[derive(Debug, Clone, Default)]
pub struct TrustReport {
    /// `fleet`, `psk-only`, `nobody` (no admin key) or `off` (no network).
    pub mode: &'static str,
    /// The admin key this node is configured with.
    pub anchor: Option<outpost_model::trust::PublicKey>,
    /// The roster held, if any.
    pub fleet: Option<outpost_model::trust::Fleet>,
    /// This node's entry in it.
    pub member: Option<outpost_model::trust::Member>,
    /// Where config and roster disagree.
    pub conflicts: Vec<String>,
    /// Changes held until a roster lets them in.
    pub held: u64,
    /// Changes of revoked members admitted by attestation, by name.
    pub attested: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug)]
pub enum Written {
    Entries(Vec<Entry>),
    Incident(Box<Incident>),
    Audited,
    Replicated,
    SyncReport(Box<SyncReport>),
    TrustReport(Box<TrustReport>),
    RosterPublished(u64),
    Cut(Vec<outpost_model::trust::roster::CutEntry>),
    AuditLog(Box<AuditLog>),
}

#[derive(Debug)]
pub struct Job {
    pub op: WriteOp,
    pub caller: Caller,
    pub reply: oneshot::Sender<Result<Written, ApiError>>,
}

/// Where the writer writes from, fixed at start.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub post: String,
    pub authority: String,
    pub offset: UtcOffset,
    pub actor: ActorId,
    /// The node key: every change this node makes is signed with it.
    pub signer: outpost_model::trust::Signer,
    pub compact_after_changes: u64,
    pub max_loaded_docs: usize,
    /// What the quarantine may hold.
    pub quarantine: QuarantineLimits,
    /// Where the time is read: the machine's clocks, or the simulator's.
    pub clock: Arc<dyn crate::clock::Clock>,
    /// The user the daemon runs as, for the audit records it writes itself.
    pub daemon_uid: u32,
}

/// The replication engine and where its frames go; absent when networking
/// is off.
#[derive(Debug)]
pub struct Replication {
    pub engine: Engine,
    pub net: mpsc::UnboundedSender<NetCommand>,
}

/// Jobs wait in two queues: officers' requests, and what peers and the
/// network hand in. The writer always takes an officer's request first, so
/// an officer never waits behind a queue of peers' frames, only behind the
/// one job the writer is doing.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    officers: mpsc::Sender<Job>,
    peers: mpsc::Sender<Job>,
}

/// Officers' requests waiting before a client waits to hand one in.
const OFFICER_JOBS: usize = 1024;
/// Peers' frames (and connection events) waiting before the network waits
/// to hand one in: a reading task then stops reading its peer, so a peer
/// that sends faster than the writer takes its frames holds at most this
/// many frames (1 MiB each at most) in memory. Waiting senders are served
/// in turn (tokio's channel is fair), so the network's own events wait
/// behind at most the frames already queued, never behind a flood.
pub const PEER_JOBS: usize = 64;

impl WriterHandle {
    fn queue_for(&self, op: &WriteOp) -> &mpsc::Sender<Job> {
        match op {
            // An officer's `outpost sync` does not wait behind peers.
            WriteOp::Replication(ReplicationInput::SyncNow(_)) => &self.officers,
            WriteOp::Replication(_) => &self.peers,
            _ => &self.officers,
        }
    }

    /// Hands the writer an input without waiting for it to be handled.
    pub async fn notify(&self, op: WriteOp) -> bool {
        let (reply, _) = oneshot::channel();
        self.queue_for(&op).send(Job { op, caller: Caller::daemon(), reply }).await.is_ok()
    }

    pub async fn submit(&self, op: WriteOp, caller: &Caller) -> Result<Written, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue_for(&op)
            .send(Job { op, caller: caller.clone(), reply })
            .await
            .map_err(|_| ApiError::new(ErrorKind::Internal, "outpostd is shutting down"))?;
        answer.await.map_err(|_| ApiError::new(ErrorKind::Internal, "the writer stopped before answering"))?
    }
}

/// The running writer thread.
#[derive(Debug)]
pub struct WriterThread {
    pub join: std::thread::JoinHandle<()>,
    /// Completes when the thread ends, whether it returned or panicked.
    pub stopped: oneshot::Receiver<()>,
}

/// Signals the thread's end from its own stack, so a panic is seen too.
struct StopSignal(Option<oneshot::Sender<()>>);

impl Drop for StopSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the writer thread. It ends when every handle is dropped and the
/// queue is drained.
pub fn spawn(
    store: Arc<Store>,
    index: SharedIndex,
    settings: WriterSettings,
    replication: Option<Replication>,
) -> std::io::Result<(WriterHandle, WriterThread)> {
    let (officers, officers_rx) = mpsc::channel(OFFICER_JOBS);
    let (peers, peers_rx) = mpsc::channel(PEER_JOBS);
    let (stop_tx, stopped) = oneshot::channel();
    let join = std::thread::Builder::new().name("outpost-writer".into()).spawn(move || {
        let _signal = StopSignal(Some(stop_tx));
        WriterCore::start(store, index, settings, replication).run(officers_rx, peers_rx);
    })?;
    Ok((WriterHandle { officers, peers }, WriterThread { join, stopped }))
}

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

    fn run(mut self, mut officers: mpsc::Receiver<Job>, mut peers: mpsc::Receiver<Job>) {
        // Waiting on two queues at once takes a runtime; a small one of
        // this thread's own, used for nothing else.
        let waiter = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(error = %err, "the writer cannot wait for jobs; it stops");
                return;
            }
        };
        loop {
            let ready = officers.try_recv().or_else(|_| peers.try_recv());
            let job = match ready {
                Ok(job) => job,
                Err(_) => {
                    if self.compact_one() {
                        continue;
                    }
                    let next = waiter.block_on(async {
                        tokio::select! {
                            biased;
                            job = officers.recv() => job,
                            job = peers.recv() => job,
                        }
                    });
                    match next {
                        Some(job) => job,
                        // Every handle is gone (both queues close together).
                        None => break,
                    }
                }
            };
            let result = self.handle(job.op, &job.caller);
            // The caller may have gone; the write stands either way.
            let _ = job.reply.send(result);
        }
        tracing::info!("writer stopped");
    }
}

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

fn storage_failed(err: StoreError) -> ApiError {
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
    /// After a job panicked: every document in memory is dropped (each is
    /// reloaded from what was stored), and the peer whose frame it was is
    /// disconnected, so that nothing half-applied is stored or sent.
    fn after_panic(&mut self, panic: &str) {
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

    /// After a storage error: the database is opened again (redb refuses
    /// everything until it is), so that the next write can succeed once
    /// the disk works or has room again. For a second, and until a reopen
    /// works, peers' frames are dropped rather than applied and refused.
    fn storage_failed_now(&mut self) {
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
    fn storage_retry(&mut self, officer: bool) {
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
            WriteOp::PublishRoster(bytes) => self.publish_roster(&bytes, caller).map(Written::RosterPublished),
            WriteOp::RevocationCut { peer } => self.cut_for(&peer, caller).map(Written::Cut),
            officer => self.officer_write(officer, caller),
        }
    }
}
