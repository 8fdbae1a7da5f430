//! The replication engine: what to say to which peer, and when.
//!
//! Sans-IO: every input is a `handle_*(now, …)` call that returns
//! [`Effect`]s for the host (the daemon, or the fleet simulator) to carry
//! out. The engine reads no clock, opens nothing and draws no random
//! number. Documents are reached through [`DocHost`], because Automerge's
//! sync applies a peer's changes to the document itself; the engine then
//! asks the host to make them durable ([`Effect::StoreChanges`]) before
//! anything it sends next.
//!
//! Per peer: `Hello`, then a digest exchange (`Reconcile`) that finds the
//! documents held differently, then one Automerge sync session per such
//! document, at most [`Limits::max_active`] at a time, watchlists first.
//! Changes made here or received from any peer are pushed at once to every
//! connected peer (store and forward). A session that awaits a reply too
//! long is reset on both sides, and the digest is exchanged again every
//! [`Limits::recheck_every_ms`], so a lost frame costs at most one period,
//! never a stall. The wire format is in `docs/replication.md`.
//!
//! Trust: every node is configured with the fleet admin's public key. The
//! roster the admin signs says who the members are; it travels ahead of
//! everything else (`Hello` carries its version, the newer side sends it),
//! and documents are exchanged only between active members. Every change
//! received passes the admission path ([`crate::admission`]) before it is
//! applied.
//!
//! The parts, one file each:
//! - [`limits`]: every bound, in a struct tests can shrink;
//! - `peers`: connections, `Hello`, aliases, the digest exchange;
//! - `fleet`: the roster, who may sync, refusals and cut-offs;
//! - `sync`: per-document sessions, replies due, resets;
//! - `receive`: admitting, applying and checking received changes;
//! - `bundles`: snapshot and change bundles;
//! - `snapshots`: whole-document bundles kept by heads;
//! - `fanout`: pushing changes to every peer, the per-peer queue.

mod bundles;
mod fanout;
mod fleet;
pub mod limits;
mod peers;
mod receive;
mod snapshots;
mod sync;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;

pub use self::limits::Limits;
use self::peers::{Greeting, Peer};
use super::digest::Inventory;
use super::frame::{Body, MAX_NAME_CHARS};
use crate::admission::Held;
use crate::date::Timestamp;
use crate::ids::DocId;
use crate::schema::{DocKind, Document};
use crate::trust::proof::StoredProof;
use crate::trust::{Fleet, PublicKey};

/// How a peer is known to the host (the daemon uses the libp2p peer id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub String);

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the engine reaches documents, persisted sync states and the
/// proofs stored beside changes.
pub trait DocHost {
    /// The document, or a new copy of it (its genesis) when this node holds
    /// none yet. An error names why it cannot be had (a damaged record).
    fn doc(&mut self, id: &DocId) -> Result<&mut Document, String>;
    /// The sync state last persisted for (peer, doc).
    fn sync_state(&mut self, peer: &PeerKey, doc: &DocId) -> Option<Vec<u8>>;
    /// The proofs stored beside one change of `doc`.
    fn proofs(&mut self, doc: &DocId, change: &ChangeHash) -> Vec<StoredProof>;
    /// Forgets what of `doc` is only in memory; the next [`DocHost::doc`]
    /// loads what was stored. Used when changes that were applied must not
    /// stay (they left a record unreadable).
    fn discard(&mut self, doc: &DocId);
}

/// Which frames go first on a slow link. Frames of one document keep their
/// order; frames of different lanes may overtake each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// `Hello` and `Reconcile`: small, and everything waits for them.
    Control,
    Watchlist,
    Incidents,
    /// Posts' audit logs, to their national centres: after everything else.
    Audit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send {
        peer: PeerKey,
        lane: Lane,
        frame: Vec<u8>,
    },
    /// Changes from a peer are in the document in memory: store the changes
    /// it holds beyond `since` (and the records they touch), and `proofs`
    /// beside them, durably before carrying out any later effect.
    StoreChanges {
        doc: DocId,
        since: Vec<ChangeHash>,
        proofs: Vec<(ChangeHash, StoredProof)>,
    },
    /// A newer roster was verified and is now the one this node holds:
    /// store it. `revoked`: members it revokes that the roster before did
    /// not; the changes of theirs this node holds beyond the cut are to be
    /// attested ([`crate::trust::attest::attestations`]), since this node
    /// admitted them before it knew.
    RosterInstalled {
        version: u64,
        roster: Vec<u8>,
        revoked: Vec<PublicKey>,
    },
    /// Changes of `doc` that wait for a newer roster (or for the change a
    /// revocation's cut names): keep them, bounded, and hand them back with
    /// [`Engine::handle_held`] when a roster is installed or the document
    /// changes. Changes handed back and held again come with `from: None`.
    Hold {
        doc: DocId,
        /// The peer that sent them; `None`: they were held before and
        /// still wait.
        from: Option<PeerKey>,
        held: Vec<Held>,
    },
    /// `changes` of the revoked member `member`, beyond its revocation's
    /// cut, were admitted on an honest member's attestation: counted, for
    /// `outpost fleet roster`.
    Attested {
        member: String,
        changes: u64,
    },
    PersistSyncState {
        peer: PeerKey,
        doc: DocId,
        state: Vec<u8>,
    },
    Disconnect {
        peer: PeerKey,
        reason: String,
    },
    /// Call [`Engine::handle_timer`] at `at`; replaces any earlier request.
    SetTimer {
        at: Timestamp,
    },
    /// Something a peer sent was refused; for the log.
    Problem {
        peer: PeerKey,
        doc: Option<DocId>,
        detail: String,
    },
}

/// Whom the node replicates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// No fleet admin key is configured: the node replicates with nobody.
    Closed,
    /// `--psk-only`: every holder of the fleet key is a full member, and
    /// changes carry no signatures (the behaviour before the roster).
    PskOnly,
    /// Members of the roster the admin key signs, and their signed changes.
    Fleet { anchor: PublicKey },
}

impl Trust {
    /// The name `outpost status` shows: `fleet`, `psk-only` or `nobody`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trust::Fleet { .. } => "fleet",
            Trust::PskOnly => "psk-only",
            Trust::Closed => "nobody",
        }
    }

    /// The admin key rosters are checked against, in a fleet.
    pub fn anchor(&self) -> Option<PublicKey> {
        match self {
            Trust::Fleet { anchor } => Some(*anchor),
            Trust::PskOnly | Trust::Closed => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This node's key; its actors' prefix, sent in `Hello`, derives from it.
    pub key: PublicKey,
    /// This node's name, sent in `Hello`.
    pub name: String,
    pub trust: Trust,
    pub limits: Limits,
}

impl EngineConfig {
    pub fn new(key: PublicKey, name: &str, trust: Trust) -> Self {
        Self {
            key,
            name: name.chars().take(MAX_NAME_CHARS).filter(|c| !c.is_control()).collect(),
            trust,
            limits: Limits::default(),
        }
    }

    /// The prefix of this node's actors.
    pub fn node(&self) -> [u8; 16] {
        self.key.actor_prefix()
    }
}

/// What the engine knows about one connected peer, for `outpost peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSummary {
    /// The peer said `Hello`.
    pub ready: bool,
    /// The name the peer gave in `Hello`.
    pub name: String,
    /// The peer's node id (the prefix of its Automerge actors).
    pub node: Option<[u8; 16]>,
    /// Documents known to differ that are queued or being synced.
    pub differing: Vec<DocId>,
    pub last_reconciled: Option<Timestamp>,
    /// The roster version the peer announced.
    pub roster: u64,
    /// Both sides are active members (or the fleet is `--psk-only`), so
    /// documents are exchanged.
    pub syncing: bool,
    /// Changes from this peer refused, by reason, since this node started.
    pub refused: BTreeMap<String, u64>,
    /// Documents this node holds that the peer may receive.
    pub shared_documents: usize,
    /// Bytes of frames about documents received from this peer, by the
    /// kind of document they were about (`watchlist`, `incidents`, or
    /// `unknown` for a frame that names no document this connection
    /// opened), since this node started: what need-to-know is checked by.
    pub received_by_kind: BTreeMap<String, u64>,
}

#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    inventory: Inventory,
    peers: BTreeMap<PeerKey, Peer>,
    /// When each document was last shown to agree with some peer.
    agreed_at: BTreeMap<DocId, Timestamp>,
    /// The roster this node holds (`Trust::Fleet` only).
    fleet: Option<Fleet>,
    /// Peers cut off for sending refused changes, until when.
    cut_off: BTreeMap<PeerKey, Timestamp>,
    /// Changes refused from each peer, across its connections: a peer that
    /// reconnects starts again from nothing neither in `outpost peers` nor
    /// towards its cut-off.
    offences: BTreeMap<PeerKey, fleet::Offences>,
    /// Changes refused from any peer since start, by reason: `offences`
    /// forgets peers, this never does (for the metrics).
    refused_total: BTreeMap<&'static str, u64>,
    /// When this node last learned that its roster is the newest it can
    /// know of: it installed it, or a peer greeted with the same version.
    /// A post long without this may have missed a revocation.
    roster_confirmed_at: Option<Timestamp>,
    /// Proofs admitted during the current input, until the host has
    /// stored them: pushes made meanwhile carry them.
    fresh_proofs: sync::FreshProofs,
    /// Bytes of document frames received from each peer, by document kind.
    received_by_kind: BTreeMap<PeerKey, BTreeMap<&'static str, u64>>,
    /// What a peer's period had counted when its connection closed, so
    /// that reconnecting lifts none of the per-period caps.
    periods: BTreeMap<PeerKey, peers::Period>,
    /// Whole-document bundles by heads, so that an unchanged document is
    /// not saved and compressed again.
    snapshots: snapshots::Snapshots,
}

fn lane_of(doc: &DocId) -> (Lane, Reverse<String>) {
    match DocKind::parse(doc) {
        Ok(DocKind::Watchlist { .. }) => (Lane::Watchlist, Reverse(String::new())),
        // Newest month first: it is the one officers are working on.
        Ok(DocKind::Incidents { month, .. }) => (Lane::Incidents, Reverse(month)),
        Ok(DocKind::Audit { month, .. }) => (Lane::Audit, Reverse(month)),
        Err(_) => (Lane::Audit, Reverse(String::new())),
    }
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort_unstable();
    heads
}

/// Effects of one input, with helpers that keep them in order.
struct Out {
    effects: Vec<Effect>,
}

impl Out {
    fn send(&mut self, peer: &PeerKey, lane: Lane, body: &Body) {
        match body.encode() {
            Ok(frame) => self.effects.push(Effect::Send { peer: peer.clone(), lane, frame }),
            // Bodies are built within the limits; one that is not is a bug
            // to report, not a reason to stop the node.
            Err(err) => self.problem(peer, None, format!("cannot encode a frame: {err}")),
        }
    }

    fn problem(&mut self, peer: &PeerKey, doc: Option<&DocId>, detail: String) {
        self.effects.push(Effect::Problem { peer: peer.clone(), doc: doc.cloned(), detail });
    }
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            inventory: Inventory::new(),
            peers: BTreeMap::new(),
            agreed_at: BTreeMap::new(),
            fleet: None,
            cut_off: BTreeMap::new(),
            offences: BTreeMap::new(),
            refused_total: BTreeMap::new(),
            roster_confirmed_at: None,
            fresh_proofs: BTreeMap::new(),
            received_by_kind: BTreeMap::new(),
            periods: BTreeMap::new(),
            snapshots: snapshots::Snapshots::default(),
        }
    }

    /// Records a document this node holds, at start; no effects.
    pub fn set_held(&mut self, doc: &DocId, heads: &[ChangeHash]) {
        self.inventory.set(doc, heads);
    }

    /// `doc` was shown to agree with a peer at `now`; only documents this
    /// node holds are remembered, so a peer cannot grow the map.
    fn agreed(&mut self, doc: &DocId, now: Timestamp) {
        if self.inventory.state_of(doc).is_some() {
            self.agreed_at.insert(doc.clone(), now);
        }
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    pub fn connected_peers(&self) -> impl Iterator<Item = &PeerKey> {
        self.peers.keys()
    }

    pub fn peer_summary(&self, peer: &PeerKey) -> Option<PeerSummary> {
        let state = self.peers.get(peer)?;
        let mut differing: BTreeSet<DocId> = state.queue.iter().map(|(_, _, d)| d.clone()).collect();
        differing.extend(state.sessions.iter().filter(|(_, s)| s.active()).map(|(d, _)| d.clone()));
        Some(PeerSummary {
            ready: state.node.is_some(),
            name: state.name.clone(),
            node: state.node,
            differing: differing.into_iter().collect(),
            last_reconciled: state.last_reconciled,
            roster: state.roster,
            syncing: state.syncing,
            refused: self
                .offences
                .get(peer)
                .map(|o| o.refused.iter().map(|(k, v)| (k.to_string(), *v)).collect())
                .unwrap_or_default(),
            shared_documents: self.view_for(peer).len(),
            received_by_kind: self
                .received_by_kind
                .get(peer)
                .map(|kinds| kinds.iter().map(|(k, v)| (k.to_string(), *v)).collect())
                .unwrap_or_default(),
        })
    }

    /// When this node last learned its roster is the newest it can know
    /// of (installed, or a peer greeted with the same version); `None`
    /// since start until then.
    pub fn roster_confirmed_at(&self) -> Option<Timestamp> {
        self.roster_confirmed_at
    }

    /// Changes refused from any peer since start, by reason.
    pub fn refused_totals(&self) -> &BTreeMap<&'static str, u64> {
        &self.refused_total
    }

    /// The document held here that was longest ago shown to agree with any
    /// peer, and when (`None`: never).
    pub fn stalest(&self) -> Option<(DocId, Option<Timestamp>)> {
        self.inventory
            .iter()
            .map(|(doc, _)| (doc.clone(), self.agreed_at.get(doc).copied()))
            .min_by_key(|(doc, at)| (at.map_or(i64::MIN, Timestamp::as_millis), doc.clone()))
    }

    /// Starts a digest exchange now with `peer`, or with every ready peer.
    pub fn handle_sync_now(&mut self, now: Timestamp, peer: Option<&PeerKey>) -> Vec<Effect> {
        let mut out = Out { effects: Vec::new() };
        let targets: Vec<PeerKey> = match peer {
            Some(p) => vec![p.clone()],
            None => self.peers.keys().cloned().collect(),
        };
        for target in targets {
            self.start_reconcile(now, &target, &mut out);
        }
        self.finish(out)
    }

    /// A change was committed here (an officer's write): push it to every
    /// ready peer.
    pub fn handle_local_change(&mut self, now: Timestamp, doc: &DocId, host: &mut dyn DocHost) -> Vec<Effect> {
        let mut out = Out { effects: Vec::new() };
        self.changed(now, doc, None, host, &mut out);
        self.finish(out)
    }

    /// Storing changes of `doc` failed, so the host dropped them from
    /// memory: every session on it starts over on both sides.
    pub fn handle_store_failed(&mut self, now: Timestamp, doc: &DocId, host: &mut dyn DocHost) -> Vec<Effect> {
        let mut out = Out { effects: Vec::new() };
        match host.doc(doc) {
            Ok(document) => {
                let heads = document.heads();
                self.inventory.set(doc, &heads);
            }
            // The storage cannot even be read (a database not yet opened
            // again): this node no longer claims any state of the
            // document, rather than the state that was not stored, which
            // would agree with its peers' and never be sent again. The
            // host hands the stored heads back (`set_held`) once it reads.
            Err(_) => {
                self.inventory.remove(doc);
                self.agreed_at.remove(doc);
            }
        }
        let peers: Vec<PeerKey> = self.peers.keys().cloned().collect();
        for peer in peers {
            // The sessions' states in memory may name the changes that were
            // not stored: they start again from what was persisted.
            let had = self.peers.get_mut(&peer).and_then(|s| s.sessions.remove(doc)).is_some();
            if had && self.ensure_session(now, &peer, doc, host, &mut out) {
                self.reset_session(now, &peer, doc, "the receiver could not store changes", host, &mut out);
            }
        }
        self.finish(out)
    }

    pub fn handle_timer(&mut self, now: Timestamp, host: &mut dyn DocHost) -> Vec<Effect> {
        let mut out = Out { effects: Vec::new() };
        let peers: Vec<PeerKey> = self.peers.keys().cloned().collect();
        for peer in peers {
            let Some(state) = self.peers.get_mut(&peer) else { continue };
            if state.node.is_none() {
                if now >= state.next_check {
                    state.next_check = Timestamp::from_millis(now.as_millis() + self.config.limits.hello_retry_ms);
                    out.send(&peer, Lane::Control, &self.hello(false));
                }
                continue;
            }
            let Some(state) = self.peers.get(&peer) else { continue };
            // Replies wait behind everything sent to the peer, not only
            // behind this session's own frames.
            let queued: u64 = state.sessions.values().filter(|s| s.active()).map(|s| s.bytes_out).sum();
            let overdue: Vec<DocId> = state
                .sessions
                .iter()
                .filter(|(_, s)| self.reply_overdue(now, s, queued))
                .map(|(d, _)| d.clone())
                .collect();
            for doc in overdue {
                self.reset_session(now, &peer, &doc, "no reply in time", host, &mut out);
            }
            if let Some(state) = self.peers.get_mut(&peer).filter(|s| now >= s.next_check) {
                // A new period: only the timer opens one, so a peer cannot
                // lift the cap by greeting again.
                state.reconcile_frames = 0;
                state.restarts.clear();
                self.start_reconcile(now, &peer, &mut out);
            }
        }
        self.finish(out)
    }

    pub fn handle_frame(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        bytes: &[u8],
        host: &mut dyn DocHost,
    ) -> Vec<Effect> {
        let mut out = Out { effects: Vec::new() };
        let Some(state) = self.peers.get_mut(peer) else {
            out.problem(peer, None, "a frame from a peer that is not connected".into());
            return self.finish(out);
        };
        let body = match Body::decode(bytes) {
            Ok(body) => body,
            Err(err) => {
                state.bad_frames += 1;
                out.problem(peer, None, format!("refused a frame: {err}"));
                if state.bad_frames > self.config.limits.max_bad_frames {
                    out.effects.push(Effect::Disconnect {
                        peer: peer.clone(),
                        reason: format!("more than {} frames that do not decode", self.config.limits.max_bad_frames),
                    });
                }
                return self.finish(out);
            }
        };
        if state.node.is_none() && !matches!(body, Body::Hello { .. }) {
            out.problem(peer, None, "a frame before Hello".into());
            return self.finish(out);
        }
        self.count_received(peer, &body, bytes.len());
        match body {
            Body::Hello { node, name, features, roster, .. } => {
                self.on_hello(now, peer, Greeting { node, name, features, roster }, &mut out);
            }
            Body::Roster { roster } => self.on_roster(now, peer, &roster, host, &mut out),
            Body::Reconcile { roster, parts } => self.on_reconcile(now, peer, (roster, &parts), host, &mut out),
            // Between nodes that may not exchange documents, nothing else
            // is taken.
            _ if !self.peers.get(peer).is_some_and(|p| p.syncing) => {
                out.problem(peer, None, "a document frame from a peer this node does not sync with".into());
            }
            Body::Open { slot, doc, .. } => self.on_open(peer, slot, &doc, &mut out),
            Body::Sync { slot, message, proofs } => {
                if let Some(doc) = self.doc_of(peer, slot, &mut out) {
                    self.on_sync(now, peer, &doc, &message, &proofs, host, &mut out);
                }
            }
            Body::Bundle { slot, kind, part, of, data, .. } => {
                if let Some(doc) = self.doc_of(peer, slot, &mut out) {
                    self.on_bundle(now, peer, &doc, kind, part, of, &data, host, &mut out);
                }
            }
            Body::Done { slot, fingerprint } => {
                if let Some(doc) = self.doc_of(peer, slot, &mut out) {
                    self.on_done(now, peer, &doc, fingerprint, host, &mut out);
                }
            }
            Body::Reset { slot, reason } => {
                if let Some(doc) = self.doc_of(peer, slot, &mut out) {
                    out.problem(peer, Some(&doc), format!("peer reset the session: {reason}"));
                    if !self.may_restart(now, peer, &doc, &mut out) {
                        return self.finish(out);
                    }
                    // Our replies may never have arrived because the peer
                    // never saw our alias's `Open`: give the document a
                    // fresh one.
                    if let Some(state) = self.peers.get_mut(peer) {
                        state.my_slots.remove(&doc);
                    }
                    if let Some(session) = self.session_mut(peer, &doc) {
                        session.sync.restart(now);
                        session.awaiting_bundle_reply = None;
                        session.incoming = None;
                        session.bytes_out = 0;
                    }
                    self.drive(now, peer, &doc, host, &mut out);
                }
            }
            Body::Refuse { slot, reason } => {
                if let Some(doc) = self.doc_of(peer, slot, &mut out) {
                    out.problem(peer, Some(&doc), format!("peer refused the document: {reason}"));
                    self.quiet(now, peer, &doc);
                    self.pump(now, peer, host, &mut out);
                }
            }
        }
        self.finish(out)
    }

    /// Counts a document frame's bytes under the kind of its document.
    /// Only members' frames are counted (and taken), so the map holds at
    /// most one entry per member.
    fn count_received(&mut self, peer: &PeerKey, body: &Body, bytes: usize) {
        if !self.peers.get(peer).is_some_and(|p| p.syncing) {
            return;
        }
        let named = match body {
            Body::Open { doc, .. } => DocId::parse(doc).ok(),
            Body::Sync { slot, .. }
            | Body::Bundle { slot, .. }
            | Body::Done { slot, .. }
            | Body::Reset { slot, .. }
            | Body::Refuse { slot, .. } => self.peers.get(peer).and_then(|p| p.their_slots.get(slot).cloned()),
            Body::Hello { .. } | Body::Roster { .. } | Body::Reconcile { .. } => return,
        };
        let kind = match named.as_ref().map(DocKind::parse) {
            Some(Ok(DocKind::Watchlist { .. })) => "watchlist",
            Some(Ok(DocKind::Incidents { .. })) => "incidents",
            Some(Ok(DocKind::Audit { .. })) => "audit",
            _ => "unknown",
        };
        *self.received_by_kind.entry(peer.clone()).or_default().entry(kind).or_default() += bytes as u64;
    }

    /// Ends every input with the next timer the engine needs. Of several
    /// `StoreChanges` for one document only the first is kept: it names
    /// the earliest heads, so it covers the others; the proofs of all of
    /// them go with it.
    fn finish(&mut self, mut out: Out) -> Vec<Effect> {
        self.fresh_proofs.clear();
        let mut first: BTreeMap<DocId, usize> = BTreeMap::new();
        let mut later: Vec<(usize, Vec<(ChangeHash, StoredProof)>)> = Vec::new();
        for (i, effect) in out.effects.iter_mut().enumerate() {
            if let Effect::StoreChanges { doc, proofs, .. } = effect {
                match first.get(doc) {
                    Some(at) => later.push((*at, std::mem::take(proofs))),
                    None => {
                        first.insert(doc.clone(), i);
                    }
                }
            }
        }
        for (at, proofs) in later {
            if let Some(Effect::StoreChanges { proofs: kept, .. }) = out.effects.get_mut(at) {
                kept.extend(proofs);
            }
        }
        let mut index = 0;
        out.effects.retain(|e| {
            let keep = match e {
                Effect::StoreChanges { doc, .. } => first.get(doc) == Some(&index),
                _ => true,
            };
            index += 1;
            keep
        });
        let mut next: Option<i64> = None;
        for state in self.peers.values() {
            let mut consider = |at: i64| next = Some(next.map_or(at, |n| n.min(at)));
            consider(state.next_check.as_millis());
            let queued: u64 = state.sessions.values().filter(|s| s.active()).map(|s| s.bytes_out).sum();
            for session in state.sessions.values() {
                if let Some(at) = session.awaiting_bundle_reply {
                    consider(self.reply_deadline(at, queued) + 1);
                } else if session.sync.is_awaiting() {
                    consider(self.reply_deadline(session.sync.last_progress(), queued) + 1);
                }
            }
        }
        if let Some(at) = next {
            out.effects.push(Effect::SetTimer { at: Timestamp::from_millis(at) });
        }
        out.effects
    }
}

fn sent_bytes(effects: &[Effect]) -> usize {
    effects.iter().map(|e| if let Effect::Send { frame, .. } = e { frame.len() } else { 0 }).sum()
}
