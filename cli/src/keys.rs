//! Key files the CLI writes and reads: the fleet key (libp2p `swarm.key`)
//! and the fleet admin key. Both are mode 0600 and never overwritten.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use outpost_model::trust::Signer;
use outpost_model::trust::keys::{parse_secret_file, secret_file};
use rand::Rng;

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path} exists already; it is never overwritten (a replaced key cuts off whoever holds the old one)")]
    Exists { path: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} has mode {mode:o}, which lets others read it; chmod 600 {path}")]
    Readable { path: String, mode: u32 },
    #[error("{path}: {detail}")]
    Bad { path: String, detail: String },
}

/// Writes `text` to a new file readable by its owner only.
fn write_new(path: &Path, text: &str) -> Result<(), KeyFileError> {
    let shown = path.display().to_string();
    let failed = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists { path: shown.clone() }
        } else {
            KeyFileError::Write { path: shown.clone(), source }
        }
    };
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(failed)?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(failed)
}

/// A new fleet key in the libp2p `swarm.key` format.
pub fn write_fleet_key(path: &Path) -> Result<(), KeyFileError> {
    let mut key = [0u8; 32];
    rand::rng().fill(&mut key);
    write_new(path, &format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", hex::encode(key)))
}

/// A new admin key, written to `path`.
pub fn write_admin_key(path: &Path) -> Result<Signer, KeyFileError> {
    let mut secret = [0u8; 32];
    rand::rng().fill(&mut secret);
    let signer = Signer::from_secret(secret);
    write_new(path, &secret_file(&signer))?;
    Ok(signer)
}

/// The admin key in `path`; refused if others can read it.
pub fn read_admin_key(path: &Path) -> Result<Signer, KeyFileError> {
    let shown = path.display().to_string();
    let read = |source| KeyFileError::Read { path: shown.clone(), source };
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Readable { path: shown, mode });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let secret = parse_secret_file(&text).map_err(|e| KeyFileError::Bad { path: shown, detail: e.to_string() })?;
    Ok(Signer::from_secret(secret))
}
