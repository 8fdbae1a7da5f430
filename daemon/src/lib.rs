//! # outpost-daemon
//!
//! The IO shell around `outpost-model`: redb storage, the Unix control
//! socket, configuration and systemd integration. Domain rules live in the
//! model; this crate moves bytes, holds state and keeps it durable.

pub mod args;
pub mod clock;
pub mod config;
pub mod control;
pub mod health;
pub mod keys;
pub mod link_log;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod preflight;
pub mod roles;
pub mod service;
pub mod store;
pub mod writer;

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use outpost_model::replication::engine::{Engine, EngineConfig, Trust};
use outpost_model::schema::actor_for;
use outpost_model::search::{NameIndex, WatchlistIndex, upsert};
use thiserror::Error;
use tokio::sync::watch;

use crate::config::Config;
use crate::service::{NodeInfo, Service};
use crate::store::{Store, StoreError};
use crate::writer::{SharedIndex, WriterSettings};

/// The wall clock, read here and passed into the model, which reads none:
/// for what is recorded (changes, audit records, what officers see).
pub fn now() -> outpost_model::date::Timestamp {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    outpost_model::date::Timestamp::from_millis(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// The replication engine's clock, for its deadlines (replies due, stalls,
/// rechecks, cut-offs): monotonic, so that a wall clock stepped back or
/// forward (an NTP fix after days offline, an officer setting the date)
/// neither stalls replication nor lifts a cut-off. It reads the wall
/// clock once, at the first call, and moves on by `Instant` from there,
/// so it stays close to wall time for what `outpost status` shows.
pub fn engine_now() -> outpost_model::date::Timestamp {
    static ANCHOR: std::sync::OnceLock<(outpost_model::date::Timestamp, Instant)> = std::sync::OnceLock::new();
    let (wall, at) = ANCHOR.get_or_init(|| (now(), Instant::now()));
    let elapsed = i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX);
    outpost_model::date::Timestamp::from_millis(wall.as_millis().saturating_add(elapsed))
}

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Control(#[from] control::ControlError),
    #[error("cannot start the writer thread: {0}")]
    Writer(std::io::Error),
    #[error("the writer thread stopped unexpectedly; no write was acknowledged that is not on disk")]
    WriterStopped,
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
}

impl DaemonError {
    /// A mistake a restart cannot mend: the configuration, a key, or a
    /// store this build must not open (written by a newer release, or an
    /// older one with no migration). The daemon exits 78 on these and the
    /// unit's RestartPreventExitStatus= keeps it from a restart loop.
    pub fn restart_cannot_mend(&self) -> bool {
        matches!(self, Self::Key(_) | Self::Store(StoreError::TooNew { .. } | StoreError::NoMigration { .. }))
    }
}

/// The next fleet key, during a rotation. A step of the rotation done
/// wrong (the key not copied, the drop-in missing, the same key twice)
/// must not take the post down, officers' lookups with it: the post runs
/// on its current key and says why.
fn next_fleet_key(
    network: &config::NetworkConfig,
    current: libp2p::pnet::PreSharedKey,
) -> Option<libp2p::pnet::PreSharedKey> {
    let source = network.psk_next.as_ref()?;
    match keys::read_psk(source) {
        Ok(next) if next == current => {
            tracing::error!(from = %source, "the next fleet key is the current one; running without a next key");
            None
        }
        Ok(next) => Some(next),
        Err(err) => {
            tracing::error!(error = %err, "cannot read the next fleet key; running on the current key only");
            None
        }
    }
}

/// A replication engine holding the roster `store` keeps, if it verifies.
pub fn engine_over(store: &Store, config: EngineConfig) -> Engine {
    let mut engine = Engine::new(config);
    match store.roster() {
        Ok(Some(roster)) => match engine.set_roster(&roster) {
            Ok(version) => tracing::info!(version, "fleet roster loaded"),
            Err(err) => tracing::error!(error = %err, "the stored roster does not verify; waiting for a valid one"),
        },
        Ok(None) => {}
        Err(err) => tracing::error!(error = %err, "cannot read the stored roster; waiting for one from a peer"),
    }
    engine
}

/// The search index over `store`'s entries, as the daemon starts with it.
pub fn load_index(store: &Store) -> Result<SharedIndex, StoreError> {
    Ok(Arc::new(RwLock::new(Box::new(build_index(store)?) as Box<dyn WatchlistIndex>)))
}

/// Loads the search index from its stored records, or rebuilds them from
/// the projection when they are missing, stale or damaged. A damaged
/// projection row is logged by name and skipped, so one bad row never stops
/// a post from starting.
fn build_index(store: &Store) -> Result<NameIndex, StoreError> {
    let started = Instant::now();
    let entries = store.entry_count()?;
    let mut index = NameIndex::new();
    if !store.search_keys_stale() {
        match store.for_each_index_record(|record| index.insert(&record)) {
            Ok(loaded) if loaded == entries => {
                tracing::info!(entries, elapsed_ms = started.elapsed().as_millis() as u64, "search index loaded");
                return Ok(index);
            }
            Ok(loaded) => tracing::warn!(loaded, entries, "index records do not match the projection; rebuilding"),
            Err(err) => tracing::warn!(error = %err, "index records unreadable; rebuilding"),
        }
    }
    let mut index = NameIndex::new();
    let mut records = Vec::new();
    let rebuild = Instant::now();
    let damaged = store.for_each_entry(|entry| records.push(upsert(&mut index, &entry)))?;
    for err in &damaged {
        tracing::error!(error = %err, "skipped an unreadable projection row");
    }
    let indexed = rebuild.elapsed();
    store.replace_index_records(&records)?;
    tracing::info!(
        entries = index.len(),
        damaged = damaged.len(),
        index_ms = indexed.as_millis() as u64,
        write_ms = (rebuild.elapsed() - indexed).as_millis() as u64,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "search index rebuilt from the projection"
    );
    Ok(index)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(16) {
        let random = uuid::Uuid::new_v4();
        chunk.copy_from_slice(&random.as_bytes()[..chunk.len()]);
    }
    out
}

/// Starts the metrics endpoint on `addr`. Metrics are for watching the
/// post, not for its work: a port that cannot be had is logged and the
/// post runs without them.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    latencies: &metrics::Latencies,
    probes: health::Probes,
    store: Arc<Store>,
    config: &Config,
) -> Option<tokio::task::JoinHandle<()>> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(%addr, "metrics endpoint listening (GET /metrics)");
            let exporter = Arc::new(metrics::Exporter::new(latencies, probes, store, config.data_dir.clone()));
            Some(tokio::spawn(metrics::serve(listener, exporter)))
        }
        Err(err) => {
            tracing::error!(%addr, error = %err, "cannot listen for metrics; running without them");
            None
        }
    }
}

/// Runs the daemon until `shutdown` completes, telling systemd when it is
/// ready (the control socket accepts requests), how it is, and that it
/// stops.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let started = Instant::now();
    let started_at = now();
    if !config.data_dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .map_err(|source| DaemonError::DataDir { path: config.data_dir.clone(), source })?;
    }
    // The node's key signs every change it makes, networked or not; its
    // public half is the peer id an admin enrols.
    let key = keys::node_key(&config.node_key.source, config.node_key.create_if_missing)?;
    let signer = keys::signer_of(&key, &config.node_key.source)?;
    let public = signer.public();
    let store = Arc::new(Store::open(&config.data_dir, public.actor_prefix())?);
    let latencies = metrics::Latencies::default();
    let index = load_index(&store)?;
    let settings = WriterSettings {
        post: config.node_name.clone(),
        authority: config.authority.clone(),
        offset: config.utc_offset,
        actor: actor_for(&outpost_model::NodeId::from_bytes(public.actor_prefix()), random_bytes()),
        signer,
        compact_after_changes: config.compact_after_changes,
        max_loaded_docs: config.limits.loaded_documents,
        quarantine: config.limits.quarantine,
        clock: Arc::new(clock::SystemClock),
        daemon_uid: nix::unistd::geteuid().as_raw(),
        latencies: latencies.clone(),
    };
    // The key is checked before anything starts, so that a bad key file
    // stops the daemon with its name.
    let network = match &config.network {
        Some(network) => {
            let current = keys::read_psk(&network.psk)?;
            Some((network.clone(), net::FleetKeys::new(current, next_fleet_key(network, current)), key))
        }
        None => {
            tracing::info!("no pre-shared key configured: this post does not network");
            None
        }
    };
    let (net_tx, net_rx) = tokio::sync::mpsc::unbounded_channel();
    let replication = match &network {
        Some((network, _, _)) => {
            let trust = match network.membership {
                config::Membership::Fleet(anchor) => Trust::Fleet { anchor },
                config::Membership::PskOnly => {
                    tracing::warn!(
                        "--psk-only: every holder of the fleet key is a full member and changes are not signed"
                    );
                    Trust::PskOnly
                }
                config::Membership::Nobody => {
                    tracing::warn!(
                        "no fleet admin key is configured: this post replicates with nobody (set [network] fleet_admin, or --psk-only)"
                    );
                    Trust::Closed
                }
            };
            let engine = engine_over(&store, EngineConfig::new(public, &config.node_name, trust));
            Some(writer::Replication { engine, net: net_tx.clone() })
        }
        None => None,
    };
    let (writer, writer_thread) =
        writer::spawn(store.clone(), index.clone(), settings, replication).map_err(DaemonError::Writer)?;
    let listener = control::bind(&config.socket, config.socket_mode).await?;
    let (net_stop, net_stopped) = watch::channel(false);
    let net_state: Option<net::SharedNetState> = network.as_ref().map(|_| Default::default());
    let net_task = match (network, &net_state) {
        (Some((network, fleet_keys, key)), Some(state)) => {
            let settings = net::NetSettings {
                listen: network.listen,
                listen_next: network.listen_next,
                peers: network.peers,
                keys: fleet_keys,
                mdns: network.mdns,
            };
            let running = net::run(key, settings, writer.clone(), net_rx, state.clone(), net_stopped);
            Some(tokio::spawn(async move {
                // The post stays useful without its network (officers can
                // still search and record), so this is logged, not fatal.
                let outcome = running.await;
                if let Err(err) = &outcome {
                    tracing::error!(error = %err, "the network stopped; this post no longer replicates");
                }
                outcome
            }))
        }
        _ => None,
    };
    let info = NodeInfo {
        node_name: config.node_name.clone(),
        authority: config.authority.clone(),
        offset: config.utc_offset,
        data_dir: config.data_dir.clone(),
        socket: config.socket.clone(),
        started_at,
        started,
        net: net_state,
        peer_id: public.peer_id(),
        roles: config.roles.clone(),
        health: config.health,
    };
    let probes =
        health::Probes { writer: writer.clone(), net: net_task.as_ref().map(|_| net_tx), net_state: info.net.clone() };
    let metrics_task = match config.metrics {
        Some(addr) => serve_metrics(addr, &latencies, probes.clone(), store.clone(), &config).await,
        None => None,
    };
    let service = Service::new(store.clone(), index, writer, info, latencies);
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(control::serve(listener, service, stopped));
    tracing::info!(
        node_id = %store.node_id(), node = %config.node_name, authority = %config.authority,
        socket = %config.socket.display(), data_dir = %config.data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64, "outpostd ready"
    );
    health::ready(if probes.net.is_some() {
        "started; connecting to peers"
    } else {
        "serving officers; this post does not network"
    });
    let watchdog = health::watchdog_interval();
    if let Some(interval) = watchdog {
        tracing::info!(
            interval_ms = interval.as_millis() as u64,
            "systemd watchdog on: pinging while the writer and network answer"
        );
    }
    let (health_stop, health_stopped) = watch::channel(false);
    let supervisor = tokio::spawn(health::supervise(probes, watchdog, health_stopped));

    let mut writer_stopped = writer_thread.stopped;
    let outcome = tokio::select! {
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
        _ = &mut writer_stopped => {
            // Without the writer nothing can be stored; exit so that the
            // service manager restarts the daemon from what is on disk.
            tracing::error!("the writer thread stopped unexpectedly; exiting");
            Err(DaemonError::WriterStopped)
        }
    };
    health::stopping();
    let _ = health_stop.send(true);
    let _ = supervisor.await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    let _ = stop.send(true);
    let _ = server.await;
    let _ = net_stop.send(true);
    if let Some(task) = net_task
        && let Err(err) = task.await
    {
        tracing::error!(error = %err, "the network task failed");
    }
    // The writer ends once the last connection has dropped its handle and
    // the queue is drained; every acknowledged write is already durable.
    let join = writer_thread.join;
    let _ = tokio::task::spawn_blocking(move || join.join()).await;
    let _ = std::fs::remove_file(&config.socket);
    outcome
}
