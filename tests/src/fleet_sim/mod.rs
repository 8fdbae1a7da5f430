//! The deterministic fleet simulator: N nodes running the real replication
//! engine over simulated links and simulated time.
//!
//! One seed decides everything: how many nodes and how they are linked,
//! who edits what and when, which links fail, which frames are dropped,
//! duplicated or delayed (a frame may overtake frames of another lane,
//! never of its own: the transport keeps each lane in order, as TCP and
//! the daemon's lane queues do), and which nodes crash (losing
//! everything not yet stored) and restart from what they stored. After the
//! faults stop and every link is up again, every honest node must hold the
//! same heads and the same records for every document, read back from what
//! it stored, and every write that was acknowledged must be there.
//!
//! In [`Mode::Byzantine`] one more node is a member gone bad: it runs the
//! real engine, and also writes what no honest node may take
//! ([`byzantine`]), and it never installs the roster that revokes it, so it
//! goes on writing after its revocation. A node may start outside the
//! roster and be enrolled later; the administrator enrols it, revokes the
//! byzantine node and hands out stale rosters at nodes and times the seed
//! picks, so rosters arrive late and out of order ([`admin`]). The honest
//! nodes must converge as before, and none may hold a change the byzantine
//! node made that every node must refuse.

mod admin;
mod byzantine;
mod host;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use automerge::{ActorId, ChangeHash};
use outpost_model::admission::{Standing, check_local};
use outpost_model::date::Timestamp;
use outpost_model::replication::engine::{Effect, Engine, EngineConfig, Lane, PeerKey, Trust};
use outpost_model::replication::frame::Body;
use outpost_model::schema::incidents::read_incidents;
use outpost_model::schema::watchlist::read_entries;
use outpost_model::schema::{ChangeMeta, DocKind};
use outpost_model::trust::proof::sign_change;
use outpost_model::trust::roster::{Member, Right, Role};
use outpost_model::trust::{PublicKey, Signer};
use outpost_model::validate::{PostContext, new_entry, new_incident};
use outpost_model::vocab::EntryStatus;
use outpost_model::{DocId, EntryId, IncidentId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use self::admin::{Admin, RosterChange};
use self::byzantine::{ATTACKS, Attack};
use self::host::{SimHost, Stored, load};
use crate::sample::Generator;

/// Simulated time starts here (2026-11-20), so that dates validate.
const EPOCH_MS: i64 = 1_795_600_000_000;
/// One way; 600 ms round trips, as on a geostationary satellite link.
const LATENCY_MS: i64 = 300;
/// How long the faults last.
const FAULT_MS: i64 = 30 * 60 * 1000;
/// How long after the faults stop the fleet has to converge: two digest
/// rechecks and then some.
const SETTLE_MS: i64 = 45 * 60 * 1000;

/// Which fleet a seed builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every node honest and enrolled from the start.
    Honest,
    /// One byzantine member, perhaps a node enrolled late, and roster
    /// changes handed out late and out of order.
    Byzantine,
}

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
    /// Attacks the byzantine node made, and the changes they produced.
    pub attacks: usize,
    pub bad_changes: usize,
    /// Roster versions handed to nodes by the administrator.
    pub rosters_published: usize,
    /// Connections an honest node closed to the byzantine one.
    pub byzantine_cut_offs: usize,
    /// Changes put in quarantine to wait for a roster (or a cut's change).
    pub held: usize,
    /// Changes of the revoked node honest nodes admitted by attestation.
    pub attested: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Honest,
    /// Honest, but outside the roster until the administrator enrols it.
    Late,
    Byzantine,
}

struct Node {
    kind: Kind,
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
    Deliver {
        link: usize,
        epoch: u64,
        to: usize,
        frame: Vec<u8>,
    },
    Timer {
        node: usize,
        at: i64,
    },
    Edit {
        node: usize,
    },
    ToggleLink {
        link: usize,
    },
    /// A closed connection is dialled again.
    Redial {
        link: usize,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Publish {
        change: RosterChange,
    },
    Attack {
        attack: Attack,
    },
}

struct Fleet {
    rng: StdRng,
    admin: Admin,
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
    /// Shrunk in byzantine seeds, so that cut-offs happen and end in a run.
    limits: outpost_model::replication::engine::Limits,
    /// When the last frame on each (link, receiver, lane) arrives.
    lane_clock: BTreeMap<(usize, usize, Lane), i64>,
    acked_entries: Vec<(DocId, EntryId)>,
    acked_incidents: BTreeSet<IncidentId>,
    /// Changes the byzantine node made that every honest node must refuse.
    bad: BTreeMap<ChangeHash, Attack>,
    report: SimReport,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(EPOCH_MS + ms)
}

fn new_node(rng: &mut StdRng, kind: Kind, authority: &str, post: String) -> Node {
    let mut secret = [0u8; 32];
    rng.fill(&mut secret[..]);
    let signer = Signer::from_secret(secret);
    Node {
        kind,
        key: PeerKey(signer.public().peer_id()),
        signer,
        authority: authority.into(),
        post,
        engine: None,
        host: SimHost { actor: ActorId::from(vec![0u8; 20]), docs: BTreeMap::new(), stored: Stored::default() },
        starts: 0,
        timer_at: None,
    }
}

/// A centre of its authority that also logs its own incidents.
fn centre(node: &Node) -> Member {
    let country = Member::default_country(&node.authority);
    let mut member = Member::new(node.signer.public(), &node.post, Role::Centre, &node.authority, country);
    member.rights = vec![Right::Watchlist { authority: node.authority.clone() }, Right::IncidentLog];
    member
}

impl Fleet {
    fn new(seed: u64, mode: Mode) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let honest = rng.random_range(3..=6);
        // Two authorities share documents, so edits are concurrent.
        let mut nodes: Vec<Node> = (0..honest)
            .map(|i| {
                let authority = if i % 2 == 0 { "KAZ-BS" } else { "UZB-DCS" };
                new_node(&mut rng, Kind::Honest, authority, format!("post-{i}"))
            })
            .collect();
        // A line so that changes must hop, plus some random extra links,
        // all between honest nodes: they stay connected among themselves.
        let mut links: Vec<Link> = (1..honest).map(|i| Link { a: i - 1, b: i, up: false, epoch: 0 }).collect();
        let add_link = |links: &mut Vec<Link>, a: usize, b: usize| {
            if a != b && !links.iter().any(|l| (l.a, l.b) == (a.min(b), a.max(b))) {
                links.push(Link { a: a.min(b), b: a.max(b), up: false, epoch: 0 });
            }
        };
        for _ in 0..rng.random_range(0..honest) {
            let (a, b) = (rng.random_range(0..honest), rng.random_range(0..honest));
            add_link(&mut links, a, b);
        }
        if mode == Mode::Byzantine {
            if rng.random_bool(0.6) {
                nodes.push(new_node(&mut rng, Kind::Late, "UZB-DCS", "late-post".into()));
            }
            nodes.push(new_node(&mut rng, Kind::Byzantine, "KAZ-BS", "byzantine".into()));
            for joined in honest..nodes.len() {
                for _ in 0..rng.random_range(1..=2) {
                    let to = rng.random_range(0..honest);
                    add_link(&mut links, joined, to);
                }
            }
        }
        let members = nodes.iter().filter(|n| n.kind != Kind::Late).map(centre).collect();
        let admin = Admin::new(&mut rng, members);
        for node in nodes.iter_mut().filter(|n| n.kind != Kind::Late) {
            node.host.stored.roster = Some(admin.current());
        }
        let mut limits = outpost_model::replication::engine::Limits::default();
        if mode == Mode::Byzantine {
            limits.max_refused_changes = rng.random_range(1..=8);
            limits.cut_off_ms = rng.random_range(60_000..=10 * 60_000);
        }
        let drop_p = rng.random_range(0.0..0.05);
        let dup_p = rng.random_range(0.0..0.03);
        let jitter_ms = rng.random_range(0..400);
        let report = SimReport { nodes: nodes.len(), links: links.len(), ..Default::default() };
        if tracing_on() {
            for n in &nodes {
                eprintln!("NODE {} {} {:?}", n.post, n.key, n.kind);
            }
            for l in &links {
                eprintln!("LINK {} {}", nodes[l.a].post, nodes[l.b].post);
            }
        }
        Self {
            sample: Generator::new(seed),
            rng,
            admin,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            links,
            faults: true,
            drop_p,
            dup_p,
            jitter_ms,
            limits,
            lane_clock: BTreeMap::new(),
            acked_entries: Vec::new(),
            acked_incidents: BTreeSet::new(),
            bad: BTreeMap::new(),
            report,
        }
    }

    fn schedule(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    fn node_of(&self, kind: Kind) -> Option<usize> {
        self.nodes.iter().position(|n| n.kind == kind)
    }

    fn start(&mut self, node: usize) {
        let anchor = self.admin.anchor();
        let limits = self.limits.clone();
        let n = &mut self.nodes[node];
        n.starts += 1;
        let mut actor = n.signer.public().actor_prefix().to_vec();
        actor.extend_from_slice(&n.starts.to_be_bytes());
        n.host.actor = ActorId::from(actor);
        n.host.docs.clear();
        let mut config = EngineConfig::new(n.signer.public(), &n.post, Trust::Fleet { anchor });
        config.limits = limits;
        let mut engine = Engine::new(config);
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
        self.tell_both_ends(link, Engine::handle_connected);
    }

    fn disconnect(&mut self, link: usize) {
        self.links[link].epoch += 1;
        self.tell_both_ends(link, Engine::handle_disconnected);
    }

    /// Tells the live engine at each end of `link` about the other end.
    fn tell_both_ends(&mut self, link: usize, event: fn(&mut Engine, Timestamp, &PeerKey) -> Vec<Effect>) {
        let (a, b) = (self.links[link].a, self.links[link].b);
        for (me, other) in [(a, b), (b, a)] {
            let key = self.nodes[other].key.clone();
            let effects = match self.nodes[me].engine.as_mut() {
                Some(engine) => event(engine, ts(self.now), &key),
                None => continue,
            };
            self.apply(me, effects);
        }
    }

    fn link_between(&self, a: usize, b: usize) -> Option<usize> {
        self.links.iter().position(|l| (l.a, l.b) == (a.min(b), a.max(b)))
    }

    fn send(&mut self, node: usize, peer: PeerKey, lane: Lane, frame: Vec<u8>) {
        let Some(to) = self.nodes.iter().position(|n| n.key == peer) else { return };
        let Some(link) = self.link_between(node, to) else { return };
        if !self.link_usable(link) {
            return;
        }
        self.report.frames += 1;
        self.report.bytes += frame.len() as u64;
        if self.faults && self.rng.random_bool(self.drop_p) {
            self.report.dropped += 1;
            return;
        }
        let copies = if self.faults && self.rng.random_bool(self.dup_p) { 2 } else { 1 };
        self.report.duplicated += copies - 1;
        for _ in 0..copies {
            let jitter = if self.faults { self.rng.random_range(0..=self.jitter_ms) } else { 0 };
            let epoch = self.links[link].epoch;
            // The transport keeps each lane in order; frames of different
            // lanes overtake each other.
            let last = self.lane_clock.entry((link, to, lane)).or_default();
            let at = (self.now + LATENCY_MS + jitter).max(*last);
            *last = at;
            self.schedule(at, Event::Deliver { link, epoch, to, frame: frame.clone() });
        }
    }

    fn apply(&mut self, node: usize, effects: Vec<Effect>) {
        // Documents that changed while changes of theirs wait in
        // quarantine: the change a cut names may have arrived.
        let mut requeue = BTreeSet::new();
        for effect in effects {
            match effect {
                Effect::Send { peer, frame, lane } => self.send(node, peer, lane, frame),
                Effect::StoreChanges { doc, since, proofs } => {
                    let host = &mut self.nodes[node].host;
                    host.store(&doc, &since, proofs);
                    if host.stored.held.contains_key(&doc) {
                        requeue.insert(doc);
                    }
                }
                Effect::RosterInstalled { roster, revoked, version } => {
                    let n = &mut self.nodes[node];
                    if tracing_on() {
                        eprintln!("INSTALL {} v{version} revoked {}", n.post, revoked.len());
                    }
                    n.host.stored.roster = Some(roster);
                    let members: Vec<Member> =
                        revoked.iter().filter_map(|key| n.engine.as_ref()?.fleet()?.member(key).cloned()).collect();
                    n.host.attest(&members, &n.signer);
                    // A newer roster may let in what waited.
                    requeue.extend(n.host.stored.held.keys().cloned());
                }
                Effect::Hold { doc, held, .. } => {
                    self.report.held += held.len();
                    self.nodes[node].host.stored.held.entry(doc).or_default().extend(held);
                }
                Effect::Attested { changes, .. } => {
                    if self.nodes[node].kind != Kind::Byzantine {
                        self.report.attested += changes;
                    }
                }
                Effect::PersistSyncState { peer, doc, state } => {
                    self.nodes[node].host.stored.sync_states.insert((peer, doc), state);
                }
                Effect::Disconnect { peer, reason } => self.close(node, &peer, &reason),
                Effect::SetTimer { at } => {
                    let at = at.as_millis() - EPOCH_MS;
                    if self.nodes[node].timer_at != Some(at) {
                        self.nodes[node].timer_at = Some(at);
                        self.schedule(at.max(self.now), Event::Timer { node, at });
                    }
                }
                Effect::Problem { detail, peer, doc } => {
                    if tracing_on() {
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
        for doc in requeue {
            let n = &mut self.nodes[node];
            let Some(held) = n.host.stored.held.remove(&doc) else { continue };
            let Some(engine) = n.engine.as_mut() else { continue };
            let effects = engine.handle_held(ts(self.now), &doc, held, &mut n.host);
            self.apply(node, effects);
        }
    }

    /// `node` closes its connection to `peer`, which must involve the
    /// byzantine node: honest nodes never cut each other off. The peer
    /// dials again a little later, as the daemon's dialler does.
    fn close(&mut self, node: usize, peer: &PeerKey, reason: &str) {
        let Some(to) = self.nodes.iter().position(|n| n.key == *peer) else { return };
        let byzantine = [node, to].iter().any(|i| self.nodes[*i].kind == Kind::Byzantine);
        assert!(byzantine, "honest node {} cut off honest {peer}: {reason}", self.nodes[node].key);
        if self.nodes[node].kind != Kind::Byzantine {
            self.report.byzantine_cut_offs += 1;
        }
        let Some(link) = self.link_between(node, to) else { return };
        if self.links[link].up {
            self.disconnect(link);
            self.links[link].up = false;
            let redial = self.rng.random_range(30_000..120_000);
            self.schedule(self.now + redial, Event::Redial { link });
        }
    }

    /// What `node` may write, by the rules the daemon's writer applies to
    /// an officer's change before it stores it.
    fn may_write(&self, node: usize, doc: &DocId, change: &automerge::Change) -> bool {
        let n = &self.nodes[node];
        let Some(engine) = n.engine.as_ref() else { return false };
        let key = n.signer.public();
        let standing = match engine.fleet().and_then(|f| Some((f, f.member(&key)?))) {
            Some((fleet, member)) => Standing::Member { fleet, member },
            None => Standing::Unenrolled { name: &n.post },
        };
        let Some(document) = n.host.docs.get(doc) else { return false };
        check_local(document, change, standing).is_ok()
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
            let id = EntryId::owned_by(&ctx.authority, uuid::Uuid::from_u128(self.rng.random()));
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
            let id = IncidentId::owned_by(&ctx.post, uuid::Uuid::from_u128(self.rng.random()));
            let Ok(draft) = new_incident(&self.sample.incident(), id, &ctx) else { return };
            let doc = DocKind::Incidents { post: ctx.post.clone(), month: draft.occurred_at.utc_month() }.doc_id();
            (doc, None, Some(id), Op::Incident(Box::new(draft)))
        };
        let host = &mut self.nodes[node].host;
        let Ok(document) = outpost_model::replication::engine::DocHost::doc(host, &doc_id) else { return };
        let before = document.heads();
        let result = match &op {
            Op::AddEntry(draft) => document.transact(&meta("watchlist.add"), |r| r.add_entry(draft)),
            Op::Close(id) => {
                document.transact(&meta("watchlist.close"), |r| r.set_entry_status(id, EntryStatus::Closed, "sim"))
            }
            Op::Incident(draft) => document.transact(&meta("incident.log"), |r| r.add_incident(draft)),
        };
        let Ok((_, Some(change))) = result else { return };
        let hash = automerge::ChangeHash(change[..32].try_into().unwrap());
        let Some(made) = document.changes_since(&before).into_iter().find(|c| c.hash() == hash) else { return };
        // The byzantine node writes what it likes; an honest one only what
        // the fleet will take, or its officer is told no.
        if self.nodes[node].kind != Kind::Byzantine && !self.may_write(node, &doc_id, &made) {
            self.nodes[node].host.docs.remove(&doc_id);
            return;
        }
        // Acknowledged only once stored with its signature, as the daemon's
        // writer does.
        let proof = sign_change(&self.nodes[node].signer, &doc_id, &hash);
        let host = &mut self.nodes[node].host;
        host.stored.changes.entry(doc_id.clone()).or_default().push(change);
        host.stored.proofs.entry((doc_id.clone(), hash)).or_default().push(proof);
        if self.nodes[node].kind != Kind::Byzantine {
            self.acked_entries.extend(acked_entry.map(|id| (doc_id.clone(), id)));
            self.acked_incidents.extend(acked_incident);
        }
        self.report.edits += 1;
        let n = &mut self.nodes[node];
        let effects = match n.engine.as_mut() {
            Some(engine) => engine.handle_local_change(now, &doc_id, &mut n.host),
            None => return,
        };
        self.apply(node, effects);
    }

    fn attack(&mut self, attack: Attack) {
        let Some(node) = self.node_of(Kind::Byzantine) else { return };
        if !self.alive(node) {
            return;
        }
        let victims: Vec<(PublicKey, String)> = self
            .nodes
            .iter()
            .filter(|n| n.kind != Kind::Byzantine)
            .map(|n| (n.signer.public(), n.post.clone()))
            .collect();
        let entries: Vec<(DocId, EntryId)> = self
            .acked_entries
            .iter()
            .filter(|(doc, _)| doc.as_str().starts_with("watchlist/KAZ-BS/"))
            .cloned()
            .collect();
        let now = ts(self.now);
        let n = &mut self.nodes[node];
        let target = byzantine::Target { now, signer: &n.signer, victims: &victims, entries: &entries };
        let Some(made) = byzantine::make(attack, &target, &mut n.host, &mut self.sample, &mut self.rng) else {
            return;
        };
        self.report.attacks += 1;
        self.report.bad_changes += made.proofs.len();
        self.bad.extend(made.hashes().map(|h| (h, attack)));
        let doc = made.doc.clone();
        n.host.stored.changes.entry(doc.clone()).or_default().extend(made.stored);
        for (hash, proof) in made.proofs {
            n.host.stored.proofs.entry((doc.clone(), hash)).or_default().push(proof);
        }
        let effects = match n.engine.as_mut() {
            Some(engine) => engine.handle_local_change(now, &doc, &mut n.host),
            None => return,
        };
        self.apply(node, effects);
    }

    /// The administrator hands a roster to a node that is up, as `outpost
    /// fleet` run there does.
    fn publish(&mut self, change: RosterChange) {
        let candidates: Vec<usize> =
            (0..self.nodes.len()).filter(|i| self.nodes[*i].kind != Kind::Byzantine && self.alive(*i)).collect();
        if candidates.is_empty() {
            self.schedule(self.now + 60_000, Event::Publish { change });
            return;
        }
        let at = candidates[self.rng.random_range(0..candidates.len())];
        let bytes = match change {
            RosterChange::EnrolLate => {
                let Some(late) = self.node_of(Kind::Late) else { return };
                let n = &self.nodes[late];
                let country = Member::default_country(&n.authority);
                self.admin.enroll(Member::new(n.signer.public(), &n.post, Role::Post, &n.authority, country))
            }
            RosterChange::RevokeByzantine => {
                let Some(byzantine) = self.node_of(Kind::Byzantine) else { return };
                let key = self.nodes[byzantine].signer.public();
                let Some(member) = self.admin.member(&key) else { return };
                let cut = self.nodes[at].host.cut_for(&member);
                self.admin.revoke(&key, cut)
            }
            RosterChange::Stale => match self.admin.stale(&mut self.rng) {
                Some(bytes) => bytes,
                None => return,
            },
        };
        self.report.rosters_published += 1;
        let n = &mut self.nodes[at];
        let Some(engine) = n.engine.as_mut() else { return };
        match engine.handle_roster(ts(self.now), &bytes, &mut n.host) {
            Ok(effects) => self.apply(at, effects),
            // The node holds this version or a newer one.
            Err(_) if change == RosterChange::Stale => {}
            Err(err) => panic!("{} refused the administrator's roster: {err}", n.post),
        }
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((at, _, event))) = self.queue.pop() else { return false };
        self.now = at;
        match event {
            Event::Deliver { link, epoch, to, frame } => {
                if self.links[link].epoch != epoch || !self.link_usable(link) {
                    return true;
                }
                if self.nodes[to].kind == Kind::Byzantine && self.revokes_byzantine(&frame) {
                    // It never takes the roster that revokes it.
                    return true;
                }
                let from = if self.links[link].a == to { self.links[link].b } else { self.links[link].a };
                let key = self.nodes[from].key.clone();
                let node = &mut self.nodes[to];
                let Some(engine) = node.engine.as_mut() else { return true };
                if tracing_on() {
                    let text = format!("{:?}", Body::decode(&frame));
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
                    self.bring_up(link);
                }
            }
            Event::Redial { link } => {
                if !self.links[link].up {
                    self.bring_up(link);
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
            Event::Publish { change } => self.publish(change),
            Event::Attack { attack } => self.attack(attack),
        }
        true
    }

    fn bring_up(&mut self, link: usize) {
        self.links[link].up = true;
        if self.link_usable(link) {
            self.connect(link);
        }
    }

    fn revokes_byzantine(&self, frame: &[u8]) -> bool {
        let Some(byzantine) = self.node_of(Kind::Byzantine) else { return false };
        match Body::decode(frame) {
            Ok(Body::Roster { roster }) => self.admin.revokes(&roster, &self.nodes[byzantine].signer.public()),
            _ => false,
        }
    }

    /// What one node stored that the other did not, change by change: the
    /// document, the change, whose actor made it and the node's kinds.
    fn difference(&self, a: usize, b: usize) -> String {
        let hashes = |n: usize| -> BTreeSet<(DocId, ChangeHash)> {
            self.nodes[n]
                .host
                .stored
                .changes
                .iter()
                .flat_map(|(d, cs)| cs.iter().map(move |c| (d.clone(), ChangeHash(c[..32].try_into().unwrap()))))
                .collect()
        };
        let (ha, hb) = (hashes(a), hashes(b));
        let author = |n: usize, doc: &DocId, hash: &ChangeHash| -> String {
            let Ok(mut loaded) = load(doc, &self.nodes[n].host.stored) else { return "?".into() };
            let Some((actor, seq, _)) = loaded.change_meta(hash) else { return "?".into() };
            let bytes = actor.to_bytes();
            let owner = self.nodes.iter().find(|m| bytes.get(..16) == Some(&m.signer.public().actor_prefix()[..]));
            let held = self.nodes[a.max(b) ^ a ^ b ^ n]
                .host
                .stored
                .held
                .get(doc)
                .is_some_and(|h| h.iter().any(|x| x.change.hash() == *hash));
            format!(
                "{}:{:?} seq {seq}{}",
                owner.map_or("?".to_string(), |m| m.post.clone()),
                owner.map(|m| m.kind),
                if held { " (held by the other)" } else { "" }
            )
        };
        let mut out = Vec::new();
        for (doc, hash) in ha.difference(&hb).take(4) {
            out.push(format!("only {} has {doc} {hash} by {}", self.nodes[a].post, author(a, doc, hash)));
        }
        for (doc, hash) in hb.difference(&ha).take(4) {
            out.push(format!("only {} has {doc} {hash} by {}", self.nodes[b].post, author(b, doc, hash)));
        }
        out.join("; ")
    }

    /// Whether node `n` may hold `doc`, by the roster its engine holds.
    fn may_hold(&self, n: usize, doc: &DocId) -> bool {
        let node = &self.nodes[n];
        node.engine.as_ref().is_some_and(|e| e.may_receive(&node.signer.public(), doc))
    }

    /// The honest nodes that must end up holding the same state of `doc`
    /// as `from`: those reached from it over links between honest nodes
    /// that may all hold the document (need-to-know: nothing else carries
    /// it).
    fn audience_reached(&self, doc: &DocId, from: usize) -> BTreeSet<usize> {
        let allowed = |n: usize| self.nodes[n].kind != Kind::Byzantine && self.may_hold(n, doc);
        let mut reached = BTreeSet::from([from]);
        let mut frontier = vec![from];
        while let Some(n) = frontier.pop() {
            for link in &self.links {
                let next = if link.a == n {
                    link.b
                } else if link.b == n {
                    link.a
                } else {
                    continue;
                };
                if allowed(next) && reached.insert(next) {
                    frontier.push(next);
                }
            }
        }
        reached
    }

    /// Every honest node holds what it may and nothing else: the same
    /// heads and records of each document as every honest node its links
    /// can carry that document to, read back from what it stored; every
    /// acknowledged write; and none of the changes every node must refuse.
    fn converged(&mut self) -> Result<(), String> {
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].kind != Kind::Byzantine).collect();
        let held: Vec<BTreeMap<DocId, [u8; 32]>> = (0..self.nodes.len())
            .map(|i| {
                self.nodes[i]
                    .engine
                    .as_ref()
                    .map(|e| e.inventory().iter().map(|(d, state)| (d.clone(), *state)).collect())
                    .unwrap_or_default()
            })
            .collect();
        // Cheap first: the engines' inventories (document, heads) agree
        // within each document's audience, and nobody holds more.
        for &i in &honest {
            for (doc, state) in &held[i] {
                if !self.may_hold(i, doc) {
                    return Err(format!("{} holds {doc}, which it may not", self.nodes[i].key));
                }
                for other in self.audience_reached(doc, i) {
                    if held[other].get(doc) != Some(state) {
                        return Err(format!(
                            "{} holds another state of {doc} than {}: {}",
                            self.nodes[other].key,
                            self.nodes[i].key,
                            self.difference(i, other)
                        ));
                    }
                }
            }
        }
        let mut reference: BTreeMap<DocId, (Vec<automerge::ChangeHash>, String)> = BTreeMap::new();
        let mut entries = BTreeSet::new();
        let mut incidents = BTreeSet::new();
        for node in honest.iter().map(|i| &self.nodes[*i]) {
            if let Some((bad, attack)) = self.bad.iter().find(|(h, _)| node.host.stored.holds_change(h)) {
                return Err(format!("{} holds the byzantine change {bad} ({attack:?})", node.key));
            }
            for doc in node.host.stored.changes.keys() {
                let mut loaded = load(doc, &node.host.stored).map_err(|e| format!("{}: {doc}: {e}", node.key))?;
                let mut heads = loaded.heads();
                heads.sort_unstable();
                let records = if doc.as_str().starts_with("watchlist/") {
                    let list = read_entries(&loaded).map_err(|e| e.to_string())?;
                    entries.extend(list.iter().map(|e| e.id));
                    serde_json::to_string(&list).map_err(|e| e.to_string())?
                } else {
                    let list = read_incidents(&loaded).map_err(|e| e.to_string())?;
                    incidents.extend(list.iter().map(|i| i.id));
                    serde_json::to_string(&list).map_err(|e| e.to_string())?
                };
                match reference.get(doc) {
                    None => {
                        reference.insert(doc.clone(), (heads, records));
                    }
                    Some((h, r)) if *h == heads && *r != records => {
                        return Err(format!("{} reads other records from {doc} with the same heads", node.key));
                    }
                    Some(_) => {}
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

enum Op {
    AddEntry(Box<outpost_model::watchlist::EntryDraft>),
    Close(EntryId),
    Incident(Box<outpost_model::incident::IncidentDraft>),
}

/// Runs one honest seed.
pub fn run(seed: u64) -> Result<SimReport, String> {
    run_mode(seed, Mode::Honest)
}

/// Runs one seed: faults for a simulated half hour, then a healed network
/// until convergence. An error names what diverged.
pub fn run_mode(seed: u64, mode: Mode) -> Result<SimReport, String> {
    let mut fleet = Fleet::new(seed, mode);
    for link in &mut fleet.links {
        link.up = true;
    }
    for node in 0..fleet.nodes.len() {
        fleet.start(node);
    }
    let edits = fleet.rng.random_range(8..40);
    for _ in 0..edits {
        let at = fleet.rng.random_range(0..FAULT_MS);
        let node = fleet.rng.random_range(0..fleet.nodes.len());
        fleet.schedule(at, Event::Edit { node });
    }
    for _ in 0..fleet.rng.random_range(0..8) {
        let at = fleet.rng.random_range(0..FAULT_MS);
        let link = fleet.rng.random_range(0..fleet.links.len());
        fleet.schedule(at, Event::ToggleLink { link });
    }
    for _ in 0..fleet.rng.random_range(0..3) {
        let at = fleet.rng.random_range(0..FAULT_MS);
        let node = fleet.rng.random_range(0..fleet.nodes.len());
        fleet.schedule(at, Event::Crash { node });
        let down_ms = fleet.rng.random_range(1_000..300_000);
        fleet.schedule(at + down_ms, Event::Restart { node });
    }
    if mode == Mode::Byzantine {
        schedule_byzantine(&mut fleet);
    }
    while fleet.queue.peek().is_some_and(|Reverse((at, _, _))| *at < FAULT_MS) {
        fleet.step();
    }
    // Heal: no more faults, every node up, every link up. Frames already
    // on their way still arrive.
    fleet.faults = false;
    fleet.now = FAULT_MS;
    for node in 0..fleet.nodes.len() {
        if !fleet.alive(node) {
            fleet.start(node);
        }
    }
    for link in 0..fleet.links.len() {
        if !fleet.links[link].up {
            fleet.bring_up(link);
        }
    }
    let deadline = FAULT_MS + SETTLE_MS;
    let mut last_check = Err("never checked".to_string());
    while fleet.now <= deadline {
        let quiet = !fleet.queue.iter().any(|Reverse((_, _, e))| matches!(e, Event::Deliver { .. }));
        if quiet {
            last_check = fleet.converged();
            if last_check.is_ok() {
                fleet.report.converged_after_ms = fleet.now - FAULT_MS;
                return Ok(fleet.report);
            }
        }
        if !fleet.step() {
            break;
        }
    }
    Err(format!(
        "seed {seed} ({mode:?}): no convergence {} min after healing: {} ({:?})",
        SETTLE_MS / 60_000,
        last_check.err().unwrap_or_default(),
        fleet.report
    ))
}

/// The byzantine node's attacks, and the administrator's roster changes:
/// the late node enrolled, the byzantine node perhaps revoked (before or
/// after the enrolment), and stale rosters handed out.
fn schedule_byzantine(fleet: &mut Fleet) {
    for _ in 0..fleet.rng.random_range(3..15) {
        let at = fleet.rng.random_range(0..FAULT_MS);
        let attack = ATTACKS[fleet.rng.random_range(0..ATTACKS.len())];
        fleet.schedule(at, Event::Attack { attack });
    }
    if fleet.node_of(Kind::Late).is_some() {
        let at = fleet.rng.random_range(0..FAULT_MS * 3 / 4);
        fleet.schedule(at, Event::Publish { change: RosterChange::EnrolLate });
    }
    if fleet.rng.random_bool(0.7) {
        let at = fleet.rng.random_range(FAULT_MS / 5..FAULT_MS);
        fleet.schedule(at, Event::Publish { change: RosterChange::RevokeByzantine });
    }
    for _ in 0..fleet.rng.random_range(0..3) {
        let at = fleet.rng.random_range(FAULT_MS / 3..FAULT_MS);
        fleet.schedule(at, Event::Publish { change: RosterChange::Stale });
    }
}

/// `OUTPOST_SIM_TRACE=1` prints the fleet, every delivered frame and every
/// problem to stderr, to replay a failing seed by eye.
fn tracing_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("OUTPOST_SIM_TRACE").is_some())
}
