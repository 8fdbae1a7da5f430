//! The control socket: a Unix stream socket speaking length-prefixed JSON.
//!
//! Who may connect is decided by the socket file's permissions (and, under
//! systemd, the runtime directory's). Every request is attributed to the
//! peer's uid from SO_PEERCRED, which the kernel vouches for. A malformed
//! request gets an error reply and the connection stays usable; an
//! oversized one gets an error and the connection is closed, since the
//! stream cannot be resynchronised without reading the whole oversized body.

mod slots;
mod stream;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use outpost_model::api::{
    ErrorKind, MAX_REQUEST_BYTES, Outcome, PROTOCOL_VERSION, Request, RequestEnvelope, ResponseEnvelope, encode_frame,
    error_envelope,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use self::slots::{MAX_CONNECTIONS, SlotGuard, Slots};
use crate::roles;
use crate::service::Service;
use crate::writer::Caller;

/// A client that sends nothing for this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A started request must arrive completely within this time.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// A reply the client does not read within this time closes the
/// connection, so a client that never reads holds neither a slot nor
/// shutdown.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accept errors (out of file descriptors, mostly) are retried after a
/// pause that doubles up to this, instead of spinning.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another outpostd is already listening on {0}")]
    InUse(PathBuf),
    #[error("cannot create the control socket {path}: {source}")]
    Bind { path: PathBuf, source: std::io::Error },
}

/// Binds the socket, replacing a stale file left by a crashed daemon.
pub async fn bind(path: &Path, mode: u32) -> Result<UnixListener, ControlError> {
    let bind_err = |source| ControlError::Bind { path: path.to_path_buf(), source };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_err)?;
    Ok(listener)
}

/// Serves connections until `shutdown` flips to true. The loop never
/// waits for a slot: see `slots`.
pub async fn serve(listener: UnixListener, service: Service, mut shutdown: watch::Receiver<bool>) {
    let slots = Slots::new(MAX_CONNECTIONS);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let mut stream = match accepted {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(err) => {
                tracing::warn!(error = %err, pause_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let service = service.clone();
        let shutdown = shutdown.clone();
        match slots.admit(Instant::now()) {
            Ok(slot) => {
                tokio::spawn(async move {
                    let id = slot.id();
                    if let Err(err) = connection(stream, slot, service, shutdown).await {
                        tracing::debug!(connection = id, error = %err, "control connection ended");
                    }
                });
            }
            Err(slots::AllBusy) => {
                tracing::warn!(slots = MAX_CONNECTIONS, "control socket busy: every connection is answering a request");
                tokio::spawn(async move {
                    let message = format!("all {MAX_CONNECTIONS} connections are answering requests; try again");
                    let _ = send(&mut stream, &error_envelope(ErrorKind::Busy, message), shutdown).await;
                });
            }
        }
    }
}

/// Writes one reply, giving up after `WRITE_TIMEOUT` or at shutdown.
async fn send(
    stream: &mut UnixStream,
    envelope: &ResponseEnvelope,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let frame = encode_frame(envelope).map_err(std::io::Error::other)?;
    tokio::select! {
        written = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&frame)) => match written {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client does not read its reply")),
        },
        _ = shutdown.changed() => Err(std::io::Error::other("shutting down")),
    }
}

async fn connection(
    mut stream: UnixStream,
    slot: SlotGuard,
    service: Service,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let cred = stream.peer_cred()?;
    let caller = roles::caller(cred.uid(), cred.gid(), cred.pid(), service.role_groups());
    loop {
        let mut header = [0u8; 4];
        let read = tokio::select! {
            read = tokio::time::timeout(IDLE_TIMEOUT, stream.read_exact(&mut header)) => read,
            _ = shutdown.changed() => return Ok(()),
            () = slot.evicted() => return Ok(()),
        };
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(err)) => return Err(err),
            Err(_) => return Ok(()),
        }
        let len = match request_len(header) {
            Ok(len) => len,
            Err(refused) => {
                tracing::warn!(uid = caller.uid, len = u32::from_be_bytes(header), "oversized request refused");
                send(&mut stream, &refused, shutdown.clone()).await?;
                return Ok(());
            }
        };
        // Until the whole body is in, the connection still counts as idle:
        // a client that trickles a request holds its slot no better than
        // one that sends nothing.
        let mut body = vec![0u8; len];
        let read = tokio::select! {
            read = tokio::time::timeout(BODY_TIMEOUT, stream.read_exact(&mut body)) => read,
            _ = shutdown.changed() => return Ok(()),
            () = slot.evicted() => return Ok(()),
        };
        match read {
            Ok(result) => result?,
            Err(_) => return Ok(()),
        };
        slot.answering();
        match parse_request(&body) {
            Ok((_, RequestEnvelope { request: Request::Backup, .. })) => {
                stream::backup(&mut stream, &service, &caller, shutdown.clone()).await?;
            }
            parsed => {
                let reply = answer(&service, &caller, parsed).await;
                send(&mut stream, &reply, shutdown.clone()).await?;
            }
        }
        slot.idle(Instant::now());
    }
}

/// The length a request's 4-byte header announces, or the reply that
/// refuses it (the connection is then closed: the stream cannot be
/// resynchronised without reading the oversized body).
// The refusal is the reply itself, made once per refused request.
#[allow(clippy::result_large_err)]
pub fn request_len(header: [u8; 4]) -> Result<usize, ResponseEnvelope> {
    let len = u32::from_be_bytes(header);
    if len > MAX_REQUEST_BYTES {
        let message = format!("request of {len} bytes is larger than the limit of {MAX_REQUEST_BYTES}");
        return Err(error_envelope(ErrorKind::TooLarge, message));
    }
    Ok(len as usize)
}

/// A request body that cannot be answered.
#[derive(Debug)]
pub struct BadRequest {
    /// The `op` the body named, if it named one, for the log.
    pub op: String,
    /// The reply naming the problem.
    pub reply: ResponseEnvelope,
}

/// What is read of a body before the envelope: its version and `op`,
/// without building a tree of the whole body (a 4 MiB request in every
/// slot would cost hundreds of MiB as `serde_json::Value`s). A body where
/// either has another type reads as neither; the envelope's parse then
/// names the problem.
#[derive(Debug, Default, serde::Deserialize)]
struct Peek {
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    request: Option<PeekRequest>,
}

#[derive(Debug, serde::Deserialize)]
struct PeekRequest {
    #[serde(default)]
    op: Option<String>,
}

/// Parses one request body: JSON, then the protocol version, then the
/// envelope. Returns the `op` it names, for the log, and the envelope.
/// Pure, so that it can be fuzzed (`fuzz/`).
// The refusal is the reply itself, made once per refused request.
#[allow(clippy::result_large_err)]
pub fn parse_request(body: &[u8]) -> Result<(String, RequestEnvelope), BadRequest> {
    let malformed = |op: String, err: serde_json::Error| BadRequest {
        op,
        reply: error_envelope(ErrorKind::BadInput, format!("malformed request: {err}")),
    };
    // Syntax first, so that broken JSON is named as such.
    let peek = match serde_json::from_slice::<Peek>(body) {
        Ok(peek) => peek,
        Err(err) if err.is_syntax() || err.is_eof() => return Err(malformed(String::new(), err)),
        Err(_) => Peek::default(),
    };
    if let Some(version) = peek.version
        && version != u64::from(PROTOCOL_VERSION)
    {
        return Err(BadRequest {
            op: String::new(),
            reply: error_envelope(
                ErrorKind::UnsupportedVersion,
                format!("protocol version {version} is not supported; this outpostd speaks version {PROTOCOL_VERSION}"),
            ),
        });
    }
    let op = peek.request.and_then(|r| r.op).unwrap_or_default();
    match serde_json::from_slice(body) {
        Ok(envelope) => Ok((op, envelope)),
        Err(err) => Err(malformed(op, err)),
    }
}

async fn answer(
    service: &Service,
    caller: &Caller,
    parsed: Result<(String, RequestEnvelope), BadRequest>,
) -> ResponseEnvelope {
    let (op, envelope) = match parsed {
        Ok(parsed) => parsed,
        Err(BadRequest { op, reply }) => {
            if let Outcome::Error(err) = &reply.outcome
                && err.kind == ErrorKind::BadInput
            {
                tracing::info!(uid = caller.uid, op, error = %err.message, "malformed request");
            }
            return reply;
        }
    };
    let started = std::time::Instant::now();
    let outcome = match service.handle(envelope.request, caller).await {
        Ok(response) => Outcome::Ok(response),
        Err(err) => {
            tracing::info!(uid = caller.uid, op, kind = ?err.kind, error = %err.message, "request refused");
            Outcome::Error(err)
        }
    };
    tracing::debug!(uid = caller.uid, op, elapsed_us = started.elapsed().as_micros() as u64, "request served");
    ResponseEnvelope { version: PROTOCOL_VERSION, outcome }
}

#[cfg(test)]
mod tests {
    use outpost_model::api::Request;

    use super::*;

    fn refused(body: &[u8]) -> (ErrorKind, String) {
        match parse_request(body).map(|_| ()).unwrap_err().reply.outcome {
            Outcome::Error(err) => (err.kind, err.message),
            Outcome::Ok(_) => panic!("a refusal that is not an error"),
        }
    }

    #[test]
    fn a_request_is_parsed_or_refused_naming_the_problem() {
        let (op, envelope) = parse_request(br#"{"version":1,"request":{"op":"sync_now"}}"#).unwrap();
        assert_eq!(op, "sync_now");
        assert!(matches!(envelope.request, Request::SyncNow { peer: None }));
        let (kind, message) = refused(b"{not json");
        assert_eq!(kind, ErrorKind::BadInput);
        assert!(message.starts_with("malformed request: "), "{message}");
        let (kind, message) = refused(br#"{"version":7,"request":{"op":"status"}}"#);
        assert_eq!(kind, ErrorKind::UnsupportedVersion);
        assert!(message.contains("version 7"), "{message}");
        let bad = parse_request(br#"{"version":1,"request":{"op":"watchlist_show"}}"#).map(|_| ()).unwrap_err();
        assert_eq!(bad.op, "watchlist_show");
    }

    #[test]
    fn an_oversized_request_is_refused_by_its_header() {
        assert_eq!(request_len(MAX_REQUEST_BYTES.to_be_bytes()).unwrap(), MAX_REQUEST_BYTES as usize);
        let reply = request_len((MAX_REQUEST_BYTES + 1).to_be_bytes()).unwrap_err();
        assert!(matches!(reply.outcome, Outcome::Error(err) if err.kind == ErrorKind::TooLarge));
    }
}
