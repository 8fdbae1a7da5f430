//! `outpost-bench backup`: `outpost backup` on a real release daemon while
//! an officer keeps adding entries. Reported side by side: the officer's
//! durable adds with no backup running and while one runs, the backup's
//! time and size, and `outpostd --restore` of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outpost_cli::client::Client;
use outpost_model::api::{Request, Response};
use outpost_tests::harness::{Post, PostOptions, binary};
use outpost_tests::sample::Generator;

use super::*;

#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    /// Entries on the post's list before the backup.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Seconds of adds with no backup running, before the backup.
    #[arg(long, default_value_t = 10)]
    baseline_seconds: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// When an add was acknowledged, and how long it took.
type Sample = (Instant, Duration);

pub(crate) fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    println!("entries: {}, baseline: {} s, seed: {}\n", args.entries, args.baseline_seconds, args.seed);
    let post = Post::start_with(PostOptions::default());
    let mut client = Client::connect(&post.socket()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut generator = Generator::new(args.seed);
    let entries: Vec<_> = (0..args.entries).map(|_| generator.entry()).collect();
    for batch in entries.chunks(2000) {
        call(&mut client, Request::WatchlistImport { entries: batch.to_vec() })?;
    }

    // The officer: one durable add after another, each timed.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let officer = {
        let (socket, stop, samples) = (post.socket(), stop.clone(), samples.clone());
        let mut generator = Generator::new(args.seed + 1);
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut client = Client::connect(&socket).map_err(|e| anyhow::anyhow!("{e}"))?;
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                call(&mut client, Request::WatchlistAdd { entry: Box::new(generator.entry()) })?;
                let done = Instant::now();
                samples.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push((done, done - started));
            }
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_secs(args.baseline_seconds));

    let scratch = tempfile::tempdir()?;
    let file = scratch.path().join("post.backup");
    let backup_started = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    let written = client.call_streaming(Request::Backup, &mut out).map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(out);
    let backup_ended = Instant::now();
    // A measurement window, not a wait: the officer's adds that began
    // during the backup finish and are counted.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    officer.join().map_err(|_| anyhow::anyhow!("the officer's thread panicked"))??;
    let Response::BackupWritten(summary) = written else { anyhow::bail!("unexpected reply to the backup") };

    let samples = samples.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    // An add counts as during the backup if any of it overlapped it.
    let during: Vec<Duration> = samples
        .iter()
        .filter(|(done, took)| *done >= backup_started && *done - *took <= backup_ended)
        .map(|(_, took)| *took)
        .collect();
    let before: Vec<Duration> =
        samples.iter().filter(|(done, _)| *done < backup_started).map(|(_, took)| *took).collect();

    let restored = scratch.path().join("restored");
    let restore_started = Instant::now();
    let run = std::process::Command::new(binary("outpostd"))
        .arg("--restore")
        .arg(&file)
        .arg("--data-dir")
        .arg(&restored)
        .output()?;
    let restore_took = restore_started.elapsed();
    anyhow::ensure!(run.status.success(), "restore failed: {}", String::from_utf8_lossy(&run.stderr));

    let took = backup_ended - backup_started;
    let store_bytes = std::fs::metadata(post.data_dir().join("outpost.redb"))?.len();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| store file | {:.1} MiB |", store_bytes as f64 / 1048576.0);
    println!("| backup: rows, tables | {}, {} |", summary.rows, summary.tables);
    println!("| backup file | {:.1} MiB |", summary.bytes as f64 / 1048576.0);
    println!("| backup time | {:.2} s ({:.0} rows/s) |", took.as_secs_f64(), summary.rows as f64 / took.as_secs_f64());
    println!("| restore time (`outpostd --restore`) | {:.2} s |", restore_took.as_secs_f64());
    println!();
    println!("| officer's durable adds | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    let (before, during) = (Stats::new(before), Stats::new(during));
    println!("{}", before.row("no backup running"));
    println!("{}", during.row("while the backup runs"));
    println!(
        "\nratio during/before: p50 {:.1}x, p99 {:.1}x; adds acknowledged during the backup: {}",
        ms(during.pct(0.5)) / ms(before.pct(0.5)).max(f64::MIN_POSITIVE),
        ms(during.pct(0.99)) / ms(before.pct(0.99)).max(f64::MIN_POSITIVE),
        during.0.len()
    );
    Ok(())
}
