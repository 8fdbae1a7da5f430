//! What goes into the writer and comes out: requests (`WriteOp`) with
//! who made them (`Caller`), answers (`Written`), reports, and what the
//! writer is started with (`WriterSettings`, `Replication`).

use std::sync::{Arc, RwLock};

use automerge::ActorId;
use outpost_model::api::{AmendInput, ApiError, NewEntryInput, NewIncidentInput};
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

use super::{AuditLog, QuarantineLimits};
use crate::net::NetCommand;

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
    /// The watchdog's probe: answered from memory, so an answer says the
    /// writer takes jobs.
    Health,
    /// `outpost status --check`: one durable write, to show the store
    /// takes writes.
    ProbeStore,
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

/// What the watchdog, systemd's STATUS= line and the metrics read: from
/// memory only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// Peers connected and past their hello.
    pub peers_ready: usize,
    /// Documents some connected peer holds differently.
    pub documents_differing: usize,
    /// Changes held until a roster lets them in.
    pub held: u64,
    /// The store failed its last write and is being retried.
    pub storage_failing: bool,
    /// Each connected peer, by peer id.
    pub peers: Vec<PeerHealth>,
    /// Changes refused from any peer since start, by reason.
    pub refused: std::collections::BTreeMap<String, u64>,
    /// The fleet runs on a signed roster (not psk-only, not off).
    pub roster_expected: bool,
    /// The roster version held (0: none).
    pub roster_version: u64,
    /// When the roster was last confirmed the newest (engine time).
    pub roster_confirmed_at: Option<Timestamp>,
}

/// One connected peer, as the engine sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerHealth {
    pub peer: String,
    /// The name it gave in its hello.
    pub name: String,
    pub last_reconciled: Option<Timestamp>,
}

#[derive(Debug)]
pub enum Written {
    Health(HealthSnapshot),
    StoreProbed,
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
    /// Where commit latencies are observed, for the metrics.
    pub latencies: crate::metrics::Latencies,
}

/// The replication engine and where its frames go; absent when networking
/// is off.
#[derive(Debug)]
pub struct Replication {
    pub engine: Engine,
    pub net: mpsc::UnboundedSender<NetCommand>,
}
