//! Two replication engines joined by an in-memory wire that counts bytes:
//! what the engine's own tests drive it with, and what the benchmarks
//! measure its traffic with, beside plain Automerge sync on the same
//! documents. Pure: time is a number the caller moves.

use std::collections::{BTreeMap, VecDeque};

use automerge::ActorId;

use super::engine::{DocHost, Effect, Engine, EngineConfig, Limits, PeerKey};
use crate::date::Timestamp;
use crate::ids::DocId;
use crate::schema::Document;

/// Documents and sync states in memory.
#[derive(Debug)]
pub struct MemoryHost {
    pub actor: ActorId,
    pub docs: BTreeMap<DocId, Document>,
    pub states: BTreeMap<(PeerKey, DocId), Vec<u8>>,
}

impl DocHost for MemoryHost {
    fn doc(&mut self, id: &DocId) -> Result<&mut Document, String> {
        if !self.docs.contains_key(id) {
            let mut doc = Document::load(id, None, std::iter::empty()).map_err(|e| e.to_string())?;
            doc.set_actor(self.actor.clone());
            self.docs.insert(id.clone(), doc);
        }
        self.docs.get_mut(id).ok_or_else(|| "document vanished".to_string())
    }

    fn sync_state(&mut self, peer: &PeerKey, doc: &DocId) -> Option<Vec<u8>> {
        self.states.get(&(peer.clone(), doc.clone())).cloned()
    }
}

#[derive(Debug)]
pub struct Node {
    pub key: PeerKey,
    pub engine: Engine,
    pub host: MemoryHost,
}

impl Node {
    pub fn new(n: u8, docs: Vec<Document>) -> Self {
        Self::with_limits(n, docs, Limits::default())
    }

    /// A node whose engine runs with `limits`, so that a test can reach a
    /// bound with a handful of frames.
    pub fn with_limits(n: u8, docs: Vec<Document>, limits: Limits) -> Self {
        let mut node_id = [0u8; 16];
        node_id[0] = n;
        let actor = ActorId::from(node_id.to_vec());
        let mut config = EngineConfig::new(node_id, &format!("node-{n}"));
        config.limits = limits;
        let mut engine = Engine::new(config);
        let mut held = BTreeMap::new();
        for mut doc in docs {
            doc.set_actor(actor.clone());
            engine.set_held(&doc.id().clone(), &doc.heads());
            held.insert(doc.id().clone(), doc);
        }
        Self {
            key: PeerKey(format!("node-{n}")),
            engine,
            host: MemoryHost { actor, docs: held, states: BTreeMap::new() },
        }
    }
}

/// Bytes and frames that crossed the wire.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    pub bytes: usize,
    pub frames: usize,
}

/// Which side a frame left from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// Two nodes and the frames in flight between them. Frames are delivered
/// in order, one at a time. Time moves only when the caller moves it
/// ([`Pair::advance`]); what most callers measure is bytes, not time.
#[derive(Debug)]
pub struct Pair {
    pub a: Node,
    pub b: Node,
    pub now: Timestamp,
    wire: VecDeque<(Side, Vec<u8>)>,
    pub traffic: Traffic,
    /// What the engines reported as refused or reset.
    pub problems: Vec<String>,
    /// Why an engine cut its peer off, with the side that did.
    pub disconnects: Vec<(Side, String)>,
    /// Frames delivered so far; the filter sees this count.
    pub delivered: usize,
    /// Frames it refuses are lost on the wire.
    pub keep: Option<FrameFilter>,
    /// When each side's engine asked to be woken.
    pub timers: [Option<Timestamp>; 2],
}

/// Decides, from the frame's number, its sender and its bytes, whether a
/// frame reaches the other side.
pub struct FrameFilter(pub Box<KeepFrame>);

/// `(frame number, sender, frame) -> delivered?`
pub type KeepFrame = dyn FnMut(usize, Side, &[u8]) -> bool;

impl std::fmt::Debug for FrameFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameFilter")
    }
}

impl Pair {
    pub fn new(a: Node, b: Node) -> Self {
        Self {
            a,
            b,
            now: Timestamp::from_millis(1_795_600_000_000),
            wire: VecDeque::new(),
            traffic: Traffic::default(),
            problems: Vec::new(),
            disconnects: Vec::new(),
            delivered: 0,
            keep: None,
            timers: [None, None],
        }
    }

    fn node(&mut self, side: Side) -> &mut Node {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Carries out effects that `side`'s engine returned.
    pub fn carry(&mut self, side: Side, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { frame, .. } => {
                    self.traffic.bytes += frame.len();
                    self.traffic.frames += 1;
                    self.wire.push_back((side, frame));
                }
                Effect::PersistSyncState { peer, doc, state } => {
                    self.node(side).host.states.insert((peer, doc), state);
                }
                // Documents live in memory here; there is nothing to store.
                Effect::Problem { detail, doc, .. } => self.problems.push(format!("{doc:?}: {detail}")),
                Effect::StoreChanges { .. } => {}
                Effect::SetTimer { at } => {
                    self.timers[side as usize] = Some(at);
                }
                Effect::Disconnect { reason, .. } => self.disconnects.push((side, reason)),
            }
        }
    }

    /// Hands one frame, as if it came from `from`, to the other side.
    pub fn deliver(&mut self, from: Side, frame: &[u8]) {
        let (to, from_key) = match from {
            Side::A => (Side::B, self.a.key.clone()),
            Side::B => (Side::A, self.b.key.clone()),
        };
        let now = self.now;
        let node = self.node(to);
        let effects = node.engine.handle_frame(now, &from_key, frame, &mut node.host);
        self.carry(to, effects);
    }

    /// Delivers frames until neither side has anything more to say.
    pub fn settle(&mut self) {
        while let Some((from, frame)) = self.wire.pop_front() {
            let n = self.delivered;
            self.delivered += 1;
            if let Some(FrameFilter(keep)) = self.keep.as_mut()
                && !keep(n, from, &frame)
            {
                continue;
            }
            self.deliver(from, &frame);
        }
    }

    /// Moves time on by `ms` and fires the timers that are due.
    pub fn advance(&mut self, ms: i64) {
        self.now = Timestamp::from_millis(self.now.as_millis() + ms);
        for side in [Side::A, Side::B] {
            if self.timers[side as usize].is_some_and(|at| at <= self.now) {
                self.timers[side as usize] = None;
                let now = self.now;
                let node = self.node(side);
                let effects = node.engine.handle_timer(now, &mut node.host);
                self.carry(side, effects);
            }
        }
        self.settle();
    }

    /// Connects the two and lets them settle; returns what that cost.
    pub fn connect(&mut self) -> Traffic {
        let before = self.traffic;
        let (ka, kb) = (self.a.key.clone(), self.b.key.clone());
        let ea = self.a.engine.handle_connected(self.now, &kb);
        self.carry(Side::A, ea);
        let eb = self.b.engine.handle_connected(self.now, &ka);
        self.carry(Side::B, eb);
        self.settle();
        self.since(before)
    }

    pub fn disconnect(&mut self) {
        self.wire.clear();
        let (ka, kb) = (self.a.key.clone(), self.b.key.clone());
        self.a.engine.handle_disconnected(self.now, &kb);
        self.b.engine.handle_disconnected(self.now, &ka);
    }

    /// Tells A's engine that `doc` changed locally and lets the pair settle.
    pub fn push_from_a(&mut self, doc: &DocId) -> Traffic {
        let before = self.traffic;
        let effects = self.a.engine.handle_local_change(self.now, doc, &mut self.a.host);
        self.carry(Side::A, effects);
        self.settle();
        self.since(before)
    }

    fn since(&self, before: Traffic) -> Traffic {
        Traffic { bytes: self.traffic.bytes - before.bytes, frames: self.traffic.frames - before.frames }
    }

    /// Whether both hold every document with the same heads.
    pub fn in_sync(&mut self) -> bool {
        let ids: Vec<DocId> = self.a.host.docs.keys().chain(self.b.host.docs.keys()).cloned().collect();
        ids.iter().all(|id| match (self.a.host.doc(id).map(|d| d.heads()), self.b.host.doc(id).map(|d| d.heads())) {
            (Ok(mut x), Ok(mut y)) => {
                x.sort_unstable();
                y.sort_unstable();
                x == y
            }
            _ => false,
        })
    }
}
