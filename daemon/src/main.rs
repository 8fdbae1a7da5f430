//! `outpostd`: parses flags, sets up logging, runs the daemon until SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use outpost_daemon::config::{self, Overrides, ProcessEnvironment};
use tracing_subscriber::EnvFilter;

/// The Outpost border-post daemon: keeps watchlists and incident logs durable
/// and serves the `outpost` command over a Unix socket.
#[derive(Debug, Parser)]
#[command(name = "outpostd", version)]
struct Args {
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
    /// Do not look for peers on the LAN with mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// The fleet admin's public key (64 hex digits, from `outpost fleet init`): only members of the roster it signs replicate.
    #[arg(long, value_name = "HEX")]
    fleet_admin: Option<String>,
    /// Replicate with every holder of the fleet key, unsigned, with no roster (the behaviour before fleet trust).
    #[arg(long)]
    psk_only: bool,
    /// Log filter, e.g. `info` or `outpost_daemon=debug`.
    #[arg(long, env = "OUTPOST_LOG", default_value = "info")]
    log: String,
}

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

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let overrides = Overrides {
        config: args.config,
        data_dir: args.data_dir,
        socket: args.socket,
        node_name: args.node_name,
        authority: args.authority,
        utc_offset: args.utc_offset,
        listen: args.listen,
        peers: args.peer,
        psk_file: args.psk_file,
        no_mdns: args.no_mdns,
        fleet_admin: args.fleet_admin,
        psk_only: args.psk_only,
    };
    let config = match config::load(&overrides, &ProcessEnvironment) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("outpostd: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("outpostd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(outpost_daemon::run(config, shutdown_signal(), || {
        if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
            tracing::warn!(error = %err, "cannot notify systemd");
        }
    }));
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "outpostd failed");
            eprintln!("outpostd: {err}");
            ExitCode::FAILURE
        }
    }
}
