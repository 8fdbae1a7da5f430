//! The quarantine on the writer: changes that wait for a roster, for the
//! change a revocation's cut names, or for changes they depend on
//! (orphans), kept in the store within bounds, in all and per peer, and
//! handed back to the engine when a roster is installed (all of them) or a
//! document they wait in changes (those whose dependencies are all there
//! now, so that a flood of orphans costs no work per change received).
//!
//! Which changes are held, from whom and how large, is kept in memory too,
//! so that the bounds and "does this document hold any" cost no read of
//! the store: a peer that floods the quarantine fills its own share and no
//! more, and makes no node read the whole quarantine per message.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{Change, ChangeHash};
use outpost_model::DocId;
use outpost_model::admission::{Held, Reason};
use outpost_model::replication::engine::PeerKey;

use super::Writer;
use crate::store::{Batch, HeldRecord, Store};

/// How much the quarantine may hold, in all and from one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineLimits {
    pub changes: u64,
    pub bytes: u64,
    pub changes_per_peer: u64,
    pub bytes_per_peer: u64,
}

impl Default for QuarantineLimits {
    fn default() -> Self {
        Self { changes: 10_000, bytes: 64 * 1024 * 1024, changes_per_peer: 2_000, bytes_per_peer: 16 * 1024 * 1024 }
    }
}

/// What the store's quarantine table holds, without the changes.
#[derive(Debug, Default)]
pub(super) struct Quarantine {
    rows: BTreeMap<(DocId, ChangeHash), Slot>,
}

#[derive(Debug, Clone)]
struct Slot {
    from: String,
    bytes: u64,
    /// The changes it depends on.
    deps: Vec<ChangeHash>,
    /// It waits for changes (its dependencies, or the change a cut names),
    /// not for a roster: only such a change is judged again when its
    /// document changes, so that held changes cost no work per change
    /// received until something they wait for may have come.
    waits_for_changes: bool,
}

/// The changes a held change (as stored) depends on; none if it does not
/// parse, so that it is handed back, found broken and dropped.
pub(super) fn deps_of(change: &[u8]) -> Vec<ChangeHash> {
    outpost_model::error::guard(|| Change::from_bytes(change.to_vec()))
        .ok()
        .and_then(Result::ok)
        .map(|c| c.deps().to_vec())
        .unwrap_or_default()
}

/// A change a committed batch holds, as the quarantine keeps it in memory.
#[derive(Debug)]
pub(super) struct HeldRow {
    pub(super) doc: DocId,
    pub(super) hash: ChangeHash,
    pub(super) from: String,
    pub(super) bytes: u64,
    pub(super) deps: Vec<ChangeHash>,
    pub(super) waits_for_changes: bool,
}

impl HeldRow {
    pub(super) fn of(doc: &DocId, hash: ChangeHash, record: &HeldRecord) -> Self {
        HeldRow {
            doc: doc.clone(),
            hash,
            from: record.from.clone(),
            bytes: record_bytes(record),
            deps: deps_of(&record.change),
            waits_for_changes: waits_for_changes(&record.reason),
        }
    }
}

/// Whether a change held for `reason` (as stored) waits for changes rather
/// than for a roster; one held for depending on a held change waits for
/// what that one waits for.
pub(super) fn waits_for_changes(reason: &str) -> bool {
    [Reason::MissingDependencies, Reason::CutUnknown, Reason::Dependency].iter().any(|r| r.to_string() == reason)
}

/// Changes held and bytes they take.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    changes: u64,
    bytes: u64,
}

impl Usage {
    fn add(&mut self, bytes: u64) {
        self.changes += 1;
        self.bytes += bytes;
    }

    fn fits(self, bytes: u64, max_changes: u64, max_bytes: u64) -> bool {
        self.changes < max_changes && self.bytes + bytes <= max_bytes
    }
}

impl Quarantine {
    /// Reads what the store holds. A damaged row is named and left out
    /// (the next release of its document removes it).
    pub(super) fn load(store: &Store) -> Self {
        let (records, damaged) = match store.held() {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "cannot read the quarantine; it counts as empty until the next start");
                return Self::default();
            }
        };
        for err in damaged {
            tracing::error!(error = %err, "a damaged quarantine row is skipped");
        }
        let mut rows = BTreeMap::new();
        for (doc, hash, record) in records {
            let bytes = record_bytes(&record);
            let deps = deps_of(&record.change);
            let waits_for_changes = waits_for_changes(&record.reason);
            rows.insert((doc, hash), Slot { from: record.from, bytes, deps, waits_for_changes });
        }
        Self { rows }
    }

    pub(super) fn len(&self) -> u64 {
        self.rows.len() as u64
    }

    /// Documents with changes held.
    pub(super) fn docs(&self) -> BTreeSet<DocId> {
        self.rows.keys().map(|(doc, _)| doc.clone()).collect()
    }

    /// The changes held in `doc`.
    pub(super) fn held_in(&self, doc: &DocId) -> Vec<ChangeHash> {
        self.rows.keys().filter(|(d, _)| d == doc).map(|(_, hash)| *hash).collect()
    }

    /// The changes held in `doc` that wait for changes and lack no
    /// dependency any more: each dependency is in the document (`known`)
    /// or is itself such a held change. One pass over the held changes,
    /// each judged after those it depends on.
    pub(super) fn ready_in(&self, doc: &DocId, mut known: impl FnMut(&ChangeHash) -> bool) -> Vec<ChangeHash> {
        let held: BTreeMap<ChangeHash, &Slot> =
            self.rows.iter().filter(|((d, _), _)| d == doc).map(|((_, hash), slot)| (*hash, slot)).collect();
        let mut ready: BTreeMap<ChangeHash, bool> = BTreeMap::new();
        for start in held.keys() {
            let mut stack = vec![(*start, false)];
            while let Some((hash, judged_deps)) = stack.pop() {
                if ready.contains_key(&hash) {
                    continue;
                }
                let Some(slot) = held.get(&hash) else { continue };
                if judged_deps {
                    // A held dependency not judged yet could only be a
                    // cycle, which hashes rule out: it counts as missing.
                    let all = slot.deps.iter().all(|d| match held.get(d) {
                        Some(_) => ready.get(d).copied().unwrap_or(false),
                        None => known(d),
                    });
                    ready.insert(hash, all && slot.waits_for_changes);
                } else {
                    stack.push((hash, true));
                    let waiting = slot.deps.iter().filter(|d| held.contains_key(*d) && !ready.contains_key(*d));
                    stack.extend(waiting.map(|d| (*d, false)));
                }
            }
        }
        ready.into_iter().filter(|(_, ok)| *ok).map(|(hash, _)| hash).collect()
    }

    /// Follows a committed batch: its released changes gone, then its
    /// changes held.
    pub(super) fn committed(&mut self, release: &BTreeSet<(DocId, ChangeHash)>, hold: Vec<HeldRow>) {
        self.rows.retain(|key, _| !release.contains(key));
        for HeldRow { doc, hash, from, bytes, deps, waits_for_changes } in hold {
            self.rows.insert((doc, hash), Slot { from, bytes, deps, waits_for_changes });
        }
    }

    /// What stays held once `batch` is committed, in all and per peer.
    fn usage(&self, batch: &Batch) -> (Usage, BTreeMap<String, Usage>) {
        let (mut all, mut per_peer) = (Usage::default(), BTreeMap::<String, Usage>::new());
        let kept = self.rows.iter().filter(|(key, _)| !batch.release.contains(*key));
        let staged = batch.hold.iter().map(|(_, _, record)| (record.from.as_str(), record_bytes(record)));
        for (origin, bytes) in kept.map(|(_, slot)| (slot.from.as_str(), slot.bytes)).chain(staged) {
            all.add(bytes);
            per_peer.entry(origin.to_string()).or_default().add(bytes);
        }
        (all, per_peer)
    }
}

/// What a held change takes: its bytes and its proofs'.
pub(super) fn record_bytes(record: &HeldRecord) -> u64 {
    (record.change.len() + record.proofs.len() * PROOF_BYTES) as u64
}

fn held_bytes(held: &Held) -> u64 {
    (held.change.raw_bytes().len() + held.proofs.len() * PROOF_BYTES) as u64
}

/// A stored proof: a signature and an attester's prefix.
const PROOF_BYTES: usize = 64 + 17;

impl Writer {
    /// The changes held for `docs`, handed back to the engine: what passes
    /// now is applied, what still waits is held again. When `docs` is
    /// `None` (a roster was installed) every held change goes back; when
    /// documents changed, only their held changes that lack no dependency.
    pub(super) fn requeue_held(&mut self, docs: Option<&[DocId]>) {
        if self.replication.is_none() {
            return;
        }
        let held_docs = self.quarantine.docs();
        let wanted: Vec<DocId> = match docs {
            Some(docs) => docs.iter().filter(|d| held_docs.contains(*d)).cloned().collect(),
            None => held_docs.into_iter().collect(),
        };
        for doc in wanted {
            let hashes = match docs {
                None => self.quarantine.held_in(&doc),
                Some(_) => match self.cache.get_mut(&doc) {
                    Ok(loaded) => self.quarantine.ready_in(&doc, |hash| loaded.doc.knows(&[*hash])),
                    Err(err) => {
                        tracing::error!(%doc, error = %err.message, "cannot load a document with held changes");
                        continue;
                    }
                },
            };
            if hashes.is_empty() {
                continue;
            }
            let (records, damaged) = match self.store.held_changes(&doc, &hashes) {
                Ok(found) => found,
                Err(err) => {
                    tracing::error!(%doc, error = %err, "cannot read the quarantine");
                    continue;
                }
            };
            for err in damaged {
                tracing::error!(error = %err, "a damaged quarantine row is dropped");
            }
            let mut held = Vec::new();
            for (_, _, record) in records {
                let parsed =
                    outpost_model::error::guard(|| Change::from_bytes(record.change)).ok().and_then(Result::ok);
                let Some(change) = parsed else {
                    tracing::error!(%doc, "a held change does not parse; it is dropped");
                    continue;
                };
                let reason = Reason::UnknownSigner;
                held.push(Held { change, proofs: record.proofs, reason, announced: record.announced });
            }
            let Some(replication) = self.replication.as_mut() else { return };
            // Pinned until the changes are stored: this may run inside the
            // carrying out of another input, which stays pinned too.
            let was_pinned = std::mem::replace(&mut self.cache.pinned, true);
            let effects = replication.engine.handle_held(self.settings.clock.monotonic(), &doc, held, &mut self.cache);
            let release = hashes.into_iter().map(|hash| (doc.clone(), hash)).collect();
            self.carry_out(effects, release);
            self.cache.pinned = was_pinned;
            self.cache.evict_if_full();
        }
    }

    /// Held changes from an `Effect::Hold`, as rows, within the bounds.
    pub(super) fn hold_rows(&self, doc: &DocId, from: Option<PeerKey>, held: Vec<Held>, batch: &mut Batch) {
        let refused = self.quarantine.stage(
            doc,
            from.as_ref(),
            held,
            batch,
            (&self.settings.quarantine, self.settings.clock.wall()),
        );
        if refused > 0 {
            tracing::error!(%doc, refused, "the quarantine (or this peer's share of it) is full; these changes are not held (a peer offers them again)");
        }
    }
}

impl Quarantine {
    /// Adds `held`, from `from`, to `batch`'s rows within `limits`; a change
    /// held again keeps the peer it first came from. Returns how many did
    /// not fit.
    fn stage(
        &self,
        doc: &DocId,
        from: Option<&PeerKey>,
        held: Vec<Held>,
        batch: &mut Batch,
        (limits, now): (&QuarantineLimits, outpost_model::date::Timestamp),
    ) -> usize {
        let mut refused = 0;
        let (mut all, mut per_peer) = self.usage(batch);
        for item in held {
            let hash = item.change.hash();
            let origin = match from {
                Some(peer) => peer.0.clone(),
                None => self.rows.get(&(doc.clone(), hash)).map_or_else(|| "unknown".into(), |s| s.from.clone()),
            };
            let key = (doc.clone(), hash);
            let still_held = self.rows.contains_key(&key) && !batch.release.contains(&key);
            if still_held || batch.hold.iter().any(|(d, h, _)| d == doc && *h == hash) {
                continue;
            }
            let bytes = held_bytes(&item);
            let peer = per_peer.entry(origin.clone()).or_default();
            if !all.fits(bytes, limits.changes, limits.bytes)
                || !peer.fits(bytes, limits.changes_per_peer, limits.bytes_per_peer)
            {
                refused += 1;
                continue;
            }
            all.add(bytes);
            peer.add(bytes);
            tracing::info!(%doc, change = %hash, reason = %item.reason, from = %origin, "change held until it can be judged");
            let record = HeldRecord {
                change: item.change.raw_bytes().to_vec(),
                proofs: item.proofs,
                reason: item.reason.to_string(),
                since: now,
                from: origin,
                announced: item.announced,
            };
            batch.hold.push((doc.clone(), hash, record));
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use automerge::transaction::Transactable;

    use super::*;

    fn changes(n: usize, actor: u8) -> Vec<Held> {
        let mut doc = automerge::AutoCommit::new();
        doc.set_actor(automerge::ActorId::from(vec![actor; 20]));
        for i in 0..n {
            doc.put(automerge::ROOT, "k", i as i64).unwrap();
            doc.commit();
        }
        doc.get_changes(&[])
            .into_iter()
            .map(|c| Held { change: c.clone(), proofs: Vec::new(), reason: Reason::UnknownSigner, announced: 0 })
            .collect()
    }

    fn doc() -> DocId {
        DocId::parse("watchlist/KAZ-BS/00").unwrap()
    }

    #[test]
    fn a_peer_fills_its_own_share_and_the_others_still_get_in() {
        let limits = QuarantineLimits { changes: 5, bytes: 1 << 20, changes_per_peer: 3, bytes_per_peer: 1 << 20 };
        let mut quarantine = Quarantine::default();
        let mut batch = Batch::default();
        let flooder = PeerKey("flooder".into());
        assert_eq!(quarantine.stage(&doc(), Some(&flooder), changes(10, 1), &mut batch, (&limits, crate::now())), 7);
        let honest = PeerKey("honest".into());
        assert_eq!(quarantine.stage(&doc(), Some(&honest), changes(1, 2), &mut batch, (&limits, crate::now())), 0);
        assert_eq!(batch.hold.len(), 4);
        let rows = batch.hold.iter().map(|(d, h, r)| HeldRow::of(d, *h, r)).collect();
        quarantine.committed(&BTreeSet::new(), rows);
        // Offered again, nothing is held twice; the flooder's share stays full.
        let mut next = Batch::default();
        assert_eq!(quarantine.stage(&doc(), Some(&flooder), changes(10, 1), &mut next, (&limits, crate::now())), 7);
        assert!(next.hold.is_empty());
        // The whole bound holds too: one more peer gets one slot.
        let third = PeerKey("third".into());
        assert_eq!(quarantine.stage(&doc(), Some(&third), changes(3, 3), &mut next, (&limits, crate::now())), 2);
    }

    #[test]
    fn a_change_held_again_keeps_the_peer_it_came_from_and_its_share() {
        let limits = QuarantineLimits { changes: 100, bytes: 1 << 20, changes_per_peer: 2, bytes_per_peer: 1 << 20 };
        let mut quarantine = Quarantine::default();
        let mut batch = Batch::default();
        let flooder = PeerKey("flooder".into());
        quarantine.stage(&doc(), Some(&flooder), changes(2, 1), &mut batch, (&limits, crate::now()));
        let rows = batch.hold.iter().map(|(d, h, r)| HeldRow::of(d, *h, r)).collect();
        quarantine.committed(&BTreeSet::new(), rows);
        // Handed back to the engine and held again: released and staged
        // in one batch, under the same peer.
        let release = quarantine.held_in(&doc()).into_iter().map(|h| (doc(), h)).collect();
        let mut requeued = Batch { release, ..Batch::default() };
        assert_eq!(quarantine.stage(&doc(), None, changes(2, 1), &mut requeued, (&limits, crate::now())), 0);
        assert!(requeued.hold.iter().all(|(_, _, r)| r.from == "flooder"));
        // Bytes count as well as changes.
        let tight = QuarantineLimits { bytes_per_peer: 1, ..limits };
        let mut other = Batch::default();
        assert_eq!(
            quarantine.stage(&doc(), Some(&PeerKey("b".into())), changes(1, 2), &mut other, (&tight, crate::now())),
            1
        );
    }

    /// Orphans go back to the engine only once nothing they depend on is
    /// missing: a chain waits whole for its first link, and then goes back
    /// whole.
    #[test]
    fn only_orphans_whose_dependencies_arrived_go_back() {
        let limits = QuarantineLimits::default();
        let chain = changes(4, 1);
        let hashes: Vec<ChangeHash> = chain.iter().map(|h| h.change.hash()).collect();
        let mut quarantine = Quarantine::default();
        let mut batch = Batch::default();
        // The first change never arrived; the three after it are held.
        let orphans: Vec<Held> =
            chain[1..].iter().cloned().map(|h| Held { reason: Reason::MissingDependencies, ..h }).collect();
        quarantine.stage(&doc(), Some(&PeerKey("p".into())), orphans, &mut batch, (&limits, crate::now()));
        let rows = batch.hold.iter().map(|(d, h, r)| HeldRow::of(d, *h, r)).collect();
        quarantine.committed(&BTreeSet::new(), rows);
        assert!(quarantine.ready_in(&doc(), |_| false).is_empty(), "nothing goes back while the first link is missing");
        let mut ready = quarantine.ready_in(&doc(), |h| *h == hashes[0]);
        ready.sort();
        let mut expected = hashes[1..].to_vec();
        expected.sort();
        assert_eq!(ready, expected);
    }

    /// A change waiting for a roster (and one held behind it) is judged
    /// again when a roster comes, not each time its document changes: a
    /// member cannot make every change received re-check thousands of
    /// held signatures.
    #[test]
    fn changes_that_wait_for_a_roster_do_not_go_back_when_the_document_changes() {
        let chain = changes(3, 1);
        let mut held: Vec<Held> = chain.clone();
        held[1].reason = Reason::Dependency;
        held[2].reason = Reason::Dependency;
        let mut quarantine = Quarantine::default();
        let mut batch = Batch::default();
        quarantine.stage(
            &doc(),
            Some(&PeerKey("p".into())),
            held,
            &mut batch,
            (&QuarantineLimits::default(), crate::now()),
        );
        let rows = batch.hold.iter().map(|(d, h, r)| HeldRow::of(d, *h, r)).collect();
        quarantine.committed(&BTreeSet::new(), rows);
        assert!(quarantine.ready_in(&doc(), |_| true).is_empty(), "all wait for the roster");
        assert_eq!(quarantine.held_in(&doc()).len(), 3, "a roster hands them all back");
    }
}
