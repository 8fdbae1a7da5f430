//! Replies that carry a byte stream: a backup, today. After the reply that
//! starts it come chunks (`STREAM_CHUNK_BYTES` at most, each framed by its
//! length, a zero length last), then the reply that says how it ended.
//!
//! The bytes are made on a blocking thread and handed over through a
//! channel of a few chunks, so a client that reads slowly holds back the
//! backup, not memory; one that stops reading is dropped after the write
//! timeout, and the backup stops with it.

use std::io::Write;

use outpost_model::api::{
    ApiError, BackupWritten, ErrorKind, Outcome, PROTOCOL_VERSION, Response, ResponseEnvelope, STREAM_CHUNK_BYTES,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

use super::send;
use crate::service::Service;
use crate::writer::Caller;

/// Chunks made ahead of the client.
const CHUNKS_AHEAD: usize = 4;
/// A chunk the client does not take within this is the end of the
/// stream. Longer than a reply's timeout: the client writes to an admin's
/// disk, which may be a USB stick that stalls while it flushes.
const CHUNK_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One backup at a time: each holds a read transaction (redb keeps what
/// it sees, so the file grows while it lasts) and a blocking thread.
static BACKUP_RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct OneBackup;

impl OneBackup {
    fn take() -> Option<Self> {
        use std::sync::atomic::Ordering;
        BACKUP_RUNNING.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).ok().map(|_| OneBackup)
    }
}

impl Drop for OneBackup {
    fn drop(&mut self) {
        BACKUP_RUNNING.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Cuts what is written into chunks for the connection.
struct ChunkWriter {
    chunks: mpsc::Sender<Vec<u8>>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    fn pass_on(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(STREAM_CHUNK_BYTES as usize));
        self.chunks
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client stopped reading"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = STREAM_CHUNK_BYTES as usize - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == STREAM_CHUNK_BYTES as usize {
            self.pass_on()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.pass_on()
    }
}

async fn write_chunk(
    stream: &mut UnixStream,
    chunk: &[u8],
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let len = u32::try_from(chunk.len()).map_err(std::io::Error::other)?.to_be_bytes();
    let write = async {
        stream.write_all(&len).await?;
        stream.write_all(chunk).await
    };
    tokio::select! {
        written = tokio::time::timeout(CHUNK_WRITE_TIMEOUT, write) => match written {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client does not read the stream")),
        },
        _ = shutdown.changed() => Err(std::io::Error::other("shutting down")),
    }
}

/// Answers `Request::Backup` on `stream`.
pub(super) async fn backup(
    stream: &mut UnixStream,
    service: &Service,
    caller: &Caller,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let Some(_one) = OneBackup::take() else {
        let busy = ApiError::new(ErrorKind::Busy, "a backup is being written already; try again when it is done");
        return send(stream, &ResponseEnvelope { version: PROTOCOL_VERSION, outcome: Outcome::Error(busy) }, shutdown)
            .await;
    };
    let (snapshot, started) = match service.begin_backup(caller).await {
        Ok(begun) => begun,
        Err(err) => {
            tracing::info!(uid = caller.uid, kind = ?err.kind, error = %err.message, "backup refused");
            return send(
                stream,
                &ResponseEnvelope { version: PROTOCOL_VERSION, outcome: Outcome::Error(err) },
                shutdown,
            )
            .await;
        }
    };
    tracing::info!(uid = caller.uid, user = %caller.user, "backup started");
    let reply = ResponseEnvelope { version: PROTOCOL_VERSION, outcome: Outcome::Ok(Response::BackupStarted(started)) };
    send(stream, &reply, shutdown.clone()).await?;
    let (chunks, mut ready) = mpsc::channel(CHUNKS_AHEAD);
    let writing = tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter { chunks, buffer: Vec::with_capacity(STREAM_CHUNK_BYTES as usize) };
        let written = snapshot.write_to(&mut out)?;
        out.flush()?;
        Ok::<_, crate::store::backup::BackupError>(written)
    });
    let started = std::time::Instant::now();
    let mut bytes = 0u64;
    while let Some(chunk) = ready.recv().await {
        // An error here drops `ready`, which stops the writing thread.
        write_chunk(stream, &chunk, shutdown.clone()).await?;
        bytes += chunk.len() as u64;
    }
    write_chunk(stream, &[], shutdown.clone()).await?;
    let outcome = match writing.await {
        Ok(Ok(summary)) => {
            tracing::info!(
                uid = caller.uid,
                tables = summary.tables,
                rows = summary.rows,
                bytes,
                duration_ms = started.elapsed().as_millis() as u64,
                "backup written"
            );
            Outcome::Ok(Response::BackupWritten(BackupWritten {
                tables: summary.tables,
                rows: summary.rows,
                bytes,
                sha256: summary.sha256,
            }))
        }
        Ok(Err(err)) => {
            tracing::error!(uid = caller.uid, error = %err, "backup failed");
            Outcome::Error(ApiError::new(ErrorKind::Internal, format!("the backup failed: {err}")))
        }
        Err(err) => Outcome::Error(ApiError::new(ErrorKind::Internal, format!("the backup failed: {err}"))),
    };
    send(stream, &ResponseEnvelope { version: PROTOCOL_VERSION, outcome }, shutdown).await
}
