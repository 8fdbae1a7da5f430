//! The deterministic fleet simulator: N nodes running the real replication
//! engine over simulated links and simulated time.
//!
//! One seed decides everything: how many nodes and how they are linked,
//! who edits what and when, which links fail, which frames are dropped,
//! duplicated or delayed (a frame may overtake frames of another lane,
//! never of its own: the transport keeps each lane in order, as TCP and
//! the daemon's lane queues do), and which nodes crash (losing
//! everything not yet stored) and restart from what they stored. After the
//! faults stop and every link is up again, every node must hold the same
//! heads and the same records for every document, read back from what it
//! stored, and every write that was acknowledged must be there.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use automerge::{ActorId, ChangeHash};
use outpost_model::admission::Held;
use outpost_model::date::Timestamp;
use outpost_model::replication::engine::{DocHost, Effect, Engine, EngineConfig, Lane, PeerKey, Trust};
use outpost_model::schema::incidents::read_incidents;
use outpost_model::schema::watchlist::read_entries;
use outpost_model::schema::{ChangeMeta, DocKind, Document};
use outpost_model::trust::proof::{StoredProof, sign_change};
use outpost_model::trust::roster::{Member, Right, Role, Roster, SignedRoster};
use outpost_model::trust::{PublicKey, Signer};
use outpost_model::validate::{PostContext, new_entry, new_incident};
use outpost_model::vocab::EntryStatus;
use outpost_model::{DocId, EntryId, IncidentId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::sample::Generator;

/// Simulated time starts here (2026-11-20), so that dates validate.
const EPOCH_MS: i64 = 1_795_600_000_000;
/// One way; 600 ms round trips, as on a geostationary satellite link.
const LATENCY_MS: i64 = 300;
/// How long after the faults stop the fleet has to converge: two digest
/// rechecks and then some.
const SETTLE_MS: i64 = 45 * 60 * 1000;

/// What one seeded run did.
#[derive(Debug, Default, Clone)]
pub struct SimReport {
    pub nodes: usize,
    pub links: usize,
    pub edits: usize,
    pub crashes: usize,
    pub frames: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub problems: u64,
    /// Each kind of problem the engines reported, with how often.
    pub problem_kinds: BTreeMap<String, u64>,
    /// Simulated milliseconds from the end of the faults to convergence.
    pub converged_after_ms: i64,
}

#[derive(Debug, Default)]
struct Stored {
    changes: BTreeMap<DocId, Vec<Vec<u8>>>,
    sync_states: BTreeMap<(PeerKey, DocId), Vec<u8>>,
    proofs: BTreeMap<(DocId, ChangeHash), Vec<StoredProof>>,
    held: BTreeMap<DocId, Vec<Held>>,
    roster: Option<Vec<u8>>,
}

/// A node's documents: in memory (lost in a crash) over what it stored.
struct SimHost {
    actor: ActorId,
    docs: BTreeMap<DocId, Document>,
    stored: Stored,
}

fn load(id: &DocId, stored: &Stored) -> Result<Document, String> {
    let changes = stored.changes.get(id).map(Vec::as_slice).unwrap_or_default();
    Document::load(id, None, changes.iter().map(Vec::as_slice)).map_err(|e| e.to_string())
}

impl DocHost for SimHost {
    fn doc(&mut self, id: &DocId) -> Result<&mut Document, String> {
        if !self.docs.contains_key(id) {
            let mut doc = load(id, &self.stored)?;
            doc.set_actor(self.actor.clone());
            self.docs.insert(id.clone(), doc);
        }
        self.docs.get_mut(id).ok_or_else(|| "document vanished".to_string())
    }

    fn sync_state(&mut self, peer: &PeerKey, doc: &DocId) -> Option<Vec<u8>> {
        self.stored.sync_states.get(&(peer.clone(), doc.clone())).cloned()
    }

    fn proofs(&mut self, doc: &DocId, change: &ChangeHash) -> Vec<StoredProof> {
        self.stored.proofs.get(&(doc.clone(), *change)).cloned().unwrap_or_default()
    }

    fn discard(&mut self, doc: &DocId) {
        self.docs.remove(doc);
    }
}

struct Node {
    key: PeerKey,
    signer: Signer,
    authority: String,
    post: String,
    engine: Option<Engine>,
    host: SimHost,
    starts: u32,
    timer_at: Option<i64>,
}

struct Link {
    a: usize,
    b: usize,
    up: bool,
    /// Bumped at every disconnect: frames of an older connection are lost.
    epoch: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Deliver { link: usize, epoch: u64, to: usize, frame: Vec<u8> },
    Timer { node: usize, at: i64 },
    Edit { node: usize },
    ToggleLink { link: usize },
    Crash { node: usize },
    Restart { node: usize },
}

struct Fleet {
    rng: StdRng,
    /// The fleet admin's key, which every node is configured with.
    anchor: PublicKey,
    sample: Generator,
    now: i64,
    seq: u64,
    queue: BinaryHeap<Reverse<(i64, u64, Event)>>,
    nodes: Vec<Node>,
    links: Vec<Link>,
    faults: bool,
    drop_p: f64,
    dup_p: f64,
    jitter_ms: i64,
    /// When the last frame on each (link, receiver, lane) arrives.
    lane_clock: BTreeMap<(usize, usize, Lane), i64>,
    acked_entries: Vec<(DocId, EntryId)>,
    acked_incidents: BTreeSet<IncidentId>,
    report: SimReport,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(EPOCH_MS + ms)
}

impl Fleet {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rng.random_range(3..=6);
        let mut nodes: Vec<Node> = (0..n)
            .map(|i| {
                let mut secret = [0u8; 32];
                rng.fill(&mut secret[..]);
                let signer = Signer::from_secret(secret);
                // Two authorities share documents, so edits are concurrent.
                let authority = if i % 2 == 0 { "KAZ-BS" } else { "UZB-DCS" };
                Node {
                    key: PeerKey(signer.public().peer_id()),
                    signer,
                    authority: authority.into(),
                    post: format!("post-{i}"),
                    engine: None,
                    host: SimHost {
                        actor: ActorId::from(vec![0u8; 20]),
                        docs: BTreeMap::new(),
                        stored: Stored::default(),
                    },
                    starts: 0,
                    timer_at: None,
                }
            })
            .collect();
        // A line so that changes must hop, plus some random extra links.
        let mut links: Vec<Link> = (1..n).map(|i| Link { a: i - 1, b: i, up: false, epoch: 0 }).collect();
        for _ in 0..rng.random_range(0..n) {
            let a = rng.random_range(0..n);
            let b = rng.random_range(0..n);
            if a != b && !links.iter().any(|l| (l.a, l.b) == (a.min(b), a.max(b))) {
                links.push(Link { a: a.min(b), b: a.max(b), up: false, epoch: 0 });
            }
        }
        let (anchor, roster) = roster_of(&nodes, &mut rng);
        for node in &mut nodes {
            node.host.stored.roster = Some(roster.clone());
        }
        let drop_p = rng.random_range(0.0..0.05);
        let dup_p = rng.random_range(0.0..0.03);
        let jitter_ms = rng.random_range(0..400);
        let report = SimReport { nodes: n, links: links.len(), ..Default::default() };
        Self {
            sample: Generator::new(seed),
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            links,
            anchor,
            faults: true,
            drop_p,
            dup_p,
            jitter_ms,
            lane_clock: BTreeMap::new(),
            acked_entries: Vec::new(),
            acked_incidents: BTreeSet::new(),
            report,
        }
    }

    fn schedule(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    fn start(&mut self, node: usize) {
        let anchor = self.anchor;
        let n = &mut self.nodes[node];
        n.starts += 1;
        let mut actor = n.signer.public().actor_prefix().to_vec();
        actor.extend_from_slice(&n.starts.to_be_bytes());
        n.host.actor = ActorId::from(actor);
        n.host.docs.clear();
        let mut engine = Engine::new(EngineConfig::new(n.signer.public(), &n.post, Trust::Fleet { anchor }));
        if let Some(roster) = &n.host.stored.roster
            && let Err(err) = engine.set_roster(roster)
        {
            panic!("{}: its stored roster does not verify: {err}", n.post);
        }
        let held: Vec<DocId> = n.host.stored.changes.keys().cloned().collect();
        for doc in held {
            if let Ok(mut loaded) = load(&doc, &n.host.stored) {
                engine.set_held(&doc, &loaded.heads());
            }
        }
        n.engine = Some(engine);
        n.timer_at = None;
        let up: Vec<usize> = (0..self.links.len())
            .filter(|l| self.link_usable(*l) && (self.links[*l].a == node || self.links[*l].b == node))
            .collect();
        for link in up {
            self.connect(link);
        }
    }

    fn alive(&self, node: usize) -> bool {
        self.nodes[node].engine.is_some()
    }

    fn link_usable(&self, link: usize) -> bool {
        let l = &self.links[link];
        l.up && self.alive(l.a) && self.alive(l.b)
    }

    fn connect(&mut self, link: usize) {
        let (a, b) = (self.links[link].a, self.links[link].b);
        for (me, other) in [(a, b), (b, a)] {
            let key = self.nodes[other].key.clone();
            let effects = match self.nodes[me].engine.as_mut() {
                Some(engine) => engine.handle_connected(ts(self.now), &key),
                None => continue,
            };
            self.apply(me, effects);
        }
    }

    fn disconnect(&mut self, link: usize) {
        self.links[link].epoch += 1;
        let (a, b) = (self.links[link].a, self.links[link].b);
        for (me, other) in [(a, b), (b, a)] {
            let key = self.nodes[other].key.clone();
            let effects = match self.nodes[me].engine.as_mut() {
                Some(engine) => engine.handle_disconnected(ts(self.now), &key),
                None => continue,
            };
            self.apply(me, effects);
        }
    }

    fn link_between(&self, a: usize, b: usize) -> Option<usize> {
        self.links.iter().position(|l| (l.a, l.b) == (a.min(b), a.max(b)))
    }

    fn apply(&mut self, node: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { peer, frame, lane } => {
                    let Some(to) = self.nodes.iter().position(|n| n.key == peer) else { continue };
                    let Some(link) = self.link_between(node, to) else { continue };
                    if !self.link_usable(link) {
                        continue;
                    }
                    self.report.frames += 1;
                    self.report.bytes += frame.len() as u64;
                    if self.faults && self.rng.random_bool(self.drop_p) {
                        self.report.dropped += 1;
                        continue;
                    }
                    let copies = if self.faults && self.rng.random_bool(self.dup_p) { 2 } else { 1 };
                    self.report.duplicated += copies - 1;
                    for _ in 0..copies {
                        let jitter = if self.faults { self.rng.random_range(0..=self.jitter_ms) } else { 0 };
                        let epoch = self.links[link].epoch;
                        // The transport keeps each lane in order; frames of
                        // different lanes overtake each other.
                        let last = self.lane_clock.entry((link, to, lane)).or_default();
                        let at = (self.now + LATENCY_MS + jitter).max(*last);
                        *last = at;
                        self.schedule(at, Event::Deliver { link, epoch, to, frame: frame.clone() });
                    }
                }
                Effect::StoreChanges { doc, since, proofs } => {
                    let host = &mut self.nodes[node].host;
                    if let Some(document) = host.docs.get_mut(&doc) {
                        let changes = document.stored_changes_since(&since);
                        host.stored.changes.entry(doc.clone()).or_default().extend(changes);
                    }
                    for (hash, proof) in proofs {
                        host.stored.proofs.entry((doc.clone(), hash)).or_default().push(proof);
                    }
                }
                Effect::RosterInstalled { roster, .. } => {
                    self.nodes[node].host.stored.roster = Some(roster);
                    let held = std::mem::take(&mut self.nodes[node].host.stored.held);
                    for (doc, held) in held {
                        let n = &mut self.nodes[node];
                        let Some(engine) = n.engine.as_mut() else { continue };
                        let effects = engine.handle_held(ts(self.now), &doc, held, &mut n.host);
                        self.apply(node, effects);
                    }
                }
                Effect::Hold { doc, held } => {
                    self.nodes[node].host.stored.held.entry(doc).or_default().extend(held);
                }
                Effect::PersistSyncState { peer, doc, state } => {
                    self.nodes[node].host.stored.sync_states.insert((peer, doc), state);
                }
                Effect::Disconnect { peer, reason } => {
                    panic!("honest node {} cut off {peer}: {reason}", self.nodes[node].key);
                }
                Effect::SetTimer { at } => {
                    let at = at.as_millis() - EPOCH_MS;
                    if self.nodes[node].timer_at != Some(at) {
                        self.nodes[node].timer_at = Some(at);
                        self.schedule(at.max(self.now), Event::Timer { node, at });
                    }
                }
                Effect::Problem { detail, peer, doc } => {
                    if std::env::var_os("OUTPOST_SIM_TRACE").is_some() {
                        eprintln!("{} {} problem with {peer} {doc:?}: {detail}", self.now, self.nodes[node].key);
                    }
                    self.report.problems += 1;
                    let kind: String = detail
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .filter(|c| !c.is_ascii_digit())
                        .take(60)
                        .collect();
                    *self.report.problem_kinds.entry(kind).or_default() += 1;
                }
            }
        }
    }

    fn edit(&mut self, node: usize) {
        if !self.alive(node) {
            return;
        }
        let now = ts(self.now);
        let n = &self.nodes[node];
        let ctx =
            PostContext { now, offset: time::UtcOffset::UTC, authority: n.authority.clone(), post: n.post.clone() };
        let meta = |op| ChangeMeta { at: now, by: format!("1000@{}", ctx.post), op };
        let roll = self.rng.random_range(0..10);
        let (doc_id, acked_entry, acked_incident, op) = if roll < 6 {
            let id = EntryId::from_uuid(uuid::Uuid::from_u128(self.rng.random()));
            let Ok(draft) = new_entry(&self.sample.entry(), id, &ctx) else { return };
            let doc = DocKind::watchlist_for(&ctx.authority, &id).doc_id();
            (doc, Some(id), None, Op::AddEntry(Box::new(draft)))
        } else if roll < 8 {
            // Close an acknowledged entry, perhaps while another node
            // closes or amends it elsewhere.
            let own: Vec<(DocId, EntryId)> = self
                .acked_entries
                .iter()
                .filter(|(doc, _)| matches!(DocKind::parse(doc), Ok(DocKind::Watchlist { authority, .. }) if authority == ctx.authority))
                .cloned()
                .collect();
            if own.is_empty() {
                return;
            }
            let (doc, id) = own[self.rng.random_range(0..own.len())].clone();
            (doc, None, None, Op::Close(id))
        } else {
            let id = IncidentId::from_uuid(uuid::Uuid::from_u128(self.rng.random()));
            let Ok(draft) = new_incident(&self.sample.incident(), id, &ctx) else { return };
            let doc = DocKind::Incidents { post: ctx.post.clone(), month: draft.occurred_at.utc_month() }.doc_id();
            (doc, None, Some(id), Op::Incident(Box::new(draft)))
        };
        let host = &mut self.nodes[node].host;
        let Ok(document) = host.doc(&doc_id) else { return };
        let result = match &op {
            Op::AddEntry(draft) => document.transact(&meta("watchlist.add"), |r| r.add_entry(draft)),
            Op::Close(id) => {
                document.transact(&meta("watchlist.close"), |r| r.set_entry_status(id, EntryStatus::Closed, "sim"))
            }
            Op::Incident(draft) => document.transact(&meta("incident.log"), |r| r.add_incident(draft)),
        };
        let Ok((_, Some(change))) = result else { return };
        // Acknowledged only once stored with its signature, as the daemon's
        // writer does.
        let hash = automerge::ChangeHash(change[..32].try_into().unwrap());
        let proof = sign_change(&self.nodes[node].signer, &doc_id, &hash);
        let host = &mut self.nodes[node].host;
        host.stored.changes.entry(doc_id.clone()).or_default().push(change);
        host.stored.proofs.entry((doc_id.clone(), hash)).or_default().push(proof);
        self.acked_entries.extend(acked_entry.map(|id| (doc_id.clone(), id)));
        self.acked_incidents.extend(acked_incident);
        self.report.edits += 1;
        let n = &mut self.nodes[node];
        let effects = match n.engine.as_mut() {
            Some(engine) => engine.handle_local_change(now, &doc_id, &mut n.host),
            None => return,
        };
        self.apply(node, effects);
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((at, _, event))) = self.queue.pop() else { return false };
        self.now = at;
        match event {
            Event::Deliver { link, epoch, to, frame } => {
                if self.links[link].epoch != epoch || !self.link_usable(link) {
                    return true;
                }
                let from = if self.links[link].a == to { self.links[link].b } else { self.links[link].a };
                let key = self.nodes[from].key.clone();
                let node = &mut self.nodes[to];
                let Some(engine) = node.engine.as_mut() else { return true };
                if std::env::var_os("OUTPOST_SIM_TRACE").is_some() {
                    let body = outpost_model::replication::frame::Body::decode(&frame);
                    let text = format!("{body:?}");
                    eprintln!("{at} {key}->{} {}", node.key, text.chars().take(160).collect::<String>());
                }
                let effects = engine.handle_frame(ts(at), &key, &frame, &mut node.host);
                self.apply(to, effects);
            }
            Event::Timer { node, at } => {
                if self.nodes[node].timer_at == Some(at) {
                    self.nodes[node].timer_at = None;
                    let n = &mut self.nodes[node];
                    if let Some(engine) = n.engine.as_mut() {
                        let effects = engine.handle_timer(ts(at), &mut n.host);
                        self.apply(node, effects);
                    }
                }
            }
            Event::Edit { node } => self.edit(node),
            Event::ToggleLink { link } => {
                if self.links[link].up {
                    self.disconnect(link);
                    self.links[link].up = false;
                } else {
                    self.links[link].up = true;
                    if self.link_usable(link) {
                        self.connect(link);
                    }
                }
            }
            Event::Crash { node } => {
                if self.alive(node) {
                    self.report.crashes += 1;
                    let links: Vec<usize> = (0..self.links.len()).filter(|l| self.link_usable(*l)).collect();
                    for link in links {
                        let l = &self.links[link];
                        if l.a == node || l.b == node {
                            self.disconnect(link);
                        }
                    }
                    let n = &mut self.nodes[node];
                    n.engine = None;
                    n.host.docs.clear();
                    n.timer_at = None;
                }
            }
            Event::Restart { node } => {
                if !self.alive(node) {
                    self.start(node);
                }
            }
        }
        true
    }

    /// Every node holds the same heads and records for every document, as
    /// read back from what it stored, and every acknowledged write.
    fn converged(&mut self) -> Result<(), String> {
        // Cheap first: the engines' inventories (document, heads) agree.
        let inventories: Vec<Vec<(DocId, u64)>> = self
            .nodes
            .iter()
            .map(|n| {
                n.engine
                    .as_ref()
                    .map(|e| e.inventory().iter().map(|(d, fp)| (d.clone(), fp)).collect())
                    .unwrap_or_default()
            })
            .collect();
        if let Some(other) = inventories.iter().position(|i| *i != inventories[0]) {
            return Err(format!("{} holds other documents or heads than n0", self.nodes[other].key));
        }
        let docs: BTreeSet<DocId> = self.nodes.iter().flat_map(|n| n.host.stored.changes.keys().cloned()).collect();
        let mut reference: BTreeMap<DocId, (Vec<automerge::ChangeHash>, String)> = BTreeMap::new();
        let mut entries = BTreeSet::new();
        let mut incidents = BTreeSet::new();
        for (index, node) in self.nodes.iter().enumerate() {
            for doc in &docs {
                let mut loaded = load(doc, &node.host.stored).map_err(|e| format!("{}: {doc}: {e}", node.key))?;
                let mut heads = loaded.heads();
                heads.sort_unstable();
                let records = if doc.as_str().starts_with("watchlist/") {
                    let list = read_entries(&loaded).map_err(|e| e.to_string())?;
                    if index == 0 {
                        entries.extend(list.iter().map(|e| e.id));
                    }
                    serde_json::to_string(&list).map_err(|e| e.to_string())?
                } else {
                    let list = read_incidents(&loaded).map_err(|e| e.to_string())?;
                    if index == 0 {
                        incidents.extend(list.iter().map(|i| i.id));
                    }
                    serde_json::to_string(&list).map_err(|e| e.to_string())?
                };
                match reference.get(doc) {
                    None => {
                        reference.insert(doc.clone(), (heads, records));
                    }
                    Some((h, r)) if *h == heads && *r == records => {}
                    Some((h, _)) if *h != heads => {
                        return Err(format!("{} holds other heads of {doc} than n0", node.key));
                    }
                    Some(_) => return Err(format!("{} reads other records from {doc} with the same heads", node.key)),
                }
            }
        }
        if let Some((_, lost)) = self.acked_entries.iter().find(|(_, id)| !entries.contains(id)) {
            return Err(format!("acknowledged entry {lost} is missing"));
        }
        if let Some(lost) = self.acked_incidents.difference(&incidents).next() {
            return Err(format!("acknowledged incident {lost} is missing"));
        }
        Ok(())
    }
}

/// Every node a member: a centre of its authority that also logs its own
/// incidents. Returns the admin's public key and the signed roster.
fn roster_of(nodes: &[Node], rng: &mut StdRng) -> (PublicKey, Vec<u8>) {
    let mut secret = [0u8; 32];
    rng.fill(&mut secret[..]);
    let admin = Signer::from_secret(secret);
    let mut roster = Roster::default();
    for node in nodes {
        let country = Member::default_country(&node.authority);
        let mut member = Member::new(node.signer.public(), &node.post, Role::Centre, &node.authority, country);
        member.rights = vec![Right::Watchlist { authority: node.authority.clone() }, Right::IncidentLog];
        roster = roster.enroll(member).expect("a valid member");
    }
    let signed = SignedRoster::sign(&roster, &admin, Vec::new()).and_then(|s| s.encode()).expect("a roster that signs");
    (admin.public(), signed)
}

enum Op {
    AddEntry(Box<outpost_model::watchlist::EntryDraft>),
    Close(EntryId),
    Incident(Box<outpost_model::incident::IncidentDraft>),
}

/// Runs one seed: faults for a simulated half hour, then a healed network
/// until convergence. An error names what diverged.
pub fn run(seed: u64) -> Result<SimReport, String> {
    let mut fleet = Fleet::new(seed);
    for link in &mut fleet.links {
        link.up = true;
    }
    for node in 0..fleet.nodes.len() {
        fleet.start(node);
    }
    let fault_ms: i64 = 30 * 60 * 1000;
    let edits = fleet.rng.random_range(8..40);
    for _ in 0..edits {
        let at = fleet.rng.random_range(0..fault_ms);
        let node = fleet.rng.random_range(0..fleet.nodes.len());
        fleet.schedule(at, Event::Edit { node });
    }
    for _ in 0..fleet.rng.random_range(0..8) {
        let at = fleet.rng.random_range(0..fault_ms);
        let link = fleet.rng.random_range(0..fleet.links.len());
        fleet.schedule(at, Event::ToggleLink { link });
    }
    for _ in 0..fleet.rng.random_range(0..3) {
        let at = fleet.rng.random_range(0..fault_ms);
        let node = fleet.rng.random_range(0..fleet.nodes.len());
        fleet.schedule(at, Event::Crash { node });
        let down_ms = fleet.rng.random_range(1_000..300_000);
        fleet.schedule(at + down_ms, Event::Restart { node });
    }
    while fleet.queue.peek().is_some_and(|Reverse((at, _, _))| *at < fault_ms) {
        fleet.step();
    }
    // Heal: no more faults, every node up, every link up. Frames already
    // on their way still arrive.
    fleet.faults = false;
    fleet.now = fault_ms;
    for node in 0..fleet.nodes.len() {
        if !fleet.alive(node) {
            fleet.start(node);
        }
    }
    for link in 0..fleet.links.len() {
        if !fleet.links[link].up {
            fleet.links[link].up = true;
            fleet.connect(link);
        }
    }
    let deadline = fault_ms + SETTLE_MS;
    let mut last_check = Err("never checked".to_string());
    while fleet.now <= deadline {
        let quiet = !fleet.queue.iter().any(|Reverse((_, _, e))| matches!(e, Event::Deliver { .. }));
        if quiet {
            last_check = fleet.converged();
            if last_check.is_ok() {
                fleet.report.converged_after_ms = fleet.now - fault_ms;
                return Ok(fleet.report);
            }
        }
        if !fleet.step() {
            break;
        }
    }
    Err(format!(
        "seed {seed}: no convergence {} min after healing: {} ({:?})",
        SETTLE_MS / 60_000,
        last_check.err().unwrap_or_default(),
        fleet.report
    ))
}
