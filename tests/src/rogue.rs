//! A rogue fleet member for tests: it holds a member's key and the fleet
//! key and speaks the real protocol (the daemon's own transport stack, the
//! real engine), but it can write what it likes into its documents, attach
//! any proof, and send hand-made frames.
//!
//! It runs on its own tokio runtime; the test drives it with closures that
//! act on its engine and documents, and reads what it saw.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use outpost_daemon::net::{FleetKeys, PROTOCOL, build_swarm};
use outpost_model::DocId;
use outpost_model::date::Timestamp;
use outpost_model::replication::engine::{Effect, Engine, EngineConfig, PeerKey, Trust};
use outpost_model::replication::pair::MemoryHost;
use outpost_model::trust::proof::StoredProof;
use outpost_model::trust::{PublicKey, Signer};
use tokio::sync::mpsc;

/// What the rogue's engine and documents are, for a test's closure.
pub struct Mind {
    pub engine: Engine,
    pub host: MemoryHost,
    pub signer: Signer,
}

impl std::fmt::Debug for Mind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mind")
    }
}

type Act = Box<dyn FnOnce(&mut Mind, Timestamp) -> Vec<Effect> + Send>;

enum Command {
    /// Run a closure on the engine and documents; carry out its effects.
    Act(Act),
    /// Send these bytes as one frame to the connected peer.
    Raw(Vec<u8>),
    /// Open this many more sync streams to the peer, and keep them open.
    ExtraStreams(usize),
    /// Send these frames over and over, as fast as the peer reads them.
    Flood(Flood),
}

/// A flood of frames in progress: sent in a cycle while `running`, each
/// frame counted in `sent`.
#[derive(Debug, Clone)]
pub struct Flood {
    frames: Arc<Vec<Vec<u8>>>,
    running: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
}

impl Flood {
    pub fn stop(&self) {
        self.running.store(false, Ordering::Relaxed);
    }

    /// Frames sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// What the rogue has seen, for the test's assertions.
#[derive(Debug, Default)]
pub struct Seen {
    pub connected: bool,
    pub disconnects: Vec<String>,
    pub problems: Vec<String>,
    pub frames_in: usize,
}

#[derive(Debug)]
pub struct Rogue {
    runtime: tokio::runtime::Runtime,
    commands: mpsc::UnboundedSender<Command>,
    pub seen: Arc<Mutex<Seen>>,
    pub peer_id: String,
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

impl Rogue {
    /// The rogue with node key `secret`, named `name`, trusting the fleet
    /// admin `anchor`, holding `roster`, dialling `target`.
    pub fn start(
        secret: [u8; 32],
        name: &str,
        anchor: PublicKey,
        roster: Option<&[u8]>,
        psk: &std::path::Path,
        target: u16,
    ) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let signer = Signer::from_secret(secret);
        let key = libp2p::identity::Keypair::ed25519_from_bytes(secret).expect("an ed25519 key");
        let peer_id = key.public().to_peer_id().to_string();
        assert_eq!(peer_id, signer.public().peer_id(), "libp2p and the model agree on the peer id");
        let psk = outpost_daemon::keys::read_psk_file(psk).expect("the fleet key");
        let mut engine = Engine::new(EngineConfig::new(signer.public(), name, Trust::Fleet { anchor }));
        if let Some(roster) = roster {
            engine.set_roster(roster).expect("a roster that verifies");
        }
        let mut actor = signer.public().actor_prefix().to_vec();
        actor.extend_from_slice(&[6, 6, 6, 6]);
        let host = MemoryHost { actor: Some(automerge::ActorId::from(actor)), ..MemoryHost::default() };
        let mind = Mind { engine, host, signer };
        let (commands, rx) = mpsc::unbounded_channel();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{target}").parse().expect("an address");
        runtime.spawn(run(key, psk, addr, mind, rx, seen.clone()));
        Self { runtime, commands, seen, peer_id }
    }

    /// Runs `act` on the rogue's engine and documents, and carries out the
    /// effects it returns (frames go to the peer).
    pub fn act(&self, act: impl FnOnce(&mut Mind, Timestamp) -> Vec<Effect> + Send + 'static) {
        let _ = self.commands.send(Command::Act(Box::new(act)));
    }

    /// Sends a hand-made frame.
    pub fn raw(&self, frame: Vec<u8>) {
        let _ = self.commands.send(Command::Raw(frame));
    }

    /// Opens `n` more sync streams to the peer than the one it speaks on,
    /// sends an empty frame on each (so that the peer sees them) and holds
    /// them open.
    pub fn extra_streams(&self, n: usize) {
        let _ = self.commands.send(Command::ExtraStreams(n));
    }

    /// Sends `frames` in a cycle, as fast as the peer takes them, from a
    /// connection (and after each redial) until the flood is stopped.
    pub fn flood(&self, frames: Vec<Vec<u8>>) -> Flood {
        let flood = Flood {
            frames: Arc::new(frames),
            running: Arc::new(AtomicBool::new(true)),
            sent: Arc::new(AtomicU64::new(0)),
        };
        let _ = self.commands.send(Command::Flood(flood.clone()));
        flood
    }

    pub fn connected(&self) -> bool {
        self.seen.lock().map(|s| s.connected).unwrap_or(false)
    }

    pub fn stop(self) {
        self.runtime.shutdown_timeout(Duration::from_secs(2));
    }
}

/// Carries out effects the way the daemon's writer would, minus the
/// checks a rogue skips: changes "stored" in memory, frames queued.
fn carry(mind: &mut Mind, effects: Vec<Effect>, out: &mut Vec<Vec<u8>>, seen: &Mutex<Seen>) {
    for effect in effects {
        match effect {
            Effect::Send { frame, .. } => out.push(frame),
            Effect::StoreChanges { doc, since, proofs } => mind.host.store(&doc, &since, proofs),
            Effect::PersistSyncState { peer, doc, state } => {
                mind.host.states.insert((peer, doc), state);
            }
            Effect::RosterInstalled { roster, .. } => mind.host.roster = Some(roster),
            Effect::Hold { doc, held, .. } => mind.host.held.entry(doc).or_default().extend(held),
            Effect::Attested { member, changes } => *mind.host.attested.entry(member).or_default() += changes,
            Effect::Disconnect { reason, .. } => {
                if let Ok(mut s) = seen.lock() {
                    s.disconnects.push(reason);
                }
            }
            Effect::Problem { detail, .. } => {
                if let Ok(mut s) = seen.lock() {
                    s.problems.push(detail);
                }
            }
            Effect::SetTimer { .. } => {}
        }
    }
}

async fn write_frame(stream: &mut libp2p::Stream, frame: &[u8]) -> std::io::Result<()> {
    stream.write_all(&(frame.len() as u32).to_be_bytes()).await?;
    stream.write_all(frame).await?;
    stream.flush().await
}

async fn run(
    key: libp2p::identity::Keypair,
    psk: libp2p::pnet::PreSharedKey,
    addr: Multiaddr,
    mut mind: Mind,
    mut commands: mpsc::UnboundedReceiver<Command>,
    seen: Arc<Mutex<Seen>>,
) {
    let Ok(mut swarm) = build_swarm(key, FleetKeys::new(psk, None), false) else { return };
    let mut control = swarm.behaviour().stream.new_control();
    let Ok(mut incoming) = control.accept(PROTOCOL) else { return };
    let _ = swarm.dial(addr.clone());
    let mut peer: Option<PeerId> = None;
    let mut outgoing: Option<libp2p::Stream> = None;
    let (frames_tx, mut frames_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut redial =
        tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    let mut sessions: BTreeMap<PeerId, ()> = BTreeMap::new();
    let mut extra: Vec<libp2p::Stream> = Vec::new();
    let (kept_tx, mut kept_rx) = mpsc::unbounded_channel::<libp2p::Stream>();
    let mut flood: Option<(Flood, usize)> = None;
    loop {
        let flooding = flood.as_ref().is_some_and(|(f, _)| f.running.load(Ordering::Relaxed)) && outgoing.is_some();
        tokio::select! {
            // While flooding, the loop goes round without waiting, so that
            // the writes below go as fast as the peer reads.
            () = std::future::ready(()), if flooding => {}
            event = swarm.select_next_some() => match event {
                // A second connection to the same peer (the first redial can
                // race the first dial) must not restart the engine's session:
                // the peer greets once per peer, not per connection.
                SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } if num_established.get() == 1 => {
                    peer = Some(peer_id);
                    if let Ok(stream) = control.open_stream(peer_id, PROTOCOL).await {
                        outgoing = Some(stream);
                    }
                    if let Ok(mut s) = seen.lock() {
                        s.connected = true;
                    }
                    let effects = mind.engine.handle_connected(now(), &PeerKey(peer_id.to_string()));
                    carry(&mut mind, effects, &mut pending, &seen);
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    sessions.remove(&peer_id);
                    peer = None;
                    outgoing = None;
                    if let Ok(mut s) = seen.lock() {
                        s.connected = false;
                        s.disconnects.push("the peer closed the connection".into());
                    }
                    let _ = mind.engine.handle_disconnected(now(), &PeerKey(peer_id.to_string()));
                }
                _ => {}
            },
            Some((from, mut stream)) = incoming.next() => {
                sessions.insert(from, ());
                let tx = frames_tx.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 4];
                        if stream.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                        if stream.read_exact(&mut frame).await.is_err() || tx.send(frame).is_err() {
                            return;
                        }
                    }
                });
            }
            Some(stream) = kept_rx.recv() => extra.push(stream),
            Some(frame) = frames_rx.recv() => {
                if let Some(p) = peer {
                    if let Ok(mut s) = seen.lock() {
                        s.frames_in += 1;
                    }
                    let effects = mind.engine.handle_frame(now(), &PeerKey(p.to_string()), &frame, &mut mind.host);
                    carry(&mut mind, effects, &mut pending, &seen);
                }
            }
            Some(command) = commands.recv() => match command {
                Command::Act(act) => {
                    let effects = act(&mut mind, now());
                    carry(&mut mind, effects, &mut pending, &seen);
                }
                Command::Raw(frame) => pending.push(frame),
                Command::Flood(next) => flood = Some((next, 0)),
                Command::ExtraStreams(n) => {
                    // Opened from tasks of their own: a stream opens only
                    // while the swarm is polled, which is this loop.
                    if let Some(p) = peer {
                        for _ in 0..n {
                            let mut control = control.clone();
                            let keep = kept_tx.clone();
                            tokio::spawn(async move {
                                match control.open_stream(p, PROTOCOL).await {
                                    // The protocol is proposed with the first
                                    // bytes written (lazy negotiation): an
                                    // empty frame's length sends it.
                                    Ok(mut stream) => {
                                        let _ = write_frame(&mut stream, &[]).await;
                                        let _ = keep.send(stream);
                                    }
                                    Err(err) => eprintln!("rogue: cannot open a stream: {err}"),
                                }
                            });
                        }
                    }
                }
            },
            _ = redial.tick() => {
                if peer.is_none() {
                    let _ = swarm.dial(addr.clone());
                }
            }
        }
        if let Some(stream) = outgoing.as_mut() {
            for frame in pending.drain(..) {
                if write_frame(stream, &frame).await.is_err() {
                    break;
                }
            }
            if let Some((flood, next)) = flood.as_mut().filter(|(f, _)| f.running.load(Ordering::Relaxed)) {
                // A few frames a turn, so that what the peer sends is read.
                for _ in 0..8 {
                    let Some(frame) = flood.frames.get(*next % flood.frames.len().max(1)) else { break };
                    *next += 1;
                    if write_frame(stream, frame).await.is_err() {
                        outgoing = None;
                        break;
                    }
                    flood.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// A chain of `n` incidents in `post`'s incident log of this month, each
/// its own change, written by the member with key `secret` (its actor as
/// the rogue's): the log's id and the changes, oldest first.
pub fn incident_chain(secret: [u8; 32], post: &str, authority: &str, n: usize) -> (DocId, Vec<automerge::Change>) {
    use outpost_model::api::NewIncidentInput;
    use outpost_model::ids::IncidentId;
    use outpost_model::schema::{ChangeMeta, DocKind, Document};
    use outpost_model::validate::{PostContext, new_incident};
    let signer = Signer::from_secret(secret);
    let at = now();
    let context = PostContext { now: at, offset: time::UtcOffset::UTC, authority: authority.into(), post: post.into() };
    let kind = DocKind::Incidents { post: post.into(), month: outpost_model::audit::log::audit_month(at) };
    let Ok(mut doc) = Document::genesis(kind.clone()) else { return (kind.doc_id(), Vec::new()) };
    let mut actor = signer.public().actor_prefix().to_vec();
    actor.extend_from_slice(&[6, 6, 6, 6]);
    doc.set_actor(automerge::ActorId::from(actor));
    let genesis = doc.heads();
    for k in 0..n {
        let id =
            IncidentId::owned_by(post, uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000 | k as u128));
        let input = NewIncidentInput {
            incident_type: "seizure".into(),
            narrative: format!("incident {k}"),
            ..Default::default()
        };
        let Ok(draft) = new_incident(&input, id, &context) else { continue };
        let meta = ChangeMeta { at, by: format!("1000@{post}"), op: "incident.log" };
        let _ = doc.transact(&meta, |r| r.add_incident(&draft));
    }
    let changes = doc.changes_since(&genesis);
    (kind.doc_id(), changes)
}

/// The frames that carry `changes` of `doc` to a peer as one `Changes`
/// bundle on alias `slot`, each change signed by `signer`: the `Open`,
/// then the bundle's parts.
pub fn bundle_frames(slot: u32, doc: &DocId, changes: &[automerge::Change], signer: &Signer) -> Vec<Vec<u8>> {
    use outpost_model::replication::bundle::BundlePayload;
    use outpost_model::replication::frame::{Body, BundleKind};
    use outpost_model::trust::proof::{sign_change, wire_proofs};
    let proofs = wire_proofs(changes, |h| vec![sign_change(signer, doc, h)]);
    let chunks = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
    let Ok(parts) = BundlePayload::new(&[], chunks, proofs).into_parts() else { return Vec::new() };
    let of = parts.len() as u16;
    let open = Body::Open { slot, doc: doc.to_string(), priority: 2 };
    std::iter::once(open)
        .chain(parts.into_iter().enumerate().map(|(part, data)| Body::Bundle {
            slot,
            kind: BundleKind::Changes,
            part: part as u16,
            of,
            data,
        }))
        .filter_map(|body| body.encode().ok())
        .collect()
}

/// A proof that does not verify.
pub fn forged_proof() -> StoredProof {
    StoredProof { attester: None, signature: outpost_model::trust::Signature::from_bytes([0x5a; 64]) }
}

/// The document ids the rogue holds.
pub fn held(mind: &Mind) -> Vec<DocId> {
    mind.host.docs.keys().cloned().collect()
}

/// Appends `n` as unsigned LEB128, as Automerge's chunk headers are
/// written, for hand-made chunks.
pub fn uleb(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n == 0 { byte } else { byte | 0x80 });
        if n == 0 {
            return;
        }
    }
}
