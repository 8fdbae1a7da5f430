//! Officers' writes: validated through the model, applied as one change,
//! committed with their projection rows and audit record, then pushed to
//! every connected peer.

use std::collections::BTreeMap;

use outpost_model::api::{ApiError, ErrorKind, NewEntryInput, NewIncidentInput};
use outpost_model::audit::AuditEvent;
use outpost_model::incident::link_hits;
use outpost_model::schema::incidents::read_incident;
use outpost_model::schema::watchlist::read_entry;
use outpost_model::schema::{ChangeMeta, DocKind, Document, Records};
use outpost_model::validate::{self, PostContext};
use outpost_model::vocab::EntryStatus;
use outpost_model::watchlist::Entry;
use outpost_model::{DocId, EntryId, IncidentId, ModelError};

use super::{Caller, WriteOp, Writer, Written, internal};
use crate::store::Batch;

/// The audit record of a change to one record.
fn change_event(
    ctx: &PostContext,
    caller: &Caller,
    op: &str,
    detail: String,
    id: impl std::fmt::Display,
) -> AuditEvent {
    caller.audit_event(ctx.now, op, None, detail, vec![id.to_string()])
}

impl Writer {
    fn context(&self) -> PostContext {
        let identity = self.identity();
        PostContext {
            now: self.settings.clock.wall(),
            offset: self.settings.offset,
            authority: identity.authority,
            post: identity.post,
        }
    }

    fn meta(&self, ctx: &PostContext, caller: &Caller, op: &'static str) -> ChangeMeta {
        ChangeMeta { at: ctx.now, by: format!("{}@{}", caller.uid, ctx.post), op }
    }

    pub(super) fn officer_write(&mut self, op: WriteOp, caller: &Caller) -> Result<Written, ApiError> {
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
            WriteOp::Audit(_)
            | WriteOp::Replication(_)
            | WriteOp::SyncReport
            | WriteOp::TrustReport
            | WriteOp::Health
            | WriteOp::ProbeStore
            | WriteOp::PublishRoster(_)
            | WriteOp::RevocationCut { .. }
            | WriteOp::AuditLog { .. } => Err(internal("not an officer's write")),
        }
    }

    /// The entry, if this post's authority issued it: only the issuing
    /// authority may change or withdraw an entry.
    fn own_entry(&self, id: &EntryId) -> Result<Entry, ApiError> {
        let authority = self.identity().authority;
        let entry = self
            .store
            .entry(id)
            .map_err(internal)?
            .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("entry {id} not found")))?;
        if entry.authority != authority {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                format!(
                    "entry {id} was issued by {}; only its issuing authority may change it (this post acts for {authority})",
                    entry.authority
                ),
            ));
        }
        Ok(entry)
    }

    /// Runs `edit` as one change on a document. A failed edit is rolled back
    /// by the model and leaves the document as it was.
    fn apply<T>(
        &mut self,
        doc_id: &DocId,
        meta: &ChangeMeta,
        edit: impl FnOnce(&mut Records<'_>) -> Result<T, ModelError>,
    ) -> Result<(T, Option<Vec<u8>>), ApiError> {
        let loaded = self.cache.get_for_officer(doc_id)?;
        let before = loaded.doc.heads();
        match loaded.doc.transact(meta, edit) {
            Ok(done) => Ok(done),
            Err(err) => {
                // A refused edit is rolled back; anything else that left a
                // change in memory must not outlive this failed request.
                if loaded.doc.heads() != before {
                    self.cache.forget(std::slice::from_ref(doc_id));
                }
                Err(err.into())
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
        let outcome = read(self.cache.loaded(doc_id)?);
        if !matches!(outcome, Ok(Some(_))) {
            // The edit is in memory but will not be committed.
            self.cache.forget(std::slice::from_ref(doc_id));
        }
        match outcome {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(internal(format!("a record vanished from {doc_id} while it was written"))),
            Err(e) => Err(e.into()),
        }
    }

    fn add_entries(
        &mut self,
        ctx: &PostContext,
        caller: &Caller,
        inputs: &[NewEntryInput],
    ) -> Result<Written, ApiError> {
        let mut by_doc: BTreeMap<DocId, Vec<_>> = BTreeMap::new();
        for (n, input) in inputs.iter().enumerate() {
            let id = EntryId::owned_by(&ctx.authority, self.settings.clock.new_uuid());
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
                let doc = self.cache.loaded(doc_id)?;
                for draft in drafts {
                    let entry = read_entry(doc, draft.id)?.ok_or_else(|| internal("a new entry did not read back"))?;
                    entries.push(entry);
                }
            }
            Ok::<_, ApiError>(())
        })();
        if let Err(err) = staged {
            self.cache.forget(&touched);
            return Err(err);
        }
        let detail = match entries.as_slice() {
            [one] => format!("added {} entry, category {}", one.subject.kind(), one.category),
            many => format!("imported {} entries", many.len()),
        };
        let ids = entries.iter().map(|e| e.id.to_string()).collect();
        let audit = caller.audit_event(ctx.now, op, None, detail, ids);
        self.commit_officer(batch, entries.clone(), audit)?;
        Ok(Written::Entries(entries))
    }

    /// Commits an officer's write and pushes it to peers.
    fn commit_officer(&mut self, mut batch: Batch, entries: Vec<Entry>, audit: AuditEvent) -> Result<(), ApiError> {
        let docs: Vec<DocId> = batch.changes.iter().map(|(d, _)| d.clone()).collect();
        if let Err(err) = self.admit_and_sign(&mut batch) {
            // The change is in memory but will not be stored.
            self.cache.forget(&docs);
            return Err(err);
        }
        let touched = self.commit_and_index(batch, entries, vec![audit])?;
        for doc in touched {
            self.push_local(&doc);
        }
        Ok(())
    }

    fn edit_entry(
        &mut self,
        ctx: &PostContext,
        caller: &Caller,
        entry: Entry,
        op: &'static str,
        edit: impl FnOnce(&mut Records<'_>) -> Result<(), ModelError>,
    ) -> Result<Written, ApiError> {
        let meta = self.meta(ctx, caller, op);
        let (_, bytes) = self.apply(&entry.doc, &meta, edit)?;
        let updated = self.read_back(&entry.doc, |doc| read_entry(doc, entry.id))?;
        let audit = change_event(ctx, caller, op, format!("{op} on {} entry", entry.subject.kind()), entry.id);
        let batch =
            Batch { changes: bytes.map(|b| (entry.doc.clone(), b)).into_iter().collect(), ..Default::default() };
        self.commit_officer(batch, vec![updated.clone()], audit)?;
        Ok(Written::Entries(vec![updated]))
    }

    fn log_incident(
        &mut self,
        ctx: &PostContext,
        caller: &Caller,
        input: &NewIncidentInput,
    ) -> Result<Written, ApiError> {
        let id = IncidentId::owned_by(&ctx.post, self.settings.clock.new_uuid());
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
        caller: &Caller,
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
        caller: &Caller,
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
            ..Default::default()
        };
        self.commit_officer(batch, Vec::new(), audit)?;
        Ok(Written::Incident(Box::new(incident)))
    }
}
