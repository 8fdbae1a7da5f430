//! Two replication engines joined by an in-memory wire that counts bytes:
//! what the benchmarks measure the engine's traffic with, beside plain
//! Automerge sync on the same documents.

use std::collections::{BTreeMap, VecDeque};

use automerge::ActorId;
use outpost_model::DocId;
use outpost_model::date::Timestamp;
use outpost_model::replication::engine::{DocHost, Effect, Engine, EngineConfig, PeerKey};
use outpost_model::schema::Document;

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
        let mut node_id = [0u8; 16];
        node_id[0] = n;
        let actor = ActorId::from(node_id.to_vec());
        let mut engine = Engine::new(EngineConfig::new(node_id, &format!("node-{n}")));
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

/// Two nodes and the frames in flight between them. Frames are delivered
/// in order, one at a time, and time stands still: what is measured is
/// bytes, not time.
#[derive(Debug)]
pub struct Pair {
    pub a: Node,
    pub b: Node,
    now: Timestamp,
    wire: VecDeque<(bool, Vec<u8>)>,
    pub traffic: Traffic,
    /// What the engines reported as refused or reset.
    pub problems: Vec<String>,
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
        }
    }

    fn carry(&mut self, from_a: bool, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { frame, .. } => {
                    self.traffic.bytes += frame.len();
                    self.traffic.frames += 1;
                    self.wire.push_back((from_a, frame));
                }
                Effect::PersistSyncState { peer, doc, state } => {
                    let node = if from_a { &mut self.a } else { &mut self.b };
                    node.host.states.insert((peer, doc), state);
                }
                // Documents live in memory here; there is nothing to store.
                Effect::Problem { detail, doc, .. } => self.problems.push(format!("{doc:?}: {detail}")),
                Effect::StoreChanges { .. } | Effect::SetTimer { .. } => {}
                Effect::Disconnect { reason, .. } => panic!("an engine cut its peer off: {reason}"),
            }
        }
    }

    /// Delivers frames until neither side has anything more to say.
    pub fn settle(&mut self) {
        while let Some((from_a, frame)) = self.wire.pop_front() {
            let (to, from_key) =
                if from_a { (&mut self.b, self.a.key.clone()) } else { (&mut self.a, self.b.key.clone()) };
            let effects = to.engine.handle_frame(self.now, &from_key, &frame, &mut to.host);
            self.carry(!from_a, effects);
        }
    }

    /// Connects the two and lets them settle; returns what that cost.
    pub fn connect(&mut self) -> Traffic {
        let before = self.traffic;
        let (ka, kb) = (self.a.key.clone(), self.b.key.clone());
        let ea = self.a.engine.handle_connected(self.now, &kb);
        self.carry(true, ea);
        let eb = self.b.engine.handle_connected(self.now, &ka);
        self.carry(false, eb);
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
        self.carry(true, effects);
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
