//! `outpost-bench fleet`: real release daemons replicating.

use outpost_cli::client::Client;
use outpost_model::api::{NewEntryInput, Request};
use outpost_tests::harness::{FleetKey, Post, PostOptions, free_port, network_config};
use outpost_tests::sample::Generator;
use std::time::{Duration, Instant};

use super::*;

#[derive(Debug, clap::Args)]
pub(crate) struct FleetArgs {
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

pub(crate) fn fleet_post(name: &str, key: &FleetKey, port: u16, peers: &[u16]) -> Post {
    Post::start_with(PostOptions {
        node_name: name.into(),
        extra_config: network_config(key, port, peers),
        ..Default::default()
    })
}

pub(crate) fn holds_entry(post: &Post, id: &str) -> bool {
    post.outpost(&["--json", "watchlist", "show", id, "--purpose", "bench"]).code == 0
}

pub(crate) fn add_one(post: &Post, name: &str) -> anyhow::Result<String> {
    let added =
        post.json(&["watchlist", "add", "person", "--name", name, "--category", "warning", "--reason", "bench"]);
    added["id"].as_str().map(String::from).ok_or_else(|| anyhow::anyhow!("no id in {added}"))
}

pub(crate) fn until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !condition() {
        anyhow::ensure!(started.elapsed() < limit, "{what} took longer than {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(started.elapsed())
}

pub(crate) fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

pub(crate) fn fleet(args: &FleetArgs) -> anyhow::Result<()> {
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
    // Enrolled first: until then a node writes only its own incident log.
    key.enroll(&hub, &hub);
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
    let members: Vec<&Post> = peers.iter().collect();
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
