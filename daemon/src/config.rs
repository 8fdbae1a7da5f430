//! Configuration: a TOML file, overridden by command-line flags, validated
//! once into [`Config`]. A file named with `--config` must exist; nothing
//! falls back silently.

use std::path::{Path, PathBuf};

use outpost_model::api::{PROJECT_DIRS, SOCKET_FILE};
use outpost_model::date::parse_utc_offset;
use outpost_model::trust::PublicKey;

use crate::keys::{FLEET_KEY_CREDENTIAL, FLEET_KEY_NEXT_CREDENTIAL, KeySource, NODE_KEY_FILE};
use crate::roles::RoleGroups;
use crate::writer::QuarantineLimits;
use serde::Deserialize;
use thiserror::Error;
use time::UtcOffset;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field} {value:?} is invalid: {reason}")]
    Invalid { field: &'static str, value: String, reason: String },
    #[error("no issuing authority configured: set `authority = \"KAZ-BS\"` in the config file or pass --authority")]
    NoAuthority,
    #[error("cannot determine a {what}: set it in the config file or pass --{flag}")]
    NoDefault { what: &'static str, flag: &'static str },
}

/// The file as written by an admin. Every key is optional; flags win.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// This post's name, e.g. `kz-nurzhol`; recorded with every change.
    pub node_name: Option<String>,
    /// The issuing authority this post writes entries for, e.g. `KAZ-BS`.
    pub authority: Option<String>,
    /// The post's UTC offset, e.g. `+05:00`; incident times default to it.
    pub utc_offset: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    /// Octal permissions of the control socket; who may use `outpost`.
    pub socket_mode: Option<String>,
    /// Compact a document into a snapshot after this many stored changes.
    pub compact_after_changes: Option<u64>,
    /// The node key file: where `outpostd --init` writes it and, outside
    /// systemd, where the daemon reads it (default `DATA_DIR/node.key`,
    /// created on first start).
    pub node_key_file: Option<PathBuf>,
    /// The log filter, e.g. `info` or `outpost_daemon=debug`.
    pub log_level: Option<String>,
    /// Where the Prometheus endpoint listens, e.g. `127.0.0.1:9464`
    /// (loopback only); absent: no endpoint.
    pub metrics: Option<String>,
    pub network: Option<RawNetwork>,
    pub roles: Option<RawRoles>,
    pub credentials: Option<RawCredentials>,
    pub limits: Option<RawLimits>,
    pub health: Option<RawHealth>,
}

/// `[health]`: when `outpost status --check` fails.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// No peer heard from for longer than this (default `24h`).
    pub no_peer_for: Option<String>,
    /// Less free space than this on the data directory's file system, in
    /// MiB (default 1024).
    pub disk_min_free_mib: Option<u64>,
    /// The roster not confirmed the newest for longer than this (default
    /// `30d`).
    pub roster_max_age: Option<String>,
}

/// `[limits]`: what the daemon may hold in memory and in quarantine.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Documents kept in memory at once (default 64).
    pub loaded_documents: Option<usize>,
    /// Changes held for a roster, in all (default 10,000).
    pub quarantine_changes: Option<u64>,
    /// Their bytes, in MiB (default 64).
    pub quarantine_mib: Option<u64>,
    /// Changes held from any one peer (default 2,000).
    pub quarantine_changes_per_peer: Option<u64>,
    /// Their bytes, in MiB (default 16).
    pub quarantine_mib_per_peer: Option<u64>,
}

/// `[credentials]`: the names the unit's `LoadCredential=` gives the keys.
/// Under systemd (`$CREDENTIALS_DIRECTORY` set) the daemon reads its keys
/// only from there.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    /// Default `node.key`.
    pub node_key: Option<String>,
    /// Default `swarm.key`.
    pub fleet_key: Option<String>,
    /// Default `swarm-next.key`: the next fleet key, during a rotation.
    pub fleet_key_next: Option<String>,
}

/// `[roles]`: which Unix group grants which role on the control socket.
/// The daemon's own user and root are administrators.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoles {
    /// Search, show, list, incidents, status, peers (default `outpost`).
    pub officer: Option<String>,
    /// Add, import, amend, suspend, reactivate, close (default `outpost-supervisor`).
    pub supervisor: Option<String>,
    /// Read the audit log (default `outpost-audit`).
    pub auditor: Option<String>,
}

/// `[network]`: replication with other posts. Without `psk_file` the post
/// does not network at all; with it, only holders of the fleet key
/// connect, and the roster `fleet_admin` signs says which of them take
/// part.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/7400`.
    pub listen: Option<Vec<String>>,
    /// Peers to keep dialling, e.g. `/ip4/10.20.0.1/tcp/7400`.
    pub peers: Option<Vec<String>>,
    /// The fleet's pre-shared key in libp2p `swarm.key` format.
    pub psk_file: Option<PathBuf>,
    /// During a fleet key rotation, the next key: accepted on `listen_next`
    /// and tried when a dial with the current key fails. `psk_next`, the
    /// issue's name for it, is accepted too.
    #[serde(alias = "psk_next")]
    pub psk_next_file: Option<PathBuf>,
    /// Where connections speak the next key (default: each `listen`
    /// address at the port after its own, 7401 beside 7400).
    pub listen_next: Option<Vec<String>>,
    /// Find peers on the post's LAN by mDNS (default true).
    pub mdns: Option<bool>,
    /// The fleet admin's public key (64 hex digits): the roster it signs
    /// says who the members are.
    pub fleet_admin: Option<String>,
    /// Every holder of the fleet key is a full member, and changes carry
    /// no signatures: the behaviour before the roster.
    pub psk_only: Option<bool>,
}

/// Values given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub node_key_file: Option<PathBuf>,
    pub log_level: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub node_name: Option<String>,
    pub authority: Option<String>,
    pub utc_offset: Option<String>,
    /// `--listen`, replacing the file's list when given.
    pub listen: Vec<String>,
    /// `--peer`, replacing the file's list when given.
    pub peers: Vec<String>,
    pub psk_file: Option<PathBuf>,
    pub psk_next_file: Option<PathBuf>,
    /// `--listen-next`, replacing the file's list when given.
    pub listen_next: Vec<String>,
    pub no_mdns: bool,
    pub fleet_admin: Option<String>,
    pub psk_only: bool,
}

/// Whom the post replicates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// Members of the roster this admin key signs.
    Fleet(PublicKey),
    /// Every holder of the fleet key (`--psk-only`).
    PskOnly,
    /// No admin key configured: nobody.
    Nobody,
}

/// Where the post listens and whom it dials.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub listen: Vec<libp2p::Multiaddr>,
    pub peers: Vec<libp2p::Multiaddr>,
    /// The fleet key: the credential under systemd, else `psk_file`.
    pub psk: KeySource,
    /// The next fleet key, during a rotation.
    pub psk_next: Option<KeySource>,
    /// Where connections speak the next key; empty without one.
    pub listen_next: Vec<libp2p::Multiaddr>,
    pub mdns: bool,
    pub membership: Membership,
}

/// Where the node key comes from.
#[derive(Debug, Clone)]
pub struct NodeKeyConfig {
    pub source: KeySource,
    /// Only the default file outside systemd is created on first start.
    pub create_if_missing: bool,
}

/// The port `outpostd` listens on when `[network]` names none.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/7400";
/// Without `listen_next`, the next key listens on each `listen` address
/// at the port after its own (7401 beside the default 7400), so that a
/// rotation opens no interface the post did not listen on already.
fn next_ports(listen: &[libp2p::Multiaddr]) -> Result<Vec<libp2p::Multiaddr>, ConfigError> {
    listen
        .iter()
        .map(|addr| {
            addr.iter()
                .map(|p| match p {
                    libp2p::multiaddr::Protocol::Tcp(port) if port != 0 && port != u16::MAX => {
                        Ok(libp2p::multiaddr::Protocol::Tcp(port + 1))
                    }
                    libp2p::multiaddr::Protocol::Tcp(_) => Err(invalid(
                        "listen_next",
                        &addr.to_string(),
                        "cannot be derived from this listen address; set listen_next to fixed ports",
                    )),
                    other => Ok(other),
                })
                .collect()
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    pub authority: String,
    pub utc_offset: UtcOffset,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub compact_after_changes: u64,
    pub node_key: NodeKeyConfig,
    /// The log filter, if the file or a flag sets one.
    pub log_level: Option<String>,
    /// The metrics endpoint's address, if any (loopback).
    pub metrics: Option<std::net::SocketAddr>,
    /// `None`: no pre-shared key, so no networking.
    pub network: Option<NetworkConfig>,
    pub roles: RoleGroups,
    pub limits: Limits,
    pub health: HealthThresholds,
}

/// `[health]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthThresholds {
    pub no_peer_for: std::time::Duration,
    pub disk_min_free: u64,
    pub roster_max_age: std::time::Duration,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            no_peer_for: std::time::Duration::from_secs(24 * 3600),
            disk_min_free: 1024 << 20,
            roster_max_age: std::time::Duration::from_secs(30 * 86400),
        }
    }
}

/// A duration as an admin writes it: a whole number and `s`, `m`, `h` or
/// `d`, e.g. `90m`, `24h`, `30d`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return None,
    };
    let number: u64 = text[..text.len() - 1].parse().ok()?;
    number.checked_mul(unit).map(std::time::Duration::from_secs)
}

/// `[limits]`, validated.
#[derive(Debug, Clone)]
pub struct Limits {
    pub loaded_documents: usize,
    pub quarantine: QuarantineLimits,
}

/// Documents kept in memory when `[limits]` does not say.
pub const DEFAULT_LOADED_DOCUMENTS: usize = 64;

/// The process environment, injectable for tests.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn hostname(&self) -> Option<String>;
    fn project_dirs(&self) -> Option<directories::ProjectDirs>;
}

#[derive(Debug)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn hostname(&self) -> Option<String> {
        // gethostname(2), not /proc/sys/kernel/hostname: the unit's
        // ProcSubset=pid hides /proc/sys.
        nix::unistd::gethostname().ok().and_then(|name| name.into_string().ok())
    }
    fn project_dirs(&self) -> Option<directories::ProjectDirs> {
        let (qualifier, organisation, application) = PROJECT_DIRS;
        directories::ProjectDirs::from(qualifier, organisation, application)
    }
}

/// The default state directory: systemd's `STATE_DIRECTORY`, else the
/// user's data directory.
pub fn default_data_dir(env: &dyn Environment) -> Option<PathBuf> {
    if let Some(dirs) = env.var("STATE_DIRECTORY") {
        return dirs.split(':').next().map(PathBuf::from);
    }
    env.project_dirs().map(|p| p.data_local_dir().to_path_buf())
}

/// The default socket: systemd's `RUNTIME_DIRECTORY`, else the user's
/// runtime directory, else the data directory.
pub fn default_socket(env: &dyn Environment, data_dir: &Path) -> PathBuf {
    if let Some(dirs) = env.var("RUNTIME_DIRECTORY")
        && let Some(first) = dirs.split(':').next()
    {
        return Path::new(first).join(SOCKET_FILE);
    }
    env.project_dirs()
        .and_then(|p| p.runtime_dir().map(|d| d.join(SOCKET_FILE)))
        .unwrap_or_else(|| data_dir.join(SOCKET_FILE))
}

fn invalid(field: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { field, value: value.to_string(), reason: reason.to_string() }
}

fn check_node_name(name: &str) -> Result<String, ConfigError> {
    outpost_model::validate::node_name(name)
        .map_err(|_| invalid("node_name", name, "use 1-63 lower-case letters, digits and -"))
}

fn check_authority(authority: &str) -> Result<String, ConfigError> {
    outpost_model::validate::authority_code(authority)
        .map_err(|_| invalid("authority", authority, "use 2-32 upper-case letters, digits and -, e.g. KAZ-BS"))
}

/// A hostname made fit for a node name.
fn node_name_from_hostname(host: &str) -> String {
    let cleaned: String =
        host.trim().to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    cleaned.trim_matches('-').chars().take(63).collect()
}

/// The file named with `--config`, parsed; defaults when none is named.
fn read_raw(overrides: &Overrides) -> Result<RawConfig, ConfigError> {
    match &overrides.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            toml::from_str::<RawConfig>(&text)
                .map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })
        }
        None => Ok(RawConfig::default()),
    }
}

/// The node key file `outpostd --init` writes: the flag, else the file's
/// `node_key_file`, else `DATA_DIR/node.key`. Needs nothing else of the
/// config, so that a fresh install's key can be made before the post is
/// configured.
pub fn node_key_file(overrides: &Overrides, env: &dyn Environment) -> Result<PathBuf, ConfigError> {
    let raw = read_raw(overrides)?;
    if let Some(path) = overrides.node_key_file.clone().or(raw.node_key_file) {
        return Ok(path);
    }
    Ok(data_dir(overrides, raw.data_dir, env)?.join(NODE_KEY_FILE))
}

/// The metrics endpoint's address: loopback only, since what it shows
/// (peers, their names, traffic) is for the post's own monitoring agent;
/// a centre scrapes through that agent or a tunnel.
fn metrics_address(text: &str) -> Result<std::net::SocketAddr, ConfigError> {
    let addr: std::net::SocketAddr =
        text.parse().map_err(|_| invalid("metrics", text, "write an address and port such as \"127.0.0.1:9464\""))?;
    if !addr.ip().is_loopback() {
        return Err(invalid("metrics", text, "the metrics endpoint listens on loopback only (127.0.0.1 or [::1])"));
    }
    Ok(addr)
}

/// Where `outpostd --restore` writes: `--data-dir`, else the file's
/// `data_dir`, else systemd's `STATE_DIRECTORY`. Never the user's own
/// data directory, which for root at a shell is not the service's.
pub fn restore_dir(overrides: &Overrides, env: &dyn Environment) -> Result<PathBuf, ConfigError> {
    let raw = read_raw(overrides)?;
    overrides
        .data_dir
        .clone()
        .or(raw.data_dir)
        .or_else(|| env.var("STATE_DIRECTORY").and_then(|dirs| dirs.split(':').next().map(PathBuf::from)))
        .ok_or(ConfigError::NoDefault { what: "data directory to restore into", flag: "data-dir" })
}

/// The flag, else the file's `data_dir`, else the environment's default.
fn data_dir(overrides: &Overrides, from_file: Option<PathBuf>, env: &dyn Environment) -> Result<PathBuf, ConfigError> {
    overrides
        .data_dir
        .clone()
        .or(from_file)
        .or_else(|| default_data_dir(env))
        .ok_or(ConfigError::NoDefault { what: "data directory", flag: "data-dir" })
}

fn credential_name(field: &'static str, value: Option<String>, default: &str) -> Result<String, ConfigError> {
    match value {
        None => Ok(default.to_string()),
        Some(name)
            if !name.is_empty()
                && name != "."
                && name != ".."
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) =>
        {
            Ok(name)
        }
        Some(name) => Err(invalid(field, &name, "write a credential name as in LoadCredential=NAME:PATH")),
    }
}

pub fn load(overrides: &Overrides, env: &dyn Environment) -> Result<Config, ConfigError> {
    let raw = read_raw(overrides)?;
    let node_name = match overrides.node_name.clone().or(raw.node_name) {
        Some(name) => check_node_name(&name)?,
        None => {
            let host = env.hostname().map(|h| node_name_from_hostname(&h)).unwrap_or_default();
            if host.is_empty() {
                return Err(ConfigError::NoDefault { what: "node name", flag: "node-name" });
            }
            check_node_name(&host)?
        }
    };
    let authority = check_authority(&overrides.authority.clone().or(raw.authority).ok_or(ConfigError::NoAuthority)?)?;
    let utc_offset = match overrides.utc_offset.clone().or(raw.utc_offset) {
        Some(text) => parse_utc_offset(&text).map_err(|e| invalid("utc_offset", &text, &e.to_string()))?,
        None => UtcOffset::UTC,
    };
    let data_dir = data_dir(overrides, raw.data_dir, env)?;
    let socket = overrides.socket.clone().or(raw.socket).unwrap_or_else(|| default_socket(env, &data_dir));
    let socket_mode = match raw.socket_mode {
        Some(text) => u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| invalid("socket_mode", &text, "write octal permissions such as \"0660\""))?,
        None => 0o660,
    };
    let compact_after_changes = raw.compact_after_changes.unwrap_or(256);
    if compact_after_changes == 0 {
        return Err(invalid("compact_after_changes", "0", "must be at least 1"));
    }
    let credentials = raw.credentials.unwrap_or_default();
    let node_key_credential = credential_name("credentials.node_key", credentials.node_key, NODE_KEY_FILE)?;
    let fleet_key_credential = credential_name("credentials.fleet_key", credentials.fleet_key, FLEET_KEY_CREDENTIAL)?;
    let credentials_dir = env.var("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let configured_key = overrides.node_key_file.clone().or(raw.node_key_file);
    let node_key = match (&credentials_dir, configured_key) {
        (Some(directory), _) => NodeKeyConfig {
            source: KeySource::Credential { directory: directory.clone(), name: node_key_credential },
            create_if_missing: false,
        },
        (None, Some(path)) => NodeKeyConfig { source: KeySource::File(path), create_if_missing: false },
        (None, None) => {
            NodeKeyConfig { source: KeySource::File(data_dir.join(NODE_KEY_FILE)), create_if_missing: true }
        }
    };
    let log_level = overrides.log_level.clone().or(raw.log_level);
    let metrics = raw.metrics.as_deref().map(metrics_address).transpose()?;
    if let Some(filter) = &log_level {
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| {
            invalid("log_level", filter, &format!("{e}; write e.g. \"info\" or \"outpost_daemon=debug\""))
        })?;
    }
    let fleet_key_next_credential =
        credential_name("credentials.fleet_key_next", credentials.fleet_key_next, FLEET_KEY_NEXT_CREDENTIAL)?;
    let fleet_key = |psk_file: PathBuf, which: FleetKeyRole| match &credentials_dir {
        Some(directory) => KeySource::Credential {
            directory: directory.clone(),
            name: match which {
                FleetKeyRole::Current => fleet_key_credential.clone(),
                FleetKeyRole::Next => fleet_key_next_credential.clone(),
            },
        },
        None => KeySource::File(psk_file),
    };
    let network = network(overrides, raw.network.unwrap_or_default(), fleet_key)?;
    let roles = role_groups(raw.roles.unwrap_or_default())?;
    let limits = limits(raw.limits.unwrap_or_default())?;
    let health = health(raw.health.unwrap_or_default())?;
    Ok(Config {
        limits,
        health,
        node_key,
        log_level,
        metrics,
        node_name,
        authority,
        utc_offset,
        data_dir,
        socket,
        socket_mode,
        compact_after_changes,
        network,
        roles,
    })
}

fn health(raw: RawHealth) -> Result<HealthThresholds, ConfigError> {
    let defaults = HealthThresholds::default();
    let duration = |field: &'static str, value: Option<String>, default| match value {
        None => Ok(default),
        Some(text) => parse_duration(&text)
            .ok_or_else(|| invalid(field, &text, "write a whole number and s, m, h or d, e.g. \"24h\" or \"30d\"")),
    };
    let disk_min_free = match raw.disk_min_free_mib {
        None => defaults.disk_min_free,
        Some(mib) => mib
            .checked_mul(1 << 20)
            .ok_or_else(|| invalid("health.disk_min_free_mib", &mib.to_string(), "is too large"))?,
    };
    Ok(HealthThresholds {
        no_peer_for: duration("health.no_peer_for", raw.no_peer_for, defaults.no_peer_for)?,
        disk_min_free,
        roster_max_age: duration("health.roster_max_age", raw.roster_max_age, defaults.roster_max_age)?,
    })
}

fn limits(raw: RawLimits) -> Result<Limits, ConfigError> {
    let defaults = QuarantineLimits::default();
    let positive = |field: &'static str, value: Option<u64>, default: u64| match value {
        None => Ok(default),
        Some(0) => Err(invalid(field, "0", "must be at least 1")),
        Some(n) => Ok(n),
    };
    let mib = |field: &'static str, value: Option<u64>, default: u64| {
        positive(field, value, default / (1024 * 1024))?
            .checked_mul(1024 * 1024)
            .ok_or_else(|| invalid(field, &format!("{value:?}"), "is too large"))
    };
    let quarantine = QuarantineLimits {
        changes: positive("limits.quarantine_changes", raw.quarantine_changes, defaults.changes)?,
        bytes: mib("limits.quarantine_mib", raw.quarantine_mib, defaults.bytes)?,
        changes_per_peer: positive(
            "limits.quarantine_changes_per_peer",
            raw.quarantine_changes_per_peer,
            defaults.changes_per_peer,
        )?,
        bytes_per_peer: mib("limits.quarantine_mib_per_peer", raw.quarantine_mib_per_peer, defaults.bytes_per_peer)?,
    };
    if quarantine.changes_per_peer > quarantine.changes || quarantine.bytes_per_peer > quarantine.bytes {
        return Err(invalid(
            "limits.quarantine_changes_per_peer",
            &quarantine.changes_per_peer.to_string(),
            "a peer's share of the quarantine cannot exceed the whole (quarantine_changes, quarantine_mib)",
        ));
    }
    let loaded_documents = match raw.loaded_documents {
        None => DEFAULT_LOADED_DOCUMENTS,
        Some(n) if n >= 2 => n,
        Some(n) => return Err(invalid("limits.loaded_documents", &n.to_string(), "must be at least 2")),
    };
    Ok(Limits { loaded_documents, quarantine })
}

fn role_groups(raw: RawRoles) -> Result<RoleGroups, ConfigError> {
    let defaults = RoleGroups::default();
    let check = |field: &'static str, value: Option<String>, default: String| match value {
        None => Ok(default),
        Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) => {
            Ok(name)
        }
        Some(name) => Err(invalid(field, &name, "write a Unix group name")),
    };
    Ok(RoleGroups {
        officer: check("roles.officer", raw.officer, defaults.officer)?,
        supervisor: check("roles.supervisor", raw.supervisor, defaults.supervisor)?,
        auditor: check("roles.auditor", raw.auditor, defaults.auditor)?,
    })
}

fn multiaddrs(field: &'static str, list: &[String]) -> Result<Vec<libp2p::Multiaddr>, ConfigError> {
    list.iter()
        .map(|text| {
            text.parse::<libp2p::Multiaddr>()
                .map_err(|e| invalid(field, text, &format!("{e}; write a multiaddr such as /ip4/10.0.0.1/tcp/7400")))
        })
        .collect()
}

/// Which of the fleet keys a file or credential holds.
#[derive(Debug, Clone, Copy)]
enum FleetKeyRole {
    Current,
    Next,
}

fn tcp_ports(list: &[libp2p::Multiaddr]) -> Vec<u16> {
    list.iter().filter_map(crate::net::tcp_port).filter(|port| *port != 0).collect()
}

fn network(
    overrides: &Overrides,
    raw: RawNetwork,
    fleet_key: impl Fn(PathBuf, FleetKeyRole) -> KeySource,
) -> Result<Option<NetworkConfig>, ConfigError> {
    let listen = if overrides.listen.is_empty() { raw.listen.unwrap_or_default() } else { overrides.listen.clone() };
    let peers = if overrides.peers.is_empty() { raw.peers.unwrap_or_default() } else { overrides.peers.clone() };
    let listen = multiaddrs("listen", &listen)?;
    let peers = multiaddrs("peer", &peers)?;
    let psk_only = overrides.psk_only || raw.psk_only.unwrap_or(false);
    let admin = overrides.fleet_admin.clone().or(raw.fleet_admin);
    let Some(psk_file) = overrides.psk_file.clone().or(raw.psk_file) else {
        let without_key = if !listen.is_empty() || !peers.is_empty() {
            Some("listen addresses or peers are set")
        } else if admin.is_some() {
            Some("fleet_admin is set")
        } else if psk_only {
            Some("psk_only is set")
        } else if overrides.psk_next_file.is_some() || raw.psk_next_file.is_some() {
            Some("psk_next_file is set")
        } else {
            None
        };
        if let Some(what) = without_key {
            return Err(invalid(
                "psk_file",
                "",
                &format!("{what} but no pre-shared key: set [network] psk_file or pass --psk-file"),
            ));
        }
        return Ok(None);
    };
    let listen = if listen.is_empty() { multiaddrs("listen", &[DEFAULT_LISTEN.to_string()])? } else { listen };
    let listen_next = if overrides.listen_next.is_empty() {
        raw.listen_next.unwrap_or_default()
    } else {
        overrides.listen_next.clone()
    };
    let listen_next = multiaddrs("listen_next", &listen_next)?;
    let psk_next_file = overrides.psk_next_file.clone().or(raw.psk_next_file);
    let listen_next = match (&psk_next_file, listen_next.is_empty()) {
        (None, true) => Vec::new(),
        (None, false) => {
            return Err(invalid(
                "listen_next",
                &listen_next.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                "is set but psk_next_file is not: the next key's listener needs the next key",
            ));
        }
        (Some(_), true) => next_ports(&listen)?,
        (Some(_), false) => listen_next,
    };
    // The key a connection speaks is told by the port it arrives on, so
    // the next key's ports are fixed: two port-0 listeners could be given
    // the same number on different addresses.
    if let Some(addr) = listen_next.iter().find(|addr| addr.iter().any(|p| p == libp2p::multiaddr::Protocol::Tcp(0))) {
        return Err(invalid("listen_next", &addr.to_string(), "needs a fixed port, not 0"));
    }
    if let Some(port) = tcp_ports(&listen_next).into_iter().find(|port| tcp_ports(&listen).contains(port)) {
        return Err(invalid(
            "listen_next",
            &port.to_string(),
            "is also a port of listen; each key needs its own port, since a connection's key is told by the port it arrives on",
        ));
    }
    let mdns = !overrides.no_mdns && raw.mdns.unwrap_or(true);
    let membership = match (admin, psk_only) {
        (Some(text), false) => {
            Membership::Fleet(PublicKey::parse_hex(&text).map_err(|e| invalid("fleet_admin", &text, &e.to_string()))?)
        }
        (Some(text), true) => {
            return Err(invalid("fleet_admin", &text, "is set together with psk_only; choose one"));
        }
        (None, true) => Membership::PskOnly,
        (None, false) => Membership::Nobody,
    };
    Ok(Some(NetworkConfig {
        listen,
        peers,
        psk: fleet_key(psk_file, FleetKeyRole::Current),
        psk_next: psk_next_file.map(|path| fleet_key(path, FleetKeyRole::Next)),
        listen_next,
        mdns,
        membership,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(Default)]
    pub(crate) struct FakeEnv(pub(crate) Vec<(&'static str, &'static str)>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        }
        fn hostname(&self) -> Option<String> {
            Some("Post_Nur-Zhol.local\n".into())
        }
        fn project_dirs(&self) -> Option<directories::ProjectDirs> {
            None
        }
    }

    pub(crate) fn with_file(text: &str) -> (tempfile::TempDir, Overrides) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outpostd.toml");
        std::fs::write(&path, text).unwrap();
        (dir, Overrides { config: Some(path), ..Default::default() })
    }

    #[test]
    fn systemd_directories_are_the_defaults() {
        let env = FakeEnv(vec![("STATE_DIRECTORY", "/var/lib/outpost"), ("RUNTIME_DIRECTORY", "/run/outpost")]);
        let config = load(&Overrides { authority: Some("KAZ-BS".into()), ..Default::default() }, &env).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/outpost"));
        assert_eq!(config.socket, PathBuf::from("/run/outpost/outpostd.sock"));
        assert_eq!(config.node_name, "post-nur-zhol-local");
        assert_eq!(config.socket_mode, 0o660);
    }

    #[test]
    fn flags_override_the_file() {
        let (_dir, mut overrides) = with_file("authority = \"KGZ-GPS\"\nnode_name = \"kg-a\"\ndata_dir = \"/srv/a\"\n");
        overrides.data_dir = Some("/srv/b".into());
        let config = load(&overrides, &FakeEnv::default()).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/srv/b"));
        assert_eq!(config.authority, "KGZ-GPS");
        assert_eq!(config.socket, PathBuf::from("/srv/b/outpostd.sock"));
    }

    #[test]
    fn the_example_config_loads_with_an_admin_key_filled_in() {
        let example = include_str!("../../systemd/outpostd.toml.example");
        let admin = outpost_model::trust::Signer::from_secret([5; 32]).public().to_hex();
        let filled = example.replace(
            "# fleet_admin = \"<the 64 hex digits outpost fleet init printed>\"",
            &format!("fleet_admin = \"{admin}\""),
        );
        assert_ne!(filled, example, "the example names fleet_admin");
        // Its commented settings are where uncommenting them works.
        let filled = filled.replace("# metrics = ", "metrics = ");
        let (_dir, overrides) = with_file(&filled);
        let env = FakeEnv(vec![("STATE_DIRECTORY", "/var/lib/outpost"), ("RUNTIME_DIRECTORY", "/run/outpost")]);
        let config = load(&overrides, &env).unwrap();
        let network = config.network.unwrap();
        assert!(matches!(network.membership, Membership::Fleet(_)));
        assert_eq!(config.roles.supervisor, "outpost-supervisor");
        assert_eq!(config.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(config.limits.loaded_documents, DEFAULT_LOADED_DOCUMENTS);
    }

    #[test]
    fn trust_settings_without_a_fleet_key_or_together_are_errors() {
        let admin = outpost_model::trust::Signer::from_secret([5; 32]).public().to_hex();
        let (_dir, overrides) = with_file(&format!(
            "authority = \"KAZ-BS\"\ndata_dir = \"/srv/a\"\n[network]\nfleet_admin = \"{admin}\"\n"
        ));
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("fleet_admin is set but no pre-shared key"), "{err}");
        let (_dir, overrides) =
            with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv/a\"\n[network]\npsk_only = true\n");
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("psk_only is set but no pre-shared key"), "{err}");
        let both = format!(
            "authority = \"KAZ-BS\"\ndata_dir = \"/srv/a\"\n[network]\npsk_file = \"/k\"\nfleet_admin = \"{admin}\"\npsk_only = true\n"
        );
        let (_dir, overrides) = with_file(&both);
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("is set together with psk_only"), "{err}");
        let (_dir, overrides) = with_file(
            "authority = \"KAZ-BS\"\ndata_dir = \"/srv/a\"\n[network]\npsk_file = \"/k\"\nfleet_admin = \"zz\"\n",
        );
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("fleet_admin"), "{err}");
    }

    #[test]
    fn the_next_fleet_key_needs_its_own_port_and_comes_as_a_credential_under_systemd() {
        let base = "authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n[network]\nlisten = [\"/ip4/0.0.0.0/tcp/7400\"]\n";
        let (_dir, overrides) = with_file(&format!("{base}psk_file = \"/k\"\npsk_next_file = \"/k2\"\n"));
        let network = load(&overrides, &FakeEnv::default()).unwrap().network.unwrap();
        assert_eq!(network.psk_next, Some(KeySource::File("/k2".into())));
        let (_dir, aliased) = with_file(&format!("{base}psk_file = \"/k\"\npsk_next = \"/k2\"\n"));
        let network = load(&aliased, &FakeEnv::default()).unwrap().network.unwrap();
        assert_eq!(network.psk_next, Some(KeySource::File("/k2".into())), "psk_next is the same setting");
        assert_eq!(network.listen_next, vec!["/ip4/0.0.0.0/tcp/7401".parse::<libp2p::Multiaddr>().unwrap()]);
        let systemd = FakeEnv(vec![("CREDENTIALS_DIRECTORY", "/run/credentials/outpostd.service")]);
        let network = load(&overrides, &systemd).unwrap().network.unwrap();
        assert_eq!(
            network.psk_next,
            Some(KeySource::Credential {
                directory: "/run/credentials/outpostd.service".into(),
                name: FLEET_KEY_NEXT_CREDENTIAL.into()
            })
        );

        let (_dir, overrides) = with_file(&format!(
            "{base}psk_file = \"/k\"\npsk_next_file = \"/k2\"\nlisten_next = [\"/ip4/10.0.0.1/tcp/7400\"]\n"
        ));
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("listen_next") && err.contains("7400") && err.contains("its own port"), "{err}");
        let (_dir, overrides) =
            with_file(&format!("{base}psk_file = \"/k\"\nlisten_next = [\"/ip4/0.0.0.0/tcp/7401\"]\n"));
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("listen_next") && err.contains("psk_next_file is not"), "{err}");
        let (_dir, overrides) = with_file(&format!(
            "{base}psk_file = \"/k\"\npsk_next_file = \"/k2\"\nlisten_next = [\"/ip4/10.0.0.1/tcp/0\"]\n"
        ));
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("needs a fixed port"), "{err}");
        let pinned = "authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n[network]\nlisten = [\"/ip4/10.8.0.2/tcp/7500\"]\n";
        let (_dir, overrides) = with_file(&format!("{pinned}psk_file = \"/k\"\npsk_next_file = \"/k2\"\n"));
        let network = load(&overrides, &FakeEnv::default()).unwrap().network.unwrap();
        assert_eq!(
            network.listen_next,
            vec!["/ip4/10.8.0.2/tcp/7501".parse::<libp2p::Multiaddr>().unwrap()],
            "the next key listens where the post already does, at the next port"
        );
        let (_dir, overrides) =
            with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n[network]\npsk_next_file = \"/k2\"\n");
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("psk_next_file is set but no pre-shared key"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key_and_its_line() {
        let (_dir, overrides) = with_file("authority = \"KAZ-BS\"\n\n[network]\nmdns = true\nmnds = false\n");
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("unknown field `mnds`"), "{err}");
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("outpostd.toml"), "{err}");
    }

    #[test]
    fn health_thresholds_parse_and_bad_ones_are_named() {
        assert_eq!(parse_duration("90m"), Some(std::time::Duration::from_secs(5400)));
        assert_eq!(parse_duration("30d"), Some(std::time::Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("0s"), Some(std::time::Duration::ZERO));
        for bad in ["", "h", "24", "1.5h", "-1h", "24 hours", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        let (_dir, overrides) = with_file(
            "authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n[health]\nno_peer_for = \"6h\"\ndisk_min_free_mib = 100\n",
        );
        let health = load(&overrides, &FakeEnv::default()).unwrap().health;
        assert_eq!(health.no_peer_for, std::time::Duration::from_secs(6 * 3600));
        assert_eq!(health.disk_min_free, 100 << 20);
        assert_eq!(health.roster_max_age, HealthThresholds::default().roster_max_age);
        let (_dir, overrides) =
            with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n[health]\nroster_max_age = \"a month\"\n");
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("health.roster_max_age") && err.contains("a month"), "{err}");
    }

    #[test]
    fn limits_default_and_are_checked() {
        let (_dir, overrides) = with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n");
        let limits = load(&overrides, &FakeEnv::default()).unwrap().limits;
        assert_eq!(limits.loaded_documents, DEFAULT_LOADED_DOCUMENTS);
        assert_eq!(limits.quarantine, QuarantineLimits::default());
        let (_dir, overrides) = with_file(
            "authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n[limits]\nloaded_documents = 256\nquarantine_mib = 128\n",
        );
        let limits = load(&overrides, &FakeEnv::default()).unwrap().limits;
        assert_eq!((limits.loaded_documents, limits.quarantine.bytes), (256, 128 << 20));
        for (bad, named) in [
            ("quarantine_changes = 0", "limits.quarantine_changes"),
            ("quarantine_changes = 10\nquarantine_changes_per_peer = 20", "limits.quarantine_changes_per_peer"),
            ("loaded_documents = 1", "limits.loaded_documents"),
            ("quarantine_mib = 18446744073709551615", "limits.quarantine_mib"),
            ("cache = 5", "unknown field `cache`"),
        ] {
            let (_dir, overrides) =
                with_file(&format!("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n[limits]\n{bad}\n"));
            let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
            assert!(err.contains(named), "{bad}: {err}");
        }
    }

    #[test]
    fn the_metrics_endpoint_is_off_by_default_and_loopback_only() {
        let (_dir, overrides) = with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n");
        assert_eq!(load(&overrides, &FakeEnv::default()).unwrap().metrics, None);
        let (_dir, overrides) =
            with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\nmetrics = \"127.0.0.1:9464\"\n");
        assert_eq!(load(&overrides, &FakeEnv::default()).unwrap().metrics, Some("127.0.0.1:9464".parse().unwrap()));
        for bad in ["0.0.0.0:9464", "10.0.0.1:9464", "localhost"] {
            let (_dir, overrides) =
                with_file(&format!("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\nmetrics = \"{bad}\"\n"));
            let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
            assert!(err.contains("metrics"), "{bad}: {err}");
        }
    }

    #[test]
    fn under_systemd_keys_come_from_credentials_only() {
        let (_dir, overrides) = with_file(
            "authority = \"KAZ-BS\"\ndata_dir = \"/srv/a\"\nnode_key_file = \"/etc/outpost/node.key\"\n[credentials]\nfleet_key = \"fleet.key\"\n[network]\npsk_file = \"/etc/outpost/swarm.key\"\n",
        );
        let env = FakeEnv(vec![
            ("STATE_DIRECTORY", "/var/lib/outpost"),
            ("CREDENTIALS_DIRECTORY", "/run/credentials/outpostd.service"),
        ]);
        let config = load(&overrides, &env).unwrap();
        let credentials = PathBuf::from("/run/credentials/outpostd.service");
        assert_eq!(
            config.node_key.source,
            KeySource::Credential { directory: credentials.clone(), name: "node.key".into() }
        );
        assert!(!config.node_key.create_if_missing);
        assert_eq!(
            config.network.unwrap().psk,
            KeySource::Credential { directory: credentials, name: "fleet.key".into() }
        );
        // Outside systemd: the files, and only the default one is created.
        let config = load(&overrides, &FakeEnv::default()).unwrap();
        assert_eq!(config.node_key.source, KeySource::File("/etc/outpost/node.key".into()));
        assert!(!config.node_key.create_if_missing);
        assert_eq!(config.network.unwrap().psk, KeySource::File("/etc/outpost/swarm.key".into()));
        let config = load(
            &Overrides { authority: Some("KAZ-BS".into()), ..Default::default() },
            &FakeEnv(vec![("STATE_DIRECTORY", "/srv/a")]),
        )
        .unwrap();
        assert_eq!(config.node_key.source, KeySource::File("/srv/a/node.key".into()));
        assert!(config.node_key.create_if_missing);
        let (_dir, overrides) = with_file("authority = \"KAZ-BS\"\n[credentials]\nnode_key = \"../x\"\n");
        let err = load(&overrides, &env).unwrap_err().to_string();
        assert!(err.contains("credentials.node_key"), "{err}");
    }

    #[test]
    fn init_needs_only_the_key_path_and_log_levels_are_checked() {
        let (_dir, overrides) = with_file("node_key_file = \"/etc/outpost/node.key\"\n");
        assert_eq!(node_key_file(&overrides, &FakeEnv::default()).unwrap(), PathBuf::from("/etc/outpost/node.key"));
        let (_dir, overrides) = with_file("data_dir = \"/srv/a\"\n");
        assert_eq!(node_key_file(&overrides, &FakeEnv::default()).unwrap(), PathBuf::from("/srv/a/node.key"));
        let (_dir, overrides) =
            with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\nlog_level = \"outpost_daemon=loud\"\n");
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("log_level"), "{err}");
        let (_dir, overrides) =
            with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\nlog_level = \"outpost_daemon=debug,info\"\n");
        assert_eq!(
            load(&overrides, &FakeEnv::default()).unwrap().log_level.as_deref(),
            Some("outpost_daemon=debug,info")
        );
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let overrides = Overrides { config: Some("/nonexistent/outpostd.toml".into()), ..Default::default() };
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("cannot read config file /nonexistent/outpostd.toml"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let (_dir, overrides) = with_file("authority = \"kaz\"\n");
        assert!(load(&overrides, &FakeEnv::default()).unwrap_err().to_string().contains("authority \"kaz\""));
        let (_dir, overrides) = with_file("authority = \"KAZ-BS\"\nutc_offset = \"5\"\n");
        assert!(load(&overrides, &FakeEnv::default()).unwrap_err().to_string().contains("utc_offset"));
        let (_dir, overrides) = with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\nsocket_mode = \"rw\"\n");
        assert!(load(&overrides, &FakeEnv::default()).unwrap_err().to_string().contains("socket_mode"));
        let err = load(&Overrides::default(), &FakeEnv::default()).unwrap_err();
        assert!(matches!(err, ConfigError::NoAuthority));
    }

    #[test]
    fn networking_needs_a_key_and_names_bad_addresses() {
        let (_dir, overrides) = with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n");
        assert!(load(&overrides, &FakeEnv::default()).unwrap().network.is_none());
        let (_dir, overrides) =
            with_file("authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n[network]\npeers = [\"/ip4/10.0.0.1/tcp/7400\"]\n");
        assert!(load(&overrides, &FakeEnv::default()).unwrap_err().to_string().contains("no pre-shared key"));
        let (_dir, mut overrides) = with_file(
            "authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\n[network]\npsk_file = \"/etc/outpost/swarm.key\"\nmdns = true\n",
        );
        let network = load(&overrides, &FakeEnv::default()).unwrap().network.unwrap();
        assert_eq!(network.listen[0].to_string(), DEFAULT_LISTEN);
        assert!(network.mdns);
        overrides.no_mdns = true;
        overrides.peers = vec!["10.0.0.1:7400".into()];
        let err = load(&overrides, &FakeEnv::default()).unwrap_err().to_string();
        assert!(err.contains("peer \"10.0.0.1:7400\""), "{err}");
        let (_dir, overrides) = with_file("authority = \"KAZ-BS\"\n[network]\npsk = \"x\"\n");
        assert!(load(&overrides, &FakeEnv::default()).unwrap_err().to_string().contains("unknown field `psk`"));
    }
}
