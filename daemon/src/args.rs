//! `outpostd`'s command line, in the library so that the package's man
//! page and shell completions are made from the same definition.

use std::path::PathBuf;

use clap::Parser;

use crate::config::Overrides;

/// The Outpost border-post daemon: keeps watchlists and incident logs durable
/// and serves the `outpost` command over a Unix socket.
///
/// Exit codes: 0 done; 1 the daemon failed while running; 65 (--restore)
/// the file is not a complete, undamaged backup this release can read;
/// 78 the configuration or a key is wrong, or the store is from a newer
/// release (the unit does not restart on 78).
#[derive(Debug, Parser)]
#[command(name = "outpostd", version)]
pub struct Args {
    /// Create the node key (mode 0600) unless it exists, print its peer id, and exit. Run once per post, before enrolment.
    #[arg(long, conflicts_with = "check_config")]
    pub init: bool,
    /// Check the configuration and exit: errors exit 78, missing key files are warnings.
    #[arg(long)]
    pub check_config: bool,
    /// Restore a backup written by `outpost backup` into the data directory, which must hold no store, and exit. Run it with the daemon stopped.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["init", "check_config"])]
    pub restore: Option<PathBuf>,
    /// The node key file (default: DATA_DIR/node.key, created on first start; the package keeps it in /etc/outpost/node.key).
    #[arg(long, value_name = "FILE")]
    pub node_key_file: Option<PathBuf>,
    /// TOML configuration file; flags override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the database lives (default: $STATE_DIRECTORY, else the user's data directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Control socket path (default: $RUNTIME_DIRECTORY/outpostd.sock, else the user's runtime directory).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// This post's name, recorded with every change (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// The issuing authority this post writes entries for, e.g. KAZ-BS.
    #[arg(long, value_name = "CODE")]
    pub authority: Option<String>,
    /// The post's UTC offset, e.g. +05:00.
    #[arg(long, value_name = "OFFSET", allow_hyphen_values = true)]
    pub utc_offset: Option<String>,
    /// Listen for peers on this multiaddr (repeatable), e.g. /ip4/0.0.0.0/tcp/7400.
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// Keep dialling this peer (repeatable), e.g. /ip4/10.20.0.1/tcp/7400.
    #[arg(long, value_name = "MULTIADDR")]
    pub peer: Vec<String>,
    /// The fleet's pre-shared key (libp2p swarm.key format); without one the post does not network.
    #[arg(long, value_name = "FILE")]
    pub psk_file: Option<PathBuf>,
    /// During a fleet key rotation, the next key: accepted on --listen-next and tried when a dial with the current key fails.
    #[arg(long, value_name = "FILE")]
    pub psk_next_file: Option<PathBuf>,
    /// Listen for peers speaking the next fleet key on this multiaddr (repeatable; default: each --listen address at the port after its own).
    #[arg(long, value_name = "MULTIADDR")]
    pub listen_next: Vec<String>,
    /// Do not look for peers on the LAN with mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// The fleet admin's public key (64 hex digits, from `outpost fleet init`): only members of the roster it signs replicate.
    #[arg(long, value_name = "HEX")]
    pub fleet_admin: Option<String>,
    /// Replicate with every holder of the fleet key, unsigned, with no roster (the behaviour before fleet trust).
    #[arg(long)]
    pub psk_only: bool,
    /// Log filter, e.g. `info` or `outpost_daemon=debug` (default: the config's log_level, else info).
    #[arg(long, env = "OUTPOST_LOG")]
    pub log: Option<String>,
}

impl Args {
    /// The values the command line sets, over the config file's.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            node_key_file: self.node_key_file.clone(),
            log_level: self.log.clone(),
            data_dir: self.data_dir.clone(),
            socket: self.socket.clone(),
            node_name: self.node_name.clone(),
            authority: self.authority.clone(),
            utc_offset: self.utc_offset.clone(),
            listen: self.listen.clone(),
            peers: self.peer.clone(),
            psk_file: self.psk_file.clone(),
            psk_next_file: self.psk_next_file.clone(),
            listen_next: self.listen_next.clone(),
            no_mdns: self.no_mdns,
            fleet_admin: self.fleet_admin.clone(),
            psk_only: self.psk_only,
        }
    }
}
