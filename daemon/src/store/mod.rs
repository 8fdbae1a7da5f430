//! Durable storage in one redb file.
//!
//! | table | key | value | holds |
//! |---|---|---|---|
//! | `meta` | name | bytes | node id, creation time |
//! | `table_versions` | table name | u32 | format version of each table |
//! | `doc_snapshots` | doc id | bytes | last compacted Automerge `save()` |
//! | `doc_changes` | (doc id, seq) | hash ‖ bytes | Automerge changes since the snapshot |
//! | `doc_seq` | doc id | u64 | last sequence number given to a change, never reused |
//! | `entries` | entry id | JSON [`Entry`] | projection read by queries |
//! | `incidents` | incident id | JSON [`Incident`] | projection read by queries |
//! | `audit` | seq | JSON [`AuditRecord`] | hash-chained audit log |
//! | `search_keys` | entry id | postcard [`IndexRecord`] | what the search index reloads at start |
//! | `doc_heads` | doc id | 32-byte hashes | each document's heads, for the replication inventory at start |
//! | `sync_states` | (peer id, doc id) | Automerge sync state | what a reconnect to that peer resumes from |
//! | `audit_trail` | (post, seq) | JSON [`TrailEntry`] | each record of other posts' audit logs this node holds, by number |
//! | `audit_alarms` | (post, seq) | text | signs that a post's audit log was tampered with |
//!
//! `backup.rs` writes every table as one read transaction sees it, and
//! restores that into an empty data directory.
//!
//! Every write that the daemon acknowledges went through [`Store::commit`]:
//! one redb transaction holding the document change, the projection rows it
//! produced and its audit record, committed with fsync before the reply.

pub mod backend;
pub mod backup;
mod read;
mod trail;
mod trust;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outpost_model::audit::log::TrailEntry;
use outpost_model::audit::{AuditRecord, GENESIS_HASH};
use outpost_model::incident::Incident;
use outpost_model::search::{INDEX_RECORD_VERSION, IndexRecord};
use outpost_model::trust::proof::StoredProof;
use outpost_model::watchlist::Entry;
use outpost_model::{DocId, NodeId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

pub use self::backend::{Faults, Medium, SimulatedDisk};
use thiserror::Error;

pub use read::{AuditView, Counts, EntryFilter, IncidentFilter, Lookup, RecordCounts, StoredDoc};
pub use trust::HeldRecord;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const TABLE_VERSIONS: TableDefinition<&str, u32> = TableDefinition::new("table_versions");
pub(crate) const DOC_SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("doc_snapshots");
pub(crate) const DOC_CHANGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("doc_changes");
pub(crate) const DOC_SEQ: TableDefinition<&str, u64> = TableDefinition::new("doc_seq");
pub(crate) const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
pub(crate) const INCIDENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("incidents");
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
pub(crate) const SEARCH_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("search_keys");
pub(crate) const DOC_HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("doc_heads");
pub(crate) const SYNC_STATES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("sync_states");
/// (doc id, change hash) → the proofs kept beside that change (postcard).
pub(crate) const CHANGE_PROOFS: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("change_proofs");
/// (doc id, change hash) → a change held back until a roster lets it in.
pub(crate) const QUARANTINE: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("quarantine");
/// Revoked member's name → its changes beyond the cut this node admitted
/// on an attestation.
pub(crate) const ATTESTED: TableDefinition<&str, u64> = TableDefinition::new("attested");
/// (post, record number) → the record of that post's audit log held here.
pub(crate) const AUDIT_TRAIL: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit_trail");
/// (post, record number) → what showed that post's audit log was tampered with.
pub(crate) const AUDIT_ALARMS: TableDefinition<(&str, u64), &str> = TableDefinition::new("audit_alarms");

/// The format version this build writes, per table. A table recorded with a
/// higher version was written by a newer release: we refuse to touch it
/// rather than misread it. A lower version needs a migration step here.
const FORMAT: &[(&str, u32)] = &[
    ("meta", 1),
    ("doc_snapshots", 1),
    ("doc_changes", 1),
    ("entries", 1),
    ("incidents", 1),
    ("audit", 1),
    ("doc_heads", 1),
    ("sync_states", 1),
    ("change_proofs", 1),
    ("quarantine", 1),
    ("attested", 1),
    ("audit_trail", 1),
    ("audit_alarms", 1),
];

pub const DB_FILE: &str = "outpost.redb";

/// The health check's probe write: about an officer's add (the change,
/// its projection and index rows, and its audit record), with room over.
pub const PROBE_BYTES: usize = 64 * 1024;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database {path} is already in use by another outpostd")]
    InUse { path: PathBuf },
    #[error("database {path}: {source}")]
    Open { path: PathBuf, source: redb::DatabaseError },
    #[error(
        "table {table} has format version {found}, newer than this outpostd supports ({supported}); upgrade outpostd"
    )]
    TooNew { table: String, found: u32, supported: u32 },
    #[error("table {table} has format version {found} and no migration to {supported} exists")]
    NoMigration { table: String, found: u32, supported: u32 },
    #[error("damaged row in {table} at {key}: {detail}")]
    Damaged { table: &'static str, key: String, detail: String },
    #[error("storage: {0}")]
    Redb(#[from] redb::Error),
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("encoding an index record: {0}")]
    Postcard(#[from] postcard::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit record {seq} does not continue the stored chain (it ends at record {last})")]
    AuditOutOfStep { seq: u64, last: u64 },
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// The storage itself failed (an IO error, a full disk, a failed
    /// fsync): redb refuses everything until the database is reopened.
    pub fn needs_reopen(&self) -> bool {
        match self {
            StoreError::Redb(err) => matches!(err, redb::Error::Io(_) | redb::Error::PreviousIo),
            StoreError::Unavailable(_) | StoreError::Io(_) => true,
            _ => false,
        }
    }

    /// The disk is full.
    pub fn disk_full(&self) -> bool {
        match self {
            StoreError::Redb(redb::Error::Io(err)) | StoreError::Io(err) => {
                err.kind() == std::io::ErrorKind::StorageFull
            }
            _ => false,
        }
    }
}

/// Whether this build may open a table recorded at format `found`.
fn check_format(table: &str, found: u32, supported: u32) -> Result<(), StoreError> {
    if found > supported {
        return Err(StoreError::TooNew { table: table.to_string(), found, supported });
    }
    if found < supported {
        return Err(StoreError::NoMigration { table: table.to_string(), found, supported });
    }
    Ok(())
}

/// Reads the table versions of an existing database without opening it
/// for writing, and refuses one this build must not open: opening it for
/// writing would already change the file (redb marks it open), and a
/// store from a newer release must go back to that release untouched. A
/// file that cannot be read this way (new, empty, or in need of repair) is
/// left to the normal open, which checks the versions again.
fn refuse_unsupported_format(path: &Path) -> Result<(), StoreError> {
    if std::fs::metadata(path).map(|m| m.len() == 0).unwrap_or(true) {
        return Ok(());
    }
    let Ok(database) = redb::Builder::new().open_read_only(path) else { return Ok(()) };
    let Ok(txn) = database.begin_read() else { return Ok(()) };
    let Ok(versions) = txn.open_table(TABLE_VERSIONS) else { return Ok(()) };
    for (table, supported) in FORMAT {
        if let Some(found) = versions.get(*table).map_err(db)?.map(|v| v.value()) {
            check_format(table, found, *supported)?;
        }
    }
    Ok(())
}

/// The database holds every watchlist and incident and the audit log:
/// only the daemon's user reads it, whatever the umask, or the mode a copy
/// was restored with. Officers read through the socket. A missing file is
/// created empty with mode 0600 (redb makes a database of an empty file).
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => return Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err.into()),
    }
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        tracing::warn!(path = %path.display(), was = format!("{:o}", mode & 0o777), "the database was readable by others; made it readable by the daemon's user only");
    }
    Ok(())
}

pub(crate) fn encode_record(record: &IndexRecord) -> Result<Vec<u8>, StoreError> {
    Ok(postcard::to_stdvec(record)?)
}

/// Converts any redb error into [`StoreError`].
pub(crate) fn db<E: Into<redb::Error>>(err: E) -> StoreError {
    StoreError::Redb(err.into())
}

/// One atomic write: document changes, the projection rows they produce and
/// the audit events that record who did it.
#[derive(Debug, Default)]
pub struct Batch {
    pub changes: Vec<(DocId, Vec<u8>)>,
    pub entries: Vec<Entry>,
    pub incidents: Vec<Incident>,
    /// The search index's records of `entries`, kept in step with them.
    pub index_records: Vec<IndexRecord>,
    /// Audit records, sealed onto the stored chain by the writer.
    pub audit: Vec<AuditRecord>,
    /// Records of other posts' audit logs that arrived, for the trail.
    pub trail: Vec<(String, TrailEntry, u64)>,
    /// Signs of tampering those records showed.
    pub alarms: Vec<(String, u64, String)>,
    /// The heads of every document in `changes` after them.
    pub heads: Vec<(DocId, Vec<automerge::ChangeHash>)>,
    /// Sync states to keep, per (peer id, document).
    pub sync_states: Vec<(String, DocId, Vec<u8>)>,
    /// Proofs to keep beside changes (added to those kept before).
    pub proofs: Vec<(DocId, automerge::ChangeHash, StoredProof)>,
    /// Held changes handed back to the engine, removed from the
    /// quarantine (before `hold`, which holds again what still waits).
    pub release: std::collections::BTreeSet<(DocId, automerge::ChangeHash)>,
    /// Changes to hold back until a roster lets them in.
    pub hold: Vec<(DocId, automerge::ChangeHash, HeldRecord)>,
    /// The signed roster this node now holds.
    pub roster: Option<Vec<u8>>,
    /// Changes of revoked members admitted on an attestation, to add to
    /// their counts.
    pub attested: Vec<(String, u64)>,
    /// The history written before fleet trust is signed by this batch.
    pub legacy_history_signed: bool,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
            && self.entries.is_empty()
            && self.incidents.is_empty()
            && self.audit.is_empty()
            && self.trail.is_empty()
            && self.alarms.is_empty()
            && self.sync_states.is_empty()
            && self.proofs.is_empty()
            && self.release.is_empty()
            && self.hold.is_empty()
            && self.roster.is_none()
            && self.attested.is_empty()
            && !self.legacy_history_signed
    }
}

/// What a commit assigned: sequence numbers of stored changes, sealed audit records.
#[derive(Debug, Default)]
pub struct Receipt {
    pub change_seqs: Vec<(DocId, u64)>,
    pub audit: Vec<AuditRecord>,
}

#[derive(Debug)]
pub struct Store {
    /// `None` only while it is being reopened.
    db: std::sync::RwLock<Option<Database>>,
    medium: Medium,
    path: PathBuf,
    node_id: NodeId,
    repaired_on_open: bool,
    /// The stored index records were written by another matcher version.
    search_keys_stale: bool,
    audit_check: std::sync::Mutex<read::VerifiedPrefix>,
}

impl Store {
    /// Opens or creates the database in `dir`. `fresh_node_id` is used only
    /// when the database is new.
    pub fn open(dir: &Path, fresh_node_id: [u8; 16]) -> Result<Self, StoreError> {
        Self::open_on(Medium::File(dir.to_path_buf()), fresh_node_id)
    }

    /// Opens or creates the database on `medium`.
    pub fn open_on(medium: Medium, fresh_node_id: [u8; 16]) -> Result<Self, StoreError> {
        let path = match &medium {
            Medium::File(dir) | Medium::Faulty(dir, _) => dir.join(DB_FILE),
            Medium::Memory => PathBuf::from("(memory)"),
            Medium::Simulated(_) => PathBuf::from("(simulated disk)"),
        };
        if let Medium::File(_) = medium {
            refuse_unsupported_format(&path)?;
        }
        let (db, repaired_on_open) = open_database(&medium, &path)?;
        if repaired_on_open {
            tracing::warn!(path = %path.display(), "database was not closed cleanly and needed repair");
        }
        let (node_id, search_keys_stale) = Self::prepare(&db, fresh_node_id)?;
        Ok(Self {
            db: std::sync::RwLock::new(Some(db)),
            medium,
            path,
            node_id,
            repaired_on_open,
            search_keys_stale,
            audit_check: std::sync::Mutex::new(read::VerifiedPrefix::default()),
        })
    }

    /// Opens the database again after an IO error, which redb answers
    /// with a refusal of everything until it is reopened. What was
    /// committed before is intact (each commit is two-phase); what failed
    /// was not stored. Fails while the medium still fails, or for a store
    /// in memory, which a reopen would empty.
    pub fn reopen(&self) -> Result<(), StoreError> {
        if matches!(self.medium, Medium::Memory) {
            return Err(StoreError::Unavailable("a store in memory cannot be reopened".into()));
        }
        let mut slot = self.db.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The old handle must be gone before the file is opened again: it
        // holds the file's lock.
        drop(slot.take());
        let (db, repaired) = open_database(&self.medium, &self.path)?;
        if repaired {
            tracing::warn!(path = %self.path.display(), "the database needed repair when reopened");
        }
        *slot = Some(db);
        tracing::info!(path = %self.path.display(), "database reopened after a storage error");
        Ok(())
    }

    /// Checks table versions and creates what a new database lacks.
    fn prepare(database: &Database, fresh_node_id: [u8; 16]) -> Result<(NodeId, bool), StoreError> {
        let mut txn = database.begin_write().map_err(db)?;
        txn.set_quick_repair(true);
        let node_id;
        let search_keys_stale;
        {
            let mut versions = txn.open_table(TABLE_VERSIONS).map_err(db)?;
            // Index records are derived data: another version is rebuilt, not
            // refused. The new version is recorded only together with the
            // rebuilt records (`replace_index_records`): a crash in between
            // must not leave old records marked current, since records of two
            // versions may decode alike and silently stop matching.
            let recorded = versions.get("search_keys").map_err(db)?.map(|v| v.value());
            search_keys_stale = recorded != Some(INDEX_RECORD_VERSION);
            // Written before fleet trust: no change is signed yet.
            let before_trust =
                versions.get("meta").map_err(db)?.is_some() && versions.get("change_proofs").map_err(db)?.is_none();
            for (table, supported) in FORMAT {
                let found = versions.get(*table).map_err(db)?.map(|v| v.value());
                match found {
                    None => {
                        versions.insert(*table, *supported).map_err(db)?;
                    }
                    Some(found) => check_format(table, found, *supported)?,
                }
            }
            let mut meta = txn.open_table(META).map_err(db)?;
            let existing = meta.get("node_id").map_err(db)?.map(|v| v.value().to_vec());
            node_id = match existing {
                Some(bytes) => {
                    let bytes: [u8; 16] = bytes.try_into().map_err(|_| StoreError::Damaged {
                        table: "meta",
                        key: "node_id".into(),
                        detail: "not 16 bytes".into(),
                    })?;
                    NodeId::from_bytes(bytes)
                }
                None => {
                    meta.insert("node_id", fresh_node_id.as_slice()).map_err(db)?;
                    NodeId::from_bytes(fresh_node_id)
                }
            };
            if before_trust && node_id.as_bytes() != &fresh_node_id {
                // Its changes were written with actors made from the
                // store's random node id, not from the node's key: the node
                // signs that history once (`Writer::sign_legacy_history`),
                // and the roster binds the id to it (`--legacy-actor`).
                meta.insert(trust::LEGACY_ACTOR_KEY, node_id.as_bytes().as_slice()).map_err(db)?;
                meta.insert(trust::LEGACY_UNSIGNED_KEY, [1u8].as_slice()).map_err(db)?;
                tracing::warn!(legacy_actor = %node_id, "this store was written before fleet trust; its history is signed once by this node's key");
            }
            txn.open_table(DOC_SNAPSHOTS).map_err(db)?;
            txn.open_table(DOC_CHANGES).map_err(db)?;
            txn.open_table(DOC_SEQ).map_err(db)?;
            txn.open_table(ENTRIES).map_err(db)?;
            txn.open_table(INCIDENTS).map_err(db)?;
            txn.open_table(AUDIT).map_err(db)?;
            txn.open_table(SEARCH_KEYS).map_err(db)?;
            txn.open_table(DOC_HEADS).map_err(db)?;
            txn.open_table(SYNC_STATES).map_err(db)?;
            txn.open_table(CHANGE_PROOFS).map_err(db)?;
            txn.open_table(QUARANTINE).map_err(db)?;
            txn.open_table(ATTESTED).map_err(db)?;
            txn.open_table(AUDIT_TRAIL).map_err(db)?;
            txn.open_table(AUDIT_ALARMS).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok((node_id, search_keys_stale))
    }

    /// Whether the index records must be rebuilt from the projection.
    pub fn search_keys_stale(&self) -> bool {
        self.search_keys_stale
    }

    /// Replaces every stored index record and marks them current, in one
    /// transaction.
    pub fn replace_index_records(&self, records: &[IndexRecord]) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(SEARCH_KEYS).map_err(db)?;
            table.retain(|_, _| false).map_err(db)?;
            for record in records {
                table.insert(record.id.to_string().as_str(), encode_record(record)?.as_slice()).map_err(db)?;
            }
            txn.open_table(TABLE_VERSIONS).map_err(db)?.insert("search_keys", INDEX_RECORD_VERSION).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(())
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn repaired_on_open(&self) -> bool {
        self.repaired_on_open
    }

    pub fn format_version(&self) -> u32 {
        FORMAT.iter().map(|(_, v)| *v).max().unwrap_or(1)
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, StoreError> {
        let slot = self.db.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let database = slot.as_ref().ok_or_else(|| StoreError::Unavailable("the database is being reopened".into()))?;
        let mut txn = database.begin_write().map_err(db)?;
        // Saves the allocator state with each commit, so that reopening after
        // a crash needs no full repair; it also turns on two-phase commit.
        txn.set_quick_repair(true);
        Ok(txn)
    }

    /// Writes a batch durably. When this returns `Ok`, the batch survives a
    /// crash or power loss; on `Err` none of it was written.
    pub fn commit(&self, batch: Batch) -> Result<Receipt, StoreError> {
        let txn = self.begin_write()?;
        let mut receipt = Receipt::default();
        {
            let mut changes = txn.open_table(DOC_CHANGES).map_err(db)?;
            let mut seqs = txn.open_table(DOC_SEQ).map_err(db)?;
            for (doc, bytes) in &batch.changes {
                // Numbers are never reused, even after compaction deleted the
                // rows, so (doc, seq) names one change for good.
                let next = seqs.get(doc.as_str()).map_err(db)?.map_or(0, |v| v.value()) + 1;
                seqs.insert(doc.as_str(), next).map_err(db)?;
                changes.insert((doc.as_str(), next), bytes.as_slice()).map_err(db)?;
                receipt.change_seqs.push((doc.clone(), next));
            }
            let mut entries = txn.open_table(ENTRIES).map_err(db)?;
            for entry in &batch.entries {
                entries.insert(entry.id.to_string().as_str(), serde_json::to_vec(entry)?.as_slice()).map_err(db)?;
            }
            let mut keys = txn.open_table(SEARCH_KEYS).map_err(db)?;
            for record in &batch.index_records {
                keys.insert(record.id.to_string().as_str(), encode_record(record)?.as_slice()).map_err(db)?;
            }
            let mut incidents = txn.open_table(INCIDENTS).map_err(db)?;
            for incident in &batch.incidents {
                incidents
                    .insert(incident.id.to_string().as_str(), serde_json::to_vec(incident)?.as_slice())
                    .map_err(db)?;
            }
            let mut heads = txn.open_table(DOC_HEADS).map_err(db)?;
            for (doc, hashes) in &batch.heads {
                let bytes: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
                heads.insert(doc.as_str(), bytes.as_slice()).map_err(db)?;
            }
            let mut states = txn.open_table(SYNC_STATES).map_err(db)?;
            for (peer, doc, state) in &batch.sync_states {
                states.insert((peer.as_str(), doc.as_str()), state.as_slice()).map_err(db)?;
            }
            trust::write(&txn, &batch)?;
            trail::write(&txn, &batch)?;
            let mut audit = txn.open_table(AUDIT).map_err(db)?;
            let (mut seq, mut prev) = last_audit(&audit)?;
            for record in batch.audit {
                // The writer seals records onto the chain it read; one that
                // does not continue what is stored is refused whole.
                if record.seq != seq + 1 || record.prev_hash != prev {
                    return Err(StoreError::AuditOutOfStep { seq: record.seq, last: seq });
                }
                audit.insert(record.seq, serde_json::to_vec(&record)?.as_slice()).map_err(db)?;
                seq = record.seq;
                prev = record.hash.clone();
                receipt.audit.push(record);
            }
        }
        txn.commit().map_err(db)?;
        Ok(receipt)
    }

    /// The number and hash of the last audit record: where the next one
    /// is sealed onto.
    pub fn audit_head(&self) -> Result<(u64, String), StoreError> {
        let txn = self.read_txn()?;
        let audit = txn.open_table(AUDIT).map_err(db)?;
        last_audit(&audit)
    }

    /// Replaces a document's snapshot and drops the changes it now contains.
    pub fn compact(&self, doc: &DocId, snapshot: &[u8], upto_seq: u64) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut snapshots = txn.open_table(DOC_SNAPSHOTS).map_err(db)?;
            snapshots.insert(doc.as_str(), snapshot).map_err(db)?;
            let mut changes = txn.open_table(DOC_CHANGES).map_err(db)?;
            changes.retain_in((doc.as_str(), 0)..=(doc.as_str(), upto_seq), |_, _| false).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(())
    }

    /// One durable write of [`PROBE_BYTES`] that changes nothing else:
    /// the time of the last health check, padded to the size of an
    /// officer's typical write, so that a store with room for a few bytes
    /// but not for a record does not pass.
    pub fn write_probe(&self, now: outpost_model::date::Timestamp) -> Result<(), StoreError> {
        let slot = self.db.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let database = slot.as_ref().ok_or_else(|| StoreError::Unavailable("the database is being reopened".into()))?;
        let mut value = vec![0u8; PROBE_BYTES];
        value[..8].copy_from_slice(&now.as_millis().to_be_bytes());
        let txn = database.begin_write().map_err(db)?;
        {
            let mut meta = txn.open_table(META).map_err(db)?;
            meta.insert("health_probe", value.as_slice()).map_err(db)?;
        }
        txn.commit().map_err(db)
    }

    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    pub(crate) fn read_txn(&self) -> Result<redb::ReadTransaction, StoreError> {
        let slot = self.db.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let database = slot.as_ref().ok_or_else(|| StoreError::Unavailable("the database is being reopened".into()))?;
        database.begin_read().map_err(db)
    }
}

/// Opens (or creates) the database on `medium`; says whether it needed
/// repair.
fn open_database(medium: &Medium, path: &Path) -> Result<(Database, bool), StoreError> {
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = repaired.clone();
    let mut builder = Database::builder();
    // Queries read single rows and start-up reads the index records once;
    // redb's default 1 GiB page cache would only grow the daemon's RSS.
    builder.set_cache_size(64 * 1024 * 1024);
    builder.set_repair_callback(move |_| flag.store(true, Ordering::Relaxed));
    let opened = match medium {
        Medium::File(_) => {
            create_private(path)?;
            builder.create(path)
        }
        Medium::Memory => builder.create_with_backend(redb::backends::InMemoryBackend::new()),
        Medium::Simulated(disk) => builder.create_with_backend(disk.backend()),
        Medium::Faulty(_, faults) => {
            create_private(path)?;
            builder.create_with_backend(backend::FaultyBackend::open(path, faults.clone())?)
        }
    };
    let db = opened.map_err(|source| match source {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: path.to_path_buf() },
        source => StoreError::Open { path: path.to_path_buf(), source },
    })?;
    Ok((db, repaired.load(Ordering::Relaxed)))
}

fn last_audit(audit: &impl ReadableTable<u64, &'static [u8]>) -> Result<(u64, String), StoreError> {
    match audit.last().map_err(db)? {
        Some((k, v)) => {
            let record: AuditRecord = serde_json::from_slice(v.value()).map_err(|e| StoreError::Damaged {
                table: "audit",
                key: k.value().to_string(),
                detail: e.to_string(),
            })?;
            Ok((record.seq, record.hash))
        }
        None => Ok((0, GENESIS_HASH.to_string())),
    }
}

#[cfg(test)]
mod tests;
