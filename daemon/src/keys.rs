//! The node key and the fleet key: where they come from, and how they are
//! read and made.
//!
//! Under systemd both arrive as credentials: the unit copies them with
//! `LoadCredential=` from files only root reads into a directory only the
//! service sees (`$CREDENTIALS_DIRECTORY`), and the daemon reads them
//! there and nowhere else. Outside systemd (by hand, in tests, in the demo)
//! the daemon reads the configured files, and creates the node key on first
//! start when none is configured.

use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use libp2p::pnet::PreSharedKey;
use thiserror::Error;

/// The node key's file name: in the data directory by default, in
/// `/etc/outpost/` for the packaged unit, and the credential's default name.
pub const NODE_KEY_FILE: &str = "node.key";
/// The fleet key's default credential name.
pub const FLEET_KEY_CREDENTIAL: &str = "swarm.key";
/// The next fleet key's credential, during a rotation.
pub const FLEET_KEY_NEXT_CREDENTIAL: &str = "swarm-next.key";

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("the fleet key {from}: {detail}")]
    Psk { from: KeySource, detail: String },
    #[error("the node key {from}: {detail}")]
    NodeKey { from: KeySource, detail: String },
}

/// Where a key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/NAME`.
    Credential { directory: PathBuf, name: String },
    /// A file named in the config or on the command line.
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Credential { directory, name } => {
                write!(f, "(systemd credential {name:?} in {})", directory.display())
            }
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

impl KeySource {
    pub fn path(&self) -> PathBuf {
        match self {
            Self::Credential { directory, name } => directory.join(name),
            Self::File(path) => path.clone(),
        }
    }

    /// What to do when the key is missing, for the error.
    fn remedy(&self, what: Missing) -> String {
        match (self, what) {
            (Self::Credential { name, .. }, Missing::NodeKey) => format!(
                "it is missing: create the key with `outpostd --init` and pass it with LoadCredential={name}:/etc/outpost/node.key"
            ),
            (Self::Credential { name, .. }, Missing::FleetKey) => format!(
                "it is missing: copy the fleet's swarm.key to /etc/outpost/swarm.key (mode 0600) and pass it with LoadCredential={name}:/etc/outpost/swarm.key"
            ),
            (Self::File(_), Missing::NodeKey) => "it is missing: create it with `outpostd --init`".to_string(),
            (Self::File(_), Missing::FleetKey) => {
                "it is missing: copy the fleet's swarm.key there (mode 0600, from `outpost fleet init`)".to_string()
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Missing {
    NodeKey,
    FleetKey,
}

/// A key file as found: what `--check-config` reports and what reading
/// a key refuses.
#[derive(Debug)]
pub enum KeyFile {
    Missing,
    /// Group or others may read it: officers are in the service's group
    /// and must hold neither key.
    Readable {
        mode: u32,
    },
    Private(Vec<u8>),
    Unreadable(std::io::Error),
}

/// Opens `path` once and checks the mode of what was opened, so that the
/// file read is the file checked.
pub fn inspect(path: &Path) -> KeyFile {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return KeyFile::Missing,
        Err(err) => return KeyFile::Unreadable(err),
    };
    let mode = match file.metadata() {
        Ok(meta) => meta.permissions().mode() & 0o777,
        Err(err) => return KeyFile::Unreadable(err),
    };
    if mode & 0o077 != 0 {
        return KeyFile::Readable { mode };
    }
    let mut bytes = Vec::new();
    match file.read_to_end(&mut bytes) {
        Ok(_) => KeyFile::Private(bytes),
        Err(err) => KeyFile::Unreadable(err),
    }
}

fn readable_by_others(mode: u32) -> String {
    format!("mode {mode:o} lets others read it; it must be readable by its owner only (chmod 600)")
}

/// Reads a fleet key in the `swarm.key` format: `/key/swarm/psk/1.0.0/`,
/// `/base16/`, 64 hex digits.
pub fn read_psk(source: &KeySource) -> Result<PreSharedKey, KeyError> {
    let bad = |detail: String| KeyError::Psk { from: source.clone(), detail };
    let bytes = match inspect(&source.path()) {
        KeyFile::Private(bytes) => bytes,
        KeyFile::Missing => return Err(bad(source.remedy(Missing::FleetKey))),
        KeyFile::Readable { mode } => return Err(bad(readable_by_others(mode))),
        KeyFile::Unreadable(err) => return Err(bad(err.to_string())),
    };
    let text = String::from_utf8(bytes).map_err(|_| bad("is not text".into()))?;
    text.trim().parse::<PreSharedKey>().map_err(|e| {
        bad(format!("{e}; expected the libp2p swarm.key format: /key/swarm/psk/1.0.0/, /base16/, 64 hex digits"))
    })
}

/// Reads a fleet key file; for tools and test peers.
pub fn read_psk_file(path: &Path) -> Result<PreSharedKey, KeyError> {
    read_psk(&KeySource::File(path.to_path_buf()))
}

/// Reads the node's key. `create_if_missing` only for the default file
/// outside systemd: a configured key or a credential that is missing is a
/// mistake to name, not to paper over with a new identity the fleet has
/// never enrolled.
pub fn node_key(source: &KeySource, create_if_missing: bool) -> Result<Keypair, KeyError> {
    let bad = |detail: String| KeyError::NodeKey { from: source.clone(), detail };
    let path = source.path();
    match inspect(&path) {
        KeyFile::Private(bytes) => {
            Keypair::from_protobuf_encoding(&bytes).map_err(|e| bad(format!("does not decode: {e}")))
        }
        KeyFile::Missing if create_if_missing => {
            let (key, _) = create_node_key(&path).map_err(|e| bad(e.to_string()))?;
            tracing::info!(path = %path.display(), peer_id = %key.public().to_peer_id(), "created the node key");
            Ok(key)
        }
        KeyFile::Missing => Err(bad(source.remedy(Missing::NodeKey))),
        KeyFile::Readable { mode } => Err(bad(readable_by_others(mode))),
        KeyFile::Unreadable(err) => Err(bad(err.to_string())),
    }
}

/// Writes a new node key to `path` (mode 0600, never over an existing
/// file); returns it, and whether it was created (false: one was there).
pub fn create_node_key(path: &Path) -> std::io::Result<(Keypair, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let key = Keypair::generate_ed25519();
    let bytes = key.to_protobuf_encoding().map_err(std::io::Error::other)?;
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let exists_but = |why: String| std::io::Error::other(format!("{} exists but {why}", path.display()));
            let existing = match inspect(path) {
                KeyFile::Private(bytes) => bytes,
                KeyFile::Readable { mode } => return Err(exists_but(readable_by_others(mode))),
                KeyFile::Missing => return Err(exists_but("vanished while read".into())),
                KeyFile::Unreadable(err) => return Err(err),
            };
            let key = Keypair::from_protobuf_encoding(&existing)
                .map_err(|e| exists_but(format!("does not decode: {e}; move it away and run --init again")))?;
            return Ok((key, false));
        }
        Err(err) => return Err(err),
    };
    std::io::Write::write_all(&mut file, &bytes)?;
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok((key, true))
}

/// The node key as the model signs with it: the same ed25519 key libp2p
/// authenticates the node with, so a peer id is the key that signs.
pub fn signer_of(key: &Keypair, source: &KeySource) -> Result<outpost_model::trust::Signer, KeyError> {
    let ed25519 = key
        .clone()
        .try_into_ed25519()
        .map_err(|e| KeyError::NodeKey { from: source.clone(), detail: format!("not an ed25519 key: {e}") })?;
    let secret = ed25519.secret();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(secret.as_ref());
    Ok(outpost_model::trust::Signer::from_secret(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_fleet_key_others_can_read_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swarm.key");
        std::fs::write(&path, format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", "ab".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_psk_file(&path).unwrap_err().to_string();
        assert!(err.contains("swarm.key") && err.contains("mode 640") && err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_psk_file(&path).is_ok());
    }

    #[test]
    fn a_missing_credential_names_the_unit_setting_and_is_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let source = KeySource::Credential { directory: dir.path().to_path_buf(), name: "node.key".into() };
        let err = node_key(&source, false).unwrap_err().to_string();
        assert!(err.contains("systemd credential \"node.key\"") && err.contains("outpostd --init"), "{err}");
        assert!(err.contains("LoadCredential=node.key:/etc/outpost/node.key"), "{err}");
        assert!(!dir.path().join("node.key").exists());
        let fleet = KeySource::Credential { directory: dir.path().to_path_buf(), name: "swarm.key".into() };
        let err = read_psk(&fleet).unwrap_err().to_string();
        assert!(err.contains("LoadCredential=swarm.key:/etc/outpost/swarm.key"), "{err}");
    }

    #[test]
    fn created_node_keys_are_private_kept_and_read_by_the_model_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let (key, created) = create_node_key(&path).unwrap();
        assert!(created);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, created) = create_node_key(&path).unwrap();
        assert!(!created, "an existing key is kept");
        assert_eq!(again.public(), key.public());
        let read = node_key(&KeySource::File(path.clone()), false).unwrap();
        assert_eq!(read.public(), key.public());
        // The CLI reads the same file with the model alone.
        let signer = outpost_model::trust::keys::parse_node_key_file(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(signer.public().peer_id(), key.public().to_peer_id().to_string());
        assert_eq!(signer.public(), signer_of(&key, &KeySource::File(path.clone())).unwrap().public());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = create_node_key(&path).unwrap_err().to_string();
        assert!(err.contains("exists but mode 644"), "{err}");
    }
}
