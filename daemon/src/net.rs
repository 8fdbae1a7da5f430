//! The network: libp2p over TCP with the fleet's pre-shared key (pnet),
//! then noise, then yamux; mDNS on the post's LAN; static peers redialled
//! with backoff and jitter. It moves frames between peers and the writer
//! thread, which runs the replication engine, and holds no replication
//! logic of its own.
//!
//! Per connected peer there are two streams of `/outpost/sync/1`: each side
//! opens one to send on and accepts the other's to read from. Frames are a
//! `u32` big-endian length and the frame. Outgoing frames wait in one queue
//! per lane, and a lane is drained only when the lanes before it are empty,
//! so watchlist frames overtake incident frames on a slow link.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::core::transport::upgrade::Version;
use libp2p::core::{ConnectedPoint, Transport};
use libp2p::identity::Keypair;
use libp2p::pnet::PnetConfig;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, mdns, noise, tcp, yamux};
use outpost_model::date::Timestamp;
use outpost_model::replication::engine::{Lane, PeerKey};
use outpost_model::replication::frame::MAX_FRAME_BYTES;
use thiserror::Error;
use tokio::sync::mpsc;

use crate::link_log::{self, LinkEvent, LinkLog};
pub use fleet_keys::{FleetKeys, tcp_port};

mod fleet_keys;
use crate::writer::{ReplicationInput, WriteOp, WriterHandle};

pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/outpost/sync/1");

/// TCP, the key exchange, noise and yamux take about six round trips: 3.6 s
/// at 600 ms, and a lossy link retransmits. A minute rides that out and
/// still gives up on a black hole.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Our two streams keep a connection in use, so this only closes
/// connections that never got their streams.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Each side's engine exchanges digests at least every 10 minutes; a peer
/// silent for 25 is gone, even if TCP has not noticed.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(25 * 60);
/// Bytes waiting to be written to one peer before it counts as one that
/// does not read: its connection is closed rather than let the queue grow.
pub const MAX_QUEUED_BYTES_PER_PEER: usize = 32 << 20;
/// Connections one peer may hold at once: two, for when both sides dial.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 2;
/// Sync streams one peer may open to us at once: one per connection.
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 2;
/// Redial backoff for static peers: from 2 s, doubling, to 5 minutes, with
/// up to a quarter of jitter so that a centre's peers do not redial in step.
const REDIAL_FIRST: Duration = Duration::from_secs(2);
const REDIAL_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Error)]
pub enum NetError {
    #[error("network: {0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {detail}")]
    Listen { addr: Multiaddr, detail: String },
}

/// What the writer asks of the network.
#[derive(Debug)]
pub enum NetCommand {
    Send {
        peer: PeerKey,
        lane: Lane,
        frame: Vec<u8>,
    },
    Disconnect {
        peer: PeerKey,
    },
    /// Deliver a timer input to the engine at `at`; replaces the last one.
    Timer {
        at: Timestamp,
    },
    /// The watchdog's probe: answered by the network loop itself, so an
    /// answer says the loop turns.
    Probe(tokio::sync::oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct NetSettings {
    pub listen: Vec<Multiaddr>,
    pub peers: Vec<Multiaddr>,
    pub keys: FleetKeys,
    /// Where connections speak the next fleet key, during a rotation.
    pub listen_next: Vec<Multiaddr>,
    pub mdns: bool,
}

/// Addresses remembered per peer, for `outpost peers`.
pub const MAX_ADDRESSES_PER_PEER: usize = 8;

/// A peer as the network has seen it, for `outpost peers`.
#[derive(Debug, Clone, Default)]
pub struct PeerStats {
    pub addresses: Vec<String>,
    pub connected: bool,
    /// Wall-clock time of the last frame or connection event.
    pub last_seen: Option<Timestamp>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// `bytes_sent` by lane, in the order of [`LANES`].
    pub sent_by_lane: [u64; 4],
}

/// The lanes' names, in the order they are drained.
pub const LANES: [&str; 4] = ["control", "watchlist", "incidents", "audit"];

fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Control => 0,
        Lane::Watchlist => 1,
        Lane::Incidents => 2,
        Lane::Audit => 3,
    }
}

/// What `outpost status` and `outpost peers` read while the network runs.
#[derive(Debug, Default)]
pub struct NetState {
    pub peer_id: String,
    pub listen_addrs: Vec<String>,
    pub psk_fingerprint: String,
    /// The next fleet key's, during a rotation.
    pub psk_next_fingerprint: Option<String>,
    pub peers: HashMap<String, PeerStats>,
}

impl NetState {
    /// Peers with an open connection now.
    pub fn connected_count(&self) -> usize {
        self.peers.values().filter(|p| p.connected).count()
    }
}

pub type SharedNetState = Arc<Mutex<NetState>>;

fn lock(state: &SharedNetState) -> std::sync::MutexGuard<'_, NetState> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The swarm's behaviour: the sync streams, and mDNS when enabled.
#[derive(NetworkBehaviour)]
#[allow(missing_debug_implementations)]
pub struct Behaviour {
    /// Bounds connections across peer ids: anyone who can reach the port
    /// can start a key exchange, and a fleet-key holder can mint peer ids.
    pub limits: libp2p::connection_limits::Behaviour,
    pub stream: libp2p_stream::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Incoming connections still in their key exchange or handshake at once.
pub const MAX_PENDING_INCOMING: u32 = 64;
/// Established connections at once, in all: a 50-post fleet's centre with
/// every post connected twice, and room to spare.
pub const MAX_ESTABLISHED: u32 = 256;

/// The transport every node speaks: TCP, the fleet key (pnet), noise,
/// yamux. Public so that test peers speak exactly the daemon's stack.
pub fn build_swarm(key: Keypair, keys: FleetKeys, use_mdns: bool) -> Result<Swarm<Behaviour>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .and_then(move |socket, point| PnetConfig::new(keys.for_connection(&point)).handshake(socket))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .timeout(SETUP_TIMEOUT),
            )
        })
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| {
            let mdns = if use_mdns {
                Some(mdns::tokio::Behaviour::new(mdns::Config::default(), key.public().to_peer_id())?)
            } else {
                None
            };
            let limits = libp2p::connection_limits::ConnectionLimits::default()
                .with_max_pending_incoming(Some(MAX_PENDING_INCOMING))
                .with_max_established(Some(MAX_ESTABLISHED));
            Ok(Behaviour {
                limits: libp2p::connection_limits::Behaviour::new(limits),
                stream: libp2p_stream::Behaviour::new(),
                mdns: Toggle::from(mdns),
            })
        })
        .map_err(|e| setup(&e))?
        // Every peer speaks /outpost/sync/1 (the key admits only fleet
        // members), so a new stream need not wait a round trip for the
        // protocol to be confirmed before its first frame.
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
                .with_substream_upgrade_protocol_override(Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}

/// A static peer's address and when to dial it next.
struct Redial {
    addr: Multiaddr,
    peer: Option<PeerId>,
    next: Option<Instant>,
    backoff: Duration,
}

fn jittered(base: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as u64 % 1000;
    base + base.mul_f64(random as f64 / 4000.0)
}

enum Internal {
    /// A stream to or from the peer failed; the connection is closed.
    Failed(PeerId, String),
    /// A stream from the peer ended.
    InboundEnded(PeerId),
}

/// Where frames for one peer wait, and how many bytes of them.
struct PeerQueue {
    tx: mpsc::UnboundedSender<(Lane, Vec<u8>)>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

/// Tells the engine about a newly connected peer, once, and opens our
/// stream to it; frames the engine sends meanwhile wait in the queue.
/// Called both when the connection is established and when the peer's
/// stream arrives, whichever the swarm reports first, so that the engine
/// never sees a frame from a peer it was not told of. False when the writer
/// has stopped.
async fn ensure_connected(
    peer: PeerId,
    senders: &mut HashMap<PeerId, PeerQueue>,
    control: &libp2p_stream::Control,
    internal: &mpsc::UnboundedSender<Internal>,
    state: &SharedNetState,
    writer: &WriterHandle,
) -> bool {
    if senders.contains_key(&peer) {
        return true;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    senders.insert(peer, PeerQueue { tx, queued: queued.clone() });
    let mut control = control.clone();
    let internal = internal.clone();
    let state = state.clone();
    tokio::spawn(async move {
        let outcome = match control.open_stream(peer, PROTOCOL).await {
            Ok(stream) => write_frames(peer, stream, rx, &queued, &state).await,
            Err(err) => Err(err.to_string()),
        };
        if let Err(err) = outcome {
            let _ = internal.send(Internal::Failed(peer, err));
        }
    });
    writer.notify(WriteOp::Replication(ReplicationInput::Connected(PeerKey(peer.to_string())))).await
}

/// Runs the network until `stop` turns true.
pub async fn run(
    key: Keypair,
    settings: NetSettings,
    writer: WriterHandle,
    mut commands: mpsc::UnboundedReceiver<NetCommand>,
    state: SharedNetState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), NetError> {
    let local = key.public().to_peer_id();
    let keys = settings.keys.clone();
    let fingerprint = keys.current().fingerprint().to_string();
    let next_fingerprint = keys.next().map(|k| k.fingerprint().to_string());
    tracing::info!(peer_id = %local, psk_fingerprint = %fingerprint, psk_next_fingerprint = ?next_fingerprint,
        mdns = settings.mdns, "network starting; peers must show the same key fingerprint");
    {
        let mut s = lock(&state);
        s.peer_id = local.to_string();
        s.psk_fingerprint = fingerprint;
        s.psk_next_fingerprint = next_fingerprint;
    }
    let mut swarm = build_swarm(key, keys.clone(), settings.mdns)?;
    for addr in &settings.listen {
        swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen { addr: addr.clone(), detail: e.to_string() })?;
    }
    for addr in &settings.listen_next {
        // Marked before any connection can arrive on it: the config gives
        // the next key's listeners fixed ports.
        keys.listening_with_next(addr);
        tracing::info!(%addr, "listening for the next fleet key");
        swarm.listen_on(addr.clone()).map_err(|e| NetError::Listen { addr: addr.clone(), detail: e.to_string() })?;
    }
    let mut control = swarm.behaviour().stream.new_control();
    let mut incoming =
        control.accept(PROTOCOL).map_err(|e| NetError::Setup(format!("cannot accept {PROTOCOL}: {e}")))?;
    let (internal_tx, mut internal) = mpsc::unbounded_channel::<Internal>();
    let mut senders: HashMap<PeerId, PeerQueue> = HashMap::new();
    let mut inbound: HashMap<PeerId, usize> = HashMap::new();
    let mut redials: Vec<Redial> = settings
        .peers
        .iter()
        .map(|addr| Redial { addr: addr.clone(), peer: None, next: Some(Instant::now()), backoff: REDIAL_FIRST })
        .collect();
    let mut timer: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut link_log = LinkLog::new(link_log::WINDOW);

    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                let now = Instant::now();
                log_link_summaries(&mut link_log, now, &state);
                for redial in redials.iter_mut().filter(|r| r.peer.is_none()) {
                    if redial.next.is_some_and(|at| at <= now) {
                        tracing::debug!(addr = %redial.addr, "dialling static peer");
                        redial.next = None;
                        if let Err(err) = swarm.dial(redial.addr.clone()) {
                            tracing::warn!(addr = %redial.addr, error = %err, "cannot dial");
                            redial.next = Some(now + jittered(redial.backoff));
                            redial.backoff = (redial.backoff * 2).min(REDIAL_MAX);
                        }
                    }
                }
            }
            () = async { match timer { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                timer = None;
                if !writer.notify(WriteOp::Replication(ReplicationInput::Timer)).await {
                    break;
                }
            }
            Some((peer, stream)) = incoming.next() => {
                let open = inbound.entry(peer).or_default();
                if *open >= MAX_INBOUND_STREAMS_PER_PEER {
                    // An honest peer opens one per connection; closing the
                    // connection, rather than dropping streams one by one,
                    // also keeps the log from flooding.
                    tracing::warn!(%peer, limit = MAX_INBOUND_STREAMS_PER_PEER,
                        "a peer opened more sync streams than it may; closing the connection");
                    let _ = swarm.disconnect_peer_id(peer);
                    continue;
                }
                *open += 1;
                // The engine must know the peer before its first frame.
                if !ensure_connected(peer, &mut senders, &control, &internal_tx, &state, &writer).await {
                    break;
                }
                let writer = writer.clone();
                let internal_tx = internal_tx.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let outcome = read_frames(peer, stream, &writer, &state).await;
                    if let Err(err) = outcome {
                        let _ = internal_tx.send(Internal::Failed(peer, err));
                    }
                    let _ = internal_tx.send(Internal::InboundEnded(peer));
                });
            }
            Some(event) = internal.recv() => match event {
                Internal::Failed(peer, err) => {
                    tracing::warn!(%peer, error = %err, "sync stream failed; closing the connection");
                    let _ = swarm.disconnect_peer_id(peer);
                }
                Internal::InboundEnded(peer) => {
                    if let Some(open) = inbound.get_mut(&peer) {
                        *open = open.saturating_sub(1);
                        if *open == 0 {
                            inbound.remove(&peer);
                        }
                    }
                }
            },
            Some(command) = commands.recv() => match command {
                NetCommand::Send { peer, lane, frame } => {
                    let Ok(peer) = peer.0.parse::<PeerId>() else { continue };
                    let Some(queue) = senders.get(&peer) else { continue };
                    let queued = queue.queued.fetch_add(frame.len(), std::sync::atomic::Ordering::SeqCst) + frame.len();
                    if queued > MAX_QUEUED_BYTES_PER_PEER {
                        tracing::warn!(%peer, queued, limit = MAX_QUEUED_BYTES_PER_PEER,
                            "the peer does not read what is sent to it; closing the connection");
                        senders.remove(&peer);
                        let _ = swarm.disconnect_peer_id(peer);
                        continue;
                    }
                    let _ = queue.tx.send((lane, frame));
                }
                NetCommand::Disconnect { peer } => {
                    if let Ok(peer) = peer.0.parse::<PeerId>() {
                        let _ = swarm.disconnect_peer_id(peer);
                    }
                }
                NetCommand::Timer { at } => {
                    let wait = (at.as_millis() - crate::engine_now().as_millis()).max(0) as u64;
                    timer = Some(tokio::time::Instant::now() + Duration::from_millis(wait));
                }
                NetCommand::Probe(reply) => {
                    let _ = reply.send(());
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    tracing::info!(%address, "listening");
                    lock(&state).listen_addrs.push(address.to_string());
                }
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, num_established, .. }
                    if num_established.get() > MAX_CONNECTIONS_PER_PEER =>
                {
                    tracing::warn!(peer = %peer_id, limit = MAX_CONNECTIONS_PER_PEER, "a peer holds more connections than it may; the newest is closed");
                    let _ = swarm.close_connection(connection_id);
                }
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                    let addr = match &endpoint {
                        ConnectedPoint::Dialer { address, .. } => address.clone(),
                        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                    };
                    if link_log.admit(Instant::now(), &peer_id.to_string(), LinkEvent::Connected) {
                        tracing::info!(peer = %peer_id, %addr, "connected");
                    } else {
                        tracing::debug!(peer = %peer_id, %addr, "connected");
                    }
                    for redial in redials.iter_mut() {
                        if matches!(&endpoint, ConnectedPoint::Dialer { address, .. } if same_address(address, &redial.addr)) {
                            redial.peer = Some(peer_id);
                            redial.backoff = REDIAL_FIRST;
                        }
                    }
                    {
                        let mut s = lock(&state);
                        let stats = s.peers.entry(peer_id.to_string()).or_default();
                        stats.connected = true;
                        stats.last_seen = Some(crate::now());
                        // The most recent few, newest last: a peer that
                        // reconnects from a new port each time cannot grow
                        // the list (or `outpost peers`) without bound.
                        let addr = addr.to_string();
                        stats.addresses.retain(|a| *a != addr);
                        stats.addresses.push(addr);
                        if stats.addresses.len() > MAX_ADDRESSES_PER_PEER {
                            stats.addresses.remove(0);
                        }
                    }
                    if num_established.get() == 1
                        && !ensure_connected(peer_id, &mut senders, &control, &internal_tx, &state, &writer).await
                    {
                        break;
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                    if link_log.admit(Instant::now(), &peer_id.to_string(), LinkEvent::Closed) {
                        tracing::info!(peer = %peer_id, cause = ?cause, "connection closed");
                    } else {
                        tracing::debug!(peer = %peer_id, cause = ?cause, "connection closed");
                    }
                    if num_established == 0 {
                        senders.remove(&peer_id);
                        {
                            let mut s = lock(&state);
                            let stats = s.peers.entry(peer_id.to_string()).or_default();
                            stats.connected = false;
                            stats.last_seen = Some(crate::now());
                            forget_beyond(&mut s.peers, MAX_REMEMBERED_PEERS);
                        }
                        for redial in redials.iter_mut().filter(|r| r.peer == Some(peer_id)) {
                            redial.peer = None;
                            redial.next = Some(Instant::now() + jittered(REDIAL_FIRST));
                        }
                        let key = PeerKey(peer_id.to_string());
                        if !writer.notify(WriteOp::Replication(ReplicationInput::Disconnected(key))).await {
                            break;
                        }
                    }
                }
                SwarmEvent::OutgoingConnectionError { peer_id, error, connection_id } => {
                    let key = peer_id.map_or_else(|| "unknown peer".to_string(), |p| p.to_string());
                    if link_log.admit(Instant::now(), &key, LinkEvent::DialFailed) {
                        tracing::info!(peer = ?peer_id, error = %error, "dial failed");
                    } else {
                        tracing::debug!(peer = ?peer_id, error = %error, "dial failed");
                    }
                    let _ = connection_id;
                    // During a rotation the address is tried again with the
                    // other key, soon; only failing with both backs off.
                    let mut other_key_next: Vec<Multiaddr> = Vec::new();
                    if let libp2p::swarm::DialError::Transport(attempts) = &error {
                        for (addr, _) in attempts {
                            if keys.dial_failed(addr) {
                                other_key_next.push(addr.clone());
                            }
                        }
                    }
                    let now = Instant::now();
                    for redial in redials.iter_mut().filter(|r| r.peer.is_none() && r.next.is_none()) {
                        if other_key_next.iter().any(|addr| same_address(addr, &redial.addr)) {
                            tracing::info!(addr = %redial.addr, "dialling again with the other fleet key");
                            redial.next = Some(now + jittered(REDIAL_FIRST));
                        } else {
                            redial.next = Some(now + jittered(redial.backoff));
                            redial.backoff = (redial.backoff * 2).min(REDIAL_MAX);
                        }
                    }
                }
                SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                    // A peer with another key fails here, during the key
                    // exchange or the noise handshake after it.
                    // Keyed by the address without its port, which changes
                    // with every attempt.
                    let from = send_back_addr.iter().next().map_or_else(|| send_back_addr.to_string(), |ip| ip.to_string());
                    if link_log.admit(Instant::now(), &from, LinkEvent::Refused) {
                        tracing::warn!(addr = %send_back_addr, error = %error,
                            "refused an incoming connection (a peer with another pre-shared key fails here)");
                    } else {
                        tracing::debug!(addr = %send_back_addr, error = %error, "refused an incoming connection");
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                    for (peer, addr) in found {
                        if !swarm.is_connected(&peer) && peer != local {
                            tracing::info!(%peer, %addr, "found on the LAN");
                            let _ = swarm.dial(addr);
                        }
                    }
                }
                _ => {}
            },
        }
    }
    Ok(())
}

/// Whether two addresses name the same place, a `/p2p/…` aside.
fn same_address(a: &Multiaddr, b: &Multiaddr) -> bool {
    fleet_keys::without_peer_id(a) == fleet_keys::without_peer_id(b)
}

/// Peers `outpost peers` remembers: a fleet-key holder can mint peer ids,
/// so the disconnected ones seen longest ago are forgotten beyond this.
pub const MAX_REMEMBERED_PEERS: usize = 1024;

/// Forgets the disconnected peers seen longest ago until at most `max`
/// remain (connected ones are never forgotten).
fn forget_beyond(peers: &mut HashMap<String, PeerStats>, max: usize) {
    while peers.len() > max {
        let oldest =
            peers.iter().filter(|(_, p)| !p.connected).min_by_key(|(_, p)| p.last_seen).map(|(k, _)| k.clone());
        let Some(oldest) = oldest else { return };
        peers.remove(&oldest);
    }
}

/// Writes queued frames to the peer, control first, then watchlists, then
/// incidents, then audit logs.
async fn write_frames(
    peer: PeerId,
    mut stream: libp2p::Stream,
    mut queue: mpsc::UnboundedReceiver<(Lane, Vec<u8>)>,
    queued: &std::sync::atomic::AtomicUsize,
    state: &SharedNetState,
) -> Result<(), String> {
    let mut lanes: [VecDeque<Vec<u8>>; 4] = Default::default();
    loop {
        while let Ok((lane, frame)) = queue.try_recv() {
            lanes[lane_index(lane)].push_back(frame);
        }
        let next = lanes.iter_mut().enumerate().find_map(|(lane, queue)| queue.pop_front().map(|f| (lane, f)));
        let (lane, frame) = match next {
            Some(next) => next,
            None => match queue.recv().await {
                Some((lane, frame)) => {
                    lanes[lane_index(lane)].push_back(frame);
                    continue;
                }
                // The peer is gone: the queue's sender was dropped.
                None => return Ok(()),
            },
        };
        let len = u32::try_from(frame.len()).map_err(|_| "frame too large".to_string())?;
        stream.write_all(&len.to_be_bytes()).await.map_err(|e| e.to_string())?;
        stream.write_all(&frame).await.map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        // Counted in before it was queued, so this never goes below zero.
        queued.fetch_sub(frame.len(), std::sync::atomic::Ordering::SeqCst);
        let mut s = lock(state);
        let stats = s.peers.entry(peer.to_string()).or_default();
        stats.bytes_sent += 4 + frame.len() as u64;
        stats.sent_by_lane[lane] += 4 + frame.len() as u64;
    }
}

/// One journal line per peer whose window ended with events that were
/// counted rather than logged, with the peer's traffic so far.
fn log_link_summaries(link_log: &mut LinkLog, now: Instant, state: &SharedNetState) {
    let ended = link_log.ended(now);
    if ended.is_empty() {
        return;
    }
    let s = lock(state);
    for (peer, summary) in ended {
        let (sent, received) = s.peers.get(&peer).map_or((0, 0), |p| (p.bytes_sent, p.bytes_received));
        tracing::info!(
            %peer, connected = summary.connected, closed = summary.closed, dial_failed = summary.dial_failed,
            refused = summary.refused, window_s = link_log::WINDOW.as_secs(), bytes_sent = sent, bytes_received = received,
            "link events beyond the first of each kind in the last window (not logged one by one)"
        );
    }
}

/// Reads frames from the peer and hands them to the engine. A length over
/// the frame limit cannot be resynchronised, so it ends the stream.
async fn read_frames(
    peer: PeerId,
    mut stream: libp2p::Stream,
    writer: &WriterHandle,
    state: &SharedNetState,
) -> Result<(), String> {
    let key = PeerKey(peer.to_string());
    loop {
        let mut len = [0u8; 4];
        match tokio::time::timeout(READ_IDLE_TIMEOUT, stream.read_exact(&mut len)).await {
            Err(_) => return Err(format!("nothing heard for {} minutes", READ_IDLE_TIMEOUT.as_secs() / 60)),
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(err)) => return Err(err.to_string()),
            Ok(Ok(())) => {}
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(format!("peer announced a {len}-byte frame; the limit is {MAX_FRAME_BYTES}"));
        }
        let mut frame = vec![0u8; len];
        stream.read_exact(&mut frame).await.map_err(|e| e.to_string())?;
        {
            let mut s = lock(state);
            let stats = s.peers.entry(peer.to_string()).or_default();
            stats.bytes_received += 4 + len as u64;
            stats.last_seen = Some(crate::now());
        }
        if !writer.notify(WriteOp::Replication(ReplicationInput::Frame(key.clone(), frame))).await {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn disconnected_peers_seen_longest_ago_are_forgotten_first() {
        let mut peers: HashMap<String, PeerStats> = HashMap::new();
        for n in 0..5 {
            let stats =
                PeerStats { connected: n == 0, last_seen: Some(Timestamp::from_millis(n)), ..PeerStats::default() };
            peers.insert(format!("p{n}"), stats);
        }
        forget_beyond(&mut peers, 3);
        let mut kept: Vec<&String> = peers.keys().collect();
        kept.sort();
        assert_eq!(kept, ["p0", "p3", "p4"], "the connected one stays, however old");
    }
}
