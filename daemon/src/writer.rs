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
//! When the queue is empty the writer compacts documents whose incremental
//! changes have piled up.
//!
//! The writer also hosts the replication engine: documents change only
//! here, so changes received from peers take the same path as an officer's
//! (stored with their projection rows and index records in one transaction
//! before anything is sent on), and an officer's committed change is handed
//! to the engine, which pushes it to every connected peer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::now;
use automerge::{ActorId, ChangeHash};
use outpost_model::api::{AmendInput, ApiError, ErrorKind, NewEntryInput, NewIncidentInput};
use outpost_model::audit::AuditEvent;
use outpost_model::incident::{Incident, link_hits};
use outpost_model::replication::engine::{DocHost, Effect, Engine, PeerKey, PeerSummary};
use outpost_model::replication::session::shared_heads_of;
use outpost_model::schema::incidents::read_incident;
use outpost_model::schema::watchlist::read_entry;
use outpost_model::schema::{ChangeMeta, DocKind, Document, Records};
use outpost_model::search::{IndexRecord, WatchlistIndex};
use outpost_model::validate::{self, PostContext};
use outpost_model::vocab::{EntryStatus, FollowUp};
use outpost_model::watchlist::Entry;
use outpost_model::{DocId, EntryId, IncidentId, ModelError};
use time::UtcOffset;
use tokio::sync::{mpsc, oneshot};

use crate::net::NetCommand;
use crate::store::{Batch, Store, StoreError};

pub type SharedIndex = Arc<RwLock<Box<dyn WatchlistIndex>>>;

/// The Unix user and process behind a request, from SO_PEERCRED.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub pid: Option<i32>,
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
    pub stalest: Option<(DocId, Option<outpost_model::date::Timestamp>)>,
    pub documents: usize,
}

#[derive(Debug)]
pub enum Written {
    Entries(Vec<Entry>),
    Incident(Box<Incident>),
    Audited,
    Replicated,
    SyncReport(SyncReport),
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
    pub compact_after_changes: u64,
    pub max_loaded_docs: usize,
}

/// The replication engine and where its frames go; absent when networking
/// is off.
#[derive(Debug)]
pub struct Replication {
    pub engine: Engine,
    pub net: mpsc::UnboundedSender<NetCommand>,
}

#[derive(Debug, Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
}

impl WriterHandle {
    /// Hands the writer an input without waiting for it to be handled.
    pub async fn notify(&self, op: WriteOp) -> bool {
        let (reply, _) = oneshot::channel();
        self.tx.send(Job { op, caller: Caller { uid: 0, pid: None }, reply }).await.is_ok()
    }

    pub async fn submit(&self, op: WriteOp, caller: Caller) -> Result<Written, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { op, caller, reply })
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
    let (tx, rx) = mpsc::channel(1024);
    let threshold = settings.compact_after_changes;
    let backlog = match store.changes_per_doc() {
        Ok(counts) => counts.into_iter().filter(|(_, n)| *n >= threshold).map(|(id, _)| id).collect(),
        Err(err) => {
            tracing::warn!(error = %err, "cannot count stored changes; compaction waits for new writes");
            Vec::new()
        }
    };
    let (engine, net) = match replication {
        Some(r) => (Some(r.engine), Some(r.net)),
        None => (None, None),
    };
    let writer =
        Writer { store, index, settings, docs: HashMap::new(), use_counter: 0, backlog, engine, net, pinned: false };
    let (stop_tx, stopped) = oneshot::channel();
    let join = std::thread::Builder::new().name("outpost-writer".into()).spawn(move || {
        let _signal = StopSignal(Some(stop_tx));
        let mut writer = writer;
        writer.prime_inventory();
        writer.run(rx);
    })?;
    Ok((WriterHandle { tx }, WriterThread { join, stopped }))
}

#[derive(Debug)]
struct Loaded {
    doc: Document,
    /// Changes in storage after the snapshot.
    stored_changes: u64,
    last_seq: u64,
    last_used: u64,
}

struct Writer {
    store: Arc<Store>,
    index: SharedIndex,
    settings: WriterSettings,
    docs: HashMap<DocId, Loaded>,
    use_counter: u64,
    /// Documents found at start with enough stored changes to compact.
    backlog: Vec<DocId>,
    /// Taken out while it runs, so that it can reach documents through the
    /// writer.
    engine: Option<Engine>,
    net: Option<mpsc::UnboundedSender<NetCommand>>,
    /// While the engine runs, documents stay loaded: changes it applied
    /// must still be in memory when they are stored.
    pinned: bool,
}

impl DocHost for Writer {
    fn doc(&mut self, id: &DocId) -> Result<&mut Document, String> {
        self.doc_mut(id).map(|loaded| &mut loaded.doc).map_err(|e| e.message)
    }

    fn sync_state(&mut self, peer: &PeerKey, doc: &DocId) -> Option<Vec<u8>> {
        match self.store.sync_state(&peer.0, doc) {
            Ok(state) => state,
            Err(err) => {
                tracing::warn!(%peer, %doc, error = %err, "cannot read a sync state; starting afresh");
                None
            }
        }
    }
}

/// The audit record of a change to one record.
fn change_event(ctx: &PostContext, caller: Caller, op: &str, detail: String, id: impl std::fmt::Display) -> AuditEvent {
    AuditEvent {
        at: ctx.now,
        uid: caller.uid,
        pid: caller.pid,
        action: op.into(),
        purpose: None,
        detail,
        result_ids: vec![id.to_string()],
    }
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, err.to_string())
}

fn storage_failed(err: StoreError) -> ApiError {
    tracing::error!(error = %err, "commit failed; nothing was stored");
    ApiError::new(ErrorKind::Internal, format!("storage failed, nothing was stored: {err}"))
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        loop {
            let job = match rx.try_recv() {
                Ok(job) => job,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if self.compact_one() {
                        continue;
                    }
                    match rx.blocking_recv() {
                        Some(job) => job,
                        None => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            let result = self.handle(job.op, job.caller);
            // The caller may have gone; the write stands either way.
            let _ = job.reply.send(result);
        }
        tracing::info!("writer stopped");
    }

    fn context(&self) -> PostContext {
        PostContext {
            now: now(),
            offset: self.settings.offset,
            authority: self.settings.authority.clone(),
            post: self.settings.post.clone(),
        }
    }

    fn meta(&self, ctx: &PostContext, caller: Caller, op: &'static str) -> ChangeMeta {
        ChangeMeta { at: ctx.now, by: format!("{}@{}", caller.uid, self.settings.post), op }
    }

    fn handle(&mut self, op: WriteOp, caller: Caller) -> Result<Written, ApiError> {
        let ctx = self.context();
        match op {
            WriteOp::AddEntries { inputs } => self.add_entries(&ctx, caller, &inputs),
            WriteOp::Amend { id, input } => {
                let entry = self.own_entry(&id)?;
                let amendment = validate::amendment(&input, entry.subject.kind(), entry.valid_from, &ctx)?;
                self.edit_entry(&ctx, caller, entry, "watchlist.amend", |r| r.amend_entry(&id, &amendment))
            }
            WriteOp::SetStatus { id, status, reason } => {
                let entry = self.own_entry(&id)?;
                let reason = validate::required_text("reason", &reason, 1000)?;
                let op = match status {
                    EntryStatus::Active => "watchlist.reactivate",
                    EntryStatus::Suspended => "watchlist.suspend",
                    EntryStatus::Closed => "watchlist.close",
                };
                self.edit_entry(&ctx, caller, entry, op, |r| r.set_entry_status(&id, status, &reason))
            }
            WriteOp::LogIncident { input } => self.log_incident(&ctx, caller, &input),
            WriteOp::Note { id, text } => {
                let text = validate::note(&text)?;
                self.edit_incident(&ctx, caller, id, "incident.note", |r| r.append_note(&id, &text))
            }
            WriteOp::FollowUp { id, follow_up, note } => {
                let note = note.as_deref().map(validate::note).transpose()?;
                self.edit_incident(&ctx, caller, id, "incident.follow_up", |r| {
                    r.set_follow_up(&id, follow_up)?;
                    note.as_deref().map_or(Ok(()), |n| r.append_note(&id, n))
                })
            }
            WriteOp::Audit(event) => {
                self.store.commit(Batch { audit: vec![event], ..Default::default() }).map_err(storage_failed)?;
                Ok(Written::Audited)
            }
            WriteOp::Replication(input) => {
                self.replicate(input);
                Ok(Written::Replicated)
            }
            WriteOp::SyncReport => Ok(Written::SyncReport(self.sync_report())),
        }
    }

    /// The entry, if this post's authority issued it: only the issuing
    /// authority may change or withdraw an entry.
    fn own_entry(&self, id: &EntryId) -> Result<Entry, ApiError> {
        let entry = self
            .store
            .entry(id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("entry {id} not found")))?;
        if entry.authority != self.settings.authority {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!(
                    "entry {id} was issued by {}; only its issuing authority may change it (this post acts for {})",
                    entry.authority, self.settings.authority
                ),
            ));
        }
        Ok(entry)
    }

    fn doc_mut(&mut self, id: &DocId) -> Result<&mut Loaded, ApiError> {
        self.use_counter += 1;
        let tick = self.use_counter;
        if !self.docs.contains_key(id) {
            self.evict_if_full();
            let stored = self.store.load_doc(id).map_err(internal)?;
            let last_seq = stored.changes.last().map_or(0, |(seq, _)| *seq);
            let stored_changes = stored.changes.len() as u64;
            let mut doc =
                Document::load(id, stored.snapshot.as_deref(), stored.changes.iter().map(|(_, c)| c.as_slice()))
                    .map_err(|e| {
                        tracing::error!(doc = %id, error = %e, "document cannot be loaded; writes to it are refused");
                        ApiError::new(ErrorKind::Internal, format!("document {id} cannot be loaded: {e}"))
                    })?;
            doc.set_actor(self.settings.actor.clone());
            self.docs.insert(id.clone(), Loaded { doc, stored_changes, last_seq, last_used: tick });
        }
        let loaded = self.docs.get_mut(id).ok_or_else(|| internal("document cache lost a document"))?;
        loaded.last_used = tick;
        Ok(loaded)
    }

    fn evict_if_full(&mut self) {
        while !self.pinned && self.docs.len() >= self.settings.max_loaded_docs {
            let Some(oldest) = self.docs.iter().min_by_key(|(_, l)| l.last_used).map(|(id, _)| id.clone()) else {
                return;
            };
            self.docs.remove(&oldest);
        }
    }

    /// Runs `edit` as one change on a document. A failed edit is rolled back
    /// by the model and leaves the document as it was.
    fn apply<T>(
        &mut self,
        doc_id: &DocId,
        meta: &ChangeMeta,
        edit: impl FnOnce(&mut Records<'_>) -> Result<T, ModelError>,
    ) -> Result<(T, Option<Vec<u8>>), ApiError> {
        let loaded = self.doc_mut(doc_id)?;
        let before = loaded.doc.heads();
        match loaded.doc.transact(meta, edit) {
            Ok(done) => Ok(done),
            Err(err) => {
                // A refused edit is rolled back; anything else that left a
                // change in memory must not outlive this failed request.
                if loaded.doc.heads() != before {
                    self.forget(std::slice::from_ref(doc_id));
                }
                Err(err.into())
            }
        }
    }

    fn loaded(&self, doc_id: &DocId) -> Result<&Document, ApiError> {
        self.docs.get(doc_id).map(|l| &l.doc).ok_or_else(|| internal("document left memory mid-write"))
    }

    /// Commits a batch; on failure forgets the documents it touched so that
    /// their uncommitted changes are not kept in memory.
    fn commit(&mut self, batch: Batch) -> Result<(), ApiError> {
        let touched = self.store_batch(batch)?;
        for doc in touched {
            self.replicate_local_change(&doc);
        }
        Ok(())
    }

    /// Commits a batch with the heads of the documents it changes; on
    /// failure forgets those documents. Returns the documents changed.
    fn store_batch(&mut self, mut batch: Batch) -> Result<Vec<DocId>, ApiError> {
        let mut touched: Vec<DocId> = batch.changes.iter().map(|(d, _)| d.clone()).collect();
        touched.dedup();
        for doc in &touched {
            if let Some(loaded) = self.docs.get_mut(doc) {
                batch.heads.push((doc.clone(), loaded.doc.heads()));
            }
        }
        match self.store.commit(batch) {
            Ok(receipt) => {
                for (doc, seq) in receipt.change_seqs {
                    if let Some(loaded) = self.docs.get_mut(&doc) {
                        loaded.stored_changes += 1;
                        loaded.last_seq = seq;
                    }
                }
                Ok(touched)
            }
            Err(err) => {
                self.forget(&touched);
                Err(storage_failed(err))
            }
        }
    }

    /// Reads a record back after an edit; if the document cannot be read,
    /// forgets it so the next use reloads it from storage.
    fn read_back<T>(
        &mut self,
        doc_id: &DocId,
        read: impl FnOnce(&Document) -> Result<Option<T>, ModelError>,
    ) -> Result<T, ApiError> {
        let outcome = read(self.loaded(doc_id)?);
        if !matches!(outcome, Ok(Some(_))) {
            // The edit is in memory but will not be committed.
            self.forget(std::slice::from_ref(doc_id));
        }
        match outcome {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(internal(format!("a record vanished from {doc_id} while it was written"))),
            Err(e) => Err(e.into()),
        }
    }

    fn forget(&mut self, docs: &[DocId]) {
        for doc in docs {
            self.docs.remove(doc);
        }
    }

    fn add_entries(
        &mut self,
        ctx: &PostContext,
        caller: Caller,
        inputs: &[NewEntryInput],
    ) -> Result<Written, ApiError> {
        let mut by_doc: BTreeMap<DocId, Vec<_>> = BTreeMap::new();
        for (n, input) in inputs.iter().enumerate() {
            let id = EntryId::from_uuid(uuid::Uuid::now_v7());
            let draft = validate::new_entry(input, id, ctx).map_err(|e| {
                let message = if inputs.len() > 1 { format!("entry {}: {e}", n + 1) } else { e.to_string() };
                ApiError::new(ErrorKind::BadInput, message)
            })?;
            by_doc.entry(DocKind::watchlist_for(&ctx.authority, &id).doc_id()).or_default().push(draft);
        }
        let op = if inputs.len() == 1 { "watchlist.add" } else { "watchlist.import" };
        let meta = self.meta(ctx, caller, op);
        let mut batch = Batch::default();
        let touched: Vec<DocId> = by_doc.keys().cloned().collect();
        let mut entries = Vec::new();
        let staged = (|| {
            for (doc_id, drafts) in &by_doc {
                let (_, bytes) = self.apply(doc_id, &meta, |r| drafts.iter().try_for_each(|d| r.add_entry(d)))?;
                batch.changes.extend(bytes.map(|b| (doc_id.clone(), b)));
                let doc = self.loaded(doc_id)?;
                for draft in drafts {
                    let entry = read_entry(doc, draft.id)?.ok_or_else(|| internal("a new entry did not read back"))?;
                    entries.push(entry);
                }
            }
            Ok::<_, ApiError>(())
        })();
        if let Err(err) = staged {
            self.forget(&touched);
            return Err(err);
        }
        batch.audit.push(AuditEvent {
            at: ctx.now,
            uid: caller.uid,
            pid: caller.pid,
            action: op.into(),
            purpose: None,
            detail: match entries.as_slice() {
                [one] => format!("added {} entry, category {}", one.subject.kind(), one.category),
                many => format!("imported {} entries", many.len()),
            },
            result_ids: entries.iter().map(|e| e.id.to_string()).collect(),
        });
        self.commit_entries(batch, entries)
    }

    /// Commits `batch` with `entries` and their index records, then makes
    /// them searchable.
    fn commit_entries(&mut self, mut batch: Batch, entries: Vec<Entry>) -> Result<Written, ApiError> {
        let records = {
            let index = self.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            entries.iter().map(|e| index.prepare(e)).collect::<Vec<IndexRecord>>()
        };
        batch.entries = entries.clone();
        batch.index_records = records.clone();
        self.commit(batch)?;
        let mut index = self.index.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for record in &records {
            index.insert(record);
        }
        Ok(Written::Entries(entries))
    }

    fn edit_entry(
        &mut self,
        ctx: &PostContext,
        caller: Caller,
        entry: Entry,
        op: &'static str,
        edit: impl FnOnce(&mut Records<'_>) -> Result<(), ModelError>,
    ) -> Result<Written, ApiError> {
        let meta = self.meta(ctx, caller, op);
        let (_, bytes) = self.apply(&entry.doc, &meta, edit)?;
        let updated = self.read_back(&entry.doc, |doc| read_entry(doc, entry.id))?;
        let audit = change_event(ctx, caller, op, format!("{op} on {} entry", entry.subject.kind()), entry.id);
        let batch = Batch {
            changes: bytes.map(|b| (entry.doc.clone(), b)).into_iter().collect(),
            audit: vec![audit],
            ..Default::default()
        };
        self.commit_entries(batch, vec![updated])
    }

    fn log_incident(
        &mut self,
        ctx: &PostContext,
        caller: Caller,
        input: &NewIncidentInput,
    ) -> Result<Written, ApiError> {
        let id = IncidentId::from_uuid(uuid::Uuid::now_v7());
        let mut draft = validate::new_incident(input, id, ctx)?;
        let mut hits = Vec::new();
        for hit in &draft.hits {
            let entry = self.store.entry(hit).map_err(internal)?.ok_or_else(|| {
                ApiError::new(ErrorKind::NotFound, format!("watchlist entry {hit} (given with --hit) not found"))
            })?;
            hits.push(entry);
        }
        link_hits(&mut draft, &hits);
        let doc_id = DocKind::Incidents { post: ctx.post.clone(), month: draft.occurred_at.utc_month() }.doc_id();
        let meta = self.meta(ctx, caller, "incident.log");
        let (_, bytes) = self.apply(&doc_id, &meta, |r| r.add_incident(&draft))?;
        self.finish_incident(ctx, caller, &doc_id, id, bytes, "incident.log")
    }

    fn edit_incident(
        &mut self,
        ctx: &PostContext,
        caller: Caller,
        id: IncidentId,
        op: &'static str,
        edit: impl FnOnce(&mut Records<'_>) -> Result<(), ModelError>,
    ) -> Result<Written, ApiError> {
        let incident = self
            .store
            .incident(&id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("incident {id} not found")))?;
        let meta = self.meta(ctx, caller, op);
        let (_, bytes) = self.apply(&incident.doc, &meta, edit)?;
        self.finish_incident(ctx, caller, &incident.doc, id, bytes, op)
    }

    fn finish_incident(
        &mut self,
        ctx: &PostContext,
        caller: Caller,
        doc_id: &DocId,
        id: IncidentId,
        bytes: Option<Vec<u8>>,
        op: &'static str,
    ) -> Result<Written, ApiError> {
        let incident = self.read_back(doc_id, |doc| read_incident(doc, id))?;
        let audit = change_event(ctx, caller, op, format!("{op} on {} incident", incident.incident_type), id);
        let batch = Batch {
            changes: bytes.map(|b| (doc_id.clone(), b)).into_iter().collect(),
            incidents: vec![incident.clone()],
            audit: vec![audit],
            ..Default::default()
        };
        self.commit(batch)?;
        Ok(Written::Incident(Box::new(incident)))
    }

    /// Gives the engine the heads of every stored document. Heads missing
    /// from `doc_heads` (a database from before replication, or a damaged
    /// row) are recomputed from the document and stored.
    fn prime_inventory(&mut self) {
        let Some(mut engine) = self.engine.take() else { return };
        let (known, damaged) = match self.store.all_heads() {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "cannot read document heads; they are recomputed");
                (Vec::new(), Vec::new())
            }
        };
        for err in damaged {
            tracing::warn!(error = %err, "damaged heads row; recomputing");
        }
        let known: HashMap<DocId, Vec<ChangeHash>> = known.into_iter().collect();
        let stored = self.store.doc_ids().unwrap_or_else(|err| {
            tracing::error!(error = %err, "cannot list stored documents; replication starts from the heads table");
            Vec::new()
        });
        let mut recomputed = Vec::new();
        for doc in stored {
            let heads = match known.get(&doc) {
                Some(heads) => heads.clone(),
                None => match self.doc_mut(&doc) {
                    Ok(loaded) => {
                        let heads = loaded.doc.heads();
                        recomputed.push((doc.clone(), heads.clone()));
                        heads
                    }
                    Err(err) => {
                        tracing::error!(%doc, error = %err.message, "document cannot be loaded; it is not offered to peers");
                        continue;
                    }
                },
            };
            engine.set_held(&doc, &heads);
        }
        if !recomputed.is_empty() {
            let count = recomputed.len();
            match self.store.commit(Batch { heads: recomputed, ..Default::default() }) {
                Ok(_) => tracing::info!(documents = count, "recorded document heads for replication"),
                Err(err) => tracing::warn!(error = %err, "cannot record document heads; recomputed at next start"),
            }
        }
        tracing::info!(documents = engine.inventory().len(), "replication inventory ready");
        self.engine = Some(engine);
    }

    fn replicate(&mut self, input: ReplicationInput) {
        let Some(mut engine) = self.engine.take() else { return };
        self.pinned = true;
        let now = now();
        let effects = match input {
            ReplicationInput::Connected(peer) => engine.handle_connected(now, &peer),
            ReplicationInput::Disconnected(peer) => engine.handle_disconnected(now, &peer),
            ReplicationInput::Frame(peer, bytes) => engine.handle_frame(now, &peer, &bytes, self),
            ReplicationInput::Timer => engine.handle_timer(now, self),
            ReplicationInput::SyncNow(peer) => engine.handle_sync_now(now, peer.as_ref()),
        };
        self.carry_out(&mut engine, effects);
        self.engine = Some(engine);
        self.pinned = false;
        // Everything the engine applied is stored now.
        self.evict_if_full();
    }

    /// An officer's change is stored: the engine pushes it to peers.
    fn replicate_local_change(&mut self, doc: &DocId) {
        let Some(mut engine) = self.engine.take() else { return };
        self.pinned = true;
        let effects = engine.handle_local_change(now(), doc, self);
        self.carry_out(&mut engine, effects);
        self.engine = Some(engine);
        self.pinned = false;
        // Everything the engine applied is stored now.
        self.evict_if_full();
    }

    /// Carries out the engine's effects: everything to store goes into one
    /// transaction, committed before any frame is sent.
    fn carry_out(&mut self, engine: &mut Engine, effects: Vec<Effect>) {
        let mut batch = Batch::default();
        let mut entries = Vec::new();
        let mut outgoing = Vec::new();
        for effect in effects {
            match effect {
                Effect::StoreChanges { doc, since } => self.stage_merge(&doc, &since, &mut batch, &mut entries),
                Effect::PersistSyncState { peer, doc, state } => batch.sync_states.push((peer.0, doc, state)),
                Effect::Send { peer, lane, frame } => outgoing.push(NetCommand::Send { peer, lane, frame }),
                Effect::Disconnect { peer, reason } => {
                    tracing::warn!(%peer, %reason, "disconnecting a peer");
                    outgoing.push(NetCommand::Disconnect { peer });
                }
                Effect::SetTimer { at } => outgoing.push(NetCommand::Timer { at }),
                Effect::Problem { peer, doc, detail } => {
                    let doc = doc.map(|d| d.to_string()).unwrap_or_default();
                    tracing::warn!(%peer, %doc, problem = %detail, "replication");
                }
            }
        }
        if !batch.is_empty() {
            let merged: Vec<DocId> = batch.changes.iter().map(|(d, _)| d.clone()).collect();
            let records = {
                let index = self.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
                entries.iter().map(|e| index.prepare(e)).collect::<Vec<IndexRecord>>()
            };
            batch.entries = entries;
            batch.index_records = records.clone();
            match self.store_batch(batch) {
                Ok(_) => {
                    let mut index = self.index.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                    for record in &records {
                        index.insert(record);
                    }
                }
                Err(err) => {
                    // Nothing was stored and the documents were dropped from
                    // memory; what we were about to send may describe state
                    // that is gone, so it is not sent, and the sessions on
                    // those documents start over.
                    tracing::error!(error = %err.message, "storing replicated changes failed");
                    let mut retry = Vec::new();
                    for doc in merged {
                        retry.extend(engine.handle_store_failed(now(), &doc, self));
                    }
                    outgoing.retain(|c| matches!(c, NetCommand::Timer { .. }));
                    self.send_all(outgoing);
                    return self.carry_out(engine, retry);
                }
            }
        }
        self.send_all(outgoing);
    }

    fn send_all(&mut self, commands: Vec<NetCommand>) {
        let Some(net) = &self.net else { return };
        for command in commands {
            // The network task is gone only while shutting down.
            let _ = net.send(command);
        }
    }

    /// Adds the changes a peer brought to `doc` since `since`, and the
    /// records they touched, to the batch.
    fn stage_merge(&mut self, doc: &DocId, since: &[ChangeHash], batch: &mut Batch, entries: &mut Vec<Entry>) {
        let Some(loaded) = self.docs.get_mut(doc) else {
            tracing::error!(%doc, "merged document left memory before it was stored");
            return;
        };
        let changes = loaded.doc.stored_changes_since(since);
        let touched = loaded.doc.touched_records(since);
        tracing::debug!(%doc, changes = changes.len(), records = touched.len(), "storing replicated changes");
        batch.changes.extend(changes.into_iter().map(|c| (doc.clone(), c)));
        let kind = DocKind::parse(doc);
        for record in touched {
            let read = match kind {
                Ok(DocKind::Watchlist { .. }) => EntryId::parse(&record)
                    .map_err(ModelError::from)
                    .and_then(|id| read_entry(&loaded.doc, id))
                    .map(|e| e.map(|e| entries.push(e))),
                Ok(DocKind::Incidents { .. }) => IncidentId::parse(&record)
                    .map_err(ModelError::from)
                    .and_then(|id| read_incident(&loaded.doc, id))
                    .map(|i| i.map(|i| batch.incidents.push(i))),
                Err(ref e) => Err(ModelError::from(e.clone())),
            };
            if let Err(err) = read {
                // The change is stored all the same; only this record's
                // row waits for a change that makes it readable.
                tracing::error!(%doc, %record, error = %err, "a replicated record does not read; its row is not updated");
            }
        }
    }

    fn sync_report(&mut self) -> SyncReport {
        let Some(engine) = self.engine.take() else { return SyncReport::default() };
        let mut report =
            SyncReport { peers: Vec::new(), stalest: engine.stalest(), documents: engine.inventory().len() };
        let peers: Vec<PeerKey> = engine.connected_peers().cloned().collect();
        for peer in peers {
            let Some(summary) = engine.peer_summary(&peer) else { continue };
            let mut behind = Vec::new();
            // Counting loads documents; a long list is summarised by its head.
            for doc in summary.differing.iter().take(32) {
                let shared = self
                    .store
                    .sync_state(&peer.0, doc)
                    .ok()
                    .flatten()
                    .and_then(|state| shared_heads_of(&state))
                    .unwrap_or_default();
                if let Ok(loaded) = self.doc_mut(doc) {
                    behind.push((doc.clone(), loaded.doc.count_changes_since(&shared)));
                }
            }
            report.peers.push(PeerDocs { peer, summary, behind });
        }
        self.engine = Some(engine);
        report
    }

    /// Compacts one document whose changes have piled up. Returns whether it
    /// did any work, so the caller keeps going while there is more.
    fn compact_one(&mut self) -> bool {
        if let Some(id) = self.backlog.pop() {
            // Loading is enough: the search below then finds it over the threshold.
            let _ = self.doc_mut(&id);
        }
        let threshold = self.settings.compact_after_changes;
        let Some(doc_id) = self.docs.iter().find(|(_, l)| l.stored_changes >= threshold).map(|(id, _)| id.clone())
        else {
            return false;
        };
        let Some(loaded) = self.docs.get_mut(&doc_id) else { return false };
        let started = std::time::Instant::now();
        let snapshot = loaded.doc.save();
        match self.store.compact(&doc_id, &snapshot, loaded.last_seq) {
            Ok(()) => {
                tracing::debug!(doc = %doc_id, changes = loaded.stored_changes, bytes = snapshot.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64, "compacted");
                loaded.stored_changes = 0;
            }
            Err(err) => {
                // The changes stay in storage and loading still works; try
                // again once as many changes have piled up once more.
                tracing::warn!(doc = %doc_id, error = %err, "compaction failed");
                loaded.stored_changes = 0;
            }
        }
        true
    }
}
