//! A rogue fleet member for tests: it holds a member's key and the fleet
//! key and speaks the real protocol (the daemon's own transport stack, the
//! real engine), but it can write what it likes into its documents, attach
//! any proof, and send hand-made frames.
//!
//! It runs on its own tokio runtime; the test drives it with closures that
//! act on its engine and documents, and reads what it saw.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use outpost_daemon::net::{PROTOCOL, build_swarm};
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
        let psk = outpost_daemon::net::read_psk(psk).expect("the fleet key");
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
    let Ok(mut swarm) = build_swarm(key, psk, false) else { return };
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
    loop {
        tokio::select! {
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
        }
    }
}

/// A proof that does not verify.
pub fn forged_proof() -> StoredProof {
    StoredProof { attester: None, signature: outpost_model::trust::Signature::from_bytes([0x5a; 64]) }
}

/// The document ids the rogue holds.
pub fn held(mind: &Mind) -> Vec<DocId> {
    mind.host.docs.keys().cloned().collect()
}
