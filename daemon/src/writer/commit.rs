//! The one path by which anything is stored: an officer's write and the
//! changes received from peers alike.

use outpost_model::DocId;
use outpost_model::api::ApiError;
use outpost_model::audit::AuditEvent;
use outpost_model::search::IndexRecord;
use outpost_model::watchlist::Entry;

use super::Writer;
use super::storage::storage_failed;
use crate::store::Batch;

impl Writer {
    /// Commits `batch` with the projection rows of `entries`, their search
    /// index records and the heads of every document it changes, in one
    /// durable transaction; then makes the entries searchable. Returns the
    /// documents it changed.
    ///
    /// `audit`: who did it. The events are sealed onto this node's audit
    /// chain and mirrored into its audit document in the same transaction
    /// (`writer/audit.rs`), which is pushed to peers once stored.
    ///
    /// On failure nothing was stored, and the documents the batch touched
    /// are dropped from memory, so that no change storage lacks stays in
    /// memory.
    pub(super) fn commit_and_index(
        &mut self,
        mut batch: Batch,
        entries: Vec<Entry>,
        audit: Vec<AuditEvent>,
    ) -> Result<Vec<DocId>, ApiError> {
        let (audit_docs, audit_head) = if audit.is_empty() {
            (Vec::new(), None)
        } else {
            match self.seal_and_mirror(audit, &mut batch) {
                Ok((docs, head)) => (docs, Some(head)),
                Err(err) => {
                    let touched: Vec<DocId> = batch.changes.iter().map(|(d, _)| d.clone()).collect();
                    self.cache.forget(&touched);
                    return Err(err);
                }
            }
        };
        let records = {
            let index = self.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            entries.iter().map(|e| index.prepare(e)).collect::<Vec<IndexRecord>>()
        };
        batch.entries = entries;
        batch.index_records = records.clone();
        let mut touched: Vec<DocId> = batch.changes.iter().map(|(d, _)| d.clone()).collect();
        touched.sort();
        touched.dedup();
        for doc in &touched {
            if let Some(loaded) = self.cache.in_memory(doc) {
                batch.heads.push((doc.clone(), loaded.doc.heads()));
            }
        }
        let release = batch.release.clone();
        let held: Vec<_> =
            batch.hold.iter().map(|(doc, hash, record)| super::quarantine::HeldRow::of(doc, *hash, record)).collect();
        let started = std::time::Instant::now();
        let committed = self.store.commit(batch);
        self.settings.latencies.observe_commit(started.elapsed());
        match committed {
            Ok(receipt) => {
                self.quarantine.committed(&release, held);
                for (doc, seq) in receipt.change_seqs {
                    self.cache.record_stored(&doc, seq);
                }
                let mut index = self.index.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                for record in &records {
                    index.insert(record);
                }
                if audit_head.is_some() {
                    self.audit_head = audit_head;
                }
                for doc in audit_docs {
                    if !self.audit_to_push.contains(&doc) {
                        self.audit_to_push.push(doc);
                    }
                }
                Ok(touched)
            }
            Err(err) => {
                self.cache.forget(&touched);
                // The head may have moved on disk behind our back (a
                // rewritten store): read it again next time.
                self.audit_head = None;
                let reopen = err.needs_reopen();
                let answer = storage_failed(err);
                if reopen {
                    self.storage_failed_now();
                }
                Err(answer)
            }
        }
    }
}
