//! Per-document sessions: Automerge sync with one peer, replies due,
//! two-sided resets, and the closing `Done` of a snapshot.

use automerge::sync::ChunkList;

use super::receive::Origin;
use super::{DocHost, Effect, Engine, Out, PeerKey, Trust, sorted};
use crate::date::Timestamp;
use crate::ids::DocId;
use crate::replication::bundle::{BundlePayload, Reassembly};
use crate::replication::digest::{Fingerprint, fingerprint};
use crate::replication::frame::{Body, BundleKind, MAX_REASON_CHARS};
use crate::replication::received::{Budget, ReceiveLimits, changes_within, is_document_chunk};
use crate::replication::session::{DocSession, STALL_AFTER_MS, SessionError};
use crate::trust::proof::Proof;

#[derive(Debug)]
pub(super) struct Session {
    pub(super) sync: DocSession,
    pub(super) persisted: Vec<u8>,
    pub(super) last_used: Timestamp,
    /// Bytes sent since the last progress; a reply is not due before they
    /// could have crossed the slowest link.
    pub(super) bytes_out: u64,
    /// A snapshot was sent; its receiver answers with `Done` or a sync.
    pub(super) awaiting_bundle_reply: Option<Timestamp>,
    pub(super) incoming: Option<Reassembly>,
    /// The next message pushes a change made or received here, so a
    /// document the peer never synced with us is assumed new to it.
    pub(super) pushing: bool,
}

impl Session {
    pub(super) fn active(&self) -> bool {
        self.sync.is_awaiting() || self.awaiting_bundle_reply.is_some()
    }
}

impl Engine {
    /// Makes sure a session for (peer, doc) exists, resumed from its
    /// persisted state; false when the peer is gone.
    pub(super) fn ensure_session(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        host: &mut dyn DocHost,
        out: &mut Out,
    ) -> bool {
        self.evict_idle(peer);
        let Some(state) = self.peers.get_mut(peer) else { return false };
        // Every document byte goes through a session: none for a peer that
        // is not an active member, whatever path asked for one.
        if !state.syncing {
            return false;
        }
        let key = state.key;
        if !self.may_receive(&key, doc) {
            return false;
        }
        let Some(state) = self.peers.get_mut(peer) else { return false };
        let pause = self.config.limits.recheck_every_ms / 2;
        match state.quiet.get(doc) {
            Some((_, since)) if since.as_millis() + pause <= now.as_millis() => {
                state.quiet.remove(doc);
            }
            Some((refusals, _)) if *refusals >= 2 => return false,
            _ => {}
        }
        if !state.sessions.contains_key(doc)
            && let Some(junk) = self.junk(now, peer, doc)
        {
            // Only documents someone may write exist: a peer that names
            // junk (an id no member may write in, a month not begun) gets
            // no session, no place in the queues and no load of it.
            out.problem(peer, Some(doc), format!("refused to sync {doc}: {junk}"));
            self.refuse(now, peer, doc, &junk, out);
            return false;
        }
        let Some(state) = self.peers.get_mut(peer) else { return false };
        if !state.sessions.contains_key(doc) && state.sessions.len() >= self.config.limits.max_peer_sessions {
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!("keeps more than {} document sessions open", self.config.limits.max_peer_sessions),
            });
            self.drop_peer(now, peer);
            return false;
        }
        if !state.sessions.contains_key(doc) {
            let persisted = host.sync_state(peer, doc);
            let (sync, replaced) = DocSession::resume(persisted.as_deref(), now);
            if replaced {
                out.problem(peer, Some(doc), "persisted sync state did not decode; starting afresh".into());
            }
            state.sessions.insert(
                doc.clone(),
                Session {
                    persisted: persisted.unwrap_or_default(),
                    sync,
                    last_used: now,
                    bytes_out: 0,
                    awaiting_bundle_reply: None,
                    incoming: None,
                    pushing: false,
                },
            );
        }
        if let Some(session) = state.sessions.get_mut(doc) {
            session.last_used = now;
        }
        true
    }

    pub(super) fn session_mut(&mut self, peer: &PeerKey, doc: &DocId) -> Option<&mut Session> {
        self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc))
    }

    /// Says what there is to say about `doc` to `peer`: a snapshot for a
    /// peer with no copy, else the next sync message, its changes bundled
    /// when large.
    pub(super) fn drive(&mut self, now: Timestamp, peer: &PeerKey, doc: &DocId, host: &mut dyn DocHost, out: &mut Out) {
        if !self.ensure_session(now, peer, doc, host, out) {
            return;
        }
        let peer_lacks_it = self.peers.get_mut(peer).is_some_and(|s| s.absent.remove(doc));
        let pushing = self.session_mut(peer, doc).is_some_and(|s| std::mem::take(&mut s.pushing));
        let document = match host.doc(doc) {
            Ok(document) => document,
            Err(err) => {
                out.problem(peer, Some(doc), format!("cannot sync a document this node cannot load: {err}"));
                return;
            }
        };
        let signed = self.signs();
        let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) else { return };
        if peer_lacks_it && session.sync.shared_heads().is_empty() {
            if !self.may_restart(now, peer, doc, out) {
                return;
            }
            let parts = self.whole_parts(doc, host);
            if let Some(session) = self.session_mut(peer, doc) {
                session.awaiting_bundle_reply = Some(now);
            }
            self.send_parts(peer, doc, BundleKind::Snapshot, parts, out);
            return;
        }
        // Assuming the peer holds only the genesis resends the whole
        // document if it got it elsewhere, so only small documents are
        // pushed that way; larger ones learn the peer's heads first.
        let genesis = document.genesis_heads().to_vec();
        let floor = (pushing && document.count_changes_since(&genesis) <= self.config.limits.push_whole_up_to)
            .then_some(genesis);
        session.sync.prime(floor.as_deref());
        let Some(mut message) = session.sync.next_sync(now, document) else { return };
        let chunks: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
        let change_bytes: usize = chunks.iter().map(Vec::len).sum();
        let proofs = if signed && !chunks.is_empty() {
            chunk_proofs(&self.fresh_proofs, &chunks, host, doc)
        } else {
            Vec::new()
        };
        let proofs = if change_bytes > self.config.limits.bundle_over_bytes {
            // A catch-up: the changes go compressed together, or as the whole
            // document when that is smaller (its columns compress far better
            // than changes one by one), and the sync message follows bare.
            message.changes = ChunkList::empty();
            let changes = BundlePayload::new(&message.heads, chunks, proofs).into_parts();
            let whole = self.whole_parts(doc, host);
            let size =
                |parts: &Result<Vec<Vec<u8>>, _>| parts.as_ref().map_or(usize::MAX, |p| p.iter().map(Vec::len).sum());
            let smaller = if size(&whole) < size(&changes) { whole } else { changes };
            self.send_parts(peer, doc, BundleKind::Changes, smaller, out);
            Vec::new()
        } else {
            proofs
        };
        let sent = self.send_doc(peer, doc, |slot| Body::Sync { slot, message: message.encode(), proofs }, out);
        if let Some(session) = self.session_mut(peer, doc) {
            session.bytes_out += sent as u64;
        }
    }

    /// Whether changes sent carry their proofs: only where the receiver
    /// asks for them.
    pub(super) fn signs(&self) -> bool {
        matches!(self.config.trust, Trust::Fleet { .. })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_sync(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        message: &[u8],
        proofs: &[Proof],
        host: &mut dyn DocHost,
        out: &mut Out,
    ) {
        if !self.ensure_session(now, peer, doc, host, out) {
            return;
        }
        let document = match host.doc(doc) {
            Ok(document) => document,
            Err(err) => {
                out.problem(peer, Some(doc), format!("cannot sync a document this node cannot load: {err}"));
                self.refuse(now, peer, doc, "the receiver cannot load this document", out);
                return;
            }
        };
        let limits = self.config.limits.receive;
        let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) else { return };
        session.awaiting_bundle_reply = None;
        let received = match session.sync.decode(document, message, limits) {
            Ok(received) => received,
            Err(err) => {
                out.problem(peer, Some(doc), format!("refused a sync message: {err}"));
                if matches!(err, SessionError::TooManyRounds { .. }) {
                    self.reset_session(now, peer, doc, &err.to_string(), host, out);
                } else {
                    // Saying so spares the sender a reset every 30 s; the
                    // next digest exchange tries the document again.
                    self.refuse(now, peer, doc, &err.to_string(), out);
                }
                return;
            }
        };
        let others: usize = self.peers.get(peer).map_or(0, |state| {
            state.sessions.iter().filter(|(d, _)| *d != doc).map(|(_, s)| s.sync.their_bloom_bytes()).sum()
        });
        let limit = self.config.limits.max_peer_bloom_bytes;
        if others + received.bloom_bytes() > limit {
            let reason = format!("its Bloom filters would take more than {limit} bytes here");
            out.problem(peer, Some(doc), format!("refused a sync message: {reason}"));
            self.refuse(now, peer, doc, &reason, out);
            return;
        }
        let changes = received.changes.clone();
        let outcome = self.receive(now, Origin::Peer(peer), doc, changes, proofs, Some(received), host, out);
        // Changes are stored before the sync state that claims them, and
        // also when a message was refused after some of it applied.
        if outcome.changed {
            self.changed(now, doc, Some(peer), host, out);
        }
        if let Some(err) = outcome.error {
            out.problem(peer, Some(doc), format!("refused a sync message: {err}"));
            self.refuse(now, peer, doc, &err, out);
            return;
        }
        if !self.peers.contains_key(peer) {
            return;
        }
        if let Some(reason) = outcome.refused {
            // The sender would only offer the same changes again; the next
            // digest exchange tries the document again.
            self.refuse(now, peer, doc, &reason, out);
            return;
        }
        if outcome.waiting {
            // A change came without one it depends on (a Bloom filter's
            // false positive at the sender): a fresh exchange finds it.
            self.reset_session(now, peer, doc, "a change came without its dependencies", host, out);
            return;
        }
        if let Some(session) = self.session_mut(peer, doc) {
            session.bytes_out = 0;
        }
        self.persist(peer, doc, out);
        self.drive(now, peer, doc, host, out);
        self.settle_check(now, peer, doc, host, out);
    }

    /// Tells the peer this node will not sync `doc` now, and forgets the
    /// session.
    pub(super) fn refuse(&mut self, now: Timestamp, peer: &PeerKey, doc: &DocId, reason: &str, out: &mut Out) {
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        self.send_doc(peer, doc, |slot| Body::Refuse { slot, reason }, out);
        self.quiet(now, peer, doc);
    }

    /// Ends the session on `doc` with `peer` after a refusal, either way;
    /// a second refusal leaves the document alone until about the next
    /// digest check, which tries it again.
    /// Counts one more start-over of `doc` with `peer` in this period;
    /// false, and the document left alone until the next period, beyond
    /// [`super::Limits::max_restarts_per_doc`].
    pub(super) fn may_restart(&mut self, now: Timestamp, peer: &PeerKey, doc: &DocId, out: &mut Out) -> bool {
        let limit = self.config.limits.max_restarts_per_doc;
        let Some(state) = self.peers.get_mut(peer) else { return false };
        let count = state.restarts.entry(doc.clone()).or_insert(0);
        *count += 1;
        if *count <= limit {
            return true;
        }
        state.sessions.remove(doc);
        state.quiet.insert(doc.clone(), (u32::MAX, now));
        out.problem(peer, Some(doc), format!("started over more than {limit} times this period; left until the next"));
        false
    }

    pub(super) fn quiet(&mut self, now: Timestamp, peer: &PeerKey, doc: &DocId) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.sessions.remove(doc);
            let entry = state.quiet.entry(doc.clone()).or_insert((0, now));
            *entry = (entry.0.saturating_add(1), now);
        }
    }

    pub(super) fn on_done(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        theirs: Fingerprint,
        host: &mut dyn DocHost,
        out: &mut Out,
    ) {
        let heads = match host.doc(doc) {
            Ok(document) => document.heads(),
            Err(_) => return,
        };
        if !self.ensure_session(now, peer, doc, host, out) {
            return;
        }
        let Some(session) = self.session_mut(peer, doc) else { return };
        session.awaiting_bundle_reply = None;
        session.bytes_out = 0;
        if fingerprint(doc, &heads) == theirs {
            session.sync.settle_at(now, heads);
            self.persist(peer, doc, out);
            self.agreed(doc, now);
            self.pump(now, peer, host, out);
        } else {
            // It changed meanwhile on one side: an ordinary sync finishes.
            self.drive(now, peer, doc, host, out);
        }
    }

    /// Persists the session's sync state if it changed.
    pub(super) fn persist(&mut self, peer: &PeerKey, doc: &DocId, out: &mut Out) {
        // Only for documents this node holds: a peer that syncs documents
        // it never sends anything of must not grow the store.
        if self.inventory.state_of(doc).is_none() {
            return;
        }
        let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) else { return };
        let state = session.sync.persisted();
        if state != session.persisted {
            session.persisted = state.clone();
            out.effects.push(Effect::PersistSyncState { peer: peer.clone(), doc: doc.clone(), state });
        }
    }

    /// After an exchange: a session with nothing awaited is settled, which
    /// frees its place for the next queued document.
    pub(super) fn settle_check(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        host: &mut dyn DocHost,
        out: &mut Out,
    ) {
        let Some(session) = self.peers.get(peer).and_then(|s| s.sessions.get(doc)) else { return };
        if !session.active() {
            if let Ok(document) = host.doc(doc) {
                let heads = sorted(document.heads());
                let mut theirs = session.sync.shared_heads().to_vec();
                theirs.sort_unstable();
                if heads == theirs {
                    self.agreed(doc, now);
                }
            }
            self.pump(now, peer, host, out);
        }
    }

    /// Both sides start the document's session over from the persisted
    /// state, forgetting what was in flight.
    pub(super) fn reset_session(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        reason: &str,
        host: &mut dyn DocHost,
        out: &mut Out,
    ) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        let Some(session) = state.sessions.get_mut(doc) else { return };
        session.sync.restart(now);
        session.awaiting_bundle_reply = None;
        session.incoming = None;
        session.bytes_out = 0;
        // A fresh alias: if the peer never saw the old one's `Open` (a
        // lost frame), this is how it learns it.
        state.my_slots.remove(doc);
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        self.send_doc(peer, doc, |slot| Body::Reset { slot, reason }, out);
        self.drive(now, peer, doc, host, out);
    }

    pub(super) fn reply_overdue(&self, now: Timestamp, session: &Session, queued: u64) -> bool {
        let since = match session.awaiting_bundle_reply {
            Some(at) => at,
            None if session.sync.is_awaiting() => session.sync.last_progress(),
            None => return false,
        };
        now.as_millis() > self.reply_deadline(since, queued.max(session.bytes_out))
    }

    /// A reply is due `STALL_AFTER_MS` after what was sent could have
    /// crossed the slowest link.
    pub(super) fn reply_deadline(&self, since: Timestamp, bytes_out: u64) -> i64 {
        let transfer_ms = bytes_out.saturating_mul(1000) / self.config.limits.slowest_link_bytes_per_s.max(1);
        since.as_millis().saturating_add(STALL_AFTER_MS).saturating_add(i64::try_from(transfer_ms).unwrap_or(i64::MAX))
    }
}

/// Proofs over the newest change of every actor of `doc`: what a whole
/// copy of it needs.
pub(super) fn tip_proofs(fresh: &FreshProofs, host: &mut dyn DocHost, doc: &DocId) -> Vec<Proof> {
    let tips = match host.doc(doc) {
        Ok(document) => document.actor_tips(),
        Err(_) => return Vec::new(),
    };
    let mut proofs = Vec::new();
    for (index, (_, seq, hash)) in tips.iter().enumerate() {
        let Ok(actor) = u16::try_from(index) else { break };
        for proof in proofs_of(fresh, host, doc, hash) {
            proofs.push(Proof { actor, seq: *seq, attester: proof.attester, signature: proof.signature });
        }
    }
    proofs
}

/// Proofs received in this input and not stored yet, by (document, change).
pub(super) type FreshProofs =
    std::collections::BTreeMap<(DocId, automerge::ChangeHash), Vec<crate::trust::proof::StoredProof>>;

/// The proofs over one change: those stored, and those just received.
fn proofs_of(
    fresh: &FreshProofs,
    host: &mut dyn DocHost,
    doc: &DocId,
    hash: &automerge::ChangeHash,
) -> Vec<crate::trust::proof::StoredProof> {
    let mut proofs = host.proofs(doc, hash);
    proofs.extend(fresh.get(&(doc.clone(), *hash)).into_iter().flatten().copied());
    proofs
}

/// Proofs for the changes of a sync message this node made, over the
/// changes exactly as the receiver will parse them (a chunk may hold
/// several changes, or a whole document).
fn chunk_proofs(fresh: &FreshProofs, chunks: &[Vec<u8>], host: &mut dyn DocHost, doc: &DocId) -> Vec<Proof> {
    if chunks.iter().any(|c| is_document_chunk(c)) {
        return tip_proofs(fresh, host, doc);
    }
    // The document is loaded: this node just made a message of it.
    let genesis = match host.doc(doc) {
        Ok(document) => document.genesis_heads().to_vec(),
        Err(_) => return Vec::new(),
    };
    let mut budget = Budget::new(ReceiveLimits::own());
    // Automerge made these chunks from changes this node holds, so they
    // parse; were one not to, the receiver refuses the message unproven.
    let changes = changes_within(chunks.iter().map(Vec::as_slice), &genesis, &mut budget).unwrap_or_default();
    crate::trust::proof::wire_proofs(&changes, |h| proofs_of(fresh, host, doc, h))
}
