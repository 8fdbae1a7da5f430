//! `outpostd`: parses flags, sets up logging, runs the daemon until SIGTERM;
//! or, with `--init`, `--check-config` or `--restore`, makes the node key,
//! checks the config or restores a backup, and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use outpost_daemon::config::{self, Overrides, ProcessEnvironment};

/// The Outpost border-post daemon: keeps watchlists and incident logs durable
/// and serves the `outpost` command over a Unix socket.
///
/// Exit codes: 0 done; 1 the daemon failed while running; 65 (--restore)
/// the file is not a complete, undamaged backup this release can read;
/// 78 the configuration or a key is wrong, or the store is from a newer
/// release (the unit does not restart on 78).
#[derive(Debug, Parser)]
#[command(name = "outpostd", version)]
struct Args {
    /// Create the node key (mode 0600) unless it exists, print its peer id, and exit. Run once per post, before enrolment.
    #[arg(long, conflicts_with = "check_config")]
    init: bool,
    /// Check the configuration and exit: errors exit 78, missing key files are warnings.
    #[arg(long)]
    check_config: bool,
    /// Restore a backup written by `outpost backup` into the data directory, which must hold no store, and exit. Run it with the daemon stopped.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["init", "check_config"])]
    restore: Option<PathBuf>,
    /// The node key file (default: DATA_DIR/node.key, created on first start; the package keeps it in /etc/outpost/node.key).
    #[arg(long, value_name = "FILE")]
    node_key_file: Option<PathBuf>,
    /// TOML configuration file; flags override its values.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the database lives (default: $STATE_DIRECTORY, else the user's data directory).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Control socket path (default: $RUNTIME_DIRECTORY/outpostd.sock, else the user's runtime directory).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// This post's name, recorded with every change (default: the hostname).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// The issuing authority this post writes entries for, e.g. KAZ-BS.
    #[arg(long, value_name = "CODE")]
    authority: Option<String>,
    /// The post's UTC offset, e.g. +05:00.
    #[arg(long, value_name = "OFFSET", allow_hyphen_values = true)]
    utc_offset: Option<String>,
    /// Listen for peers on this multiaddr (repeatable), e.g. /ip4/0.0.0.0/tcp/7400.
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Keep dialling this peer (repeatable), e.g. /ip4/10.20.0.1/tcp/7400.
    #[arg(long, value_name = "MULTIADDR")]
    peer: Vec<String>,
    /// The fleet's pre-shared key (libp2p swarm.key format); without one the post does not network.
    #[arg(long, value_name = "FILE")]
    psk_file: Option<PathBuf>,
    /// During a fleet key rotation, the next key: accepted on --listen-next and tried when a dial with the current key fails.
    #[arg(long, value_name = "FILE")]
    psk_next_file: Option<PathBuf>,
    /// Listen for peers speaking the next fleet key on this multiaddr (repeatable; default /ip4/0.0.0.0/tcp/7401).
    #[arg(long, value_name = "MULTIADDR")]
    listen_next: Vec<String>,
    /// Do not look for peers on the LAN with mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// The fleet admin's public key (64 hex digits, from `outpost fleet init`): only members of the roster it signs replicate.
    #[arg(long, value_name = "HEX")]
    fleet_admin: Option<String>,
    /// Replicate with every holder of the fleet key, unsigned, with no roster (the behaviour before fleet trust).
    #[arg(long)]
    psk_only: bool,
    /// Log filter, e.g. `info` or `outpost_daemon=debug` (default: the config's log_level, else info).
    #[arg(long, env = "OUTPOST_LOG")]
    log: Option<String>,
}

/// EX_CONFIG from sysexits.h: the unit's RestartPreventExitStatus=78
/// keeps a wrong config, a missing key or a store from a newer release
/// from a restart loop.
const EXIT_CONFIG: u8 = 78;
/// EX_DATAERR: `--restore` was given a file that is not a whole backup.
const EXIT_BAD_BACKUP: u8 = 65;
/// The async runtime's threads at most; with the blocking pool, the
/// writer and the main thread they stay well under the unit's TasksMax=64.
const MAX_WORKER_THREADS: usize = 4;
const MAX_BLOCKING_THREADS: usize = 32;

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop outpostd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

impl Args {
    fn overrides(&self) -> Overrides {
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

/// `outpostd --init`: the node key, made where the unit loads it from.
fn init(overrides: &Overrides) -> ExitCode {
    let path = match config::node_key_file(overrides, &ProcessEnvironment) {
        Ok(path) => path,
        Err(err) => {
            eprintln!("outpostd: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        use std::os::unix::fs::DirBuilderExt;
        if let Err(err) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent) {
            eprintln!("outpostd: cannot create {}: {err}", parent.display());
            return ExitCode::FAILURE;
        }
    }
    match outpost_daemon::keys::create_node_key(&path) {
        Ok((key, created)) => {
            println!("{}", key.public().to_peer_id());
            if created {
                eprintln!(
                    "created the node key {} (mode 0600). The line above is this post's peer id: the fleet admin \
                     enrols it with `outpost fleet enroll PEER_ID ...`.",
                    path.display()
                );
            } else {
                eprintln!("the node key {} exists; it is kept. The line above is its peer id.", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("outpostd: the node key {}: {err}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// `outpostd --check-config`: validates without starting anything.
fn check_config(overrides: &Overrides) -> ExitCode {
    match outpost_daemon::preflight::check(overrides, &ProcessEnvironment) {
        Ok(report) => {
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            let named = overrides.config.as_ref().map(|p| p.display().to_string());
            println!(
                "{}: valid ({} warning{})",
                named.as_deref().unwrap_or("the defaults and flags"),
                report.warnings.len(),
                if report.warnings.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("outpostd: {err}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `outpostd --restore FILE`: the backup, into the configured data
/// directory. Run as root, the store is handed to the owner of the data
/// directory (the service user, under the package's tmpfiles).
fn restore(overrides: &Overrides, file: &std::path::Path) -> ExitCode {
    use outpost_daemon::store::backup::{self, BackupError};
    let config = match config::load(overrides, &ProcessEnvironment) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("outpostd: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let input = match std::fs::File::open(file) {
        Ok(input) => std::io::BufReader::with_capacity(1 << 20, input),
        Err(err) => {
            eprintln!("outpostd: cannot open {}: {err}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let dir = &config.data_dir;
    {
        use std::os::unix::fs::DirBuilderExt;
        if let Err(err) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            eprintln!("outpostd: cannot create {}: {err}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    match backup::restore(input, dir) {
        Ok((info, summary)) => {
            if let Err(err) = backup::hand_to_directory_owner(dir) {
                eprintln!(
                    "outpostd: the backup was restored into {}, but it could not be given to the directory's owner: \
                     {err}; chown it to the service user before starting outpostd",
                    dir.display()
                );
                return ExitCode::FAILURE;
            }
            println!(
                "restored {} rows in {} tables into {} (node {}, backup taken at {} by outpostd {}, sha256 {})",
                summary.rows,
                summary.tables,
                dir.display(),
                info.node_id,
                outpost_model::date::Timestamp::from_millis(info.taken_at_ms),
                info.outpostd,
                summary.sha256
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("outpostd: cannot restore {}: {err}; nothing was restored", file.display());
            match err {
                BackupError::NotABackup
                | BackupError::Damaged(_)
                | BackupError::TooNewFormat(_)
                | BackupError::TooNewTable { .. } => ExitCode::from(EXIT_BAD_BACKUP),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let overrides = args.overrides();
    if args.init {
        return init(&overrides);
    }
    if args.check_config {
        return check_config(&overrides);
    }
    if let Some(file) = &args.restore {
        return restore(&overrides, file);
    }
    let config = match config::load(&overrides, &ProcessEnvironment) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("outpostd: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    outpost_daemon::logging::init(config.log_level.as_deref().unwrap_or("info"));
    // Bounded threads, so that the unit's TasksMax= holds on a centre's
    // many-core machine too: the network is IO-bound and the writer has
    // its own thread; blocking work is the officers' searches.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, MAX_WORKER_THREADS);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("outpostd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(outpost_daemon::run(config, shutdown_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "outpostd failed");
            eprintln!("outpostd: {err}");
            if err.restart_cannot_mend() { ExitCode::from(EXIT_CONFIG) } else { ExitCode::FAILURE }
        }
    }
}
