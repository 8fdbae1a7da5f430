//! The writer's documents in memory: loaded from storage on first use,
//! kept up to `max_loaded` (the least recently used leave first), and the
//! replication engine's [`DocHost`].
//!
//! A document in memory never holds a change storage lacks for longer than
//! one job: whoever applies a change and then fails to store it calls
//! [`DocCache::forget`], and the next use reloads it from disk.
//!
//! Documents officers have used (the shards they write, the audit log)
//! are not pushed out by what peers make the writer load: documents only
//! peers use always leave first, so an officer's document leaves only when
//! officers' documents fill the whole cache. Without this a peer opening
//! documents without end makes the writer load a shard from disk again on
//! an officer's next write, while the officer waits.

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::{ActorId, ChangeHash};
use outpost_model::DocId;
use outpost_model::api::{ApiError, ErrorKind};
use outpost_model::replication::engine::{DocHost, PeerKey};
use outpost_model::schema::Document;
use outpost_model::trust::proof::StoredProof;

use super::internal;
use crate::store::Store;

#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) doc: Document,
    /// Changes in storage after the snapshot.
    pub(super) stored_changes: u64,
    pub(super) last_seq: u64,
    last_used: u64,
    /// An officer's request used it since it was loaded.
    officers_use_it: bool,
}

pub(super) struct DocCache {
    store: Arc<Store>,
    /// The actor this node writes with, set on every loaded document.
    actor: ActorId,
    max_loaded: usize,
    docs: BTreeMap<DocId, Loaded>,
    use_counter: u64,
    /// While the engine runs, documents stay loaded: changes it applied
    /// must still be in memory when they are stored.
    pub(super) pinned: bool,
}

impl DocCache {
    pub(super) fn new(store: Arc<Store>, actor: ActorId, max_loaded: usize) -> Self {
        Self { store, actor, max_loaded, docs: BTreeMap::new(), use_counter: 0, pinned: false }
    }

    /// The document, loaded from storage if it is not in memory, for the
    /// node's own work (replication, compaction).
    pub(super) fn get_mut(&mut self, id: &DocId) -> Result<&mut Loaded, ApiError> {
        self.get(id, false)
    }

    /// The document, for an officer's request: it stays in memory ahead of
    /// those only peers use.
    pub(super) fn get_for_officer(&mut self, id: &DocId) -> Result<&mut Loaded, ApiError> {
        self.get(id, true)
    }

    fn get(&mut self, id: &DocId, for_officer: bool) -> Result<&mut Loaded, ApiError> {
        self.use_counter += 1;
        let tick = self.use_counter;
        if !self.docs.contains_key(id) {
            self.make_room();
            let loaded = self.load(id, tick)?;
            self.docs.insert(id.clone(), loaded);
        }
        let loaded = self.docs.get_mut(id).ok_or_else(|| internal("document cache lost a document"))?;
        loaded.last_used = tick;
        loaded.officers_use_it |= for_officer;
        Ok(loaded)
    }

    /// Reads a document: the one in memory, or else a copy loaded for this
    /// read alone, which leaves the cache as it was. For walks over every
    /// document (attestations, cuts), which must neither fill memory while
    /// the cache is pinned nor push out documents a batch still needs.
    pub(super) fn read<T>(&mut self, id: &DocId, read: impl FnOnce(&mut Document) -> T) -> Result<T, ApiError> {
        if let Some(loaded) = self.docs.get_mut(id) {
            return Ok(read(&mut loaded.doc));
        }
        let mut loaded = self.load(id, 0)?;
        Ok(read(&mut loaded.doc))
    }

    fn load(&self, id: &DocId, tick: u64) -> Result<Loaded, ApiError> {
        let stored = self.store.load_doc(id).map_err(internal)?;
        let last_seq = stored.changes.last().map_or(0, |(seq, _)| *seq);
        let stored_changes = stored.changes.len() as u64;
        let mut doc = Document::load(id, stored.snapshot.as_deref(), stored.changes.iter().map(|(_, c)| c.as_slice()))
            .map_err(|e| {
                tracing::error!(doc = %id, error = %e, "document cannot be loaded; writes to it are refused");
                ApiError::new(ErrorKind::Internal, format!("document {id} cannot be loaded: {e}"))
            })?;
        doc.set_actor(self.actor.clone());
        Ok(Loaded { doc, stored_changes, last_seq, last_used: tick, officers_use_it: false })
    }

    /// The document if it is in memory; never loads.
    pub(super) fn in_memory(&mut self, id: &DocId) -> Option<&mut Loaded> {
        self.docs.get_mut(id)
    }

    /// A document that must be in memory because this job just wrote it.
    pub(super) fn loaded(&self, id: &DocId) -> Result<&Document, ApiError> {
        self.docs.get(id).map(|l| &l.doc).ok_or_else(|| internal("document left memory mid-write"))
    }

    /// Drops documents from memory; the next use reloads them from disk.
    /// Drops every document from memory (after a panic, when any of them
    /// may hold what storage lacks).
    /// Drops every document in memory; returns which were loaded.
    pub(super) fn forget_all(&mut self) -> Vec<DocId> {
        self.pinned = false;
        std::mem::take(&mut self.docs).into_keys().collect()
    }

    pub(super) fn forget(&mut self, docs: &[DocId]) {
        for doc in docs {
            self.docs.remove(doc);
        }
    }

    /// Brings the cache back within its bound, after a job that kept
    /// everything it loaded.
    pub(super) fn evict_if_full(&mut self) {
        self.evict_down_to(self.max_loaded);
    }

    /// Room for one more document.
    fn make_room(&mut self) {
        self.evict_down_to(self.max_loaded.saturating_sub(1));
    }

    /// Evicts until at most `keep` documents remain, unless pinned:
    /// documents only peers use leave first, the least recently used of
    /// each kind first.
    fn evict_down_to(&mut self, keep: usize) {
        while !self.pinned && self.docs.len() > keep {
            if !self.evict_oldest(|l| !l.officers_use_it) && !self.evict_oldest(|_| true) {
                return;
            }
        }
    }

    #[cfg(test)]
    fn peer_docs(&self) -> usize {
        self.docs.values().filter(|l| !l.officers_use_it).count()
    }

    /// Drops the least recently used document that `which` picks; whether
    /// there was one.
    fn evict_oldest(&mut self, which: impl Fn(&Loaded) -> bool) -> bool {
        let oldest =
            self.docs.iter().filter(|(_, l)| which(l)).min_by_key(|(_, l)| l.last_used).map(|(id, _)| id.clone());
        oldest.is_some_and(|id| self.docs.remove(&id).is_some())
    }

    /// A stored change got sequence number `seq`.
    pub(super) fn record_stored(&mut self, doc: &DocId, seq: u64) {
        if let Some(loaded) = self.docs.get_mut(doc) {
            loaded.stored_changes += 1;
            loaded.last_seq = seq;
        }
    }

    /// A loaded document with at least `threshold` changes stored after its
    /// snapshot.
    pub(super) fn over_threshold(&self, threshold: u64) -> Option<DocId> {
        self.docs.iter().find(|(_, l)| l.stored_changes >= threshold).map(|(id, _)| id.clone())
    }
}

impl DocHost for DocCache {
    fn doc(&mut self, id: &DocId) -> Result<&mut Document, String> {
        self.get_mut(id).map(|loaded| &mut loaded.doc).map_err(|e| e.message)
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

    fn proofs(&mut self, doc: &DocId, change: &ChangeHash) -> Vec<StoredProof> {
        match self.store.proofs(doc, change) {
            Ok(proofs) => proofs,
            Err(err) => {
                tracing::warn!(%doc, %change, error = %err, "cannot read a change's proofs; it is sent without them");
                Vec::new()
            }
        }
    }

    fn discard(&mut self, doc: &DocId) {
        self.docs.remove(doc);
    }
}

#[cfg(test)]
mod tests {
    use outpost_model::schema::DocKind;

    use super::*;
    use crate::store::Medium;

    fn incidents(n: u32) -> DocId {
        DocKind::Incidents { post: "kz-rogue".into(), month: format!("{}-01", 2000 + n) }.doc_id()
    }

    fn shard(n: u8) -> DocId {
        DocKind::Watchlist { authority: "KAZ-BS".into(), shard: n }.doc_id()
    }

    fn cache(max_loaded: usize) -> DocCache {
        let store = Arc::new(Store::open_on(Medium::Memory, [3; 16]).unwrap());
        DocCache::new(store, ActorId::from([1u8; 16]), max_loaded)
    }

    #[test]
    fn what_peers_make_the_writer_load_never_pushes_out_what_officers_use() {
        let mut cache = cache(8);
        for n in 0..6 {
            cache.get_for_officer(&shard(n)).unwrap();
        }
        for n in 0..100 {
            cache.doc(&incidents(n)).unwrap();
            assert!(cache.docs.len() <= 8);
        }
        for n in 0..6 {
            assert!(cache.in_memory(&shard(n)).is_some(), "shard {n} was pushed out by a peer's documents");
        }
        assert_eq!(cache.peer_docs(), 2, "peers' documents take the room officers leave");
    }

    #[test]
    fn peers_documents_leave_first_and_officers_only_when_theirs_fill_the_cache() {
        let mut cache = cache(8);
        for n in 0..20 {
            cache.doc(&incidents(n)).unwrap();
        }
        assert_eq!(cache.peer_docs(), 8, "with no officer at work peers use the whole cache");
        assert!(cache.in_memory(&incidents(19)).is_some(), "the most recent stays");
        for n in 0..8 {
            cache.get_for_officer(&shard(n)).unwrap();
        }
        assert_eq!(cache.docs.len(), 8);
        assert_eq!(cache.peer_docs(), 0, "an officer's document pushes out a peer's first");
        // With officers' documents only, the least recently used leaves.
        cache.get_for_officer(&shard(8)).unwrap();
        assert!(cache.in_memory(&shard(0)).is_none());
    }

    /// One peer's input may load any number of documents (the cache is
    /// pinned while the engine runs); trimming afterwards takes those back
    /// first, not the officers' documents, whose last use is older.
    #[test]
    fn a_pinned_job_that_loads_many_documents_gives_back_its_own_first() {
        let mut cache = cache(8);
        for n in 0..5 {
            cache.get_for_officer(&shard(n)).unwrap();
        }
        cache.pinned = true;
        for n in 0..40 {
            cache.doc(&incidents(n)).unwrap();
        }
        assert_eq!(cache.docs.len(), 45);
        cache.pinned = false;
        cache.evict_if_full();
        assert_eq!(cache.docs.len(), 8);
        for n in 0..5 {
            assert!(cache.in_memory(&shard(n)).is_some(), "shard {n} was pushed out after a pinned job");
        }
        assert!(cache.in_memory(&incidents(39)).is_some(), "the job's most recent documents stay");
    }
}
