//! `outpost-bench post`: single-post figures on a real release daemon.

use anyhow::Context;
use outpost_cli::client::Client;
use outpost_model::EntryId;
use outpost_model::api::{NewEntryInput, Request, SearchInput};
use outpost_model::date::Timestamp;
use outpost_model::search::{NameIndex, SearchQuery, WatchlistIndex, upsert};
use outpost_model::validate::PostContext;
use outpost_tests::harness::{Post, PostOptions};
use outpost_tests::sample::{Generator, entry_from, icao_latin};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Instant;

use super::*;

#[derive(Debug, clap::Args)]
pub(crate) struct PostArgs {
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

/// Queries an officer would type: full names in Cyrillic, in the ICAO
/// passport spelling, in another romanisation, in MRZ form, with a typo,
/// surnames alone, plates, and names that are not on the list.
pub(crate) fn queries(entries: &[NewEntryInput], count: usize, seed: u64) -> Vec<String> {
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
pub(crate) fn mark_index_records_stale(db: &Path) -> anyhow::Result<()> {
    const TABLE_VERSIONS: redb::TableDefinition<&str, u32> = redb::TableDefinition::new("table_versions");
    let db = redb::Database::open(db)?;
    let txn = db.begin_write()?;
    txn.open_table(TABLE_VERSIONS)?.insert("search_keys", 0)?;
    txn.commit()?;
    Ok(())
}

pub(crate) fn search_request(query: &str) -> Request {
    Request::WatchlistSearch(Box::new(SearchInput {
        query: query.into(),
        purpose: "benchmark".into(),
        limit: Some(10),
        ..Default::default()
    }))
}

pub(crate) fn post(args: &PostArgs) -> anyhow::Result<()> {
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
