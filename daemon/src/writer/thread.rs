//! The writer's thread and its two queues: officers' requests are always
//! taken before peers' input.

use std::sync::Arc;
use std::time::Instant;

use outpost_model::api::{ApiError, ErrorKind};
use tokio::sync::{mpsc, oneshot};

use super::api::{Caller, Job, Replication, ReplicationInput, SharedIndex, WriteOp, WriterSettings, Written};
use super::core::WriterCore;
use super::pacing::PeerPacing;
use crate::store::Store;

/// Jobs wait in two queues: officers' requests, and what peers and the
/// network hand in. The writer always takes an officer's request first, so
/// an officer never waits behind a queue of peers' frames, only behind the
/// one job the writer is doing.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    officers: mpsc::Sender<Job>,
    peers: mpsc::Sender<Job>,
}

/// Officers' requests waiting before a client waits to hand one in.
const OFFICER_JOBS: usize = 1024;
/// Peers' frames (and connection events) waiting before the network waits
/// to hand one in: a reading task then stops reading its peer, so a peer
/// that sends faster than the writer takes its frames holds at most this
/// many frames (1 MiB each at most) in memory. Waiting senders are served
/// in turn (tokio's channel is fair), so the network's own events wait
/// behind at most the frames already queued, never behind a flood.
pub const PEER_JOBS: usize = 64;

impl WriterHandle {
    fn queue_for(&self, op: &WriteOp) -> &mpsc::Sender<Job> {
        match op {
            // An officer's `outpost sync` does not wait behind peers.
            WriteOp::Replication(ReplicationInput::SyncNow(_)) => &self.officers,
            WriteOp::Replication(_) => &self.peers,
            _ => &self.officers,
        }
    }

    /// Jobs waiting: officers' and peers'.
    pub fn queued(&self) -> (usize, usize) {
        let waiting = |queue: &mpsc::Sender<Job>| queue.max_capacity() - queue.capacity();
        (waiting(&self.officers), waiting(&self.peers))
    }

    /// Hands the writer an input without waiting for it to be handled.
    pub async fn notify(&self, op: WriteOp) -> bool {
        let (reply, _) = oneshot::channel();
        self.queue_for(&op).send(Job { op, caller: Caller::daemon(), reply }).await.is_ok()
    }

    pub async fn submit(&self, op: WriteOp, caller: &Caller) -> Result<Written, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue_for(&op)
            .send(Job { op, caller: caller.clone(), reply })
            .await
            .map_err(|_| ApiError::new(ErrorKind::Internal, "outpostd is shutting down"))?;
        answer.await.map_err(|_| ApiError::new(ErrorKind::Internal, "the writer stopped before answering"))?
    }
}

/// The running writer thread.
#[derive(Debug)]
pub struct WriterThread {
    pub join: std::thread::JoinHandle<()>,
    /// Completes when the thread ends, whether it returned or panicked.
    pub stopped: oneshot::Receiver<()>,
}

/// Signals the thread's end from its own stack, so a panic is seen too.
struct StopSignal(Option<oneshot::Sender<()>>);

impl Drop for StopSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the writer thread. It ends when every handle is dropped and the
/// queue is drained.
pub fn spawn(
    store: Arc<Store>,
    index: SharedIndex,
    settings: WriterSettings,
    replication: Option<Replication>,
) -> std::io::Result<(WriterHandle, WriterThread)> {
    let (officers, officers_rx) = mpsc::channel(OFFICER_JOBS);
    let (peers, peers_rx) = mpsc::channel(PEER_JOBS);
    let (stop_tx, stopped) = oneshot::channel();
    let join = std::thread::Builder::new().name("outpost-writer".into()).spawn(move || {
        let _signal = StopSignal(Some(stop_tx));
        WriterCore::start(store, index, settings, replication).run(officers_rx, peers_rx);
    })?;
    Ok((WriterHandle { officers, peers }, WriterThread { join, stopped }))
}

impl WriterCore {
    pub(super) fn run(mut self, mut officers: mpsc::Receiver<Job>, mut peers: mpsc::Receiver<Job>) {
        // Waiting on two queues at once takes a runtime; a small one of
        // this thread's own, used for nothing else.
        let waiter = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::error!(error = %err, "the writer cannot wait for jobs; it stops");
                return;
            }
        };
        let mut pacing = PeerPacing::new(Instant::now());
        loop {
            let pause = pacing.pause(Instant::now());
            let (job, from_officer) = if let Ok(job) = officers.try_recv() {
                (job, true)
            } else if !pause.is_zero() && !officers.is_closed() {
                // Peers have had their share while officers are at work:
                // wait for an officer's request, or for the pause to end.
                match waiter.block_on(async { tokio::time::timeout(pause, officers.recv()).await }) {
                    Ok(Some(job)) => (job, true),
                    // Shutting down: the peers' queue is drained unpaced.
                    Ok(None) | Err(_) => continue,
                }
            } else if let Ok(job) = peers.try_recv() {
                (job, false)
            } else {
                if self.compact_one() {
                    continue;
                }
                let next = waiter.block_on(async {
                    tokio::select! {
                        biased;
                        job = officers.recv() => job.map(|job| (job, true)),
                        job = peers.recv() => job.map(|job| (job, false)),
                    }
                });
                match next {
                    Some(next) => next,
                    // Every handle is gone (both queues close together).
                    None => break,
                }
            };
            let started = Instant::now();
            let result = self.handle(job.op, &job.caller);
            // The caller may have gone; the write stands either way.
            let _ = job.reply.send(result);
            if from_officer {
                pacing.officer_job(started);
            } else {
                pacing.peer_job(started, Instant::now());
            }
        }
        tracing::info!("writer stopped");
    }
}
