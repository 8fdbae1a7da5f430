//! `outpost-bench shards`: why watchlists are sharded.

use outpost_model::EntryId;
use outpost_model::date::Timestamp;
use outpost_model::schema::DocKind;
use outpost_model::validate::{PostContext, new_entry};
use outpost_tests::sample::Generator;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

#[derive(Debug, clap::Args)]
pub(crate) struct ShardArgs {
    /// Entries per shard (16 shards per authority).
    #[arg(long, default_value_t = 6_250)]
    shard: usize,
    /// Entries in one unsharded document.
    #[arg(long, default_value_t = 100_000)]
    whole: usize,
    #[arg(long, default_value_t = 200)]
    writes: usize,
}

/// Bare redb commits of 1 KiB with the daemon's durability settings: the
/// floor any durable add stands on.
pub(crate) fn redb_commit_baseline(dir: &Path, count: usize) -> anyhow::Result<Stats> {
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
pub(crate) fn document_cost(size: usize, writes: usize) -> anyhow::Result<(Stats, usize, Duration, Duration)> {
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

pub(crate) fn shards(args: &ShardArgs) -> anyhow::Result<()> {
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
