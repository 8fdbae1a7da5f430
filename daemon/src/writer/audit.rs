//! The audit log on the writer: this node's records sealed onto its chain
//! and mirrored, signed, into its monthly audit document, which replicates
//! to its national centres only (`outpost_model::audit::log`); other
//! posts' records checked against the trail as they arrive; and a post's
//! log read back and checked whole for `outpost audit --post`.

use outpost_model::DocId;
use outpost_model::api::{ApiError, ErrorKind};
use outpost_model::audit::log::{LogCheck, SignedRecord, TrailEntry, audit_month, check_arrival, check_log};
use outpost_model::audit::{AuditEvent, AuditRecord, seal};
use outpost_model::schema::audit::read_audit;
use outpost_model::schema::{ChangeMeta, DocKind};

use super::storage::storage_failed;
use super::{Writer, internal};
use crate::store::Batch;

/// A post's audit log as this node holds it, checked.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pub post: String,
    pub records: Vec<SignedRecord>,
    pub check: LogCheck,
    /// Alarms raised as records arrived, as (record number, what showed).
    pub alarms: Vec<(u64, String)>,
    /// The roster names the post, so its signatures were checked.
    pub signatures_checked: bool,
}

impl Writer {
    /// Seals `events` onto this node's chain and mirrors them, signed,
    /// into the audit document of their month, in `batch`. Returns the
    /// documents written and the new head; nothing changes here until the
    /// batch is committed.
    pub(super) fn seal_and_mirror(
        &mut self,
        events: Vec<AuditEvent>,
        batch: &mut Batch,
    ) -> Result<(Vec<DocId>, (u64, String)), ApiError> {
        let (mut seq, mut prev) = match &self.audit_head {
            Some(head) => head.clone(),
            None => self.store.audit_head().map_err(storage_failed)?,
        };
        let post = self.identity().post;
        let mut docs: Vec<DocId> = Vec::new();
        for event in events {
            seq += 1;
            let record: AuditRecord = seal(event, seq, &post, &prev);
            prev = record.hash.clone();
            let signed = SignedRecord::sign(&self.settings.signer, &post, record.clone());
            let doc = DocKind::Audit { post: post.clone(), month: audit_month(record.at) }.doc_id();
            let meta = ChangeMeta { at: record.at, by: format!("{}@{post}", record.uid), op: "audit" };
            let stored = match self
                .cache
                .get_for_officer(&doc)
                .and_then(|loaded| loaded.doc.transact(&meta, |r| r.append_audit(&signed)).map_err(ApiError::from))
            {
                Ok((_, stored)) => stored,
                Err(err) => {
                    self.cache.forget(&docs);
                    self.cache.forget(std::slice::from_ref(&doc));
                    return Err(err);
                }
            };
            if let Some(stored) = stored {
                let proof = match self.admit_and_sign_one(&doc, &stored) {
                    Ok(proof) => proof,
                    Err(err) => {
                        self.cache.forget(&docs);
                        self.cache.forget(std::slice::from_ref(&doc));
                        return Err(err);
                    }
                };
                batch.proofs.push(proof);
                batch.changes.push((doc.clone(), stored));
            }
            if !docs.contains(&doc) {
                docs.push(doc);
            }
            batch.audit.push(record);
        }
        Ok((docs, (seq, prev)))
    }

    /// Checks records of `post`'s audit log that arrived in `doc` against
    /// the trail, and adds them and any alarm to `batch`.
    pub(super) fn check_arrivals(&mut self, post: &str, records: Vec<AuditRecord>, batch: &mut Batch) {
        for record in records {
            let seq = record.seq;
            let in_batch =
                |n: u64| batch.trail.iter().find(|(p, _, s)| p == post && *s == n).map(|(_, entry, _)| entry.clone());
            let held = |n: u64| -> Option<TrailEntry> {
                in_batch(n).or_else(|| {
                    self.store.trail_entry(post, n).unwrap_or_else(|err| {
                        tracing::error!(%post, seq = n, error = %err, "cannot read the audit trail");
                        None
                    })
                })
            };
            for problem in check_arrival(post, &record, held) {
                tracing::error!(%post, seq, problem = %problem, "AUDIT LOG TAMPERED: {post}'s audit log");
                batch.alarms.push((post.to_string(), seq, problem));
            }
            batch.trail.push((post.to_string(), TrailEntry::of(&record), seq));
        }
    }

    /// `post`'s audit log as this node holds it, checked against the
    /// post's key (from the roster) and the alarms raised on arrival.
    pub(super) fn audit_log(&mut self, post: &str) -> Result<AuditLog, ApiError> {
        let prefix = format!("audit/{post}/");
        let docs: Vec<DocId> =
            self.store.doc_ids().map_err(internal)?.into_iter().filter(|d| d.as_str().starts_with(&prefix)).collect();
        if docs.is_empty() {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!("this node holds no audit log of {post} (a post's log goes to its national centres only)"),
            ));
        }
        let mut records = Vec::new();
        for doc in &docs {
            let read = self.cache.read(doc, |d| read_audit(d))?;
            records.extend(read.map_err(ApiError::from)?);
        }
        records.sort_by(|a, b| (a.record.seq, &a.record.hash).cmp(&(b.record.seq, &b.record.hash)));
        let key =
            self.replication.as_ref().and_then(|r| r.engine.fleet()).and_then(|f| f.member_named(post)).map(|m| m.key);
        let check = check_log(post, key.as_ref(), &records);
        let alarms = self
            .store
            .audit_alarms(Some(post))
            .map_err(internal)?
            .into_iter()
            .map(|(_, seq, text)| (seq, text))
            .collect();
        Ok(AuditLog { post: post.to_string(), records, check, alarms, signatures_checked: key.is_some() })
    }
}
