//! Where to find the daemon's socket: `--socket`, then `OUTPOST_SOCKET`,
//! then the system socket if a system daemon runs, then the user's.

use std::path::PathBuf;

use outpost_model::api::{PROJECT_DIRS, SOCKET_FILE};

/// The socket the systemd unit's `RuntimeDirectory=outpost` provides.
pub const SYSTEM_SOCKET: &str = "/run/outpost/outpostd.sock";

pub fn default_socket() -> PathBuf {
    let system = PathBuf::from(SYSTEM_SOCKET);
    if system.exists() {
        return system;
    }
    // Mirrors outpostd's own default when it runs outside systemd.
    let (qualifier, organisation, application) = PROJECT_DIRS;
    match directories::ProjectDirs::from(qualifier, organisation, application) {
        Some(dirs) => dirs.runtime_dir().unwrap_or_else(|| dirs.data_local_dir()).join(SOCKET_FILE),
        None => system,
    }
}

pub fn resolve(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("OUTPOST_SOCKET").filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(default_socket)
}
