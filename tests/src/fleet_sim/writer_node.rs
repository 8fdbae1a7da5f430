//! An honest node as the daemon runs it: its real writer (`WriterCore`,
//! which hosts the replication engine, admits and stores every change
//! through one commit-and-index path, and keeps the quarantine and the
//! audit trail) over a simulated disk, on simulated time. Only the
//! network is the simulator's: what the writer hands the network comes
//! back from [`WriterNode::handle`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use automerge::ActorId;
use outpost_daemon::clock::Clock;
use outpost_daemon::net::NetCommand;
use outpost_daemon::store::{Medium, SimulatedDisk, Store};
use outpost_daemon::writer::{Caller, QuarantineLimits, Replication, WriteOp, WriterCore, WriterSettings, Written};
use outpost_model::api::{ApiError, Role as ApiRole};
use outpost_model::date::Timestamp;
use outpost_model::replication::engine::{EngineConfig, Limits, Trust};
use outpost_model::schema::Document;
use outpost_model::trust::{PublicKey, Signer};
use outpost_model::{DocId, EntryId, IncidentId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::EPOCH_MS;

/// The simulator's time, which every node's writer reads, and the random
/// part of the ids it makes, from the seed.
#[derive(Debug)]
pub(super) struct SimClock {
    now_ms: AtomicI64,
    ids: Mutex<StdRng>,
}

impl SimClock {
    pub(super) fn new(seed: u64) -> Arc<Self> {
        Arc::new(SimClock { now_ms: AtomicI64::new(0), ids: Mutex::new(StdRng::seed_from_u64(seed ^ 0x1d5)) })
    }

    pub(super) fn set(&self, ms: i64) {
        self.now_ms.store(ms, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn wall(&self) -> Timestamp {
        Timestamp::from_millis(EPOCH_MS + self.now_ms.load(Ordering::SeqCst))
    }

    fn monotonic(&self) -> Timestamp {
        self.wall()
    }

    fn new_uuid(&self) -> uuid::Uuid {
        let mut random = [0u8; 10];
        self.ids.lock().unwrap_or_else(std::sync::PoisonError::into_inner).fill(&mut random);
        uuid::Builder::from_unix_timestamp_millis(self.wall().as_millis().unsigned_abs(), &random).into_uuid()
    }
}

/// Who a node is, fixed for its life.
pub(super) struct Identity<'a> {
    pub(super) signer: &'a Signer,
    pub(super) post: &'a str,
    pub(super) authority: &'a str,
    /// Bumped at every start, as the daemon's actor is new at every start.
    pub(super) start: u32,
    pub(super) anchor: PublicKey,
    pub(super) limits: Limits,
}

/// A running honest node: dropped, it has crashed, and what it did not
/// store is gone; its disk stays.
pub(super) struct WriterNode {
    core: WriterCore,
    net: mpsc::UnboundedReceiver<NetCommand>,
    store: Arc<Store>,
}

/// The user every simulated daemon runs as, whoever runs the simulator.
const DAEMON_UID: u32 = 990;

/// The officer every simulated edit is made by.
fn officer() -> Caller {
    Caller {
        uid: 1000,
        pid: None,
        user: "officer".into(),
        roles: [ApiRole::Officer, ApiRole::Supervisor].into(),
        acting: Some(ApiRole::Supervisor),
    }
}

impl WriterNode {
    /// Opens the store on `disk` and starts the writer on it, as the
    /// daemon does at start. Fails as the daemon would fail to start (the
    /// disk refusing the open), to be started again later.
    pub(super) fn start(disk: &Arc<SimulatedDisk>, who: &Identity<'_>, clock: Arc<SimClock>) -> Result<Self, String> {
        let public = who.signer.public();
        let store = Arc::new(
            Store::open_on(Medium::Simulated(disk.clone()), public.actor_prefix()).map_err(|e| e.to_string())?,
        );
        let index = outpost_daemon::load_index(&store).map_err(|e| e.to_string())?;
        let mut actor = public.actor_prefix().to_vec();
        actor.extend_from_slice(&who.start.to_be_bytes());
        let settings = WriterSettings {
            post: who.post.into(),
            authority: who.authority.into(),
            offset: time::UtcOffset::UTC,
            actor: ActorId::from(actor),
            signer: who.signer.clone(),
            compact_after_changes: 1000,
            max_loaded_docs: 64,
            quarantine: QuarantineLimits::default(),
            clock,
            daemon_uid: DAEMON_UID,
            latencies: Default::default(),
        };
        let mut config = EngineConfig::new(public, who.post, Trust::Fleet { anchor: who.anchor });
        config.limits = who.limits.clone();
        let engine = outpost_daemon::engine_over(&store, config);
        let (net, commands) = mpsc::unbounded_channel();
        let core = WriterCore::start(store.clone(), index, settings, Some(Replication { engine, net }));
        Ok(WriterNode { core, net: commands, store })
    }

    /// Hands the writer one job, as the control socket (an officer's
    /// request, by the officer) or the network (a peer's frame, by the
    /// daemon) would; returns its answer and what it gave the network.
    pub(super) fn handle(&mut self, op: WriteOp) -> (Result<Written, ApiError>, Vec<NetCommand>) {
        let caller = match op {
            WriteOp::AddEntries { .. } | WriteOp::SetStatus { .. } | WriteOp::LogIncident { .. } => officer(),
            _ => Caller::daemon_as(DAEMON_UID),
        };
        let answer = self.core.handle(op, &caller);
        let mut commands = Vec::new();
        while let Ok(command) = self.net.try_recv() {
            commands.push(command);
        }
        (answer, commands)
    }

    pub(super) fn engine(&self) -> &outpost_model::replication::engine::Engine {
        match self.core.engine() {
            Some(engine) => engine,
            None => unreachable!("every simulated node networks"),
        }
    }

    /// The documents this node stored, read back from its disk.
    pub(super) fn stored_docs(&self) -> Result<Vec<(DocId, Document)>, String> {
        let ids = self.store.doc_ids().map_err(|e| e.to_string())?;
        let mut docs = Vec::with_capacity(ids.len());
        for id in ids {
            let stored = self.store.load_doc(&id).map_err(|e| format!("{id}: {e}"))?;
            let doc = Document::load(&id, stored.snapshot.as_deref(), stored.changes.iter().map(|(_, c)| c.as_slice()))
                .map_err(|e| format!("{id}: {e}"))?;
            docs.push((id, doc));
        }
        Ok(docs)
    }

    /// The entry's projected row, as officers' searches and reads see it.
    pub(super) fn entry_row(&self, id: &EntryId) -> Result<Option<outpost_model::watchlist::Entry>, String> {
        self.store.entry(id).map_err(|e| e.to_string())
    }

    pub(super) fn incident_row(&self, id: &IncidentId) -> Result<Option<outpost_model::incident::Incident>, String> {
        self.store.incident(id).map_err(|e| e.to_string())
    }
}
