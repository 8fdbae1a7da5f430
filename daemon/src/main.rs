//! `outpostd`: parses flags, sets up logging, runs the daemon until SIGTERM;
//! or, with `--init`, `--check-config` or `--restore`, makes the node key,
//! checks the config or restores a backup, and exits.

use std::process::ExitCode;

use clap::Parser;
use outpost_daemon::args::Args;
use outpost_daemon::config::{self, Overrides, ProcessEnvironment};

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

/// `outpostd --restore FILE`: the backup, into the data directory that
/// `--data-dir`, the config's `data_dir` or systemd names. Run as root,
/// the store is given to the owner of the data directory (the service
/// user, under the package's tmpfiles).
fn restore(overrides: &Overrides, file: &std::path::Path) -> ExitCode {
    use outpost_daemon::store::backup::{self, BackupError};
    let dir = match config::restore_dir(overrides, &ProcessEnvironment) {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("outpostd: {err} (the package's is /var/lib/outpost)");
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
    {
        use std::os::unix::fs::DirBuilderExt;
        if let Err(err) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir) {
            eprintln!("outpostd: cannot create {}: {err}", dir.display());
            return ExitCode::FAILURE;
        }
    }
    let owner = if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&dir) {
            Ok(meta) => Some((meta.uid(), meta.gid())),
            Err(err) => {
                eprintln!("outpostd: cannot read {}: {err}", dir.display());
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    match backup::restore(input, &dir, owner) {
        Ok((info, summary)) => {
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
                | BackupError::TooNewTable { .. }
                | BackupError::UnknownTable(_) => ExitCode::from(EXIT_BAD_BACKUP),
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
