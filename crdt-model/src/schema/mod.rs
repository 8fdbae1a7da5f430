//! The mapping between domain records and Automerge documents.
//!
//! Every document has a deterministic *genesis* change: the same actor (a
//! hash of the document id), time 0 and the same operations on every node.
//! Two posts that create `watchlist/KAZ-BS/0f` independently therefore hold
//! the same root objects and merge cleanly, instead of each creating its own
//! `entries` map, one of which would hide the other after a merge.
//!
//! Records are maps keyed by their UUID under the root. Scalar fields are
//! plain map keys, so concurrent writes of one field are kept by Automerge as
//! a conflict, which [`FieldReader`] reports. Sets (names, plates, warnings…)
//! are maps keyed by the element's normalised form: a concurrent add and
//! remove of an element leaves it present (add-wins), and two posts adding the
//! same element converge to one.

pub mod audit;
pub mod incidents;
pub mod watchlist;

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use sha2::{Digest, Sha256};

use crate::date::Timestamp;
use crate::error::{ModelError, ValidationError};
use crate::ids::{DocId, EntryId, NodeId};
use crate::watchlist::FieldConflict;

/// The schema version written into every document's root.
pub const SCHEMA_VERSION: u64 = 1;
/// Watchlist entries of one authority are spread over this many documents by
/// a hash of the entry id. Fixed fleet-wide: changing it would re-home
/// entries. 16 keeps a 100,000-entry authority at about 6,000 entries per
/// document, which loads in ~0.13 s and compacts in ~40 ms instead of ~2.2 s
/// and ~0.65 s (`outpost-bench shards`).
pub const WATCHLIST_SHARDS: u8 = 16;

/// What a document holds, decoded from its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocKind {
    Watchlist {
        authority: String,
        shard: u8,
    },
    Incidents {
        post: String,
        month: String,
    },
    /// A post's audit log of one month, mirrored from its local log so
    /// that its national centre can check it (`schema/audit.rs`).
    Audit {
        post: String,
        month: String,
    },
}

impl DocKind {
    pub fn doc_id(&self) -> DocId {
        match self {
            DocKind::Watchlist { authority, shard } => {
                DocId::from_parts(&["watchlist", authority, &format!("{shard:02x}")])
            }
            DocKind::Incidents { post, month } => DocId::from_parts(&["incidents", post, month]),
            DocKind::Audit { post, month } => DocId::from_parts(&["audit", post, month]),
        }
    }

    pub fn parse(id: &DocId) -> Result<Self, ValidationError> {
        let parts: Vec<&str> = id.as_str().split('/').collect();
        let bad = || ValidationError::Malformed {
            field: "document id",
            value: id.to_string(),
            expected: "watchlist/AUTHORITY/SHARD, incidents/POST/YYYY-MM or audit/POST/YYYY-MM",
        };
        let kind = match parts.as_slice() {
            ["watchlist", authority, shard] => {
                let shard = u8::from_str_radix(shard, 16).map_err(|_| bad())?;
                if shard >= WATCHLIST_SHARDS || authority.is_empty() {
                    return Err(bad());
                }
                DocKind::Watchlist { authority: authority.to_string(), shard }
            }
            ["incidents", post, month] if !post.is_empty() && is_month(month) => {
                DocKind::Incidents { post: post.to_string(), month: month.to_string() }
            }
            ["audit", post, month] if !post.is_empty() && is_month(month) => {
                DocKind::Audit { post: post.to_string(), month: month.to_string() }
            }
            _ => return Err(bad()),
        };
        // One document, one id: `watchlist/X/0f` and `watchlist/X/f` would
        // otherwise be two documents for one shard.
        if kind.doc_id() != *id {
            return Err(bad());
        }
        Ok(kind)
    }

    /// The month a monthly document covers (`YYYY-MM`), `None` for a
    /// watchlist shard.
    pub fn month(&self) -> Option<&str> {
        match self {
            DocKind::Watchlist { .. } => None,
            DocKind::Incidents { month, .. } | DocKind::Audit { month, .. } => Some(month),
        }
    }

    /// The watchlist document an entry lives in.
    pub fn watchlist_for(authority: &str, entry: &EntryId) -> Self {
        let digest = Sha256::digest(entry.as_uuid().as_bytes());
        DocKind::Watchlist { authority: authority.to_string(), shard: digest[0] % WATCHLIST_SHARDS }
    }

    /// An id admission takes for a new entry in this watchlist shard, made
    /// from `seed`: for tools that build documents shard by shard
    /// (benchmarks, simulators, tests), where an officer's entry gets a
    /// fresh id and goes to the shard the id picks. `None` for an incident
    /// log.
    pub fn entry_id_from(&self, seed: u128) -> Option<EntryId> {
        let DocKind::Watchlist { authority, .. } = self else { return None };
        (0..u128::from(u16::MAX)).find_map(|k| {
            let id = EntryId::owned_by(authority, uuid::Uuid::from_u128(seed ^ (k << 80)));
            (DocKind::watchlist_for(authority, &id) == *self).then_some(id)
        })
    }

    /// The root map that holds the records.
    pub fn records_key(&self) -> &'static str {
        match self {
            DocKind::Watchlist { .. } => "entries",
            DocKind::Incidents { .. } => "incidents",
            DocKind::Audit { .. } => "records",
        }
    }
}

/// `YYYY-MM` with a month from 01 to 12.
fn is_month(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    bytes.len() == 7
        && digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && matches!(text.get(5..7).and_then(|m| m.parse::<u8>().ok()), Some(1..=12))
}

/// Who made a change and when; becomes the Automerge change's time and message.
#[derive(Debug, Clone)]
pub struct ChangeMeta {
    pub at: Timestamp,
    /// `uid@post`, e.g. `1000@kz-nurzhol`.
    pub by: String,
    pub op: &'static str,
}

impl ChangeMeta {
    fn message(&self) -> String {
        serde_json::json!({"op": self.op, "by": self.by}).to_string()
    }
}

/// The actor a node writes with. The node id is the prefix so that every
/// change can be attributed to a node; the suffix is drawn anew at every
/// start, so a node restored from an old backup never reuses a sequence
/// number it already spent (which would fork its own history).
pub fn actor_for(node: &NodeId, start_nonce: [u8; 4]) -> ActorId {
    let mut bytes = node.as_bytes().to_vec();
    bytes.extend_from_slice(&start_nonce);
    ActorId::from(bytes)
}

/// A change as stored: its 32-byte hash, then its (possibly compressed)
/// bytes. Automerge does not verify a change's checksum when parsing one,
/// so the hash is what reveals a damaged record on load.
pub fn stored_change(change: &mut automerge::Change) -> Vec<u8> {
    let mut out = change.hash().0.to_vec();
    out.extend_from_slice(&change.bytes());
    out
}

fn parse_stored_change(stored: &[u8]) -> Result<automerge::Change, String> {
    if stored.len() <= 32 {
        return Err(format!("{} bytes is too short for a change", stored.len()));
    }
    let (hash, bytes) = stored.split_at(32);
    let change = automerge::Change::from_bytes(bytes.to_vec()).map_err(|e| e.to_string())?;
    if change.hash().0 != hash {
        return Err(format!("content does not match its hash {}", hex::encode(hash)));
    }
    Ok(change)
}

/// One Automerge document and its id.
#[derive(Debug)]
pub struct Document {
    id: DocId,
    kind: DocKind,
    doc: AutoCommit,
    /// The deterministic genesis change's hash: a copy received from a
    /// peer must hold it, or its root objects are not ours.
    genesis: Vec<ChangeHash>,
    /// The highest sequence number of each actor, as of the heads noted.
    clock: Option<(Vec<ChangeHash>, BTreeMap<ActorId, u64>)>,
}

/// One step of a path from a document's root: a map key, or a list
/// element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Elem,
}

/// The actor of a document's deterministic genesis change.
fn genesis_actor(id: &DocId) -> ActorId {
    let digest = Sha256::digest(format!("outpost genesis {id}").as_bytes());
    ActorId::from(&digest[..16])
}

impl Document {
    /// Creates the document with its deterministic genesis change.
    pub fn genesis(kind: DocKind) -> Result<Self, ModelError> {
        let id = kind.doc_id();
        // automerge draws a throwaway random actor on construction; it is
        // replaced before any operation, so no output depends on it.
        let mut doc = AutoCommit::new().with_actor(genesis_actor(&id));
        doc.put(ROOT, "schema", SCHEMA_VERSION)?;
        match &kind {
            DocKind::Watchlist { authority, shard } => {
                doc.put(ROOT, "kind", "watchlist")?;
                doc.put(ROOT, "authority", authority.as_str())?;
                doc.put(ROOT, "shard", u64::from(*shard))?;
            }
            DocKind::Incidents { post, month } => {
                doc.put(ROOT, "kind", "incidents")?;
                doc.put(ROOT, "post", post.as_str())?;
                doc.put(ROOT, "month", month.as_str())?;
            }
            DocKind::Audit { post, month } => {
                doc.put(ROOT, "kind", "audit")?;
                doc.put(ROOT, "post", post.as_str())?;
                doc.put(ROOT, "month", month.as_str())?;
            }
        }
        doc.put_object(ROOT, kind.records_key(), ObjType::Map)?;
        doc.commit_with(CommitOptions::default().with_time(0).with_message(format!("genesis {id}")));
        let genesis = doc.get_heads();
        Ok(Self { id, kind, doc, genesis, clock: None })
    }

    /// Loads a stored document: an optional snapshot plus incremental changes.
    /// Without a snapshot the genesis change is the base. Automerge panics
    /// on some damaged snapshots and change sets (fuzzing finding F4); a
    /// damaged disk gets an error naming the document, never a panic.
    pub fn load<'a>(
        id: &DocId,
        snapshot: Option<&[u8]>,
        changes: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, ModelError> {
        crate::error::guard(move || Self::load_unguarded(id, snapshot, changes))
            .map_err(|panic| ModelError::schema(id, "stored document", format!("damaged: {panic}")))?
    }

    fn load_unguarded<'a>(
        id: &DocId,
        snapshot: Option<&[u8]>,
        changes: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, ModelError> {
        let kind = DocKind::parse(id)?;
        let mut document = match snapshot {
            Some(bytes) => {
                let genesis = Self::genesis(kind.clone())?.genesis;
                Self { id: id.clone(), kind, doc: AutoCommit::load(bytes)?, genesis, clock: None }
            }
            None => Self::genesis(kind)?,
        };
        // Parsed one by one: automerge's incremental loader skips bytes it
        // cannot read, and a damaged record must be reported, not dropped.
        let mut parsed = Vec::new();
        for (n, stored) in changes.into_iter().enumerate() {
            parsed.push(parse_stored_change(stored).map_err(|detail| {
                ModelError::schema(id, format!("stored change {}", n + 1), format!("damaged: {detail}"))
            })?);
        }
        document.doc.apply_changes(parsed)?;
        let missing = document.doc.get_missing_deps(&[]);
        if !missing.is_empty() {
            return Err(ModelError::schema(
                id,
                "changes",
                format!("{} change(s) depend on changes that are not stored", missing.len()),
            ));
        }
        document.check_root()?;
        Ok(document)
    }

    fn check_root(&self) -> Result<(), ModelError> {
        let schema = match self.doc.get(ROOT, "schema")? {
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Uint(v) => *v,
                ScalarValue::Int(v) => u64::try_from(*v).unwrap_or(u64::MAX),
                _ => u64::MAX,
            },
            _ => return Err(ModelError::schema(&self.id, "/schema", "missing")),
        };
        if schema > SCHEMA_VERSION {
            return Err(ModelError::schema(
                &self.id,
                "/schema",
                format!("schema version {schema} is newer than this outpostd understands ({SCHEMA_VERSION}); upgrade"),
            ));
        }
        match self.doc.get(ROOT, self.kind.records_key())? {
            Some((Value::Object(ObjType::Map), _)) => Ok(()),
            _ => Err(ModelError::schema(&self.id, self.kind.records_key(), "missing record map")),
        }
    }

    pub fn id(&self) -> &DocId {
        &self.id
    }

    /// The deterministic genesis change every copy of this document holds.
    pub fn genesis_heads(&self) -> &[ChangeHash] {
        &self.genesis
    }

    /// The actor only the genesis change is made with.
    pub fn genesis_actor(&self) -> ActorId {
        genesis_actor(&self.id)
    }

    pub fn kind(&self) -> &DocKind {
        &self.kind
    }

    /// The highest sequence number `actor` has in this document (0: none).
    pub fn seq_of(&mut self, actor: &ActorId) -> u64 {
        let heads = self.doc.get_heads();
        let clock = match self.clock.take() {
            Some((at, clock)) if at == heads => clock,
            Some((at, mut clock)) => {
                for meta in self.doc.get_changes_meta(&at) {
                    let seq = clock.entry(meta.actor.into_owned()).or_default();
                    *seq = (*seq).max(meta.seq);
                }
                clock
            }
            None => {
                let mut clock: BTreeMap<ActorId, u64> = BTreeMap::new();
                for meta in self.doc.get_changes_meta(&[]) {
                    let seq = clock.entry(meta.actor.into_owned()).or_default();
                    *seq = (*seq).max(meta.seq);
                }
                clock
            }
        };
        let seq = clock.get(actor).copied().unwrap_or(0);
        self.clock = Some((heads, clock));
        seq
    }

    /// Each actor's newest change, sorted by actor: `(actor, seq, hash)`.
    /// Proofs over these cover the whole document.
    pub fn actor_tips(&mut self) -> Vec<(ActorId, u64, ChangeHash)> {
        let mut tips: BTreeMap<ActorId, (u64, ChangeHash)> = BTreeMap::new();
        for meta in self.doc.get_changes_meta(&[]) {
            let entry = tips.entry(meta.actor.into_owned()).or_insert((meta.seq, meta.hash));
            if meta.seq > entry.0 {
                *entry = (meta.seq, meta.hash);
            }
        }
        tips.into_iter().map(|(actor, (seq, hash))| (actor, seq, hash)).collect()
    }

    /// A change this copy holds: its actor, sequence number and
    /// dependencies.
    pub fn change_meta(&mut self, hash: &ChangeHash) -> Option<(ActorId, u64, Vec<ChangeHash>)> {
        self.doc.get_change_meta_by_hash(hash).map(|m| (m.actor.into_owned(), m.seq, m.deps))
    }

    /// Where the object made by operation `counter@actor` sits, from the
    /// root; `None` if this copy holds no such object.
    pub fn path_of(&self, counter: u64, actor: &ActorId) -> Option<Vec<Seg>> {
        let (id, _) = self.doc.import(&format!("{counter}@{actor}")).ok()?;
        let parents = self.doc.parents(&id).ok()?;
        Some(
            parents
                .path()
                .into_iter()
                .map(|(_, prop)| match prop {
                    automerge::Prop::Map(key) => Seg::Key(key),
                    automerge::Prop::Seq(_) => Seg::Elem,
                })
                .collect(),
        )
    }

    /// Whether the root is intact and each of `records` (record keys, as
    /// the admission found them touched) still reads.
    pub fn check_records<'a>(&self, records: impl IntoIterator<Item = &'a String>) -> Result<(), ModelError> {
        self.check_root()?;
        for key in records {
            match &self.kind {
                DocKind::Watchlist { .. } => {
                    let id =
                        EntryId::parse(key).map_err(|e| ModelError::schema(&self.id, key.as_str(), e.to_string()))?;
                    watchlist::read_entry(self, id)?;
                }
                DocKind::Incidents { .. } => {
                    let id = crate::ids::IncidentId::parse(key)
                        .map_err(|e| ModelError::schema(&self.id, key.as_str(), e.to_string()))?;
                    incidents::read_incident(self, id)?;
                }
                DocKind::Audit { .. } => {
                    audit::read_audit_record(self, key)?;
                }
            }
        }
        Ok(())
    }

    pub fn set_actor(&mut self, actor: ActorId) {
        self.doc.set_actor(actor);
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// A compressed snapshot of the whole document.
    pub fn save(&mut self) -> Vec<u8> {
        self.doc.save()
    }

    /// Read access for projections and tests.
    pub fn read(&self) -> &AutoCommit {
        &self.doc
    }

    /// The next Automerge sync message for a peer whose sync state is
    /// `state`; `None` when there is nothing to say until it answers.
    pub fn generate_sync_message(&mut self, state: &mut automerge::sync::State) -> Option<automerge::sync::Message> {
        use automerge::sync::SyncDoc;
        self.doc.sync().generate_sync_message(state)
    }

    /// Applies a peer's sync message. Automerge checks every change's hash
    /// against its dependencies as it applies it.
    pub fn receive_sync_message(
        &mut self,
        state: &mut automerge::sync::State,
        message: automerge::sync::Message,
    ) -> Result<(), ModelError> {
        use automerge::sync::SyncDoc;
        self.doc.sync().receive_sync_message(state, message)?;
        Ok(())
    }

    /// Whether every change named in `heads` is here.
    pub fn knows(&mut self, heads: &[ChangeHash]) -> bool {
        heads.iter().all(|h| self.doc.get_change_by_hash(h).is_some())
    }

    /// The changes this copy holds beyond `heads`, in the form storage keeps
    /// them ([`stored_change`]): what a merge or a sync brought in.
    pub fn stored_changes_since(&mut self, heads: &[ChangeHash]) -> Vec<Vec<u8>> {
        self.doc.get_changes(heads).iter_mut().map(stored_change).collect()
    }

    /// The changes this copy holds beyond `heads`.
    pub fn changes_since(&mut self, heads: &[ChangeHash]) -> Vec<automerge::Change> {
        self.doc.get_changes(heads)
    }

    /// The number of changes this copy holds beyond `heads`: how far behind
    /// a peer whose last known heads are `heads` is.
    pub fn count_changes_since(&mut self, heads: &[ChangeHash]) -> usize {
        self.doc.get_changes_meta(heads).len()
    }

    /// The ids of the records (entries or incidents) that changed between
    /// `before` and the current heads, so that only those are projected
    /// again after a merge.
    ///
    /// Read from the new changes' own operations: the record an operation
    /// writes is the one its object hangs under. A diff of the document
    /// would do, but it walks the whole records map, so a peer sending
    /// thousands of one-change bundles to a large document would cost the
    /// writer the document's size per change. Where an operation's object
    /// cannot be placed, the diff answers instead. The set may name a
    /// record whose visible content ended as it was (a concurrent write
    /// that lost); projecting it again is harmless.
    pub fn touched_records(&mut self, before: &[ChangeHash]) -> std::collections::BTreeSet<String> {
        let changes = self.doc.get_changes(before);
        self.touched_in(&changes, before)
    }

    /// The changes this copy holds beyond `before`, as stored
    /// ([`stored_change`]), and the records they touched
    /// ([`Document::touched_records`]): what storing a merge needs, with
    /// the changes gathered once.
    pub fn merged_since(&mut self, before: &[ChangeHash]) -> (Vec<Vec<u8>>, std::collections::BTreeSet<String>) {
        let mut changes = self.doc.get_changes(before);
        let touched = self.touched_in(&changes, before);
        (changes.iter_mut().map(stored_change).collect(), touched)
    }

    fn touched_in(
        &mut self,
        changes: &[automerge::Change],
        before: &[ChangeHash],
    ) -> std::collections::BTreeSet<String> {
        let Ok(records) = self.records_obj() else { return Default::default() };
        let doc = &self.doc;
        // Placing an object walks Automerge's parent links, which it
        // unwraps: a crafted change must not panic the writer here.
        crate::error::guard(|| touched_by_operations(doc, changes, &records))
            .ok()
            .flatten()
            .unwrap_or_else(|| self.touched_by_diff(before, &records))
    }

    fn touched_by_diff(&mut self, before: &[ChangeHash], records: &ObjId) -> std::collections::BTreeSet<String> {
        let after = self.doc.get_heads();
        let mut touched = std::collections::BTreeSet::new();
        for patch in self.doc.diff(before, &after) {
            let key = match patch.path.get(1) {
                Some((obj, automerge::Prop::Map(key))) if obj == records => Some(key.clone()),
                _ if patch.obj == *records => match patch.action {
                    automerge::PatchAction::PutMap { key, .. } | automerge::PatchAction::DeleteMap { key } => Some(key),
                    _ => None,
                },
                _ => None,
            };
            touched.extend(key);
        }
        touched
    }

    /// Applies changes that passed admission, as one batch: a failure
    /// leaves none of them applied.
    /// Applies changes. If Automerge panics on them (a crafted change),
    /// the error says so and the document must be discarded: it may be
    /// half-changed.
    pub fn apply_changes(&mut self, changes: Vec<automerge::Change>) -> Result<(), ModelError> {
        let doc = &mut self.doc;
        crate::error::guard(move || doc.apply_changes(changes)).map_err(ModelError::AutomergePanicked)??;
        Ok(())
    }

    /// Checks that the changes since `before` are exactly `applied`, each
    /// under its own hash, when `applied` were just applied on top of
    /// `before`. Automerge applies
    /// some crafted changes without error and then encodes them otherwise
    /// (an operation's predecessor dropped), or panics reading them back
    /// (fuzzing findings F3 and F6, `fuzz/README.md`): the document would
    /// then fail every later read, and what is stored would not be what
    /// was signed. On an error the document must be discarded.
    pub fn check_round_trip(
        &mut self,
        before: &[ChangeHash],
        applied: &std::collections::BTreeSet<ChangeHash>,
    ) -> Result<(), ModelError> {
        let doc = &mut self.doc;
        let back: std::collections::BTreeSet<ChangeHash> =
            crate::error::guard(move || doc.get_changes(before).iter().map(|c| c.hash()).collect())
                .map_err(ModelError::AutomergePanicked)?;
        // Exactly what was applied comes back: a change missing is one
        // re-encoded otherwise, and an extra one would be stored unjudged.
        match applied.symmetric_difference(&back).next() {
            Some(hash) => Err(ModelError::NotGivenBack(hash.to_string())),
            None => Ok(()),
        }
    }

    /// Merges another copy of this document.
    pub fn merge(&mut self, other: &mut Document) -> Result<(), ModelError> {
        self.doc.merge(&mut other.doc)?;
        Ok(())
    }

    /// A copy of this document that can diverge, as another post's replica would.
    pub fn fork(&mut self, actor: ActorId) -> Self {
        Self {
            id: self.id.clone(),
            kind: self.kind.clone(),
            doc: self.doc.fork().with_actor(actor),
            genesis: self.genesis.clone(),
            clock: None,
        }
    }

    /// Runs `edit` as one atomic change. On error every operation of the edit
    /// is rolled back and the document is as before. On success returns the
    /// edit's result and the change as [`stored_change`] encodes it; `None`
    /// means the edit wrote nothing.
    pub fn transact<T>(
        &mut self,
        meta: &ChangeMeta,
        edit: impl FnOnce(&mut Records<'_>) -> Result<T, ModelError>,
    ) -> Result<(T, Option<Vec<u8>>), ModelError> {
        let records = self.records_obj()?;
        let mut scope = Records { doc: &mut self.doc, doc_id: &self.id, records, meta };
        match edit(&mut scope) {
            Ok(value) => {
                let options = CommitOptions::default().with_time(meta.at.as_millis()).with_message(meta.message());
                let Some(hash) = self.doc.commit_with(options) else {
                    return Ok((value, None));
                };
                match self.doc.get_change_by_hash(&hash) {
                    Some(mut change) => Ok((value, Some(stored_change(&mut change)))),
                    None => Err(ModelError::schema(&self.id, "commit", format!("change {hash} vanished after commit"))),
                }
            }
            Err(err) => {
                self.doc.rollback();
                Err(err)
            }
        }
    }

    /// The map of records (entries or incidents).
    pub fn records_obj(&self) -> Result<ObjId, ModelError> {
        match self.doc.get(ROOT, self.kind.records_key())? {
            Some((Value::Object(ObjType::Map), id)) => Ok(id),
            _ => Err(ModelError::schema(&self.id, self.kind.records_key(), "missing record map")),
        }
    }
}

/// The records `changes` write, read from their operations; `None` where
/// an operation's object cannot be placed under a record.
fn touched_by_operations(
    doc: &AutoCommit,
    changes: &[automerge::Change],
    records: &ObjId,
) -> Option<std::collections::BTreeSet<String>> {
    let records_id = records.to_string();
    let mut touched = std::collections::BTreeSet::new();
    let mut nested = std::collections::BTreeSet::new();
    for change in changes {
        for op in change.decode().operations {
            let obj = op.obj.to_string();
            if obj == records_id {
                match op.key {
                    automerge::legacy::Key::Map(key) => {
                        touched.insert(key.to_string());
                    }
                    automerge::legacy::Key::Seq(_) => return None,
                }
            } else {
                nested.insert(obj);
            }
        }
    }
    for obj in nested {
        let (id, _) = doc.import(&obj).ok()?;
        if id == ObjId::Root {
            continue;
        }
        let path = doc.parents(&id).ok()?.path();
        // Objects outside the records map (the document's own fields)
        // touch no record.
        if let Some((_, prop)) = path.iter().find(|(parent, _)| parent == records) {
            match prop {
                automerge::Prop::Map(key) => {
                    touched.insert(key.clone());
                }
                automerge::Prop::Seq(_) => return None,
            }
        }
    }
    Some(touched)
}

/// Write access to a document's records inside one transaction.
#[derive(Debug)]
pub struct Records<'a> {
    pub(crate) doc: &'a mut AutoCommit,
    pub(crate) doc_id: &'a DocId,
    pub(crate) records: ObjId,
    pub(crate) meta: &'a ChangeMeta,
}

impl Records<'_> {
    /// The map of one record, if present.
    pub(crate) fn record(&self, key: &str) -> Result<Option<ObjId>, ModelError> {
        match self.doc.get(&self.records, key)? {
            Some((Value::Object(ObjType::Map), id)) => Ok(Some(id)),
            Some(_) => Err(ModelError::schema(self.doc_id, key, "record is not a map")),
            None => Ok(None),
        }
    }

    /// The map-as-set at `obj[key]`, created if absent.
    pub(crate) fn set_obj(&mut self, obj: &ObjId, key: &str) -> Result<ObjId, ModelError> {
        match self.doc.get(obj, key)? {
            Some((Value::Object(ObjType::Map), id)) => Ok(id),
            _ => Ok(self.doc.put_object(obj, key, ObjType::Map)?),
        }
    }

    pub(crate) fn put_opt_str(&mut self, obj: &ObjId, key: &str, value: Option<&str>) -> Result<(), ModelError> {
        match value {
            Some(v) => self.doc.put(obj, key, v)?,
            None => {
                if self.doc.get(obj, key)?.is_some() {
                    self.doc.delete(obj, key)?;
                }
            }
        }
        Ok(())
    }

    /// Stamps the record as updated by this change.
    pub(crate) fn touch(&mut self, obj: &ObjId) -> Result<(), ModelError> {
        self.doc.put(obj, "updated_at", ScalarValue::Timestamp(self.meta.at.as_millis()))?;
        self.doc.put(obj, "updated_by", self.meta.by.as_str())?;
        Ok(())
    }
}

/// Reads one record's fields, collecting concurrent values as conflicts.
pub(crate) struct FieldReader<'a> {
    pub doc: &'a AutoCommit,
    pub doc_id: &'a DocId,
    pub obj: ObjId,
    pub path: String,
    pub conflicts: Vec<FieldConflict>,
}

impl<'a> FieldReader<'a> {
    pub fn new(doc: &'a AutoCommit, doc_id: &'a DocId, obj: ObjId, path: String) -> Self {
        Self { doc, doc_id, obj, path, conflicts: Vec::new() }
    }

    fn err(&self, key: &str, detail: &str) -> ModelError {
        ModelError::schema(self.doc_id, format!("{}/{key}", self.path), detail)
    }

    /// All concurrent string values of `key`, winner first.
    pub fn strings(&self, key: &str) -> Result<Vec<String>, ModelError> {
        let mut values = Vec::new();
        for (value, _) in self.doc.get_all(&self.obj, key)? {
            match value {
                Value::Scalar(s) => match s.as_ref() {
                    ScalarValue::Str(text) => values.push(text.to_string()),
                    _ => return Err(self.err(key, "expected a string")),
                },
                Value::Object(_) => return Err(self.err(key, "expected a string, found an object")),
            }
        }
        // get_all lists values in op order; the displayed winner is get()'s.
        if let Some((Value::Scalar(s), _)) = self.doc.get(&self.obj, key)?
            && let ScalarValue::Str(winner) = s.as_ref()
            && let Some(pos) = values.iter().position(|v| v == winner.as_str())
        {
            values.swap(0, pos);
        }
        Ok(values)
    }

    /// A string field; concurrent distinct values are recorded as a conflict.
    pub fn opt_str(&mut self, key: &str) -> Result<Option<String>, ModelError> {
        let mut distinct: Vec<String> = Vec::new();
        for value in self.strings(key)? {
            if !distinct.contains(&value) {
                distinct.push(value);
            }
        }
        if distinct.len() > 1 {
            self.conflicts.push(FieldConflict { field: key.to_string(), values: distinct.clone() });
        }
        Ok(distinct.into_iter().next())
    }

    pub fn str(&mut self, key: &str) -> Result<String, ModelError> {
        self.opt_str(key)?.ok_or_else(|| self.err(key, "missing"))
    }

    /// Parses a string field through `parse`.
    pub fn parsed<T>(
        &mut self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, ValidationError>,
    ) -> Result<Option<T>, ModelError> {
        match self.opt_str(key)? {
            Some(text) => parse(&text).map(Some).map_err(|e| self.err(key, &e.to_string())),
            None => Ok(None),
        }
    }

    pub fn required<T>(
        &mut self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, ValidationError>,
    ) -> Result<T, ModelError> {
        self.parsed(key, parse)?.ok_or_else(|| self.err(key, "missing"))
    }

    /// A field where concurrent values resolve by a rule (`pick` chooses the
    /// effective one) but are still shown as a conflict.
    pub fn resolved<T: Clone + PartialEq + std::fmt::Display>(
        &mut self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, ValidationError>,
        pick: impl Fn(&T, &T) -> bool,
    ) -> Result<T, ModelError> {
        let texts = self.strings(key)?;
        let mut values = Vec::new();
        for text in &texts {
            values.push(parse(text).map_err(|e| self.err(key, &e.to_string()))?);
        }
        let mut best = values.first().cloned().ok_or_else(|| self.err(key, "missing"))?;
        for v in &values {
            if pick(v, &best) {
                best = v.clone();
            }
        }
        if values.iter().any(|v| *v != best) {
            self.conflicts.push(FieldConflict {
                field: key.to_string(),
                values: values.iter().map(ToString::to_string).collect(),
            });
        }
        Ok(best)
    }

    /// The latest of concurrent timestamps; never a conflict.
    pub fn latest_timestamp(&self, key: &str) -> Result<Timestamp, ModelError> {
        let mut latest = None;
        for (value, _) in self.doc.get_all(&self.obj, key)? {
            let ms = match value {
                Value::Scalar(s) => match s.as_ref() {
                    ScalarValue::Timestamp(ms) | ScalarValue::Int(ms) => *ms,
                    _ => return Err(self.err(key, "expected a timestamp")),
                },
                Value::Object(_) => return Err(self.err(key, "expected a timestamp")),
            };
            latest = latest.max(Some(ms));
        }
        latest.map(Timestamp::from_millis).ok_or_else(|| self.err(key, "missing"))
    }

    /// The keys of the map-as-set at `key`, sorted; empty if absent.
    pub fn set_keys(&self, key: &str) -> Result<Vec<String>, ModelError> {
        match self.doc.get(&self.obj, key)? {
            Some((Value::Object(ObjType::Map), set)) => Ok(self.doc.keys(&set).collect()),
            Some(_) => Err(self.err(key, "expected a set")),
            None => Ok(Vec::new()),
        }
    }

    /// The elements of a set whose values are maps.
    pub fn set_objects(&self, key: &str) -> Result<Vec<(String, ObjId)>, ModelError> {
        let set = match self.doc.get(&self.obj, key)? {
            Some((Value::Object(ObjType::Map), set)) => set,
            Some(_) => return Err(self.err(key, "expected a set")),
            None => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for element in self.doc.keys(&set) {
            match self.doc.get(&set, element.as_str())? {
                Some((Value::Object(ObjType::Map), obj)) => out.push((element, obj)),
                _ => return Err(self.err(&format!("{key}/{element}"), "expected a map")),
            }
        }
        Ok(out)
    }

    /// The elements of a list whose items are maps, in list order.
    pub fn list_objects(&self, key: &str) -> Result<Vec<ObjId>, ModelError> {
        let list = match self.doc.get(&self.obj, key)? {
            Some((Value::Object(ObjType::List), list)) => list,
            Some(_) => return Err(self.err(key, "expected a list")),
            None => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for index in 0..self.doc.length(&list) {
            match self.doc.get(&list, index)? {
                Some((Value::Object(ObjType::Map), obj)) => out.push(obj),
                _ => return Err(self.err(&format!("{key}/{index}"), "expected a map")),
            }
        }
        Ok(out)
    }

    /// A reader for a nested map; its conflicts are prefixed with `prefix`.
    pub fn nested(&self, obj: ObjId, prefix: &str) -> FieldReader<'a> {
        FieldReader::new(self.doc, self.doc_id, obj, format!("{}/{prefix}", self.path))
    }

    /// Adopts a nested reader's conflicts under a field prefix.
    pub fn absorb(&mut self, nested: FieldReader<'_>, prefix: &str) {
        for mut conflict in nested.conflicts {
            conflict.field = format!("{prefix}.{}", conflict.field);
            self.conflicts.push(conflict);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_ids_round_trip_through_kinds() {
        let kind = DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 15 };
        assert_eq!(kind.doc_id().as_str(), "watchlist/KAZ-BS/0f");
        assert_eq!(DocKind::parse(&kind.doc_id()).ok(), Some(kind));
        let kind = DocKind::Incidents { post: "kz-nurzhol".into(), month: "2026-11".into() };
        assert_eq!(DocKind::parse(&kind.doc_id()).ok(), Some(kind));
        let aliases = ["watchlist/KAZ/f", "watchlist/KAZ/00f", "watchlist/KAZ/0F"];
        let months = ["incidents/x/2026-13", "incidents/x/2026-00", "audit/x/zzzz-zz", "audit/x/2026_11"];
        let others = ["watchlist/KAZ/10", "watchlist/KAZ", "incidents/x/2026", "other/a/b"];
        for bad in aliases.into_iter().chain(months).chain(others) {
            let id = DocId::parse(bad).unwrap();
            assert!(DocKind::parse(&id).is_err(), "{bad}");
        }
    }

    /// What the operations say was touched is what a diff of the
    /// document says, over adds, status changes, notes and a merge of
    /// concurrent edits.
    #[test]
    fn touched_records_from_operations_match_a_diff_of_the_document() {
        use crate::date::Timestamp;
        use crate::test_support::add_person;
        let at = Timestamp::from_millis(1_795_600_000_000);
        let meta = ChangeMeta { at, by: "1000@kz-test".into(), op: "test" };
        let mut a = Document::genesis(DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 1 }).unwrap();
        for n in 0..20u128 {
            add_person(&mut a, n, &format!("Алиев {n}"), at);
        }
        let ids: Vec<EntryId> = crate::schema::watchlist::read_entries(&a).unwrap().iter().map(|e| e.id).collect();
        let mut b = a.fork(automerge::ActorId::from([7u8; 16]));
        let before = a.heads();
        a.transact(&meta, |r| r.set_entry_status(&ids[3], crate::vocab::EntryStatus::Closed, "found")).unwrap();
        add_person(&mut a, 100, "Новый", at);
        b.transact(&meta, |r| r.set_entry_status(&ids[5], crate::vocab::EntryStatus::Closed, "found")).unwrap();
        b.transact(&meta, |r| r.set_entry_status(&ids[3], crate::vocab::EntryStatus::Closed, "also")).unwrap();
        a.merge(&mut b).unwrap();
        let records = a.records_obj().unwrap();
        let changes = a.changes_since(&before);
        let by_operations = touched_by_operations(&a.doc, &changes, &records).expect("every operation placed");
        let by_diff = a.touched_by_diff(&before, &records);
        assert_eq!(by_operations, by_diff);
        assert_eq!(by_operations.len(), 3, "{by_operations:?}");
        let now = a.heads();
        assert_eq!(a.touched_records(&now), Default::default(), "nothing new, nothing touched");

        let mut log =
            Document::genesis(DocKind::Incidents { post: "kz-test".into(), month: "2026-11".into() }).unwrap();
        let id = crate::ids::IncidentId::owned_by("kz-test", uuid::Uuid::from_u128(9));
        let draft = crate::test_support::incident_draft("kz-test", id, "heroin in a spare tyre", at);
        log.transact(&meta, |r| r.add_incident(&draft)).unwrap();
        let before = log.heads();
        log.transact(&meta, |r| r.append_note(&id, "seen again")).unwrap();
        let records = log.records_obj().unwrap();
        let changes = log.changes_since(&before);
        assert_eq!(touched_by_operations(&log.doc, &changes, &records), Some(log.touched_by_diff(&before, &records)));
        assert_eq!(log.touched_records(&before).len(), 1);
    }

    #[test]
    fn independent_geneses_are_the_same_change() {
        let kind = DocKind::Watchlist { authority: "KGZ-GPS".into(), shard: 3 };
        let mut a = Document::genesis(kind.clone()).unwrap();
        let mut b = Document::genesis(kind).unwrap();
        assert_eq!(a.heads(), b.heads());
    }
}
