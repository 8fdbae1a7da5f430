//! The control-socket protocol between `outpost` and `outpostd`.
//!
//! Frames are a 4-byte big-endian length followed by that many bytes of
//! UTF-8 JSON. Every request names the protocol version it speaks; the daemon
//! refuses other versions with `unsupported_version` instead of guessing.
//! Inputs carry raw strings: all validation happens in the daemon through
//! this crate, so the CLI holds no rules of its own.

use serde::{Deserialize, Serialize};

use crate::audit::AuditRecord;
use crate::date::Timestamp;
use crate::ids::{EntryId, NodeId};
use crate::incident::{Incident, IncidentSummary};
use crate::search::SearchHit;
use crate::watchlist::{Entry, EntrySummary};

pub const PROTOCOL_VERSION: u32 = 1;
/// Large enough for an import batch of a few thousand entries, small enough
/// that a hostile or broken client cannot make the daemon buffer much.
pub const MAX_REQUEST_BYTES: u32 = 4 * 1024 * 1024;
pub const MAX_RESPONSE_BYTES: u32 = 64 * 1024 * 1024;
/// The control socket's file name, in whichever directory holds it.
pub const SOCKET_FILE: &str = "outpostd.sock";
/// Qualifier, organisation and application for `directories::ProjectDirs`,
/// so the daemon and the CLI agree on the per-user default socket.
pub const PROJECT_DIRS: (&str, &str, &str) = ("org", "UNODC", "outpost");

/// Upper bound on rows in one list or audit page.
pub const MAX_PAGE: u32 = 10_000;

/// Encodes one frame: length prefix plus JSON.
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let body = serde_json::to_vec(value)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestEnvelope {
    pub version: u32,
    pub request: Request,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    WatchlistAdd {
        entry: Box<NewEntryInput>,
    },
    /// All or nothing: either every entry is stored or none is.
    WatchlistImport {
        entries: Vec<NewEntryInput>,
    },
    WatchlistShow {
        id: String,
        #[serde(default)]
        purpose: Option<String>,
    },
    WatchlistList {
        #[serde(default)]
        status: Option<String>,
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        purpose: Option<String>,
    },
    WatchlistSearch(Box<SearchInput>),
    WatchlistAmend {
        id: String,
        amendment: Box<AmendInput>,
    },
    WatchlistSetStatus {
        id: String,
        status: String,
        reason: String,
    },
    IncidentLog {
        incident: Box<NewIncidentInput>,
    },
    IncidentList {
        #[serde(default)]
        since: Option<String>,
        #[serde(default)]
        follow_up: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
    },
    IncidentShow {
        id: String,
    },
    IncidentNote {
        id: String,
        text: String,
    },
    IncidentSetFollowUp {
        id: String,
        follow_up: String,
        #[serde(default)]
        note: Option<String>,
    },
    Audit {
        #[serde(default)]
        since: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
        /// Another post's log, as this node (its national centre) holds it.
        #[serde(default)]
        post: Option<String>,
    },
    /// Check another post's log, as this node holds it, against the post's
    /// signed heads and the trail of records that arrived.
    AuditVerify {
        post: String,
    },
    /// Every peer this post has seen since it started.
    Peers,
    /// `outpost status --check`: the post's health against the thresholds
    /// its config sets; a monitoring agent's question.
    HealthCheck,
    /// Exchange digests now with one peer (peer id, or a unique prefix of
    /// it or of its name) or with every connected peer.
    SyncNow {
        #[serde(default)]
        peer: Option<String>,
    },
    /// The fleet roster this node holds, and where it stands in it.
    FleetRoster,
    /// A roster the administrator signed (hex of its bytes), to install
    /// and spread to every peer.
    FleetPublish {
        roster: String,
    },
    /// The cut a revocation of this peer would record: for each of its
    /// actors in each document, the newest change this node holds.
    FleetCut {
        peer: String,
    },
    /// `outpost backup`: a consistent snapshot of the whole store. The
    /// reply [`Response::BackupStarted`] is followed by the backup as a
    /// byte stream (see [`STREAM_CHUNK_BYTES`]), then by one more reply:
    /// [`Response::BackupWritten`], or the error that ended it.
    Backup,
}

/// A byte stream on the control socket (a backup, today) comes after the
/// reply that starts it, as chunks of at most this many bytes, each a
/// 4-byte big-endian length and the bytes; a chunk of length 0 ends it.
/// The reply that says how it went follows, framed as every reply is.
pub const STREAM_CHUNK_BYTES: u32 = 256 * 1024;

/// The start of a backup, as the daemon took it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupStarted {
    /// The store's node id.
    pub node_id: String,
    pub taken_at: Timestamp,
    /// The outpostd version that writes it.
    pub outpostd: String,
}

/// A backup written to its end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupWritten {
    pub tables: u32,
    pub rows: u64,
    pub bytes: u64,
    /// The SHA-256 its last item carries, which a restore checks (hex).
    pub sha256: String,
}

/// What a caller of the control socket may do, from the Unix groups it
/// is in (`[roles]` in the daemon's config names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Searches, shows and lists; records and follows up incidents; sees
    /// status and peers.
    Officer,
    /// Adds, imports, amends, suspends, reactivates and closes entries.
    Supervisor,
    /// Reads the audit log.
    Auditor,
    /// The daemon's own user and root: everything.
    Admin,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl Request {
    /// The role a caller needs for this request. Publishing a roster and
    /// computing a revocation's cut need a supervisor's: what authorises a
    /// roster is the admin key's signature, checked by the daemon, and both
    /// are audited with who asked; a cut reads every document, which an
    /// officer has no cause to make the post do.
    pub fn needs(&self) -> Option<Role> {
        match self {
            Request::Status
            | Request::HealthCheck
            | Request::Peers
            | Request::SyncNow { .. }
            | Request::WatchlistSearch(_)
            | Request::WatchlistShow { .. }
            | Request::WatchlistList { .. }
            | Request::IncidentLog { .. }
            | Request::IncidentList { .. }
            | Request::IncidentShow { .. }
            | Request::IncidentNote { .. }
            | Request::IncidentSetFollowUp { .. }
            | Request::FleetRoster => Some(Role::Officer),
            Request::WatchlistAdd { .. }
            | Request::FleetPublish { .. }
            | Request::FleetCut { .. }
            | Request::WatchlistImport { .. }
            | Request::WatchlistAmend { .. }
            | Request::WatchlistSetStatus { .. } => Some(Role::Supervisor),
            Request::Audit { .. } | Request::AuditVerify { .. } => Some(Role::Auditor),
            // Every record and the audit log, in one file: the daemon's own
            // user and root only.
            Request::Backup => Some(Role::Admin),
        }
    }
}

/// A new watchlist entry as typed by an officer. Fields that do not apply to
/// the entry's kind must be left empty; validation says which one was not.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewEntryInput {
    pub kind: String,
    pub category: String,
    pub reason: String,
    pub action: Option<String>,
    pub warnings: Vec<String>,
    pub valid_from: Option<String>,
    pub expires: Option<String>,
    // person
    pub names: Vec<String>,
    pub dobs: Vec<String>,
    pub nationalities: Vec<String>,
    /// `TYPE:ISSUER:NUMBER`, e.g. `passport:TJK:A1234567`.
    pub documents: Vec<String>,
    pub gender: Option<String>,
    // vehicle
    pub plates: Vec<String>,
    pub vin: Option<String>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub colour: Option<String>,
    pub country: Option<String>,
    pub wanted: Option<String>,
    // travel document
    pub doc_type: Option<String>,
    pub number: Option<String>,
    pub issuing_state: Option<String>,
    pub doc_status: Option<String>,
    pub issued: Option<String>,
    pub doc_expires: Option<String>,
    pub event_date: Option<String>,
    // cargo
    pub description: Option<String>,
    pub containers: Vec<String>,
    pub hs_code: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmendInput {
    pub category: Option<String>,
    pub reason: Option<String>,
    pub action: Option<String>,
    pub expires: Option<String>,
    pub clear_expires: bool,
    pub add_names: Vec<String>,
    pub remove_names: Vec<String>,
    pub add_dobs: Vec<String>,
    pub remove_dobs: Vec<String>,
    pub add_nationalities: Vec<String>,
    pub remove_nationalities: Vec<String>,
    pub add_documents: Vec<String>,
    pub remove_documents: Vec<String>,
    pub add_warnings: Vec<String>,
    pub remove_warnings: Vec<String>,
    pub add_plates: Vec<String>,
    pub remove_plates: Vec<String>,
    pub vin: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchInput {
    pub query: String,
    pub dob: Option<String>,
    pub nationality: Option<String>,
    pub limit: Option<u32>,
    /// Why the officer is looking; required, and written to the audit log.
    pub purpose: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewIncidentInput {
    pub incident_type: String,
    /// RFC 3339, or local post time `YYYY-MM-DD HH:MM`; now if absent.
    pub at: Option<String>,
    pub location: Option<String>,
    pub narrative: String,
    /// `SUBSTANCE:QUANTITY:UNIT`, e.g. `heroin:1.5:kg`.
    pub seized: Vec<String>,
    pub persons: Vec<String>,
    pub plates: Vec<String>,
    /// Watchlist entries this incident is a hit on.
    pub hits: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    pub version: u32,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok(Response),
    Error(ApiError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Status(Box<StatusInfo>),
    Created(Created),
    Imported(Imported),
    Entry(Box<EntryView>),
    Entries(EntryList),
    Matches(SearchResults),
    Incident(Box<Incident>),
    Incidents(IncidentList),
    Audit(AuditPage),
    AuditCheck(AuditCheck),
    Peers(PeerList),
    Health(HealthReport),
    SyncStarted(SyncStarted),
    Fleet(Box<FleetView>),
    RosterPublished(RosterPublished),
    Cut(CutList),
    BackupStarted(BackupStarted),
    BackupWritten(BackupWritten),
}

/// The fleet as this node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetView {
    /// `fleet` (a roster signed by the admin key decides), `psk-only`
    /// (every holder of the fleet key), `nobody` (no admin key configured)
    /// or `off` (this post does not network).
    pub mode: String,
    /// The admin public key this node is configured with.
    pub fleet_admin: Option<String>,
    /// The admin key that signed the roster held (the last of its chain).
    pub signing_key: Option<String>,
    /// 0: no roster yet.
    pub version: u64,
    /// The signed roster, hex, for the CLI to build the next version from.
    pub roster: Option<String>,
    pub members: Vec<MemberView>,
    /// This node's peer id.
    pub this_node: String,
    /// Where this node's config and its roster entry disagree.
    pub conflicts: Vec<String>,
    /// Changes held until they can be judged: until a roster lets them in,
    /// or the changes they depend on arrive.
    pub held_changes: u64,
    /// Who receives each kind of document:
    /// `watchlists=fleet incidents=country audit=national-centres`.
    #[serde(default)]
    pub reads: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberView {
    pub peer_id: String,
    pub name: String,
    pub role: String,
    pub authority: String,
    /// `None`: a regional body.
    pub country: Option<String>,
    pub rights: Vec<String>,
    pub legacy_actors: Vec<String>,
    pub revoked: bool,
    /// The roster version that revoked it.
    pub revoked_in: Option<u64>,
    /// Its changes admitted here by an honest member's attestation, after
    /// its revocation (since this node started).
    pub attested_changes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RosterPublished {
    pub version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CutList {
    /// Hex of the cut's entries (postcard), to put into the revocation.
    pub cut: String,
    /// How many entries (document × actor).
    pub entries: u64,
}

/// The health checks, most severe first, each passed or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthReport {
    pub checks: Vec<HealthCheck>,
}

impl HealthReport {
    /// The most severe check that failed.
    pub fn worst(&self) -> Option<&HealthCheck> {
        self.checks.iter().filter(|c| !c.ok).min_by_key(|c| c.check)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthCheck {
    pub check: HealthCheckKind,
    pub ok: bool,
    /// What was found, against which threshold.
    pub detail: String,
}

/// What is checked, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthCheckKind {
    /// A durable write to the store succeeds.
    Store,
    /// The data directory's file system has room.
    Disk,
    /// Some peer was heard from recently.
    Peers,
    /// The roster was recently confirmed the newest.
    Roster,
}

impl std::fmt::Display for HealthCheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Store => "store",
            Self::Disk => "disk",
            Self::Peers => "peers",
            Self::Roster => "roster",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerList {
    pub peers: Vec<PeerView>,
}

/// One peer as this post knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerView {
    pub peer_id: String,
    /// The name it gave when it last connected.
    pub name: String,
    pub addresses: Vec<String>,
    pub connected: bool,
    pub last_seen: Option<Timestamp>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// When the last digest exchange with it ran.
    pub last_reconciled: Option<Timestamp>,
    /// Documents this post holds that the peer may receive and that were
    /// not found to differ.
    pub in_sync_documents: u64,
    /// Documents found to differ, still being synced.
    pub differing: Vec<PeerDocument>,
    /// Documents are exchanged with it (both are active members).
    pub syncing: bool,
    /// The roster version it announced.
    pub roster_version: u64,
    /// Changes from it refused in this connection, by reason.
    pub refused: std::collections::BTreeMap<String, u64>,
    /// Bytes of document frames received from it since this node started,
    /// by document kind (`watchlist`, `incidents`, `unknown`).
    #[serde(default)]
    pub document_bytes_received: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerDocument {
    pub doc: String,
    /// Changes this post holds that the peer may lack (counted from the
    /// last heads both were known to hold); absent when not counted.
    pub changes_behind: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncStarted {
    pub peers: Vec<String>,
}

/// Replication as `outpost status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicationStatus {
    pub psk_fingerprint: String,
    /// The next fleet key's fingerprint, during a rotation.
    #[serde(default)]
    pub psk_next_fingerprint: Option<String>,
    /// `fleet`, `psk-only` or `nobody`; see [`FleetView::mode`].
    pub membership: String,
    /// The version of the roster held (0: none).
    pub roster_version: u64,
    /// This node's role and name in the roster, when it is a member.
    pub roster_role: Option<String>,
    pub roster_revoked: bool,
    /// Where this node's config and its roster entry disagree.
    pub conflicts: Vec<String>,
    /// Changes held until they can be judged: until a roster lets them in,
    /// or the changes they depend on arrive.
    pub held_changes: u64,
    pub connected_peers: u64,
    /// The document held here longest since shown to agree with any peer.
    pub stalest_document: Option<String>,
    /// When that was; `None`: never compared with a peer since this start.
    pub stalest_agreed_at: Option<Timestamp>,
    /// Signs that a post's audit log, as it reached this node, was
    /// tampered with: `POST record N: what showed`.
    #[serde(default)]
    pub audit_alarms: Vec<String>,
}

/// An entry as shown to an officer: the stored record plus what it means
/// today at this post.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryView {
    #[serde(flatten)]
    pub entry: Entry,
    /// Past its expiry date; no longer an alert, whatever its status.
    pub expired: bool,
    /// Active, in force and unexpired: a strong hit on it is an alert.
    pub in_force: bool,
}

impl EntryView {
    pub fn new(entry: Entry, today: crate::date::Day) -> Self {
        Self { expired: entry.is_expired(today), in_force: entry.is_in_force(today), entry }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Imported {
    pub ids: Vec<EntryId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryList {
    pub entries: Vec<EntrySummary>,
    /// Entries that matched the filter, before the limit.
    pub total: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchResults {
    pub matches: Vec<SearchHit>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentList {
    pub incidents: Vec<IncidentSummary>,
    pub total: u64,
}

/// What checking a post's audit log found (`outpost audit verify`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditCheck {
    pub post: String,
    pub records: u64,
    /// The lowest record number held (earlier records predate mirroring).
    pub first: Option<u64>,
    /// The newest record's number and hash, as the post signed them.
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    /// Whether the post's key is known here, so signatures were checked.
    pub signatures_checked: bool,
    /// Every sign of tampering; empty when the log holds.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    /// Whose log: `None` for this node's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
    pub records: Vec<AuditRecord>,
    /// The whole chain was re-hashed from the first record to the last.
    pub chain_verified: bool,
    pub chain_length: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusInfo {
    pub node_id: NodeId,
    pub node_name: String,
    pub authority: String,
    pub version: String,
    pub protocol_version: u32,
    pub entries: u64,
    pub active_entries: u64,
    pub incidents: u64,
    pub documents: u64,
    pub audit_records: u64,
    pub started_at: Timestamp,
    pub uptime_secs: u64,
    pub data_dir: String,
    pub socket: String,
    pub storage: StorageStatus,
    /// The libp2p peer id; `None` when the post does not network.
    pub peer_id: Option<String>,
    /// The actor prefix (32 hex digits) this node wrote with before fleet
    /// trust, when its store is that old; the admin binds it to the node
    /// with `outpost fleet enroll … --legacy-actor`.
    #[serde(default)]
    pub legacy_actor: Option<String>,
    /// Whether the roster this node holds binds that actor to it.
    #[serde(default)]
    pub legacy_actor_bound: bool,
    pub listen_addrs: Vec<String>,
    pub replication: Option<ReplicationStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageStatus {
    pub file_bytes: u64,
    /// Incremental changes not yet compacted into snapshots.
    pub pending_changes: u64,
    /// Whether the database needed repair when it was opened.
    pub repaired_on_open: bool,
    pub format_version: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    BadInput,
    NotFound,
    Forbidden,
    TooLarge,
    UnsupportedVersion,
    /// Every connection slot is answering a request; try again shortly.
    Busy,
    /// The storage failed (a full disk, an IO error): nothing was stored.
    /// The daemon retries by itself; try again once the disk has room.
    Unavailable,
    Internal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::error::ModelError> for ApiError {
    fn from(err: crate::error::ModelError) -> Self {
        use crate::error::ModelError;
        let kind = match &err {
            ModelError::Invalid(_) => ErrorKind::BadInput,
            ModelError::NotFound { .. } => ErrorKind::NotFound,
            ModelError::Forbidden(_) => ErrorKind::Forbidden,
            _ => ErrorKind::Internal,
        };
        ApiError::new(kind, err.to_string())
    }
}

impl From<crate::error::ValidationError> for ApiError {
    fn from(err: crate::error::ValidationError) -> Self {
        ApiError::new(ErrorKind::BadInput, err.to_string())
    }
}

/// The response the daemon sends for a request it could not even parse.
pub fn error_envelope(kind: ErrorKind, message: impl Into<String>) -> ResponseEnvelope {
    ResponseEnvelope { version: PROTOCOL_VERSION, outcome: Outcome::Error(ApiError::new(kind, message)) }
}

/// The reply to a write that created a record (entry or incident).
pub fn created(id: impl std::fmt::Display) -> Response {
    Response::Created(Created { id: id.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_op() {
        let json = r#"{"version":1,"request":{"op":"watchlist_search","query":"Aliev","purpose":"check"}}"#;
        let env: RequestEnvelope = serde_json::from_str(json).unwrap();
        assert!(matches!(env.request, Request::WatchlistSearch(ref s) if s.query == "Aliev"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let json = r#"{"version":1,"request":{"op":"watchlist_search","query":"x","purpose":"p","evil":1}}"#;
        assert!(serde_json::from_str::<RequestEnvelope>(json).is_err());
    }

    #[test]
    fn responses_carry_ok_or_error() {
        let ok = ResponseEnvelope { version: 1, outcome: Outcome::Ok(created("abc")) };
        let text = serde_json::to_string(&ok).unwrap();
        assert_eq!(text, r#"{"version":1,"ok":{"type":"created","id":"abc"}}"#);
        let err = error_envelope(ErrorKind::BadInput, "nope");
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(text, r#"{"version":1,"error":{"kind":"bad_input","message":"nope"}}"#);
        let back: ResponseEnvelope = serde_json::from_str(&text).unwrap();
        assert!(matches!(back.outcome, Outcome::Error(e) if e.kind == ErrorKind::BadInput));
    }

    #[test]
    fn frames_are_length_prefixed() {
        let frame = encode_frame(&serde_json::json!({"a":1})).unwrap();
        assert_eq!(&frame[..4], &7u32.to_be_bytes());
        assert_eq!(&frame[4..], br#"{"a":1}"#);
    }
}
