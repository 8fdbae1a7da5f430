//! The deterministic fleet simulator: N nodes running the daemon's real
//! writer (which hosts the real replication engine, admits every change
//! and stores it through its one commit-and-index path) over simulated
//! disks, simulated links and simulated time.
//!
//! One seed decides everything: how many nodes and how they are linked,
//! who edits what and when, which links fail, which frames are dropped,
//! duplicated or delayed (a frame may overtake frames of another lane,
//! never of its own: the transport keeps each lane in order, as TCP and
//! the daemon's lane queues do), which nodes crash (losing everything not
//! yet stored) and restart from what they stored, and which disks fail for
//! a while (an IO error at every N-th write or at the N-th, failed
//! fsyncs, a full disk; the writer reopens the database by itself, as in
//! the daemon). After the faults stop and every link is up again, every
//! honest node must hold the same heads and the same records for every
//! document, read back from what it stored, with the rows officers read
//! agreeing with them; every write that was acknowledged must be there;
//! and no officer may have been refused for anything but a disk fault or a
//! rule.
//!
//! In [`Mode::Byzantine`] one more node is a member gone bad: it runs the
//! real engine over a host of the simulator's own ([`host`]), and also
//! writes what no honest node may take
//! ([`byzantine`]), and it never installs the roster that revokes it, so it
//! goes on writing after its revocation. A node may start outside the
//! roster and be enrolled later; the administrator enrols it, revokes the
//! byzantine node and hands out stale rosters at nodes and times the seed
//! picks, so rosters arrive late and out of order ([`admin`]). The honest
//! nodes must converge as before, and none may hold a change the byzantine
//! node made that every node must refuse.
//!
//! One job per file: this one holds the fleet, its event loop and the run;
//! [`network`] the links and the frames on them; [`workload`] what happens
//! to the fleet; [`checks`] what must hold at the end; [`writer_node`] an
//! honest node on the real writer.

mod admin;
mod byzantine;
mod checks;
mod host;
mod network;
mod workload;
mod writer_node;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::sync::Arc;

use automerge::{ActorId, ChangeHash};
use outpost_daemon::net::NetCommand;
use outpost_daemon::store::SimulatedDisk;
use outpost_daemon::writer::{ReplicationInput, WriteOp, Written};
use outpost_model::api::ErrorKind;
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
use self::workload::{schedule_byzantine, schedule_disk_faults};
use self::writer_node::{Identity, SimClock, WriterNode};
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
/// A node whose disk refused to open the database is started again after
/// this long, as systemd restarts the daemon.
const RESTART_AFTER_MS: i64 = 20_000;

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
    /// Spells of a failing disk, the faults the disks injected during them,
    /// and officers' writes refused (told the storage is unavailable;
    /// nothing acknowledged).
    pub disk_faults: usize,
    pub faults_injected: u64,
    pub refused_by_disk: usize,
    /// Simulated milliseconds from the end of the faults to convergence.
    pub converged_after_ms: i64,
    /// Attacks the byzantine node made, and the changes they produced.
    pub attacks: usize,
    pub bad_changes: usize,
    /// Roster versions handed to nodes by the administrator.
    pub rosters_published: usize,
    /// Connections an honest node closed to the byzantine one.
    pub byzantine_cut_offs: usize,
    /// Changes honest nodes still hold in quarantine at convergence.
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

/// How a node runs.
// A few nodes per fleet, held for the whole run: their size costs nothing.
#[allow(clippy::large_enum_variant)]
enum Runtime {
    /// An honest node: the daemon's writer over its disk; `None` while
    /// down.
    Writer { disk: Arc<SimulatedDisk>, running: Option<WriterNode> },
    /// The byzantine node: the model's engine over the simulator's host.
    Model { engine: Option<Engine>, host: SimHost },
}

struct Node {
    kind: Kind,
    key: PeerKey,
    signer: Signer,
    authority: String,
    post: String,
    runtime: Runtime,
    starts: u32,
    timer_at: Option<i64>,
    /// While its disk fails.
    disk_failing: bool,
}

impl Node {
    fn writer(&mut self) -> Option<&mut WriterNode> {
        match &mut self.runtime {
            Runtime::Writer { running, .. } => running.as_mut(),
            Runtime::Model { .. } => None,
        }
    }

    fn engine(&self) -> Option<&Engine> {
        match &self.runtime {
            Runtime::Writer { running, .. } => running.as_ref().map(WriterNode::engine),
            Runtime::Model { engine, .. } => engine.as_ref(),
        }
    }
}

struct Link {
    a: usize,
    b: usize,
    up: bool,
    /// Bumped at every disconnect: frames of an older connection are lost.
    epoch: u64,
}

/// A write an officer was told is stored.
#[derive(Debug, Clone, Copy)]
enum Acked {
    Entry(EntryId),
    Incident(IncidentId),
}

/// How a disk fails for a while.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy)]
enum DiskFault {
    /// An IO error at every N-th write.
    FailEvery(u64),
    /// An IO error at the N-th write from now.
    FailWriteIn(u64),
    /// Every fsync fails.
    FailSync,
    /// The disk is full.
    Full,
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
    DiskFails {
        node: usize,
        fault: DiskFault,
    },
    DiskHeals {
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
    /// The roster every node but the late one holds from the start.
    first_roster: Vec<u8>,
    sample: Generator,
    clock: Arc<SimClock>,
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
    /// Which node acknowledged each write: it must be on that node's own
    /// disk, whatever crashed.
    acked_at: Vec<(usize, Acked)>,
    /// Changes the byzantine node made that every honest node must refuse.
    bad: BTreeMap<ChangeHash, Attack>,
    /// What must never happen and did: an officer's write refused for
    /// what no rule or disk fault explains, an acknowledged write missing
    /// from its node's disk after a restart.
    unexplained: Vec<String>,
    report: SimReport,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(EPOCH_MS + ms)
}

fn new_node(rng: &mut StdRng, kind: Kind, authority: &str, post: String) -> Node {
    let mut secret = [0u8; 32];
    rng.fill(&mut secret[..]);
    let signer = Signer::from_secret(secret);
    let runtime = match kind {
        Kind::Byzantine => Runtime::Model {
            engine: None,
            host: SimHost { actor: ActorId::from(vec![0u8; 20]), docs: BTreeMap::new(), stored: Stored::default() },
        },
        Kind::Honest | Kind::Late => Runtime::Writer { disk: SimulatedDisk::new(), running: None },
    };
    Node {
        kind,
        key: PeerKey(signer.public().peer_id()),
        signer,
        authority: authority.into(),
        post,
        runtime,
        starts: 0,
        timer_at: None,
        disk_failing: false,
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
        let first_roster = admin.current();
        for node in &mut nodes {
            if let Runtime::Model { host, .. } = &mut node.runtime {
                host.stored.roster = Some(first_roster.clone());
            }
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
            clock: SimClock::new(seed),
            rng,
            admin,
            first_roster,
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
            acked_at: Vec::new(),
            bad: BTreeMap::new(),
            unexplained: Vec::new(),
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
        let clock = self.clock.clone();
        let n = &mut self.nodes[node];
        n.starts += 1;
        n.timer_at = None;
        match &mut n.runtime {
            Runtime::Model { engine, host } => {
                let mut actor = n.signer.public().actor_prefix().to_vec();
                actor.extend_from_slice(&n.starts.to_be_bytes());
                host.actor = ActorId::from(actor);
                host.docs.clear();
                let mut config = EngineConfig::new(n.signer.public(), &n.post, Trust::Fleet { anchor });
                config.limits = limits;
                let mut started = Engine::new(config);
                if let Some(roster) = &host.stored.roster
                    && let Err(err) = started.set_roster(roster)
                {
                    panic!("{}: its stored roster does not verify: {err}", n.post);
                }
                let held: Vec<DocId> = host.stored.changes.keys().cloned().collect();
                for doc in held {
                    if let Ok(mut loaded) = load(&doc, &host.stored) {
                        started.set_held(&doc, &loaded.heads());
                    }
                }
                *engine = Some(started);
            }
            Runtime::Writer { disk, running } => {
                let who = Identity {
                    signer: &n.signer,
                    post: &n.post,
                    authority: &n.authority,
                    start: n.starts,
                    anchor,
                    limits,
                };
                disk.power_on();
                match WriterNode::start(disk, &who, clock) {
                    Ok(writer) => *running = Some(writer),
                    Err(err) => {
                        // The disk fails; systemd starts the daemon again.
                        assert!(n.disk_failing, "{} cannot start on a healthy disk: {err}", n.post);
                        self.schedule(self.now + RESTART_AFTER_MS, Event::Restart { node });
                        return;
                    }
                }
                // What it acknowledged before it crashed is on its disk,
                // before any peer could bring it back.
                let lost = self.acked_at.iter().filter(|(at, _)| *at == node).find(|(_, acked)| {
                    let Some(writer) = self.nodes[node].writer() else { return true };
                    match acked {
                        Acked::Entry(id) => !matches!(writer.entry_row(id), Ok(Some(_))),
                        Acked::Incident(id) => !matches!(writer.incident_row(id), Ok(Some(_))),
                    }
                });
                if let Some((_, acked)) = lost {
                    let post = &self.nodes[node].post;
                    self.unexplained.push(format!("{post} restarted without {acked:?}, which it acknowledged"));
                }
                let n = &self.nodes[node];
                if n.starts == 1 && n.kind == Kind::Honest {
                    // Installed before any peer is connected, as an
                    // administrator does at enrolment.
                    let roster = self.first_roster.clone();
                    match self.writer_job(node, WriteOp::PublishRoster(roster)) {
                        Some(Ok(_)) => {}
                        other => panic!("{} refused its first roster: {other:?}", self.nodes[node].post),
                    }
                }
            }
        }
        let up: Vec<usize> = (0..self.links.len())
            .filter(|l| self.link_usable(*l) && (self.links[*l].a == node || self.links[*l].b == node))
            .collect();
        for link in up {
            self.connect(link);
        }
    }

    /// Hands `node`'s writer a job and carries out what it asks of the
    /// network; `None` if the node is down or not a writer.
    fn writer_job(&mut self, node: usize, op: WriteOp) -> Option<Result<Written, outpost_model::api::ApiError>> {
        let (answer, commands) = self.nodes[node].writer()?.handle(op);
        for command in commands {
            match command {
                NetCommand::Send { peer, lane, frame } => self.send(node, peer, lane, frame),
                NetCommand::Disconnect { peer } => self.close(node, &peer, "the writer closed the connection"),
                NetCommand::Timer { at } => self.set_timer(node, at),
                // Only the daemon's watchdog probes the network loop.
                NetCommand::Probe(reply) => drop(reply),
            }
        }
        Some(answer)
    }

    fn set_timer(&mut self, node: usize, at: Timestamp) {
        let at = at.as_millis() - EPOCH_MS;
        if self.nodes[node].timer_at != Some(at) {
            self.nodes[node].timer_at = Some(at);
            self.schedule(at.max(self.now), Event::Timer { node, at });
        }
    }

    fn alive(&self, node: usize) -> bool {
        match &self.nodes[node].runtime {
            Runtime::Writer { running, .. } => running.is_some(),
            Runtime::Model { engine, .. } => engine.is_some(),
        }
    }

    /// Hands `node` a replication input, whichever way it runs.
    fn input(&mut self, node: usize, input: ReplicationInput) {
        let now = ts(self.now);
        let n = &mut self.nodes[node];
        let effects = match &mut n.runtime {
            Runtime::Writer { .. } => {
                self.writer_job(node, WriteOp::Replication(input));
                return;
            }
            Runtime::Model { engine: Some(engine), host } => match input {
                ReplicationInput::Connected(peer) => engine.handle_connected(now, &peer),
                ReplicationInput::Disconnected(peer) => engine.handle_disconnected(now, &peer),
                ReplicationInput::Frame(peer, frame) => engine.handle_frame(now, &peer, &frame, host),
                ReplicationInput::Timer => engine.handle_timer(now, host),
                ReplicationInput::SyncNow(peer) => engine.handle_sync_now(now, peer.as_ref()),
            },
            Runtime::Model { engine: None, .. } => return,
        };
        self.apply(node, effects);
    }

    /// Carries out the byzantine node's engine's effects on its host.
    fn apply(&mut self, node: usize, effects: Vec<Effect>) {
        // Documents that changed while changes of theirs wait in
        // quarantine: the change a cut names may have arrived.
        let mut requeue = BTreeSet::new();
        for effect in effects {
            let Runtime::Model { engine, host } = &mut self.nodes[node].runtime else { return };
            match effect {
                Effect::Send { peer, frame, lane } => self.send(node, peer, lane, frame),
                Effect::StoreChanges { doc, since, proofs } => {
                    host.store(&doc, &since, proofs);
                    if host.stored.held.contains_key(&doc) {
                        requeue.insert(doc);
                    }
                }
                Effect::RosterInstalled { roster, revoked, .. } => {
                    host.stored.roster = Some(roster);
                    let members: Vec<Member> =
                        revoked.iter().filter_map(|key| engine.as_ref()?.fleet()?.member(key).cloned()).collect();
                    let signer = self.nodes[node].signer.clone();
                    let Runtime::Model { host, .. } = &mut self.nodes[node].runtime else { return };
                    host.attest(&members, &signer);
                    // A newer roster may let in what waited.
                    requeue.extend(host.stored.held.keys().cloned());
                }
                Effect::Hold { doc, held, .. } => host.stored.held.entry(doc).or_default().extend(held),
                Effect::Attested { .. } | Effect::Problem { .. } => {}
                Effect::PersistSyncState { peer, doc, state } => {
                    host.stored.sync_states.insert((peer, doc), state);
                }
                Effect::Disconnect { peer, reason } => self.close(node, &peer, &reason),
                Effect::SetTimer { at } => self.set_timer(node, at),
            }
        }
        for doc in requeue {
            let now = ts(self.now);
            let Runtime::Model { engine: Some(engine), host } = &mut self.nodes[node].runtime else { return };
            let Some(held) = host.stored.held.remove(&doc) else { continue };
            let effects = engine.handle_held(now, &doc, held, host);
            self.apply(node, effects);
        }
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((at, _, event))) = self.queue.pop() else { return false };
        self.now = at;
        self.clock.set(at);
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
                if tracing_on() {
                    let text = format!("{:?}", Body::decode(&frame));
                    eprintln!("{at} {key}->{} {}", self.nodes[to].key, text.chars().take(160).collect::<String>());
                }
                self.input(to, ReplicationInput::Frame(key, frame));
            }
            Event::Timer { node, at } => {
                if self.nodes[node].timer_at == Some(at) {
                    self.nodes[node].timer_at = None;
                    self.input(node, ReplicationInput::Timer);
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
                    n.timer_at = None;
                    match &mut n.runtime {
                        // Nothing more reaches the disk, not even the
                        // database's clean shutdown as it is dropped.
                        Runtime::Writer { running, disk } => {
                            disk.crash();
                            *running = None;
                        }
                        Runtime::Model { engine, host } => {
                            *engine = None;
                            host.docs.clear();
                        }
                    }
                }
            }
            Event::Restart { node } => {
                if !self.alive(node) {
                    self.start(node);
                }
            }
            Event::DiskFails { node, fault } => self.disk_fails(node, fault),
            Event::DiskHeals { node } => self.disk_heals(node),
            Event::Publish { change } => self.publish(change),
            Event::Attack { attack } => self.attack(attack),
        }
        true
    }

    fn revokes_byzantine(&self, frame: &[u8]) -> bool {
        let Some(byzantine) = self.node_of(Kind::Byzantine) else { return false };
        match Body::decode(frame) {
            Ok(Body::Roster { roster }) => self.admin.revokes(&roster, &self.nodes[byzantine].signer.public()),
            _ => false,
        }
    }
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
    schedule_disk_faults(&mut fleet);
    if mode == Mode::Byzantine {
        schedule_byzantine(&mut fleet);
    }
    while fleet.queue.peek().is_some_and(|Reverse((at, _, _))| *at < FAULT_MS) {
        fleet.step();
    }
    // Heal: no more faults, every disk sound, every node up, every link
    // up. Frames already on their way still arrive.
    fleet.faults = false;
    fleet.now = FAULT_MS;
    fleet.clock.set(FAULT_MS);
    for node in 0..fleet.nodes.len() {
        fleet.disk_heals(node);
    }
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

/// `OUTPOST_SIM_TRACE=1` prints the fleet, every delivered frame and every
/// disk fault to stderr, to replay a failing seed by eye.
fn tracing_on() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("OUTPOST_SIM_TRACE").is_some())
}
