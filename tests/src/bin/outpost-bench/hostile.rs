//! `outpost-bench hostile`: one enrolled but hostile member against a
//! real release daemon. Each attack floods the daemon at full speed for a
//! while; meanwhile an officer searches over the control socket. Reported
//! side by side: the searches' latency with no attack and under each one,
//! and the daemon's RSS above its idle RSS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use outpost_cli::client::Client;
use outpost_model::api::{NewEntryInput, Request};
use outpost_model::replication::digest::View;
use outpost_model::replication::frame::{Body, BundleKind};
use outpost_model::schema::DocKind;
use outpost_model::trust::{PublicKey, Signer};
use outpost_tests::harness::{FleetKey, Post, free_port, networked_post};
use outpost_tests::rogue::{Rogue, bundle_frames, incident_chain, uleb};
use outpost_tests::sample::Generator;

use super::*;

#[derive(Debug, clap::Args)]
pub(crate) struct HostileArgs {
    /// Entries on the centre's list.
    #[arg(long, default_value_t = 20_000)]
    entries: usize,
    /// Seconds each attack (and the quiet baseline) runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Signed changes in the flood of valid changes (and of orphans).
    #[arg(long, default_value_t = 3_000)]
    changes: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs only the attacks whose name contains one of these (for
    /// example `--only valid --only Reset`), in their usual order; all of
    /// them when absent.
    #[arg(long)]
    only: Vec<String>,
}

const ROGUE: [u8; 32] = [66; 32];
const ROGUE_NAME: &str = "kz-rogue";

/// One phase's figures.
struct Phase {
    name: &'static str,
    searches: Stats,
    rss_peak_kib: u64,
    frames: u64,
    disconnects: usize,
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Searches for `seconds` as an officer would (one at a time), while a
/// sampler reads the daemon's RSS; returns the latencies and the highest
/// RSS seen.
fn search_while(post: &Post, queries: &[String], seconds: u64) -> anyhow::Result<(Stats, u64)> {
    let pid = post.pid().ok_or_else(|| anyhow::anyhow!("the daemon is not running"))?;
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid, "VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let mut client = Client::connect(&post.socket()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut latencies = Vec::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    for query in queries.iter().cycle() {
        if Instant::now() >= until {
            break;
        }
        let started = Instant::now();
        call(&mut client, search_request(query))?;
        latencies.push(started.elapsed());
        // An officer types between searches; 20 a second is far more.
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    Ok((Stats::new(latencies), peak.load(Ordering::Relaxed)))
}

/// A sync message carrying `chunks` as its changes, with `have` as its
/// Bloom filter bytes (none when empty).
fn sync_message(chunks: Vec<Vec<u8>>, bloom: &[u8]) -> anyhow::Result<Vec<u8>> {
    use automerge::sync::SyncDoc;
    let mut doc = automerge::AutoCommit::new();
    let mut state = automerge::sync::State::new();
    let mut message =
        doc.sync().generate_sync_message(&mut state).ok_or_else(|| anyhow::anyhow!("no opening message"))?;
    message.changes = automerge::sync::ChunkList::from(chunks);
    if !bloom.is_empty() {
        let filter = automerge::sync::BloomFilter::try_from(bloom).map_err(|e| anyhow::anyhow!("{e}"))?;
        message.have = vec![automerge::sync::Have { last_sync: Vec::new(), bloom: filter }];
    }
    Ok(message.encode())
}

/// A compressed change chunk whose deflated body expands to `expands`
/// bytes of zeros: a deflate bomb (the checksum is never reached).
fn change_bomb(expands: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; expands])?;
    let body = encoder.finish()?;
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    uleb(body.len() as u64, &mut out);
    out.extend_from_slice(&body);
    Ok(out)
}

/// A Bloom filter of `entries` entries at Automerge's 10 bits and 7 probes.
fn bloom(entries: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for n in [entries, 10, 7] {
        uleb(n, &mut out);
    }
    out.extend(std::iter::repeat_n(0x5a, (entries * 10).div_ceil(8) as usize));
    out
}

fn frame(body: Body) -> anyhow::Result<Vec<u8>> {
    body.encode().map_err(|e| anyhow::anyhow!("{e}"))
}

/// An attack: its name, and the cycle of frames the rogue sends as fast
/// as the daemon reads.
type Attack = (&'static str, Vec<Vec<u8>>);

fn attacks(args: &HostileArgs, roster: u64) -> anyhow::Result<Vec<Attack>> {
    let signer = Signer::from_secret(ROGUE);
    let (log, changes) = incident_chain(ROGUE, ROGUE_NAME, "KAZ-BS", args.changes);
    let mut valid = Vec::new();
    for change in &changes {
        valid.extend(bundle_frames(1, &log, std::slice::from_ref(change), &signer));
    }
    // Another chain without its first change: every one an orphan (with
    // an actor no roster names, which no one judges while it waits).
    let (other_log, other) = incident_chain([67; 32], ROGUE_NAME, "KAZ-BS", args.changes + 1);
    let mut orphans = Vec::new();
    for change in other.iter().skip(1) {
        orphans.extend(bundle_frames(2, &other_log, std::slice::from_ref(change), &signer));
    }
    let bombs = {
        let bomb = change_bomb(1 << 20)?;
        let copies = (900 * 1024) / bomb.len();
        let message = sync_message(vec![bomb.repeat(copies)], &[])?;
        vec![
            frame(Body::Open { slot: 3, doc: log.to_string(), priority: 2 })?,
            frame(Body::Sync { slot: 3, message, proofs: Vec::new() })?,
        ]
    };
    let resets = {
        let mut frames = vec![frame(Body::Reconcile { roster, parts: View::default().opening() })?];
        for shard in 0..16u8 {
            let doc = DocKind::Watchlist { authority: "KAZ-BS".into(), shard }.doc_id();
            let slot = 100 + u32::from(shard);
            frames.push(frame(Body::Open { slot, doc: doc.to_string(), priority: 1 })?);
            frames.push(frame(Body::Reset { slot, reason: "start again".into() })?);
        }
        frames
    };
    let blooms = {
        let message = sync_message(Vec::new(), &bloom(600_000))?;
        let mut frames = Vec::new();
        for (n, month) in (2000..2026).flat_map(|y| (1..=12).map(move |m| format!("{y}-{m:02}"))).enumerate() {
            let doc = DocKind::Incidents { post: ROGUE_NAME.into(), month }.doc_id();
            let slot = 1_000 + n as u32;
            frames.push(frame(Body::Open { slot, doc: doc.to_string(), priority: 2 })?);
            frames.push(frame(Body::Sync { slot, message: message.clone(), proofs: Vec::new() })?);
        }
        frames
    };
    let junk = {
        let message = sync_message(Vec::new(), &[])?;
        let mut frames = Vec::new();
        for n in 0..512u32 {
            let doc = if n % 2 == 0 {
                format!("watchlist/NOBODY-{n}/00")
            } else {
                format!("incidents/{ROGUE_NAME}/29{:02}-01", n % 100)
            };
            let slot = 5_000 + n;
            frames.push(frame(Body::Open { slot, doc, priority: 1 })?);
            frames.push(frame(Body::Sync { slot, message: message.clone(), proofs: Vec::new() })?);
        }
        frames
    };
    let reassembly = {
        let mut frames = Vec::new();
        for n in 0..64u32 {
            let month = format!("{}-{:02}", 2010 + n / 12, n % 12 + 1);
            let doc = DocKind::Incidents { post: ROGUE_NAME.into(), month };
            let slot = 9_000 + n;
            frames.push(frame(Body::Open { slot, doc: doc.doc_id().to_string(), priority: 2 })?);
            let data = vec![n as u8; 1000 * 1024];
            frames.push(frame(Body::Bundle { slot, kind: BundleKind::Snapshot, part: 0, of: 64, data })?);
        }
        frames
    };
    Ok(vec![
        ("valid signed changes, one bundle each", valid),
        ("orphans: changes whose parent never comes", orphans),
        ("deflate bombs: 1 MiB per change, a frame of them", bombs),
        ("Bloom filters of 600,000 entries on 312 documents", blooms),
        ("junk document ids", junk),
        ("bundle parts never completed", reassembly),
        // Last: its reconcile frames pass the period's cap, which now holds
        // across reconnections, so the rogue is cut off at each greeting
        // for the rest of the period.
        ("claims to hold nothing, then Reset after Reset on every shard", resets),
    ])
}

pub(crate) fn hostile(args: &HostileArgs) -> anyhow::Result<()> {
    println!("entries: {}, seconds per phase: {}, changes: {}\n", args.entries, args.seconds, args.changes);
    let key = FleetKey::generate();
    let port = free_port();
    let centre = networked_post("kz-centre", "KAZ-BS", &key, port, &[]);
    key.enroll(&centre, &centre);
    let rogue_peer = Signer::from_secret(ROGUE).public().peer_id();
    let enrolled = key.enroll_peer(&centre, &rogue_peer, ROGUE_NAME, "KAZ-BS", "post", &[]);
    anyhow::ensure!(enrolled.code == 0, "enrolling the rogue: {enrolled:?}");

    let mut generator = Generator::new(args.seed);
    let entries: Vec<NewEntryInput> = (0..args.entries).map(|_| generator.entry()).collect();
    let mut client = Client::connect(&centre.socket()).map_err(|e| anyhow::anyhow!("{e}"))?;
    for batch in entries.chunks(2000) {
        call(&mut client, Request::WatchlistImport { entries: batch.to_vec() })?;
    }
    let queries = queries(&entries, 500, args.seed);

    let anchor = PublicKey::parse_hex(&key.admin).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rogue = Rogue::start(ROGUE, ROGUE_NAME, anchor, Some(&centre.roster_bytes()), &key.path(), port);
    super::fleet::until("the rogue to be greeted", Duration::from_secs(60), || {
        centre.peer_named(ROGUE_NAME).is_some_and(|p| p["connected"] == true)
    })?;
    let pid = centre.pid().ok_or_else(|| anyhow::anyhow!("the centre is not running"))?;
    // Warm: every shard loaded, the index and the caches touched.
    search_while(&centre, &queries, 3)?;
    let idle_kib = rss_kib(pid, "VmRSS:");
    let (quiet, quiet_peak) = search_while(&centre, &queries, args.seconds)?;
    let mut phases =
        vec![Phase { name: "no attack", searches: quiet, rss_peak_kib: quiet_peak, frames: 0, disconnects: 0 }];

    let chosen = attacks(args, centre.roster_version())?
        .into_iter()
        .filter(|(name, _)| args.only.is_empty() || args.only.iter().any(|only| name.contains(only.as_str())));
    for (name, frames) in chosen {
        let before = rogue.seen.lock().map(|s| s.disconnects.len()).unwrap_or(0);
        let flood = rogue.flood(frames);
        let (searches, peak) = search_while(&centre, &queries, args.seconds)?;
        flood.stop();
        let disconnects = rogue.seen.lock().map(|s| s.disconnects.len()).unwrap_or(0) - before;
        phases.push(Phase { name, searches, rss_peak_kib: peak, frames: flood.sent(), disconnects });
        // The next attack starts from a connection.
        if name != "claims to hold nothing, then Reset after Reset on every shard" {
            super::fleet::until("the rogue to be connected again", Duration::from_secs(120), || rogue.connected())?;
        }
    }
    rogue.stop();

    println!("idle RSS after the import and a warm-up: {} MiB\n", idle_kib / 1024);
    println!("| attack | frames sent | searches | p50 ms | p99 ms | max ms | RSS peak above idle, MiB | disconnects |");
    println!("|---|---|---|---|---|---|---|---|");
    for phase in &phases {
        let s = &phase.searches;
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.0} | {} |",
            phase.name,
            phase.frames,
            s.0.len(),
            ms(s.pct(0.5)),
            ms(s.pct(0.99)),
            ms(s.0.last().copied().unwrap_or_default()),
            phase.rss_peak_kib.saturating_sub(idle_kib) as f64 / 1024.0,
            phase.disconnects,
        );
    }
    let worst_p99 = phases.iter().map(|p| p.searches.pct(0.99)).max().unwrap_or_default();
    let worst_rss = phases.iter().map(|p| p.rss_peak_kib.saturating_sub(idle_kib)).max().unwrap_or(0);
    println!(
        "\nworst search p99 under attack: {:.3} ms (target 20 ms); quiet p99 {:.3} ms, ratio {:.1}x",
        ms(worst_p99),
        ms(phases[0].searches.pct(0.99)),
        ms(worst_p99) / ms(phases[0].searches.pct(0.99)).max(1e-6)
    );
    println!("worst RSS above idle: {} MiB (target 300 MiB)", worst_rss / 1024);
    println!("daemon peak RSS (VmHWM): {} MiB", rss_kib(pid, "VmHWM:") / 1024);
    println!("\nmachine: {}", machine());
    Ok(())
}
