//! Two replication engines joined by an in-memory wire that counts bytes:
//! what the engine's own tests drive it with, and what the benchmarks
//! measure its traffic with, beside plain Automerge sync on the same
//! documents. Pure: time is a number the caller moves, and keys are made
//! from fixed seeds.

use std::collections::{BTreeMap, VecDeque};

use automerge::{ActorId, ChangeHash};

use super::engine::{DocHost, Effect, Engine, EngineConfig, Limits, PeerKey, Trust};
use crate::admission::Held;
use crate::date::Timestamp;
use crate::ids::DocId;
use crate::schema::Document;
use crate::trust::proof::{StoredProof, sign_change};
use crate::trust::roster::{Member, Right, Role, Roster, SignedRoster};
use crate::trust::{PublicKey, Signer};

/// A document as stored: an optional snapshot and the changes after it.
pub type StoredDoc = (Option<Vec<u8>>, Vec<Vec<u8>>);

/// Documents, sync states and proofs, in memory; "stored" is what a crash
/// would keep, and what [`DocHost::discard`] goes back to.
#[derive(Debug, Default)]
pub struct MemoryHost {
    pub actor: Option<ActorId>,
    pub docs: BTreeMap<DocId, Document>,
    pub stored: BTreeMap<DocId, StoredDoc>,
    pub stored_heads: BTreeMap<DocId, Vec<ChangeHash>>,
    pub states: BTreeMap<(PeerKey, DocId), Vec<u8>>,
    pub proofs: BTreeMap<(DocId, ChangeHash), Vec<StoredProof>>,
    pub held: BTreeMap<DocId, Vec<Held>>,
    pub roster: Option<Vec<u8>>,
    /// Changes of revoked members admitted on an attestation, by name.
    pub attested: BTreeMap<String, u64>,
}

impl DocHost for MemoryHost {
    fn doc(&mut self, id: &DocId) -> Result<&mut Document, String> {
        if !self.docs.contains_key(id) {
            let (snapshot, changes) = self.stored.get(id).cloned().unwrap_or_default();
            let mut doc = Document::load(id, snapshot.as_deref(), changes.iter().map(Vec::as_slice))
                .map_err(|e| e.to_string())?;
            if let Some(actor) = &self.actor {
                doc.set_actor(actor.clone());
            }
            self.docs.insert(id.clone(), doc);
        }
        self.docs.get_mut(id).ok_or_else(|| "document vanished".to_string())
    }

    fn sync_state(&mut self, peer: &PeerKey, doc: &DocId) -> Option<Vec<u8>> {
        self.states.get(&(peer.clone(), doc.clone())).cloned()
    }

    fn proofs(&mut self, doc: &DocId, change: &ChangeHash) -> Vec<StoredProof> {
        self.proofs.get(&(doc.clone(), *change)).cloned().unwrap_or_default()
    }

    fn discard(&mut self, doc: &DocId) {
        self.docs.remove(doc);
    }
}

impl MemoryHost {
    /// Stores what `doc` holds beyond `since`, with `proofs` beside it.
    pub fn store(&mut self, doc: &DocId, since: &[ChangeHash], proofs: Vec<(ChangeHash, StoredProof)>) {
        let Some(document) = self.docs.get_mut(doc) else { return };
        let changes = document.stored_changes_since(since);
        let heads = document.heads();
        self.stored.entry(doc.clone()).or_default().1.extend(changes);
        self.stored_heads.insert(doc.clone(), heads);
        for (hash, proof) in proofs {
            self.proofs.entry((doc.clone(), hash)).or_default().push(proof);
        }
    }

    /// Stores the changes made here since the last store, each signed by
    /// `signer`, as the daemon's writer stores an officer's change.
    pub fn store_local(&mut self, doc: &DocId, signer: &Signer) {
        let since = self.stored_heads.get(doc).cloned().unwrap_or_default();
        let Some(document) = self.docs.get_mut(doc) else { return };
        let proofs =
            document.changes_since(&since).iter().map(|c| (c.hash(), sign_change(signer, doc, &c.hash()))).collect();
        self.store(doc, &since, proofs);
    }
}

/// A fleet for tests: an admin key and members made from fixed seeds.
#[derive(Debug)]
pub struct TestFleet {
    pub admin: Signer,
    pub roster: Roster,
}

impl TestFleet {
    /// Members `node-1` … `node-N`, all centres of KAZ-BS (they write its
    /// watchlists), with node keys from seeds 1 … N.
    pub fn centres(n: u8) -> Self {
        let mut roster = Roster::default();
        for i in 1..=n {
            let member =
                Member::new(node_signer(i).public(), &format!("node-{i}"), Role::Centre, "KAZ-BS", Some("KAZ".into()));
            if let Ok(next) = roster.enroll(member) {
                roster = next;
            }
        }
        Self { admin: Signer::from_secret([250; 32]), roster }
    }

    /// Members `node-N` with the given role and authority (country from
    /// the authority, regional without one), each writing its authority's
    /// watchlists and its own incident log.
    pub fn with_members(members: &[(u8, Role, &str)]) -> Self {
        let mut roster = Roster::default();
        for (n, role, authority) in members {
            let country = Member::default_country(authority);
            let mut member = Member::new(node_signer(*n).public(), &format!("node-{n}"), *role, authority, country);
            member.rights = vec![Right::Watchlist { authority: authority.to_string() }, Right::IncidentLog];
            if let Ok(next) = roster.enroll(member) {
                roster = next;
            }
        }
        Self { admin: Signer::from_secret([250; 32]), roster }
    }

    /// The roster, signed.
    pub fn signed(&self) -> Vec<u8> {
        SignedRoster::sign(&self.roster, &self.admin, Vec::new()).and_then(|s| s.encode()).unwrap_or_default()
    }

    pub fn anchor(&self) -> PublicKey {
        self.admin.public()
    }

    /// Gives member `n` another right, in a new roster version.
    pub fn grant(&mut self, n: u8, right: Right) {
        let key = node_signer(n).public();
        if let Some(mut member) = self.roster.member(&key).cloned() {
            member.rights = vec![right];
            if let Ok(next) = self.roster.enroll(member) {
                self.roster = next;
            }
        }
    }
}

/// Node `n`'s key.
pub fn node_signer(n: u8) -> Signer {
    Signer::from_secret([n; 32])
}

/// Node `n`'s actor: its key's prefix and a nonce.
pub fn node_actor(n: u8) -> ActorId {
    let mut bytes = node_signer(n).public().actor_prefix().to_vec();
    bytes.extend_from_slice(&[0, 0, 0, n]);
    ActorId::from(bytes)
}

#[derive(Debug)]
pub struct Node {
    pub key: PeerKey,
    pub signer: Signer,
    pub engine: Engine,
    pub host: MemoryHost,
}

impl Node {
    /// A node of a `--psk-only` fleet: no roster, no signatures.
    pub fn new(n: u8, docs: Vec<Document>) -> Self {
        Self::build(n, docs, Trust::PskOnly, Limits::default(), None)
    }

    /// A node whose engine runs with `limits`, so that a test can reach a
    /// bound with a handful of frames.
    pub fn with_limits(n: u8, docs: Vec<Document>, limits: Limits) -> Self {
        Self::build(n, docs, Trust::PskOnly, limits, None)
    }

    /// A member of `fleet`, holding its roster. The documents' changes
    /// written with this node's actor are signed by it.
    pub fn in_fleet(n: u8, docs: Vec<Document>, fleet: &TestFleet) -> Self {
        Self::build(n, docs, Trust::Fleet { anchor: fleet.anchor() }, Limits::default(), Some(fleet.signed()))
    }

    /// A node that knows the fleet's admin key but holds no roster yet, and
    /// is on none: a post installed and not enrolled.
    pub fn build_unenrolled(n: u8, anchor: PublicKey) -> Self {
        Self::build(n, Vec::new(), Trust::Fleet { anchor }, Limits::default(), None)
    }

    fn build(n: u8, docs: Vec<Document>, trust: Trust, limits: Limits, roster: Option<Vec<u8>>) -> Self {
        let signer = node_signer(n);
        let actor = node_actor(n);
        let mut config = EngineConfig::new(signer.public(), &format!("node-{n}"), trust);
        config.limits = limits;
        let mut engine = Engine::new(config);
        if let Some(roster) = &roster {
            let _ = engine.set_roster(roster);
        }
        let mut host = MemoryHost { actor: Some(actor.clone()), roster, ..MemoryHost::default() };
        for mut doc in docs {
            let id = doc.id().clone();
            engine.set_held(&id, &doc.heads());
            // Every change this node wrote is signed, as its writer does.
            for tip in doc.actor_tips().iter().filter(|(a, _, _)| *a == actor) {
                host.proofs.insert((id.clone(), tip.2), vec![sign_change(&signer, &id, &tip.2)]);
            }
            host.stored.insert(id.clone(), (Some(doc.save()), Vec::new()));
            host.stored_heads.insert(id.clone(), doc.heads());
            doc.set_actor(actor.clone());
            host.docs.insert(id, doc);
        }
        Self { key: PeerKey(signer.public().peer_id()), signer, engine, host }
    }
}

impl Node {
    /// Attests what this node holds of newly revoked members beyond their
    /// cuts, as the daemon's writer does.
    pub fn attest(&mut self, revoked: &[PublicKey]) {
        let members: Vec<Member> =
            revoked.iter().filter_map(|k| self.engine.fleet().and_then(|f| f.member(k).cloned())).collect();
        let ids: Vec<DocId> = self.host.stored.keys().cloned().collect();
        for id in ids {
            let Ok(doc) = self.host.doc(&id) else { continue };
            let found: Vec<_> =
                members.iter().flat_map(|m| crate::trust::attest::attestations(doc, m, &self.signer)).collect();
            for (hash, proof) in found {
                self.host.proofs.entry((id.clone(), hash)).or_default().push(proof);
            }
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

    pub fn node(&mut self, side: Side) -> &mut Node {
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
                Effect::StoreChanges { doc, since, proofs } => self.node(side).host.store(&doc, &since, proofs),
                Effect::RosterInstalled { roster, revoked, .. } => {
                    self.node(side).host.roster = Some(roster);
                    self.node(side).attest(&revoked);
                    let held = std::mem::take(&mut self.node(side).host.held);
                    for (doc, held) in held {
                        let now = self.now;
                        let node = self.node(side);
                        let effects = node.engine.handle_held(now, &doc, held, &mut node.host);
                        self.carry(side, effects);
                    }
                }
                Effect::Hold { doc, held, .. } => self.node(side).host.held.entry(doc).or_default().extend(held),
                Effect::Attested { member, changes } => {
                    *self.node(side).host.attested.entry(member).or_default() += changes;
                }
                Effect::Problem { detail, doc, .. } => self.problems.push(format!("{doc:?}: {detail}")),
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

    /// A's officer changed `doc`: A stores and signs the change, its
    /// engine pushes it, and the pair settles.
    pub fn push_from_a(&mut self, doc: &DocId) -> Traffic {
        let before = self.traffic;
        self.a.host.store_local(doc, &self.a.signer);
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
