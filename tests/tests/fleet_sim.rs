//! The seeded fleet simulator over the real engine. CI runs 2,000 seeds,
//! split over a few tests so they run in parallel;
//! `OUTPOST_SIM_SEEDS=20000` runs more.

use outpost_tests::fleet_sim;

const DEFAULT_SEEDS: u64 = 2_000;
const SHARDS: u64 = 8;

fn seeds() -> u64 {
    std::env::var("OUTPOST_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_SEEDS)
}

fn run_shard(shard: u64) {
    let mut failures = Vec::new();
    let mut converged_ms = Vec::new();
    for seed in (shard..seeds()).step_by(SHARDS as usize) {
        match fleet_sim::run(seed) {
            Ok(report) => converged_ms.push(report.converged_after_ms),
            Err(err) => failures.push(err),
        }
    }
    assert!(failures.is_empty(), "{} seeds failed; the first: {}", failures.len(), failures[0]);
    assert!(!converged_ms.is_empty());
}

#[test]
fn fleet_converges_shard_0() {
    run_shard(0);
}

#[test]
fn fleet_converges_shard_1() {
    run_shard(1);
}

#[test]
fn fleet_converges_shard_2() {
    run_shard(2);
}

#[test]
fn fleet_converges_shard_3() {
    run_shard(3);
}

#[test]
fn fleet_converges_shard_4() {
    run_shard(4);
}

#[test]
fn fleet_converges_shard_5() {
    run_shard(5);
}

#[test]
fn fleet_converges_shard_6() {
    run_shard(6);
}

#[test]
fn fleet_converges_shard_7() {
    run_shard(7);
}
