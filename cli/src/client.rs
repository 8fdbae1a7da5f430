//! A blocking client of the control socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use outpost_model::api::{
    ApiError, MAX_RESPONSE_BYTES, Outcome, PROTOCOL_VERSION, Request, RequestEnvelope, Response, ResponseEnvelope,
    STREAM_CHUNK_BYTES, encode_frame,
};
use thiserror::Error;

/// Long enough for an import batch on a slow disk.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach outpostd at {path}: {source} (is the daemon running? set --socket or OUTPOST_SOCKET)")]
    Unreachable { path: PathBuf, source: std::io::Error },
    #[error("lost the connection to outpostd: {0}")]
    Io(#[from] std::io::Error),
    #[error("outpostd sent a reply this client cannot read: {0}")]
    Protocol(String),
    #[error("{0}")]
    Api(ApiError),
    /// Writing a streamed reply where it goes (a file) failed.
    #[error("{0}")]
    Output(std::io::Error),
}

#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .map_err(|source| ClientError::Unreachable { path: path.to_path_buf(), source })?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Self { stream })
    }

    pub fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        let frame = encode_frame(&RequestEnvelope { version: PROTOCOL_VERSION, request })
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.stream.write_all(&frame)?;
        self.reply()
    }

    /// Sends a request whose reply carries a byte stream (a backup): the
    /// reply that starts it, the bytes into `sink`, and the reply that ends
    /// it, which is returned. A reply that is not the start is returned
    /// as it is, with nothing written.
    pub fn call_streaming(&mut self, request: Request, sink: &mut dyn Write) -> Result<Response, ClientError> {
        let started = self.call(request)?;
        if !matches!(started, Response::BackupStarted(_)) {
            return Ok(started);
        }
        let mut chunk = Vec::with_capacity(STREAM_CHUNK_BYTES as usize);
        loop {
            let mut header = [0u8; 4];
            self.stream.read_exact(&mut header)?;
            let len = u32::from_be_bytes(header);
            if len == 0 {
                return self.reply();
            }
            if len > STREAM_CHUNK_BYTES {
                return Err(ClientError::Protocol(format!("a stream chunk of {len} bytes exceeds the limit")));
            }
            chunk.resize(len as usize, 0);
            self.stream.read_exact(&mut chunk)?;
            sink.write_all(&chunk).map_err(ClientError::Output)?;
        }
    }

    fn reply(&mut self) -> Result<Response, ClientError> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header)?;
        let len = u32::from_be_bytes(header);
        if len > MAX_RESPONSE_BYTES {
            return Err(ClientError::Protocol(format!("reply of {len} bytes exceeds the limit")));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        let envelope: ResponseEnvelope =
            serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        match envelope.outcome {
            Outcome::Ok(response) => Ok(response),
            Outcome::Error(err) => Err(ClientError::Api(err)),
        }
    }
}
