//! Compaction, run only when the writer's queue is empty: a document whose
//! stored changes have piled up is saved as a new snapshot, and the changes
//! it now holds are deleted, in one transaction.

use automerge::ChangeHash;
use outpost_model::schema::Document;

use super::Writer;

fn sorted(heads: &[ChangeHash]) -> Vec<ChangeHash> {
    let mut heads = heads.to_vec();
    heads.sort_unstable();
    heads
}

impl Writer {
    /// Compacts one document whose changes have piled up. Returns whether it
    /// did any work, so the caller keeps going while there is more.
    pub(super) fn compact_one(&mut self) -> bool {
        if let Some(id) = self.backlog.pop() {
            // Loading is enough: the search below then finds it over the threshold.
            let _ = self.cache.get_mut(&id);
        }
        let threshold = self.settings.compact_after_changes;
        let Some(doc_id) = self.cache.over_threshold(threshold) else {
            return false;
        };
        let Some(loaded) = self.cache.in_memory(&doc_id) else { return false };
        let started = std::time::Instant::now();
        let snapshot = loaded.doc.save();
        // The stored changes are deleted once the snapshot is in: it must
        // load back to the same heads, or signed history would be lost
        // (Automerge has applied crafted changes it then saves otherwise).
        let heads = loaded.doc.heads();
        let reloaded = Document::load(&doc_id, Some(&snapshot), std::iter::empty()).map(|mut d| d.heads());
        if !matches!(&reloaded, Ok(back) if sorted(back) == sorted(&heads)) {
            tracing::error!(doc = %doc_id, reloaded = ?reloaded.map(|h| h.len()),
                "the document's snapshot does not load back as it is; its changes are kept, not compacted");
            loaded.stored_changes = 0;
            return true;
        }
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
