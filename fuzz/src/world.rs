//! The fixed world every stateful target starts from, built once per
//! process: a signed fleet, documents written and signed by its members,
//! and the frames a real session between two members sends.
//!
//! Members (keys from `pair::node_signer(n)`):
//! 1 `node-1`, centre of KAZ-BS (node A, the one fuzzed);
//! 2 `node-2`, post of KAZ-BS (node B, the peer the fuzzer speaks as);
//! 3 `node-3`, centre of UZB-DCS; 4 `node-4`, observer of CARICC (no
//! rights); 5 `node-5`, post of KAZ-BS, revoked.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use automerge::{Change, ChangeHash};
use outpost_model::api::{NewEntryInput, NewIncidentInput};
use outpost_model::date::Timestamp;
use outpost_model::ids::{DocId, IncidentId};
use outpost_model::replication::engine::{DocHost, Effect, Engine, EngineConfig, Trust};
use outpost_model::replication::frame::Body;
use outpost_model::replication::pair::{FrameFilter, MemoryHost, Node, Pair, Side, TestFleet, node_actor, node_signer};
use outpost_model::schema::{ChangeMeta, DocKind, Document};
use outpost_model::trust::proof::{Proof, wire_proofs};
use outpost_model::trust::{Fleet, Role};
use outpost_model::validate::{PostContext, new_entry, new_incident};

/// The time the world is made at and the pair starts at (`Pair::new`).
pub const NOW: i64 = 1_795_600_000_000;
pub const MONTH: &str = "2026-11";
pub const EARLIER_MONTH: &str = "2026-10";

/// Frames a real session sent, by side.
#[derive(Debug, Default, Clone)]
pub struct Recording {
    pub from_a: Vec<Vec<u8>>,
    pub from_b: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub struct World {
    pub fleet: TestFleet,
    /// The fleet's roster, signed by its admin.
    pub signed: Vec<u8>,
    pub verified: Fleet,
    /// A newer roster (node-6 enrolled), signed.
    pub newer: Vec<u8>,
    /// Documents as A holds them, saved.
    pub a_docs: Vec<(DocId, Vec<u8>)>,
    /// Documents as B holds them, saved: more than A has.
    pub b_docs: Vec<(DocId, Vec<u8>)>,
    /// The heads each node's documents start with, sorted: a document
    /// still at these needs no check.
    pub initial: BTreeMap<(u8, DocId), Vec<ChangeHash>>,
    /// Every document id of the world, and ids of documents nobody holds.
    pub doc_ids: Vec<DocId>,
    /// The frames of a real session: connect, then a live push from B.
    pub session: Recording,
    /// Changes of B's that A lacks, per document, as raw chunks, with the
    /// proofs that travel with them.
    pub b_changes: Vec<(DocId, Vec<Vec<u8>>, Vec<Proof>)>,
    /// Whole documents as B saved them, for snapshot bundles.
    pub b_snapshots: Vec<(DocId, Vec<u8>)>,
}

pub fn watchlist() -> DocId {
    DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 0 }.doc_id()
}

pub fn incidents(month: &str) -> DocId {
    DocKind::Incidents { post: "node-2".into(), month: month.into() }.doc_id()
}

pub fn ctx(post: &str, authority: &str) -> PostContext {
    PostContext {
        now: Timestamp::from_millis(NOW),
        offset: time::UtcOffset::UTC,
        authority: authority.into(),
        post: post.into(),
    }
}

/// Adds a person entry with an id made from `seed` to a watchlist shard.
pub fn add_entry(doc: &mut Document, seed: u128, name: &str, post: &str) -> bool {
    let DocKind::Watchlist { authority, .. } = doc.kind().clone() else { return false };
    let Some(id) = doc.kind().entry_id_from(seed) else { return false };
    let input = NewEntryInput {
        kind: "person".into(),
        category: "warning".into(),
        reason: "fuzz".into(),
        names: vec![name.into()],
        ..Default::default()
    };
    let Ok(draft) = new_entry(&input, id, &ctx(post, &authority)) else { return false };
    let meta = ChangeMeta { at: Timestamp::from_millis(NOW), by: format!("1000@{post}"), op: "watchlist.add" };
    doc.transact(&meta, |r| r.add_entry(&draft)).is_ok()
}

/// Adds an incident with an id made from `seed` to `post`'s incident log.
pub fn add_incident(doc: &mut Document, seed: u128, narrative: &str, post: &str, at: Option<&str>) -> bool {
    let input = NewIncidentInput {
        incident_type: "seizure".into(),
        narrative: narrative.into(),
        at: at.map(str::to_string),
        ..Default::default()
    };
    let id = IncidentId::owned_by(post, uuid::Uuid::from_u128(seed));
    let Ok(draft) = new_incident(&input, id, &ctx(post, "KAZ-BS")) else { return false };
    let meta = ChangeMeta { at: Timestamp::from_millis(NOW), by: format!("1000@{post}"), op: "incident.log" };
    doc.transact(&meta, |r| r.add_incident(&draft)).is_ok()
}

fn fleet() -> TestFleet {
    let mut fleet = TestFleet::with_members(&[
        (1, Role::Centre, "KAZ-BS"),
        (2, Role::Post, "KAZ-BS"),
        (3, Role::Centre, "UZB-DCS"),
        (4, Role::Observer, "CARICC"),
        (5, Role::Post, "KAZ-BS"),
    ]);
    let observer = node_signer(4).public();
    for member in &mut fleet.roster.members {
        if member.key == observer {
            member.rights.clear();
        }
    }
    if let Ok(revoked) = fleet.roster.revoke(&node_signer(5).public(), Vec::new()) {
        fleet.roster = revoked;
    }
    fleet
}

/// A's and B's documents, B's ahead of A's.
fn documents() -> (Vec<Document>, Vec<Document>) {
    let mut w = Document::genesis(DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 0 }).expect("genesis");
    w.set_actor(node_actor(1));
    add_entry(&mut w, 1, "Мухаммад Алиев", "node-1");
    add_entry(&mut w, 2, "Aliev Mukhammad", "node-1");
    let mut i = Document::genesis(DocKind::Incidents { post: "node-2".into(), month: MONTH.into() }).expect("genesis");
    i.set_actor(node_actor(2));
    add_incident(&mut i, 1, "bus 214, 2 kg in the spare tyre", "node-2", None);
    let mut wb = w.fork(node_actor(2));
    add_entry(&mut wb, 3, "Ivan Petrov", "node-2");
    let mut ib = i.fork(node_actor(2));
    add_incident(&mut ib, 2, "second search of bus 214", "node-2", None);
    let mut old =
        Document::genesis(DocKind::Incidents { post: "node-2".into(), month: EARLIER_MONTH.into() }).expect("genesis");
    old.set_actor(node_actor(2));
    add_incident(&mut old, 3, "October seizure", "node-2", Some("2026-10-15T10:00:00Z"));
    (vec![w, i], vec![wb, ib, old])
}

fn saved(docs: &mut [Document]) -> Vec<(DocId, Vec<u8>)> {
    docs.iter_mut().map(|d| (d.id().clone(), d.save())).collect()
}

/// Loads saved documents.
pub fn load(saved: &[(DocId, Vec<u8>)]) -> Vec<Document> {
    saved.iter().filter_map(|(id, bytes)| Document::load(id, Some(bytes), std::iter::empty()).ok()).collect()
}

impl World {
    /// Node A (the one fuzzed) and node B, not yet connected, as
    /// `Node::in_fleet` makes them. Copies of two template nodes made once
    /// per thread: loading and signing every time would cost most of a run.
    pub fn pair(&self) -> Pair {
        self.pair_of(false)
    }

    /// The same two nodes in a `--psk-only` fleet (`psk`): no roster, and
    /// changes carry no signatures, so every holder of the fleet key is
    /// trusted as far as admission's rules that keep a document whole.
    pub fn pair_of(&self, psk: bool) -> Pair {
        type Templates = [Option<(Node, Node)>; 2];
        thread_local! {
            static TEMPLATES: std::cell::RefCell<Templates> = const { std::cell::RefCell::new([None, None]) };
        }
        TEMPLATES.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (a, b) = cell[usize::from(psk)].get_or_insert_with(|| {
                if psk {
                    (Node::new(1, load(&self.a_docs)), Node::new(2, load(&self.b_docs)))
                } else {
                    (
                        Node::in_fleet(1, load(&self.a_docs), &self.fleet),
                        Node::in_fleet(2, load(&self.b_docs), &self.fleet),
                    )
                }
            });
            Pair::new(self.copy(a, 1, psk), self.copy(b, 2, psk))
        })
    }

    /// A node like `template` (member `n`), with its documents forked.
    fn copy(&self, template: &mut Node, n: u8, psk: bool) -> Node {
        let trust = if psk { Trust::PskOnly } else { Trust::Fleet { anchor: self.fleet.anchor() } };
        let config = EngineConfig::new(template.signer.public(), &format!("node-{n}"), trust);
        let mut engine = Engine::new(config);
        if !psk {
            let _ = engine.set_roster(&self.signed);
        }
        let actor = node_actor(n);
        let mut docs = BTreeMap::new();
        for (id, doc) in template.host.docs.iter_mut() {
            engine.set_held(id, &doc.heads());
            docs.insert(id.clone(), doc.fork(actor.clone()));
        }
        let host = MemoryHost {
            actor: Some(actor),
            docs,
            stored: template.host.stored.clone(),
            stored_heads: template.host.stored_heads.clone(),
            states: template.host.states.clone(),
            proofs: template.host.proofs.clone(),
            held: template.host.held.clone(),
            roster: template.host.roster.clone(),
            attested: template.host.attested.clone(),
        };
        Node { key: template.key.clone(), signer: template.signer.clone(), engine, host }
    }
}

fn record(pair: &mut Pair) -> std::rc::Rc<std::cell::RefCell<Recording>> {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Recording::default()));
    let log = seen.clone();
    pair.keep = Some(FrameFilter(Box::new(move |_, side, frame| {
        let mut log = log.borrow_mut();
        match side {
            Side::A => log.from_a.push(frame.to_vec()),
            Side::B => log.from_b.push(frame.to_vec()),
        }
        true
    })));
    seen
}

/// B writes to `doc` and pushes the change, as an officer's write would.
pub fn push_from_b(pair: &mut Pair, doc: &DocId, seed: u128) {
    let Ok(document) = pair.b.host.doc(doc) else { return };
    match document.kind() {
        DocKind::Watchlist { .. } => add_entry(document, seed, "Pushed Person", "node-2"),
        _ => add_incident(document, seed, "pushed incident", "node-2", None),
    };
    let signer = pair.b.signer.clone();
    pair.b.host.store_local(doc, &signer);
    let now = pair.now;
    let effects = pair.b.engine.handle_local_change(now, doc, &mut pair.b.host);
    pair.carry(Side::B, effects);
    pair.settle();
}

fn build() -> World {
    let fleet = fleet();
    let signed = fleet.signed();
    let verified = Fleet::verify(&signed, &fleet.anchor()).expect("the world's roster verifies");
    let mut next = TestFleet { admin: fleet.admin.clone(), roster: fleet.roster.clone() };
    let six =
        outpost_model::trust::Member::new(node_signer(6).public(), "node-6", Role::Post, "KAZ-BS", Some("KAZ".into()));
    if let Ok(roster) = next.roster.enroll(six) {
        next.roster = roster;
    }
    let newer = next.signed();
    let (mut a, mut b) = documents();
    let a_docs = saved(&mut a);
    let b_docs = saved(&mut b);
    let mut world = World {
        fleet,
        signed,
        verified,
        newer,
        a_docs,
        b_docs,
        doc_ids: Vec::new(),
        initial: BTreeMap::new(),
        session: Recording::default(),
        b_changes: Vec::new(),
        b_snapshots: Vec::new(),
    };
    world.doc_ids = vec![
        watchlist(),
        incidents(MONTH),
        incidents(EARLIER_MONTH),
        DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 1 }.doc_id(),
        DocKind::Watchlist { authority: "UZB-DCS".into(), shard: 0 }.doc_id(),
        DocKind::Incidents { post: "node-3".into(), month: MONTH.into() }.doc_id(),
        DocKind::Audit { post: "node-2".into(), month: MONTH.into() }.doc_id(),
    ];
    // What B has that A lacks, with its proofs, before any session.
    let mut pair = world.pair();
    for (n, node) in [(1u8, &mut pair.a), (2, &mut pair.b)] {
        for (id, doc) in node.host.docs.iter_mut() {
            let mut heads = doc.heads();
            heads.sort_unstable();
            world.initial.insert((n, id.clone()), heads);
        }
    }
    for (id, _) in &world.b_docs {
        let a_heads = pair.a.host.doc(id).map(|d| d.heads()).unwrap_or_default();
        let known = pair.a.host.docs.contains_key(id);
        let Ok(doc) = pair.b.host.doc(id) else { continue };
        let since: Vec<ChangeHash> = if known { a_heads } else { Vec::new() };
        let changes: Vec<Change> = doc.changes_since(&since);
        let snapshot = doc.save();
        let stored = &pair.b.host.proofs;
        let proofs = wire_proofs(&changes, |h| stored.get(&(id.clone(), *h)).cloned().unwrap_or_default());
        let chunks = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
        world.b_changes.push((id.clone(), chunks, proofs));
        world.b_snapshots.push((id.clone(), snapshot));
    }
    // A real session: connect, then a live push from B.
    let seen = record(&mut pair);
    pair.connect();
    push_from_b(&mut pair, &watchlist(), 4);
    pair.advance(11 * 60 * 1000);
    world.session = seen.borrow().clone();
    world
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(build)
}

/// The bodies of `frames` that decode.
pub fn bodies(frames: &[Vec<u8>]) -> Vec<Body> {
    frames.iter().filter_map(|f| Body::decode(f).ok()).collect()
}

/// Checks what must hold of every effect an engine returns; panics with
/// what broke.
pub fn check_effects(effects: &[Effect]) {
    for effect in effects {
        if crate::debug() {
            match effect {
                Effect::Send { frame, .. } => {
                    eprintln!(
                        "  A sends {:?}",
                        Body::decode(frame).map(|b| format!("{b:?}").chars().take(90).collect::<String>())
                    )
                }
                other => eprintln!("  A: {}", format!("{other:?}").chars().take(160).collect::<String>()),
            }
        }
        match effect {
            Effect::Send { frame, .. } => {
                if let Err(err) = Body::decode(frame) {
                    panic!("the engine sent a frame its peer refuses: {err}");
                }
            }
            Effect::Problem { detail, .. } => assert!(!detail.trim().is_empty(), "a problem with no detail"),
            Effect::Disconnect { reason, .. } => assert!(!reason.trim().is_empty(), "a disconnect with no reason"),
            _ => {}
        }
    }
}

/// What must hold of a node's documents after any input: every change is
/// the genesis or by a roster member, every record reads, and what was
/// stored loads (a crash keeps only that).
pub fn check_node(node: &mut Node, n: u8) {
    let initial = &world().initial;
    let fleet = node.engine.fleet().cloned();
    let ids: Vec<DocId> = node.host.docs.keys().cloned().collect();
    for id in &ids {
        let Ok(doc) = node.host.doc(id) else { continue };
        let mut heads = doc.heads();
        heads.sort_unstable();
        if initial.get(&(n, id.clone())) == Some(&heads) {
            continue;
        }
        let genesis = doc.genesis_actor();
        if let Some(fleet) = &fleet {
            for change in doc.changes_since(&[]) {
                let actor = change.actor_id();
                assert!(
                    *actor == genesis || fleet.member_of_actor(actor.to_bytes()).is_some(),
                    "{id}: holds change {} by actor {actor}, which no member writes with",
                    change.hash()
                );
            }
        }
        let records = doc.records_obj().expect("the record map is there");
        let keys: Vec<String> = automerge::ReadDoc::keys(doc.read(), &records).collect();
        for key in &keys {
            if let Err(err) = doc.check_records([key]) {
                panic!("{id}: record {key} no longer reads: {err}");
            }
        }
    }
    let stored: Vec<(DocId, crate::world::Stored)> =
        node.host.stored.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (id, (snapshot, changes)) in stored {
        if changes.is_empty() && initial.contains_key(&(n, id.clone())) {
            continue;
        }
        if let Err(err) = Document::load(&id, snapshot.as_deref(), changes.iter().map(Vec::as_slice)) {
            panic!("{id}: what was stored does not load: {err}");
        }
    }
}

pub type Stored = outpost_model::replication::pair::StoredDoc;

/// Changes indexed by hash, for checks.
pub fn by_hash(changes: &[Change]) -> BTreeMap<ChangeHash, Change> {
    changes.iter().map(|c| (c.hash(), c.clone())).collect()
}
