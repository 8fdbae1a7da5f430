//! `outpost-bench`: the single-post figures of BENCHMARKS.md, measured on a
//! real release `outpostd` through its control socket, each beside a
//! baseline measured in the same run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use outpost_cli::client::Client;
use outpost_model::api::{NewEntryInput, Request, Response, SearchInput};
use outpost_model::date::Timestamp;
use outpost_model::replication::frame::Body;
use outpost_model::replication::session::DocSession;
use outpost_model::schema::DocKind;
use outpost_model::search::{NameIndex, SearchQuery, WatchlistIndex, upsert};
use outpost_model::validate::{PostContext, new_entry};
use outpost_model::{DocId, EntryId};
use outpost_tests::fleet_sim::Mode;
use outpost_tests::harness::{FleetKey, Post, PostOptions, free_port, network_config};
use outpost_tests::sample::{Generator, entry_from, icao_latin};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// Outpost benchmarks. Run release builds only.
#[derive(Debug, Parser)]
enum Bench {
    /// Single-post figures: search, durable add, cold start and memory.
    Post(PostArgs),
    /// Why watchlists are sharded: write and load cost of one Automerge
    /// document at a shard's size beside the whole list in one document.
    Shards(ShardArgs),
    /// Replication on the pieces built so far (issue 4): bytes to reconnect
    /// in-sync peers and to carry one new change, beside plain Automerge
    /// sync per document on the same documents.
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
}

#[derive(Debug, clap::Args)]
struct SyncArgs {
    /// Documents both peers hold in the reconnect figure.
    #[arg(long, default_value_t = 1000)]
    docs: usize,
    /// Watchlist entries in each of those documents.
    #[arg(long, default_value_t = 5)]
    entries: usize,
    /// Entries on the list an empty peer bootstraps.
    #[arg(long, default_value_t = 6_400)]
    bootstrap_entries: usize,
    /// Edits per day while a peer is away for 30 days.
    #[arg(long, default_value_t = 40)]
    edits_per_day: usize,
}

#[derive(Debug, clap::Args)]
struct NamesArgs {
    /// Persons on the list.
    #[arg(long, default_value_t = 3_000)]
    listed: usize,
    /// Queries for listed persons.
    #[arg(long, default_value_t = 10_000)]
    variants: usize,
    /// Queries for persons not on the list.
    #[arg(long, default_value_t = 10_000)]
    distractors: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the misses and false hits as well.
    #[arg(long)]
    show: bool,
}

#[derive(Debug, clap::Args)]
struct ShardArgs {
    /// Entries per shard (16 shards per authority).
    #[arg(long, default_value_t = 6_250)]
    shard: usize,
    /// Entries in one unsharded document.
    #[arg(long, default_value_t = 100_000)]
    whole: usize,
    #[arg(long, default_value_t = 200)]
    writes: usize,
}

#[derive(Debug, clap::Args)]
struct PostArgs {
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    #[arg(long, default_value_t = 2000)]
    searches: usize,
    #[arg(long, default_value_t = 1000)]
    adds: usize,
    #[arg(long, default_value_t = 3)]
    cold_starts: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

struct Stats(Vec<Duration>);

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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn call(client: &mut Client, request: Request) -> anyhow::Result<Response> {
    client.call(request).map_err(|e| anyhow::anyhow!("{e}"))
}

fn machine() -> String {
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

fn rss_kib(pid: u32) -> (u64, u64) {
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

/// Queries an officer would type: full names in Cyrillic, in the ICAO
/// passport spelling, in another romanisation, in MRZ form, with a typo,
/// surnames alone, plates, and names that are not on the list.
fn queries(entries: &[NewEntryInput], count: usize, seed: u64) -> Vec<String> {
    use outpost_model::names::{Romanization, mrz_name};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    let persons: Vec<&NewEntryInput> = entries.iter().filter(|e| e.kind == "person").collect();
    let vehicles: Vec<&NewEntryInput> = entries.iter().filter(|e| e.kind == "vehicle").collect();
    (0..count)
        .map(|_| {
            let person = persons.choose(&mut rng).map(|p| p.names[0].clone()).unwrap_or_default();
            let (given, surname) = person.split_once(' ').unwrap_or((&person, "Алиев"));
            match rng.random_range(0..20) {
                0..5 => person.clone(),
                5..9 => icao_latin(&person),
                9..11 => {
                    let system = Romanization::ALL.choose(&mut rng).copied().unwrap_or(Romanization::BgnPcgn);
                    system.romanize(&person)
                }
                11..13 => mrz_name(surname, given),
                13 => {
                    // One letter dropped from the middle of the surname.
                    let mut latin: Vec<char> = icao_latin(&person).chars().collect();
                    let at = latin.len() - 3;
                    latin.remove(at);
                    latin.into_iter().collect()
                }
                14..16 => surname.to_string(),
                16..18 => vehicles.choose(&mut rng).map(|v| v.plates[0].clone()).unwrap_or_default(),
                _ => format!("Zorbek Unlistedov{}", rng.random_range(0..1000)),
            }
        })
        .collect()
}

/// Records index format 0 for `search_keys`, as a database written before
/// the current matcher would have it.
fn mark_index_records_stale(db: &Path) -> anyhow::Result<()> {
    const TABLE_VERSIONS: redb::TableDefinition<&str, u32> = redb::TableDefinition::new("table_versions");
    let db = redb::Database::open(db)?;
    let txn = db.begin_write()?;
    txn.open_table(TABLE_VERSIONS)?.insert("search_keys", 0)?;
    txn.commit()?;
    Ok(())
}

fn search_request(query: &str) -> Request {
    Request::WatchlistSearch(Box::new(SearchInput {
        query: query.into(),
        purpose: "benchmark".into(),
        limit: Some(10),
        ..Default::default()
    }))
}

/// Bare redb commits of 1 KiB with the daemon's durability settings: the
/// floor any durable add stands on.
fn redb_commit_baseline(dir: &Path, count: usize) -> anyhow::Result<Stats> {
    const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("baseline");
    let db = redb::Database::create(dir.join("baseline.redb"))?;
    let value = vec![7u8; 1024];
    let mut samples = Vec::with_capacity(count);
    for n in 0..count as u64 {
        let started = Instant::now();
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(true);
        txn.open_table(TABLE)?.insert(n, value.as_slice())?;
        txn.commit()?;
        samples.push(started.elapsed());
    }
    Ok(Stats::new(samples))
}

/// One document with `size` entries written in import-sized changes, then
/// `writes` single-entry changes: their latency, then save and load.
fn document_cost(size: usize, writes: usize) -> anyhow::Result<(Stats, usize, Duration, Duration)> {
    use outpost_model::schema::{ChangeMeta, Document};
    let ctx = PostContext {
        now: Timestamp::from_millis(1_795_000_000_000),
        offset: time::UtcOffset::UTC,
        authority: "KAZ-BS".into(),
        post: "bench".into(),
    };
    let meta = ChangeMeta { at: ctx.now, by: "bench".into(), op: "bench" };
    let fail = |e: outpost_model::ModelError| anyhow::anyhow!("{e}");
    let mut doc = Document::genesis(DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 0 }).map_err(fail)?;
    let mut generator = Generator::new(size as u64);
    let mut n = 0u128;
    let mut draft = |generator: &mut Generator| {
        n += 1;
        new_entry(&generator.person(), EntryId::from_uuid(uuid::Uuid::from_u128(n)), &ctx)
            .map_err(|e| anyhow::anyhow!("{e}"))
    };
    for chunk in (0..size).collect::<Vec<_>>().chunks(1000) {
        let drafts = chunk.iter().map(|_| draft(&mut generator)).collect::<anyhow::Result<Vec<_>>>()?;
        doc.transact(&meta, |r| drafts.iter().try_for_each(|d| r.add_entry(d))).map_err(fail)?;
    }
    let mut samples = Vec::new();
    for _ in 0..writes {
        let one = draft(&mut generator)?;
        let started = Instant::now();
        doc.transact(&meta, |r| r.add_entry(&one)).map_err(fail)?;
        samples.push(started.elapsed());
    }
    let started = Instant::now();
    let snapshot = doc.save();
    let save = started.elapsed();
    let started = Instant::now();
    let loaded = Document::load(doc.id(), Some(&snapshot), std::iter::empty()).map_err(fail)?;
    let load = started.elapsed();
    drop(loaded);
    Ok((Stats::new(samples), snapshot.len(), save, load))
}

fn shards(args: &ShardArgs) -> anyhow::Result<()> {
    println!("| document | entries | write p50 ms | write p99 ms | save() bytes | save() ms | load ms |");
    println!("|---|---|---|---|---|---|---|");
    for (label, size) in [("one shard", args.shard), ("whole list", args.whole)] {
        let (writes, bytes, save, load) = document_cost(size, args.writes)?;
        println!(
            "| {label} | {size} | {:.3} | {:.3} | {bytes} | {:.0} | {:.0} |",
            ms(writes.pct(0.5)),
            ms(writes.pct(0.99)),
            ms(save),
            ms(load)
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let bench = Bench::parse();
    println!("machine: {}", machine());
    match bench {
        Bench::Post(args) => post(&args),
        Bench::Shards(args) => shards(&args),
        Bench::Names(args) => names(&args),
        Bench::Sync(args) => sync(&args),
        Bench::Sim(args) => sim(&args),
        Bench::Fleet(args) => fleet(&args),
    }
}

#[derive(Debug, clap::Args)]
struct FleetArgs {
    /// Repetitions of each timing; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Peers of the hub in the memory figure.
    #[arg(long, default_value_t = 50)]
    peers: usize,
    /// Entries on the hub's list in the memory figure.
    #[arg(long, default_value_t = 1000)]
    entries: usize,
}

fn fleet_post(name: &str, key: &FleetKey, port: u16, peers: &[u16]) -> Post {
    Post::start_with(PostOptions {
        node_name: name.into(),
        extra_config: network_config(key, port, peers),
        ..Default::default()
    })
}

fn holds_entry(post: &Post, id: &str) -> bool {
    post.outpost(&["--json", "watchlist", "show", id, "--purpose", "bench"]).code == 0
}

fn add_one(post: &Post, name: &str) -> anyhow::Result<String> {
    let added =
        post.json(&["watchlist", "add", "person", "--name", name, "--category", "warning", "--reason", "bench"]);
    added["id"].as_str().map(String::from).ok_or_else(|| anyhow::anyhow!("no id in {added}"))
}

fn until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !condition() {
        anyhow::ensure!(started.elapsed() < limit, "{what} took longer than {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(started.elapsed())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn fleet(args: &FleetArgs) -> anyhow::Result<()> {
    use outpost_tests::link_emulator::{Link, LinkProfile};
    let key = FleetKey::generate();
    let rtt = Duration::from_millis(600);

    // Convergence after a link comes up, at 600 ms round trips.
    let (pa, pb) = (free_port(), free_port());
    let a = fleet_post("vsat-a", &key, pa, &[]);
    let link = Link::start(pa, LinkProfile::vsat(), 1);
    let b = fleet_post("vsat-b", &key, pb, &[link.port()]);
    key.enroll_all(&a, &[&a, &b]);
    until("first contact", Duration::from_secs(60), || !b.connected_peers().is_empty())?;
    until("the roster to reach b", Duration::from_secs(60), || b.roster_version() == 2)?;
    let (mut after_handshake, mut after_up) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        link.set_up(false);
        until("the cut to be seen", Duration::from_secs(60), || b.connected_peers().is_empty())?;
        let id = add_one(&a, &format!("Азамат Нуриев {run}"))?;
        let up = Instant::now();
        link.set_up(true);
        until("the redial", Duration::from_secs(120), || !b.connected_peers().is_empty())?;
        let connected = up.elapsed();
        until("the change to arrive", Duration::from_secs(60), || holds_entry(&b, &id))?;
        after_up.push(up.elapsed());
        after_handshake.push(up.elapsed() - connected);
    }
    let handshake = median(after_handshake);
    println!("| figure | measured (median of {}) | target |", args.runs);
    println!("|---|---|---|");
    println!(
        "| converge after a link comes up, 600 ms round trips, VSAT profile (256 kbit/s) | {} ms after the transport handshake = {:.1} round trips; {} ms after the link came up (includes the redial backoff) | ≤ 3 round trips after the handshake |",
        handshake.as_millis(),
        handshake.as_secs_f64() / rtt.as_secs_f64(),
        median(after_up).as_millis()
    );
    drop((a, b, link));

    // A change crossing a line of five hops, on loopback and over VSAT links.
    for vsat in [false, true] {
        let ports: Vec<u16> = (0..6).map(|_| free_port()).collect();
        let mut posts = vec![fleet_post("hop-0", &key, ports[0], &[])];
        let mut links = Vec::new();
        for i in 1..6 {
            let target = if vsat {
                links.push(Link::start(ports[i - 1], LinkProfile::vsat(), i as u64));
                links.last().map_or(ports[i - 1], Link::port)
            } else {
                ports[i - 1]
            };
            posts.push(fleet_post(&format!("hop-{i}"), &key, ports[i], &[target]));
        }
        let all: Vec<&Post> = posts.iter().collect();
        key.enroll_all(&posts[0], &all);
        until("the line to connect", Duration::from_secs(120), || {
            posts.iter().skip(1).all(|p| !p.connected_peers().is_empty() && p.roster_version() == 6)
        })?;
        let mut times = Vec::new();
        for run in 0..args.runs {
            let id = add_one(&posts[0], &format!("Нурлан Жумабаев {run}"))?;
            times.push(until("five hops", Duration::from_secs(120), || holds_entry(&posts[5], &id))?);
        }
        let time = median(times);
        println!(
            "| a change crossing five hops ({}) | {} ms{} | — |",
            if vsat { "each hop a VSAT link, 600 ms round trips" } else { "loopback" },
            time.as_millis(),
            if vsat {
                format!(
                    " = {:.1} round trips, {:.1} per hop",
                    time.as_secs_f64() / rtt.as_secs_f64(),
                    time.as_secs_f64() / rtt.as_secs_f64() / 5.0
                )
            } else {
                String::new()
            }
        );
    }

    // Memory of a post with many peers, beside the same post alone.
    let hub_port = free_port();
    let hub = fleet_post("hub", &key, hub_port, &[]);
    let mut generator = Generator::new(3);
    let mut client = Client::connect(&hub.socket()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let entries: Vec<NewEntryInput> = (0..args.entries).map(|_| generator.entry()).collect();
    for batch in entries.chunks(1000) {
        call(&mut client, Request::WatchlistImport { entries: batch.to_vec() })?;
    }
    let pid = hub.pid().ok_or_else(|| anyhow::anyhow!("hub not running"))?;
    let alone = rss_kib(pid);
    let peers: Vec<Post> =
        (0..args.peers).map(|i| fleet_post(&format!("peer-{i}"), &key, free_port(), &[hub_port])).collect();
    let mut members: Vec<&Post> = vec![&hub];
    members.extend(peers.iter());
    key.enroll_all(&hub, &members);
    until("every peer to hold the list", Duration::from_secs(600), || {
        peers.iter().all(|p| p.entry_count() == args.entries as u64)
    })?;
    let with_peers = rss_kib(pid);
    println!(
        "| daemon RSS with {} peers connected and synced ({} entries) | {} MiB (peak {} MiB) | — (the same post alone: {} MiB) |",
        args.peers,
        args.entries,
        with_peers.0 / 1024,
        with_peers.1 / 1024,
        alone.0 / 1024
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
struct SimArgs {
    /// First seed.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Number of seeds.
    #[arg(long, default_value_t = 2000)]
    seeds: u64,
    /// Print every seed's figures.
    #[arg(long)]
    verbose: bool,
    /// Add a byzantine member, a late enrolment, revocation and stale
    /// rosters to every seed.
    #[arg(long)]
    byzantine: bool,
}

fn sim(args: &SimArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mode = if args.byzantine { Mode::Byzantine } else { Mode::Honest };
    let (mut failed, mut frames, mut bytes, mut worst_ms) = (0u64, 0u64, 0u64, 0i64);
    let (mut attacks, mut bad) = (0usize, 0usize);
    for seed in args.from..args.from + args.seeds {
        let one = Instant::now();
        match outpost_tests::fleet_sim::run_mode(seed, mode) {
            Ok(report) => {
                attacks += report.attacks;
                bad += report.bad_changes;
                frames += report.frames;
                bytes += report.bytes;
                worst_ms = worst_ms.max(report.converged_after_ms);
                if args.verbose {
                    println!("seed {seed}: {report:?} in {:.0} ms", one.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Err(err) => {
                failed += 1;
                println!("FAILED {err}");
            }
        }
    }
    println!(
        "{} {mode:?} seeds, {failed} failed, {frames} frames, {bytes} B, {attacks} attacks ({bad} bad changes) refused, slowest convergence {:.1} simulated min after healing, {:.1} s",
        args.seeds,
        worst_ms as f64 / 60_000.0,
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(failed == 0, "{failed} seeds failed");
    Ok(())
}

/// Runs one document's sync between two copies until both fall quiet;
/// returns the bytes of the messages (framed when `slot` is given).
fn settle(
    docs: (&mut outpost_model::schema::Document, &mut outpost_model::schema::Document),
    sessions: (&mut DocSession, &mut DocSession),
    slot: Option<u32>,
) -> anyhow::Result<usize> {
    let now = Timestamp::from_millis(1_795_000_000_000);
    let (a, b) = docs;
    let (sa, sb) = sessions;
    let mut total = 0;
    for _round in 0..40 {
        let mut spoke = false;
        if let Some(m) = sa.next_message(now, a) {
            total += wire_len(slot, &m)?;
            sb.receive(now, b, &m)?;
            spoke = true;
        }
        if let Some(m) = sb.next_message(now, b) {
            total += wire_len(slot, &m)?;
            sa.receive(now, a, &m)?;
            spoke = true;
        }
        if !spoke {
            return Ok(total);
        }
    }
    anyhow::bail!("sync did not settle in 40 rounds")
}

fn wire_len(slot: Option<u32>, message: &[u8]) -> anyhow::Result<usize> {
    Ok(match slot {
        Some(slot) => Body::Sync { slot, message: message.to_vec(), proofs: Vec::new() }.encode()?.len(),
        None => message.len(),
    })
}

/// A whole digest exchange between two inventories, in frames.
/// Watchlist documents built one change per entry, as posts build them.
struct Builder {
    generator: Generator,
    n: u128,
    ctx: PostContext,
}

impl Builder {
    fn new(seed: u64) -> Self {
        let now = Timestamp::from_millis(1_795_000_000_000);
        let ctx = PostContext { now, offset: time::UtcOffset::UTC, authority: "KAZ-BS".into(), post: "bench".into() };
        Self { generator: Generator::new(seed), n: 0, ctx }
    }

    fn meta(&self, op: &'static str) -> outpost_model::schema::ChangeMeta {
        outpost_model::schema::ChangeMeta { at: self.ctx.now, by: "1000@bench".into(), op }
    }

    /// Adds an entry; returns the raw change's size.
    fn add(&mut self, doc: &mut outpost_model::schema::Document) -> anyhow::Result<(EntryId, usize)> {
        self.n += 1;
        let id = EntryId::from_uuid(uuid::Uuid::from_u128(self.n));
        let draft = new_entry(&self.generator.person(), id, &self.ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (_, change) =
            doc.transact(&self.meta("watchlist.add"), |r| r.add_entry(&draft)).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok((id, change.map_or(0, |c| c.len().saturating_sub(32))))
    }

    fn amend(&mut self, doc: &mut outpost_model::schema::Document, id: EntryId, n: usize) -> anyhow::Result<()> {
        let input = outpost_model::api::AmendInput {
            reason: Some(format!("updated intelligence, report {n}")),
            ..Default::default()
        };
        let amendment = outpost_model::validate::amendment(
            &input,
            outpost_model::vocab::SubjectKind::Person,
            self.ctx.now.utc_date(),
            &self.ctx,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        doc.transact(&self.meta("watchlist.amend"), |r| r.amend_entry(&id, &amendment))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    fn docs(
        &mut self,
        count: usize,
        entries: usize,
    ) -> anyhow::Result<Vec<(outpost_model::schema::Document, Vec<EntryId>)>> {
        let mut docs = Vec::new();
        for i in 0..count {
            let kind = DocKind::Watchlist { authority: format!("A{:03}", i / 16), shard: (i % 16) as u8 };
            let mut doc = outpost_model::schema::Document::genesis(kind).map_err(|e| anyhow::anyhow!("{e}"))?;
            doc.set_actor(automerge::ActorId::from([9u8; 16]));
            let mut ids = Vec::new();
            for _ in 0..entries {
                ids.push(self.add(&mut doc)?.0);
            }
            docs.push((doc, ids));
        }
        Ok(docs)
    }
}

/// Persisted sync states of both sides, per document.
type SyncStates = Vec<(Vec<u8>, Vec<u8>)>;

/// Plain Automerge sync of copies, one session per document, from the
/// given persisted states (or none); returns the bytes and the new states.
fn plain_sync(
    pairs: &mut [(outpost_model::schema::Document, outpost_model::schema::Document)],
    states: Option<&[(Vec<u8>, Vec<u8>)]>,
) -> anyhow::Result<(usize, SyncStates)> {
    let now = Timestamp::from_millis(1_795_000_000_000);
    let mut total = 0;
    let mut saved = Vec::new();
    for (n, (a, b)) in pairs.iter_mut().enumerate() {
        let persisted = states.map(|s| &s[n]);
        let (mut sa, _) = DocSession::resume(persisted.map(|p| p.0.as_slice()), now);
        let (mut sb, _) = DocSession::resume(persisted.map(|p| p.1.as_slice()), now);
        total += settle((a, b), (&mut sa, &mut sb), None)?;
        anyhow::ensure!(a.heads().iter().all(|h| b.heads().contains(h)), "plain sync did not converge");
        saved.push((sa.persisted(), sb.persisted()));
    }
    Ok((total, saved))
}

fn forks(docs: &mut [(outpost_model::schema::Document, Vec<EntryId>)]) -> Vec<outpost_model::schema::Document> {
    docs.iter_mut().map(|(d, _)| d.fork(automerge::ActorId::from([9u8; 16]))).collect()
}

fn ratio(ours: usize, theirs: usize) -> String {
    format!("{:.3}", ours as f64 / theirs.max(1) as f64)
}

fn sync(args: &SyncArgs) -> anyhow::Result<()> {
    use outpost_model::replication::pair::{Node, Pair};
    let mut builder = Builder::new(7);
    println!("| figure | ours (engine frames) | baseline in the same run | ratio | target |");
    println!("|---|---|---|---|---|");

    // Bootstrap an empty peer.
    let mut list = builder.docs(16, args.bootstrap_entries / 16)?;
    let saved: usize = list.iter_mut().map(|(d, _)| d.save().len()).sum();
    let mut plain_pairs = Vec::new();
    for (a, (d, _)) in forks(&mut list).into_iter().zip(list.iter()) {
        let empty = outpost_model::schema::Document::load(d.id(), None, std::iter::empty())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        plain_pairs.push((a, empty));
    }
    let (plain_bootstrap, _) = plain_sync(&mut plain_pairs, None)?;
    let mut pair = Pair::new(Node::new(1, forks(&mut list)), Node::new(2, Vec::new()));
    let bootstrap = pair.connect();
    anyhow::ensure!(pair.in_sync(), "bootstrap did not converge");
    println!(
        "| bootstrap an empty peer ({} entries in 16 documents) | {} B in {} frames | `save()` {saved} B; plain sync {plain_bootstrap} B | {} of `save()` | ≤ 1.05 × `save()` |",
        args.bootstrap_entries,
        bootstrap.bytes,
        bootstrap.frames,
        ratio(bootstrap.bytes, saved)
    );

    // One new change between connected, in-sync peers.
    let doc_id = pair.a.host.docs.keys().next().cloned().ok_or_else(|| anyhow::anyhow!("no documents"))?;
    let mut plain_a = pair.a.host.docs[&doc_id].read().clone();
    let mut plain_b = plain_a.fork();
    let (change_bytes, one) = {
        let doc = pair.a.host.docs.get_mut(&doc_id).ok_or_else(|| anyhow::anyhow!("document vanished"))?;
        let before = doc.heads();
        let (_, change_bytes) = builder.add(doc)?;
        let change = doc.stored_changes_since(&before);
        // The same change, applied to plain copies that are in sync with
        // their sync state in memory.
        let mut sa = automerge::sync::State::new();
        let mut sb = automerge::sync::State::new();
        plain_session(&mut plain_a, &mut sa, &mut plain_b, &mut sb)?;
        let raw: Vec<automerge::Change> =
            change.iter().map(|c| automerge::Change::from_bytes(c[32..].to_vec())).collect::<Result<_, _>>()?;
        plain_a.apply_changes(raw)?;
        let plain_one = plain_session(&mut plain_a, &mut sa, &mut plain_b, &mut sb)?;
        let ours = pair.push_from_a(&doc_id);
        anyhow::ensure!(pair.in_sync(), "the change did not arrive");
        (change_bytes, (ours, plain_one))
    };
    let (ours_one, plain_one) = one;
    println!(
        "| one new change ({change_bytes} B) between connected, in-sync peers | {} B in {} frames ({} B beyond the change) | plain sync, state in memory: {plain_one} B | {} of plain | ≤ 1.5 × change + a fixed session cost |",
        ours_one.bytes,
        ours_one.frames,
        ours_one.bytes.saturating_sub(change_bytes),
        ratio(ours_one.bytes, plain_one)
    );

    // Catch up after 30 days away.
    pair.disconnect();
    let mut missed = Vec::new();
    let mut edits = 0;
    let ids: Vec<DocId> = pair.a.host.docs.keys().cloned().collect();
    let heads_at_b: BTreeMap<DocId, Vec<automerge::ChangeHash>> = ids
        .iter()
        .map(|id| (id.clone(), pair.b.host.docs.get_mut(id).map(|d| d.heads()).unwrap_or_default()))
        .collect();
    let mut plain_copies: Vec<_> = ids
        .iter()
        .map(|id| {
            (
                pair.a.host.docs.get_mut(id).map(|d| d.fork(automerge::ActorId::from([5u8; 16]))),
                pair.b.host.docs.get_mut(id).map(|d| d.fork(automerge::ActorId::from([6u8; 16]))),
            )
        })
        .collect();
    // The same documents for plain sync, with the sync states of a first
    // contact before the edits.
    let (_, plain_states) = {
        let mut pairs: Vec<_> = plain_copies.iter_mut().filter_map(|(a, b)| Some((a.take()?, b.take()?))).collect();
        let result = plain_sync(&mut pairs, None)?;
        for ((a, b), slot) in pairs.into_iter().zip(plain_copies.iter_mut()) {
            *slot = (Some(a), Some(b));
        }
        result
    };
    let existing: BTreeMap<DocId, Vec<EntryId>> = list.iter().map(|(d, ids)| (d.id().clone(), ids.clone())).collect();
    for day in 0..30 {
        for k in 0..args.edits_per_day {
            let doc =
                pair.a.host.docs.get_mut(&ids[(day * 7 + k) % ids.len()]).ok_or_else(|| anyhow::anyhow!("doc"))?;
            if k % 3 == 0 {
                // Amend an entry of this document.
                let target = existing.get(doc.id()).and_then(|ids| ids.get((day + k) % ids.len().max(1)));
                match target {
                    Some(id) => builder.amend(doc, *id, day * 100 + k)?,
                    None => {
                        builder.add(doc)?;
                    }
                }
            } else {
                builder.add(doc)?;
            }
            edits += 1;
        }
    }
    for (id, (a, _)) in ids.iter().zip(plain_copies.iter_mut()) {
        let doc = pair.a.host.docs.get_mut(id).ok_or_else(|| anyhow::anyhow!("doc"))?;
        let changes = doc.stored_changes_since(&heads_at_b[id]);
        missed.extend(changes.iter().flat_map(|c| c[32..].to_vec()));
        if let Some(a) = a {
            let parsed = changes.iter().map(|c| automerge::Change::from_bytes(c[32..].to_vec()));
            a.apply_changes(parsed.collect::<Result<Vec<_>, _>>()?)?;
        }
    }
    // The edits were made while disconnected; the engine learns of them as
    // the daemon's writer would tell it.
    for id in &ids {
        pair.push_from_a(id);
    }
    let zstd3 = zstd::bulk::compress(&missed, 3)?.len();
    let zstd19 = zstd::bulk::compress(&missed, 19)?.len();
    let mut plain_pairs: Vec<_> = plain_copies.into_iter().filter_map(|(a, b)| Some((a?, b?))).collect();
    let (plain_catch_up, _) = plain_sync(&mut plain_pairs, Some(&plain_states))?;
    let catch_up = pair.connect();
    anyhow::ensure!(pair.in_sync(), "catch-up did not converge: {:?}", pair.problems);
    anyhow::ensure!(pair.disconnects.is_empty(), "an engine cut its peer off: {:?}", pair.disconnects);
    println!(
        "| catch up after 30 days away ({edits} edits, {} B of raw changes) | {} B in {} frames | zstd -3 of what it lacks {zstd3} B (zstd -19 {zstd19} B); plain sync, persisted states: {plain_catch_up} B | {} of zstd -3 | ≤ 1.1 × compressed size of what it lacks |",
        missed.len(),
        catch_up.bytes,
        catch_up.frames,
        ratio(catch_up.bytes, zstd3)
    );

    // Reconnect many in-sync documents.
    let mut many = builder.docs(args.docs, args.entries)?;
    let mut plain_pairs: Vec<_> = forks(&mut many).into_iter().zip(forks(&mut many)).collect();
    let (_, plain_states) = plain_sync(&mut plain_pairs, None)?;
    let (plain_idle, _) = plain_sync(&mut plain_pairs, Some(&plain_states))?;
    let mut pair = Pair::new(Node::new(1, forks(&mut many)), Node::new(2, forks(&mut many)));
    pair.connect();
    pair.disconnect();
    let idle = pair.connect();
    println!(
        "| reconnect, {} documents in sync | {} B in {} frames | plain sync, persisted states: {plain_idle} B | {} | ≤ 200 B + 4 B per document = {} B |",
        args.docs,
        idle.bytes,
        idle.frames,
        ratio(idle.bytes, plain_idle),
        200 + 4 * args.docs
    );
    Ok(())
}

/// Plain Automerge sync of two documents with in-memory states until quiet.
fn plain_session(
    a: &mut automerge::AutoCommit,
    sa: &mut automerge::sync::State,
    b: &mut automerge::AutoCommit,
    sb: &mut automerge::sync::State,
) -> anyhow::Result<usize> {
    use automerge::sync::SyncDoc;
    let mut total = 0;
    for _ in 0..40 {
        let mut spoke = false;
        if let Some(m) = a.sync().generate_sync_message(sa) {
            let bytes = m.encode();
            total += bytes.len();
            b.sync().receive_sync_message(sb, automerge::sync::Message::decode(&bytes)?)?;
            spoke = true;
        }
        if let Some(m) = b.sync().generate_sync_message(sb) {
            let bytes = m.encode();
            total += bytes.len();
            a.sync().receive_sync_message(sa, automerge::sync::Message::decode(&bytes)?)?;
            spoke = true;
        }
        if !spoke {
            return Ok(total);
        }
    }
    anyhow::bail!("plain sync did not settle")
}

fn names(args: &NamesArgs) -> anyhow::Result<()> {
    use outpost_tests::names_eval::{EvalSet, Report, Tally, eval_context, evaluate, index_for};
    println!(
        "listed: {}, variants: {}, distractors: {}, seed: {}\n",
        args.listed, args.variants, args.distractors, args.seed
    );
    let set = EvalSet::generate(args.seed, args.listed, args.variants, args.distractors);
    let index = index_for(&set)?;
    let today = eval_context().today();
    let started = Instant::now();
    let plain = evaluate(&set, &index, today, false);
    let per_query = started.elapsed() / (args.variants + args.distractors).max(1) as u32;
    let qualified = evaluate(&set, &index, today, true);
    let pct = |t: &Tally| format!("{:.2}%", 100.0 * t.rate());
    println!("| rendering | recall@5 | found as top-1 alert | false top-1 alerts |");
    println!("|---|---|---|---|");
    for (rendering, (found, total)) in &plain.recall_at_5.by_rendering {
        let alert = plain.found_as_alert.by_rendering.get(rendering).copied().unwrap_or_default();
        let false_hits = plain.false_top1.by_rendering.get(rendering).copied().unwrap_or_default();
        println!("| {rendering} | {found}/{total} | {}/{} | {}/{} |", alert.0, alert.1, false_hits.0, false_hits.1);
    }
    println!();
    println!("| figure | name only | with DOB and nationality | target |");
    println!("|---|---|---|---|");
    type Row = (&'static str, fn(&Report) -> &Tally, &'static str);
    let rows: [Row; 5] = [
        ("recall@5 on variants", |r| &r.recall_at_5, "≥ 98%"),
        ("variant found as the top-1 alert", |r| &r.found_as_alert, "—"),
        ("false top-1 alerts on names not listed", |r| &r.false_top1, "≤ 2%"),
        ("… whose words are all on the list", |r| &r.false_top1_listed_words, "—"),
        ("… with a given name or surname the list has never seen", |r| &r.false_top1_unlisted_words, "—"),
    ];
    for (label, tally, target) in &rows {
        println!("| {label} | {} | {} | {target} |", pct(tally(&plain)), pct(tally(&qualified)));
    }
    println!("\nin-process search, name only: {:.3} ms per query (mean)", per_query.as_secs_f64() * 1000.0);
    if args.show {
        println!("\nmisses (name only):");
        plain.misses.iter().for_each(|m| println!("  {m}"));
        println!("\nfalse hits (name only):");
        plain.false_hits.iter().for_each(|m| println!("  {m}"));
    }
    Ok(())
}

fn post(args: &PostArgs) -> anyhow::Result<()> {
    println!("entries: {}, searches: {}, adds: {}, seed: {}\n", args.entries, args.searches, args.adds, args.seed);

    let mut generator = Generator::new(args.seed);
    let entries: Vec<NewEntryInput> = (0..args.entries).map(|_| generator.entry()).collect();
    let mut post = Post::start_with(PostOptions::default());
    let mut client = Client::connect(&post.socket()).map_err(|e| anyhow::anyhow!("{e}"))?;

    let started = Instant::now();
    for batch in entries.chunks(2000) {
        call(&mut client, Request::WatchlistImport { entries: batch.to_vec() })?;
    }
    let import = started.elapsed();
    println!(
        "import: {} entries in {:.1} s ({:.0} entries/s)\n",
        entries.len(),
        import.as_secs_f64(),
        entries.len() as f64 / import.as_secs_f64()
    );

    // Search: end to end through the socket (includes the durable audit
    // record), beside the same queries on an in-process index.
    let queries = queries(&entries, args.searches, args.seed);
    let ctx = PostContext {
        now: Timestamp::from_millis(1_795_000_000_000),
        offset: time::UtcOffset::UTC,
        authority: "KAZ-BS".into(),
        post: "bench".into(),
    };
    let started = Instant::now();
    let mut index = NameIndex::new();
    for (n, input) in entries.iter().enumerate() {
        upsert(&mut index, &entry_from(input, EntryId::from_uuid(uuid::Uuid::from_u128(n as u128 + 1)), &ctx)?);
    }
    let index_build = started.elapsed();
    let today = ctx.today();
    let mut in_process = Vec::new();
    let mut found = 0usize;
    for q in &queries {
        let input =
            SearchInput { query: q.clone(), purpose: "benchmark".into(), limit: Some(10), ..Default::default() };
        let query = SearchQuery::parse(&input).map_err(|e| anyhow::anyhow!("{e}"))?;
        let started = Instant::now();
        let hits = index.search(&query, today);
        in_process.push(started.elapsed());
        found += usize::from(!hits.is_empty());
    }
    let mut socket_search = Vec::new();
    for q in &queries {
        let started = Instant::now();
        call(&mut client, search_request(q))?;
        socket_search.push(started.elapsed());
    }

    // Durable adds beside bare redb commits.
    let mut add = Vec::new();
    for _ in 0..args.adds {
        let entry = generator.entry();
        let started = Instant::now();
        call(&mut client, Request::WatchlistAdd { entry: Box::new(entry) })?;
        add.push(started.elapsed());
    }
    let scratch = tempfile::tempdir()?;
    let baseline = redb_commit_baseline(scratch.path(), args.adds)?;

    let pid = post.pid().context("daemon pid")?;
    let (warm_rss, warm_hwm) = rss_kib(pid);
    drop(client);

    // Cold start: from exec until the first search is answered.
    let mut cold = Vec::new();
    let mut cold_rss = (0, 0);
    for _ in 0..args.cold_starts {
        post.stop();
        let elapsed = post.spawn_measured(|socket| {
            Client::connect(socket).ok().and_then(|mut c| c.call(search_request("Мухаммад Алиев")).ok()).is_some()
        });
        cold.push(elapsed);
        cold_rss = rss_kib(post.pid().context("daemon pid")?);
    }
    let file_bytes = std::fs::metadata(post.data_dir().join("outpost.redb")).map(|m| m.len()).unwrap_or(0);

    // The first start after an upgrade that changes the index records:
    // they are marked stale, so the daemon rebuilds them from the
    // projection before it answers.
    post.stop();
    mark_index_records_stale(&post.data_dir().join("outpost.redb"))?;
    let rebuild = post.spawn_measured(|socket| {
        Client::connect(socket).ok().and_then(|mut c| c.call(search_request("Мухаммад Алиев")).ok()).is_some()
    });

    let socket_search = Stats::new(socket_search);
    let in_process = Stats::new(in_process);
    let add = Stats::new(add);
    println!("| figure | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!("{}", socket_search.row("search, end to end over the socket (incl. durable audit record)"));
    println!("{}", in_process.row("search, same queries on an in-process NameIndex"));
    println!("{}", add.row("durable add (single entry, fsync before reply)"));
    println!("{}", baseline.row("baseline: bare redb commit of 1 KiB, same durability"));
    println!();
    println!("queries with at least one match: {found} of {}", queries.len());
    println!("in-process index build for {} entries: {:.0} ms", entries.len(), ms(index_build));
    println!(
        "ratio search socket/in-process p50: {:.1}x",
        ms(socket_search.pct(0.5)) / ms(in_process.pct(0.5)).max(1e-6)
    );
    println!(
        "ratio durable add/bare commit p50: {:.1}x, p99: {:.1}x",
        ms(add.pct(0.5)) / ms(baseline.pct(0.5)),
        ms(add.pct(0.99)) / ms(baseline.pct(0.99))
    );
    println!();
    let cold_ms: Vec<String> = cold.iter().map(|d| format!("{:.0}", ms(*d))).collect();
    println!("cold start to first search answer at {} entries: {} ms", args.entries + args.adds, cold_ms.join(", "));
    println!("first start after an index format change (records rebuilt from the projection): {:.0} ms", ms(rebuild));
    if let Some(line) = post.log().lines().rev().find(|l| l.contains("search index rebuilt")) {
        println!("  daemon log: {}", line.trim());
    }
    println!("daemon RSS after cold start + one search: {} MiB (peak {} MiB)", cold_rss.0 / 1024, cold_rss.1 / 1024);
    println!("daemon RSS after import, searches and adds: {} MiB (peak {} MiB)", warm_rss / 1024, warm_hwm / 1024);
    println!("database file: {:.1} MiB", file_bytes as f64 / 1048576.0);
    Ok(())
}
