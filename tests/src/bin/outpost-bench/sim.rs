//! `outpost-bench sim`: the seeded fleet simulator over many seeds.

use outpost_tests::fleet_sim::Mode;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub(crate) struct SimArgs {
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

pub(crate) fn sim(args: &SimArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mode = if args.byzantine { Mode::Byzantine } else { Mode::Honest };
    let (mut failed, mut frames, mut bytes, mut worst_ms) = (0u64, 0u64, 0u64, 0i64);
    let (mut attacks, mut bad, mut held, mut attested, mut rosters, mut cut_offs) =
        (0usize, 0usize, 0usize, 0u64, 0usize, 0usize);
    for seed in args.from..args.from + args.seeds {
        let one = Instant::now();
        match outpost_tests::fleet_sim::run_mode(seed, mode) {
            Ok(report) => {
                attacks += report.attacks;
                bad += report.bad_changes;
                held += report.held;
                attested += report.attested;
                rosters += report.rosters_published;
                cut_offs += report.byzantine_cut_offs;
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
    if mode == Mode::Byzantine {
        println!(
            "{rosters} rosters published, {held} changes held in quarantine, {attested} admitted on an attestation, {cut_offs} connections to the byzantine node closed by honest nodes"
        );
    }
    anyhow::ensure!(failed == 0, "{failed} seeds failed");
    Ok(())
}
