//! `outpost-bench`: the figures of BENCHMARKS.md, each beside a baseline
//! measured in the same run; one module per subcommand, with what they
//! share (timing statistics, the machine, memory readings) here.

use clap::Parser;
use outpost_cli::client::Client;
use outpost_model::api::{Request, Response};
use std::time::Duration;

mod backup;
mod fleet;
mod hostile;
mod names;
mod post;
mod shards;
mod sim;
mod sync;

use backup::*;
use fleet::*;
use hostile::*;
use names::*;
use post::*;
use shards::*;
use sim::*;
use sync::*;

/// Outpost benchmarks. Run release builds only.
#[derive(Debug, Parser)]
pub(crate) enum Bench {
    /// Single-post figures: search, durable add, cold start and memory.
    Post(PostArgs),
    /// Why watchlists are sharded: write and load cost of one Automerge
    /// document at a shard's size beside the whole list in one document.
    Shards(ShardArgs),
    /// Replication bytes on an in-memory engine pair (bootstrap, one live
    /// change, a 30-day catch-up, reconnect), unsigned and signed side by
    /// side, beside plain Automerge sync on the same documents; the CPU
    /// cost of checking signed changes.
    Sync(SyncArgs),
    /// The seeded fleet simulator over many seeds: failures name their seed.
    Sim(SimArgs),
    /// Real release daemons replicating: convergence time through the link
    /// emulator at 600 ms round trips, a change crossing five hops, and the
    /// memory of a post with 50 peers beside the same post alone.
    Fleet(FleetArgs),
    /// Name matching on the labelled evaluation set: recall@5 on variants
    /// of listed names and false top-1 alerts on names not on the list.
    Names(NamesArgs),
    /// One enrolled but hostile member flooding a real release daemon:
    /// officer search latency under each attack beside no attack, and RSS
    /// above idle.
    Hostile(HostileArgs),
    /// `outpost backup` while an officer adds entries: the adds' latency
    /// with and without a backup running, the backup's time and size, and
    /// its restore.
    Backup(BackupArgs),
}

pub(crate) struct Stats(Vec<Duration>);

impl Stats {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self(samples)
    }
    fn pct(&self, p: f64) -> Duration {
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(i).copied().unwrap_or_default()
    }
    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} |",
            self.0.len(),
            ms(self.pct(0.5)),
            ms(self.pct(0.99)),
            ms(self.0.last().copied().unwrap_or_default())
        )
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn call(client: &mut Client, request: Request) -> anyhow::Result<Response> {
    client.call(request).map_err(|e| anyhow::anyhow!("{e}"))
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0)))
        .unwrap_or(0);
    format!("{cpu}, {cores} cores, {} GiB RAM, Linux {}", mem / 1024 / 1024, kernel.trim())
}

pub(crate) fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() -> anyhow::Result<()> {
    let bench = Bench::parse();
    println!("machine: {}", machine());
    match bench {
        Bench::Post(args) => post(&args),
        Bench::Shards(args) => shards(&args),
        Bench::Names(args) => names(&args),
        Bench::Hostile(args) => hostile(&args),
        Bench::Sync(args) => sync(&args),
        Bench::Sim(args) => sim(&args),
        Bench::Fleet(args) => fleet(&args),
        Bench::Backup(args) => backup(&args),
    }
}
