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
//! document, at most [`EngineConfig::max_active`] at a time, watchlists
//! first. Changes made here or received from any peer are pushed at once
//! to every connected peer (store and forward). A session that awaits a
//! reply too long is reset on both sides, and the digest is exchanged
//! again every [`EngineConfig::recheck_every_ms`], so a lost frame costs at
//! most one period, never a stall. The wire format is in
//! `docs/replication.md`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::ChangeHash;
use automerge::sync::ChunkList;

use super::bundle::{BundlePayload, Reassembly};
use super::digest::{DocKey, Fingerprint, Inventory, Part, fingerprint};
use super::frame::{Body, BundleKind, MAX_FRAME_BYTES, Slot};
use super::session::{DocSession, STALL_AFTER_MS, SessionError};
use crate::date::Timestamp;
use crate::ids::DocId;
use crate::schema::{DocKind, Document};

/// How a peer is known to the host (the daemon uses the libp2p peer id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub String);

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the engine reaches documents and persisted sync states.
pub trait DocHost {
    /// The document, or a new copy of it (its genesis) when this node holds
    /// none yet. An error names why it cannot be had (a damaged record).
    fn doc(&mut self, id: &DocId) -> Result<&mut Document, String>;
    /// The sync state last persisted for (peer, doc).
    fn sync_state(&mut self, peer: &PeerKey, doc: &DocId) -> Option<Vec<u8>>;
}

/// Which frames go first on a slow link. Frames of one document keep their
/// order; frames of different lanes may overtake each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// `Hello` and `Reconcile`: small, and everything waits for them.
    Control,
    Watchlist,
    Incidents,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Send {
        peer: PeerKey,
        lane: Lane,
        frame: Vec<u8>,
    },
    /// Changes from a peer are in the document in memory: store the changes
    /// it holds beyond `since` (and the records they touch) durably before
    /// carrying out any later effect.
    StoreChanges {
        doc: DocId,
        since: Vec<ChangeHash>,
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

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This node's id, sent in `Hello`.
    pub node: [u8; 16],
    /// This node's name, sent in `Hello`.
    pub name: String,
    /// Sessions per peer that may await a reply at once: bounds memory and
    /// keeps a slow link from being flooded.
    pub max_active: usize,
    /// Sessions per peer kept in memory; idle ones beyond are dropped
    /// (their state is persisted).
    pub max_sessions: usize,
    /// How often the digest is exchanged again on a quiet link.
    pub recheck_every_ms: i64,
    /// A sync message whose changes exceed this moves them into a
    /// compressed bundle, split into frames.
    pub bundle_over_bytes: usize,
    /// The slowest link we plan for, in bytes per second: a reply is not
    /// overdue while what we sent could still be on its way.
    pub slowest_link_bytes_per_s: u64,
}

impl EngineConfig {
    pub fn new(node: [u8; 16], name: &str) -> Self {
        Self {
            node,
            name: name.chars().take(super::frame::MAX_NAME_CHARS).filter(|c| !c.is_control()).collect(),
            max_active: 8,
            max_sessions: 64,
            recheck_every_ms: 10 * 60 * 1000,
            // Below this a frame's own compression does as well.
            bundle_over_bytes: 2 * 1024,
            // 2.4 kbit/s, an HF data link.
            slowest_link_bytes_per_s: 300,
        }
    }
}

/// `Hello` feature bit: the sender has heard the receiver's `Hello`. A
/// repeated `Hello` without it means ours was lost, so it is answered.
const HEARD_YOU: u32 = 1;
/// A peer that has not said `Hello` is greeted again this often.
const HELLO_RETRY_MS: i64 = 30_000;
/// Document ids a peer may name by alias in one connection; a peer that
/// opens more is cut off.
const MAX_ALIASES: usize = 1 << 16;
/// A pushed document the peer never synced with us is sent whole when it
/// has at most this many changes (see `drive`).
const PUSH_WHOLE_UP_TO: usize = 64;
/// Sessions a peer may make this node keep; beyond, it is cut off. Idle
/// sessions are dropped long before (`max_sessions`), so only a peer that
/// opens documents without end reaches this.
const MAX_PEER_SESSIONS: usize = 1024;
/// Bundle bytes being reassembled from one peer at once.
const MAX_PEER_REASSEMBLY_BYTES: usize = 128 << 20;
/// Reconcile frames a peer may send within one recheck period.
const MAX_RECONCILE_FRAMES: u32 = 512;
/// Frames that fail to decode before a peer is cut off.
const MAX_BAD_FRAMES: u32 = 16;

#[derive(Debug)]
struct Session {
    sync: DocSession,
    persisted: Vec<u8>,
    last_used: Timestamp,
    /// Bytes sent since the last progress; a reply is not due before they
    /// could have crossed the slowest link.
    bytes_out: u64,
    /// A snapshot was sent; its receiver answers with `Done` or a sync.
    awaiting_bundle_reply: Option<Timestamp>,
    incoming: Option<Reassembly>,
    /// The next message pushes a change made or received here, so a
    /// document the peer never synced with us is assumed new to it.
    pushing: bool,
}

impl Session {
    fn active(&self) -> bool {
        self.sync.is_awaiting() || self.awaiting_bundle_reply.is_some()
    }
}

#[derive(Debug)]
struct Peer {
    /// Set by the peer's `Hello`; nothing but `Hello` is accepted before.
    node: Option<[u8; 16]>,
    name: String,
    next_slot: Slot,
    /// Aliases this side gave documents in this connection.
    my_slots: HashMap<DocId, Slot>,
    /// Aliases the peer gave documents in this connection.
    their_slots: HashMap<Slot, DocId>,
    /// `Open` frames received in this connection, reused slots included.
    opens: usize,
    sessions: HashMap<DocId, Session>,
    /// Documents known to differ and not yet being synced, in order.
    queue: BTreeSet<(Lane, Reverse<String>, DocId)>,
    /// Documents the last digest showed the peer holds no copy of.
    absent: BTreeSet<DocId>,
    next_check: Timestamp,
    reconcile_frames: u32,
    bad_frames: u32,
    last_reconciled: Option<Timestamp>,
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
}

#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    inventory: Inventory,
    peers: BTreeMap<PeerKey, Peer>,
    /// When each document was last shown to agree with some peer.
    agreed_at: HashMap<DocId, Timestamp>,
}

fn lane_of(doc: &DocId) -> (Lane, Reverse<String>) {
    match DocKind::parse(doc) {
        Ok(DocKind::Watchlist { .. }) => (Lane::Watchlist, Reverse(String::new())),
        // Newest month first: it is the one officers are working on.
        Ok(DocKind::Incidents { month, .. }) => (Lane::Incidents, Reverse(month)),
        Err(_) => (Lane::Incidents, Reverse(String::new())),
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
        Self { config, inventory: Inventory::new(), peers: BTreeMap::new(), agreed_at: HashMap::new() }
    }

    /// Records a document this node holds, at start; no effects.
    pub fn set_held(&mut self, doc: &DocId, heads: &[ChangeHash]) {
        self.inventory.set(doc, heads);
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
        })
    }

    /// The document held here that was longest ago shown to agree with any
    /// peer, and when (`None`: never).
    pub fn stalest(&self) -> Option<(DocId, Option<Timestamp>)> {
        self.inventory
            .iter()
            .map(|(doc, _)| (doc.clone(), self.agreed_at.get(doc).copied()))
            .min_by_key(|(doc, at)| (at.map_or(i64::MIN, Timestamp::as_millis), doc.clone()))
    }

    pub fn handle_connected(&mut self, now: Timestamp, peer: &PeerKey) -> Vec<Effect> {
        let mut out = Out { effects: Vec::new() };
        self.peers.insert(
            peer.clone(),
            Peer {
                node: None,
                name: String::new(),
                next_slot: 0,
                my_slots: HashMap::new(),
                their_slots: HashMap::new(),
                opens: 0,
                sessions: HashMap::new(),
                queue: BTreeSet::new(),
                absent: BTreeSet::new(),
                next_check: Timestamp::from_millis(now.as_millis() + self.config.recheck_every_ms),
                reconcile_frames: 0,
                bad_frames: 0,
                last_reconciled: None,
            },
        );
        // The digest goes right behind the greeting, on both sides: it saves
        // half a round trip on every connection, for some 20 bytes.
        out.send(peer, Lane::Control, &self.hello(false));
        out.send(peer, Lane::Control, &Body::Reconcile { parts: self.inventory.opening() });
        if let Some(state) = self.peers.get_mut(peer) {
            state.next_check = Timestamp::from_millis(now.as_millis() + HELLO_RETRY_MS);
        }
        self.finish(out)
    }

    fn hello(&self, heard_you: bool) -> Body {
        let features = if heard_you { HEARD_YOU } else { 0 };
        Body::Hello {
            node: self.config.node,
            name: self.config.name.clone(),
            features,
            max_frame: MAX_FRAME_BYTES as u32,
        }
    }

    /// What was in flight is forgotten; persisted sync states stay.
    pub fn handle_disconnected(&mut self, _now: Timestamp, peer: &PeerKey) -> Vec<Effect> {
        self.peers.remove(peer);
        self.finish(Out { effects: Vec::new() })
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
        if let Ok(document) = host.doc(doc) {
            let heads = document.heads();
            self.inventory.set(doc, &heads);
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
                    state.next_check = Timestamp::from_millis(now.as_millis() + HELLO_RETRY_MS);
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
                if state.bad_frames > MAX_BAD_FRAMES {
                    out.effects.push(Effect::Disconnect {
                        peer: peer.clone(),
                        reason: format!("more than {MAX_BAD_FRAMES} frames that do not decode"),
                    });
                }
                return self.finish(out);
            }
        };
        if state.node.is_none() && !matches!(body, Body::Hello { .. }) {
            out.problem(peer, None, "a frame before Hello".into());
            return self.finish(out);
        }
        match body {
            Body::Hello { node, name, features, .. } => {
                if let Some(state) = self.peers.get_mut(peer) {
                    state.name = name;
                }
                self.on_hello(now, peer, node, features, &mut out);
            }
            Body::Reconcile { parts } => self.on_reconcile(now, peer, &parts, host, &mut out),
            Body::Open { slot, doc, .. } => self.on_open(peer, slot, &doc, &mut out),
            Body::Sync { slot, message } => {
                if let Some(doc) = self.doc_of(peer, slot, &mut out) {
                    self.on_sync(now, peer, &doc, &message, host, &mut out);
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
                    if let Some(state) = self.peers.get_mut(peer) {
                        state.sessions.remove(&doc);
                    }
                    self.pump(now, peer, host, &mut out);
                }
            }
        }
        self.finish(out)
    }

    fn on_hello(&mut self, now: Timestamp, peer: &PeerKey, node: [u8; 16], features: u32, out: &mut Out) {
        if node == self.config.node {
            out.effects.push(Effect::Disconnect { peer: peer.clone(), reason: "connected to itself".into() });
            return;
        }
        let Some(state) = self.peers.get_mut(peer) else { return };
        match state.node {
            Some(known) if known != node => {
                out.effects.push(Effect::Disconnect {
                    peer: peer.clone(),
                    reason: "changed its node id within a connection".into(),
                });
            }
            // The peer greets again without having heard us: our `Hello`,
            // and the digest behind it, were lost.
            Some(_) if features & HEARD_YOU == 0 => {
                out.send(peer, Lane::Control, &self.hello(true));
                self.start_reconcile(now, peer, out);
            }
            Some(_) => {}
            None => {
                // Our digest already went out behind our `Hello`.
                state.node = Some(node);
                state.next_check = Timestamp::from_millis(now.as_millis() + self.config.recheck_every_ms);
            }
        }
    }

    fn start_reconcile(&mut self, now: Timestamp, peer: &PeerKey, out: &mut Out) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        if state.node.is_none() {
            return;
        }
        state.next_check = Timestamp::from_millis(now.as_millis() + self.config.recheck_every_ms);
        out.send(peer, Lane::Control, &Body::Reconcile { parts: self.inventory.opening() });
    }

    fn on_reconcile(&mut self, now: Timestamp, peer: &PeerKey, parts: &[Part], host: &mut dyn DocHost, out: &mut Out) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        state.reconcile_frames += 1;
        if state.reconcile_frames > MAX_RECONCILE_FRAMES {
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!("more than {MAX_RECONCILE_FRAMES} reconcile frames in one period"),
            });
            return;
        }
        let step = self.inventory.step(parts);
        for (first, last) in &step.agreed {
            mark_agreed(&self.inventory, &mut self.agreed_at, *first, *last, now);
        }
        let Some(state) = self.peers.get_mut(peer) else { return };
        state.last_reconciled = Some(now);
        state.absent.extend(step.absent.iter().cloned());
        if !step.reply.is_empty() {
            out.send(peer, Lane::Control, &Body::Reconcile { parts: step.reply });
        }
        let mut restart = Vec::new();
        for doc in step.differing {
            match state.sessions.get(&doc).map(Session::active) {
                // An idle session on a document that still differs missed
                // something (a lost frame): both sides start it over.
                Some(false) => restart.push(doc),
                Some(true) => {}
                None => {
                    let (lane, month) = lane_of(&doc);
                    state.queue.insert((lane, month, doc));
                }
            }
        }
        for doc in restart {
            self.reset_session(now, peer, &doc, "the digest shows the document still differs", host, out);
        }
        self.pump(now, peer, host, out);
    }

    fn on_open(&mut self, peer: &PeerKey, slot: Slot, doc: &str, out: &mut Out) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        let Ok(doc) = DocId::parse(doc) else { return };
        if let Err(err) = DocKind::parse(&doc) {
            out.send(peer, Lane::Control, &Body::Refuse { slot, reason: format!("unknown document kind: {err}") });
            return;
        }
        state.opens += 1;
        if state.opens > MAX_ALIASES {
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!("opened more than {MAX_ALIASES} documents in one connection"),
            });
            return;
        }
        state.their_slots.insert(slot, doc);
    }

    fn doc_of(&mut self, peer: &PeerKey, slot: Slot, out: &mut Out) -> Option<DocId> {
        let doc = self.peers.get(peer)?.their_slots.get(&slot).cloned();
        if doc.is_none() {
            out.problem(peer, None, format!("a frame for slot {slot}, which the peer never opened"));
        }
        doc
    }

    /// Makes sure a session for (peer, doc) exists, resumed from its
    /// persisted state; false when the peer is gone.
    fn ensure_session(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        host: &mut dyn DocHost,
        out: &mut Out,
    ) -> bool {
        self.evict_idle(peer);
        let Some(state) = self.peers.get_mut(peer) else { return false };
        if !state.sessions.contains_key(doc) && state.sessions.len() >= MAX_PEER_SESSIONS {
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!("keeps more than {MAX_PEER_SESSIONS} document sessions open"),
            });
            self.peers.remove(peer);
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

    fn session_mut(&mut self, peer: &PeerKey, doc: &DocId) -> Option<&mut Session> {
        self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc))
    }

    /// Sends a frame about `doc`, opening an alias for it first if needed.
    fn send_doc(&mut self, peer: &PeerKey, doc: &DocId, body: impl FnOnce(Slot) -> Body, out: &mut Out) -> usize {
        let Some(state) = self.peers.get_mut(peer) else { return 0 };
        let lane = lane_of(doc).0;
        let mut sent = 0;
        let slot = match state.my_slots.get(doc) {
            Some(slot) => *slot,
            None => {
                let slot = state.next_slot;
                state.next_slot += 1;
                state.my_slots.insert(doc.clone(), slot);
                let before = out.effects.len();
                out.send(peer, lane, &Body::Open { slot, doc: doc.to_string(), priority: lane as u8 });
                sent += sent_bytes(&out.effects[before..]);
                slot
            }
        };
        let before = out.effects.len();
        out.send(peer, lane, &body(slot));
        sent + sent_bytes(&out.effects[before..])
    }

    /// Says what there is to say about `doc` to `peer`: a snapshot for a
    /// peer with no copy, else the next sync message, its changes bundled
    /// when large.
    fn drive(&mut self, now: Timestamp, peer: &PeerKey, doc: &DocId, host: &mut dyn DocHost, out: &mut Out) {
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
        let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) else { return };
        if peer_lacks_it && session.sync.shared_heads().is_empty() {
            let heads = document.heads();
            let payload = BundlePayload::new(&heads, vec![document.save()]);
            session.awaiting_bundle_reply = Some(now);
            self.send_bundle(peer, doc, BundleKind::Snapshot, payload, out);
            return;
        }
        // Assuming the peer holds only the genesis resends the whole
        // document if it got it elsewhere, so only small documents are
        // pushed that way; larger ones learn the peer's heads first.
        let genesis = document.genesis_heads().to_vec();
        let floor = (pushing && document.count_changes_since(&genesis) <= PUSH_WHOLE_UP_TO).then_some(genesis);
        session.sync.prime(floor.as_deref());
        let Some(mut message) = session.sync.next_sync(now, document) else { return };
        let change_bytes: usize = message.changes.iter().map(<[u8]>::len).sum();
        if change_bytes > self.config.bundle_over_bytes {
            // A catch-up: the changes go compressed together, or as the whole
            // document when that is smaller (its columns compress far better
            // than changes one by one), and the sync message follows bare.
            let chunks: Vec<Vec<u8>> = message.changes.iter().map(<[u8]>::to_vec).collect();
            message.changes = ChunkList::empty();
            let changes = BundlePayload::new(&message.heads, chunks).into_parts();
            let whole = BundlePayload::new(&message.heads, vec![document.save()]).into_parts();
            let size =
                |parts: &Result<Vec<Vec<u8>>, _>| parts.as_ref().map_or(usize::MAX, |p| p.iter().map(Vec::len).sum());
            let smaller = if size(&whole) < size(&changes) { whole } else { changes };
            self.send_parts(peer, doc, BundleKind::Changes, smaller, out);
        }
        let sent = self.send_doc(peer, doc, |slot| Body::Sync { slot, message: message.encode() }, out);
        if let Some(session) = self.session_mut(peer, doc) {
            session.bytes_out += sent as u64;
        }
    }

    fn send_bundle(&mut self, peer: &PeerKey, doc: &DocId, kind: BundleKind, payload: BundlePayload, out: &mut Out) {
        self.send_parts(peer, doc, kind, payload.into_parts(), out);
    }

    fn send_parts(
        &mut self,
        peer: &PeerKey,
        doc: &DocId,
        kind: BundleKind,
        parts: Result<Vec<Vec<u8>>, super::bundle::BundleError>,
        out: &mut Out,
    ) {
        let parts = match parts {
            Ok(parts) => parts,
            Err(err) => {
                out.problem(peer, Some(doc), format!("cannot bundle the document: {err}"));
                return;
            }
        };
        let of = parts.len() as u16;
        let mut sent = 0;
        for (n, data) in parts.into_iter().enumerate() {
            let part = n as u16;
            sent += self.send_doc(
                peer,
                doc,
                |slot| Body::Bundle { slot, kind, part, of, data, signatures: Vec::new() },
                out,
            );
        }
        if let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) {
            session.bytes_out += sent as u64;
        }
    }

    fn on_sync(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        message: &[u8],
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
                self.refuse(peer, doc, "the receiver cannot load this document", out);
                return;
            }
        };
        let before = document.heads();
        let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) else { return };
        session.awaiting_bundle_reply = None;
        let received = session.sync.receive(now, document, message);
        let after = document.heads();
        let changed = sorted(after) != sorted(before.clone());
        // Changes are stored before the sync state that claims them, and
        // also when a message was refused after some of it applied.
        if changed {
            out.effects.push(Effect::StoreChanges { doc: doc.clone(), since: before });
        }
        if let Err(err) = received {
            out.problem(peer, Some(doc), format!("refused a sync message: {err}"));
            if matches!(err, SessionError::TooManyRounds { .. }) {
                self.reset_session(now, peer, doc, &err.to_string(), host, out);
            } else {
                // Saying so spares the sender a reset every 30 s; the next
                // digest exchange tries the document again.
                self.refuse(peer, doc, &err.to_string(), out);
            }
            if changed {
                self.changed(now, doc, Some(peer), host, out);
            }
            return;
        }
        if let Some(session) = self.session_mut(peer, doc) {
            session.bytes_out = 0;
        }
        self.persist(peer, doc, out);
        if changed {
            self.changed(now, doc, Some(peer), host, out);
        }
        self.drive(now, peer, doc, host, out);
        self.settle_check(now, peer, doc, host, out);
    }

    /// Tells the peer this node will not sync `doc` now, and forgets the
    /// session.
    fn refuse(&mut self, peer: &PeerKey, doc: &DocId, reason: &str, out: &mut Out) {
        let reason: String = reason.chars().take(super::frame::MAX_REASON_CHARS).collect();
        self.send_doc(peer, doc, |slot| Body::Refuse { slot, reason }, out);
        if let Some(state) = self.peers.get_mut(peer) {
            state.sessions.remove(doc);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_bundle(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        kind: BundleKind,
        part: u16,
        of: u16,
        data: &[u8],
        host: &mut dyn DocHost,
        out: &mut Out,
    ) {
        if !self.ensure_session(now, peer, doc, host, out) {
            return;
        }
        let building: usize = self
            .peers
            .get(peer)
            .map_or(0, |s| s.sessions.values().filter_map(|x| x.incoming.as_ref()).map(Reassembly::len).sum());
        if building + data.len() > MAX_PEER_REASSEMBLY_BYTES {
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!("sends bundles of more than {MAX_PEER_REASSEMBLY_BYTES} bytes at once"),
            });
            self.peers.remove(peer);
            return;
        }
        let Some(session) = self.session_mut(peer, doc) else { return };
        let (kind, payload) = match Reassembly::add(&mut session.incoming, kind, part, of, data) {
            Ok(Some(done)) => done,
            Ok(None) => return,
            Err(err) => {
                out.problem(peer, Some(doc), format!("refused a bundle: {err}"));
                self.reset_session(now, peer, doc, &err.to_string(), host, out);
                return;
            }
        };
        let document = match host.doc(doc) {
            Ok(document) => document,
            Err(err) => {
                out.problem(
                    peer,
                    Some(doc),
                    format!("cannot apply a bundle to a document this node cannot load: {err}"),
                );
                return;
            }
        };
        let before = document.heads();
        if let Err(err) = document.apply_received(&payload.chunks) {
            if sorted(document.heads()) != sorted(before.clone()) {
                out.effects.push(Effect::StoreChanges { doc: doc.clone(), since: before });
            }
            out.problem(peer, Some(doc), format!("refused a bundle: {err}"));
            self.refuse(peer, doc, &err.to_string(), out);
            return;
        }
        let after = document.heads();
        if sorted(after.clone()) != sorted(before.clone()) {
            out.effects.push(Effect::StoreChanges { doc: doc.clone(), since: before });
            self.changed(now, doc, Some(peer), host, out);
        }
        if kind == BundleKind::Snapshot {
            let theirs = payload.heads();
            if sorted(after.clone()) == sorted(theirs) {
                if let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) {
                    session.sync.settle_at(now, after.clone());
                }
                self.persist(peer, doc, out);
                let fp = fingerprint(doc, &after);
                self.send_doc(peer, doc, |slot| Body::Done { slot, fingerprint: fp }, out);
                self.agreed_at.insert(doc.clone(), now);
            } else {
                self.drive(now, peer, doc, host, out);
            }
        }
    }

    fn on_done(
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
            self.agreed_at.insert(doc.clone(), now);
            self.pump(now, peer, host, out);
        } else {
            // It changed meanwhile on one side: an ordinary sync finishes.
            self.drive(now, peer, doc, host, out);
        }
    }

    /// Persists the session's sync state if it changed.
    fn persist(&mut self, peer: &PeerKey, doc: &DocId, out: &mut Out) {
        let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) else { return };
        let state = session.sync.persisted();
        if state != session.persisted {
            session.persisted = state.clone();
            out.effects.push(Effect::PersistSyncState { peer: peer.clone(), doc: doc.clone(), state });
        }
    }

    /// After an exchange: a session with nothing awaited is settled, which
    /// frees its place for the next queued document.
    fn settle_check(&mut self, now: Timestamp, peer: &PeerKey, doc: &DocId, host: &mut dyn DocHost, out: &mut Out) {
        let Some(session) = self.peers.get(peer).and_then(|s| s.sessions.get(doc)) else { return };
        if !session.active() {
            if let Ok(document) = host.doc(doc) {
                let heads = sorted(document.heads());
                let mut theirs = session.sync.shared_heads().to_vec();
                theirs.sort_unstable();
                if heads == theirs {
                    self.agreed_at.insert(doc.clone(), now);
                }
            }
            self.pump(now, peer, host, out);
        }
    }

    /// A document changed here, by a local write or from `from`: update the
    /// inventory and offer the change to every other ready peer.
    fn changed(&mut self, now: Timestamp, doc: &DocId, from: Option<&PeerKey>, host: &mut dyn DocHost, out: &mut Out) {
        let Ok(document) = host.doc(doc) else { return };
        let heads = document.heads();
        self.inventory.set(doc, &heads);
        let others: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(key, state)| state.node.is_some() && Some(*key) != from)
            .map(|(key, _)| key.clone())
            .collect();
        for peer in others {
            let Some(state) = self.peers.get_mut(&peer) else { continue };
            if state.sessions.contains_key(doc)
                || state.sessions.values().filter(|s| s.active()).count() < self.config.max_active
            {
                if !self.ensure_session(now, &peer, doc, host, out) {
                    continue;
                }
                if let Some(session) = self.session_mut(&peer, doc) {
                    session.pushing = true;
                }
                self.drive(now, &peer, doc, host, out);
            } else {
                let (lane, month) = lane_of(doc);
                state.queue.insert((lane, month, doc.clone()));
            }
        }
    }

    /// Starts queued documents while fewer than `max_active` await replies.
    fn pump(&mut self, now: Timestamp, peer: &PeerKey, host: &mut dyn DocHost, out: &mut Out) {
        loop {
            let Some(state) = self.peers.get_mut(peer) else { return };
            let active = state.sessions.values().filter(|s| s.active()).count();
            if active >= self.config.max_active {
                break;
            }
            let Some((_, _, doc)) = state.queue.pop_first() else { break };
            self.drive(now, peer, &doc, host, out);
        }
        self.evict_idle(peer);
    }

    fn evict_idle(&mut self, peer: &PeerKey) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        while state.sessions.len() > self.config.max_sessions {
            let Some(idle) = state
                .sessions
                .iter()
                .filter(|(_, s)| !s.active() && s.incoming.is_none())
                .min_by_key(|(_, s)| s.last_used)
                .map(|(d, _)| d.clone())
            else {
                break;
            };
            state.sessions.remove(&idle);
        }
    }

    /// Both sides start the document's session over from the persisted
    /// state, forgetting what was in flight.
    fn reset_session(
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
        let reason: String = reason.chars().take(super::frame::MAX_REASON_CHARS).collect();
        self.send_doc(peer, doc, |slot| Body::Reset { slot, reason }, out);
        self.drive(now, peer, doc, host, out);
    }

    fn reply_overdue(&self, now: Timestamp, session: &Session, queued: u64) -> bool {
        let since = match session.awaiting_bundle_reply {
            Some(at) => at,
            None if session.sync.is_awaiting() => session.sync.last_progress(),
            None => return false,
        };
        now.as_millis() > self.reply_deadline(since, queued.max(session.bytes_out))
    }

    /// A reply is due `STALL_AFTER_MS` after what was sent could have
    /// crossed the slowest link.
    fn reply_deadline(&self, since: Timestamp, bytes_out: u64) -> i64 {
        let transfer_ms = bytes_out.saturating_mul(1000) / self.config.slowest_link_bytes_per_s.max(1);
        since.as_millis().saturating_add(STALL_AFTER_MS).saturating_add(i64::try_from(transfer_ms).unwrap_or(i64::MAX))
    }

    /// Ends every input with the next timer the engine needs. Of several
    /// `StoreChanges` for one document only the first is kept: it names
    /// the earliest heads, so it covers the others.
    fn finish(&self, mut out: Out) -> Vec<Effect> {
        let mut stored = BTreeSet::new();
        out.effects.retain(|e| match e {
            Effect::StoreChanges { doc, .. } => stored.insert(doc.clone()),
            _ => true,
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

fn mark_agreed(
    inventory: &Inventory,
    agreed_at: &mut HashMap<DocId, Timestamp>,
    first: DocKey,
    last: DocKey,
    now: Timestamp,
) {
    for doc in inventory.docs_in(first, last) {
        agreed_at.insert(doc.clone(), now);
    }
}
