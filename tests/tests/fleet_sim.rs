//! The seeded fleet simulator over the daemon's real writer (and so the
//! real engine and storage), with disk faults in about a third of the
//! seeds. CI runs 2,000 honest seeds and 2,000 byzantine ones, split over a
//! few tests so they run in parallel; `OUTPOST_SIM_SEEDS=20000` runs more
//! of each.

use outpost_tests::fleet_sim::{self, Mode};

const DEFAULT_SEEDS: u64 = 2_000;
const SHARDS: u64 = 8;

fn seeds() -> u64 {
    std::env::var("OUTPOST_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_SEEDS)
}

fn run_shard(mode: Mode, shard: u64) {
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for seed in (shard..seeds()).step_by(SHARDS as usize) {
        match fleet_sim::run_mode(seed, mode) {
            Ok(report) => reports.push(report),
            Err(err) => failures.push(err),
        }
    }
    assert!(failures.is_empty(), "{} seeds failed; the first: {}", failures.len(), failures[0]);
    assert!(!reports.is_empty());
    // Disks failed, and officers were told so, not only in theory.
    let injected: u64 = reports.iter().map(|r| r.faults_injected).sum();
    let refused: usize = reports.iter().map(|r| r.refused_by_disk).sum();
    assert!(injected > 0, "no disk failed in {} seeds", reports.len());
    if reports.len() >= 100 {
        assert!(refused > 0, "no officer's write met a failing disk in {} seeds", reports.len());
    }
    if mode == Mode::Byzantine {
        // The mode must have done what it is for, not merely converged.
        let attacks: usize = reports.iter().map(|r| r.attacks).sum();
        let bad: usize = reports.iter().map(|r| r.bad_changes).sum();
        let rosters: usize = reports.iter().map(|r| r.rosters_published).sum();
        assert!(attacks > reports.len() && bad > reports.len(), "{attacks} attacks, {bad} bad changes");
        assert!(rosters > reports.len() / 2, "{rosters} rosters published over {} seeds", reports.len());
    }
}

macro_rules! shards {
    ($mode:expr, $($name:ident = $shard:expr),*) => {
        $(
            #[test]
            fn $name() {
                run_shard($mode, $shard);
            }
        )*
    };
}

shards!(
    Mode::Honest,
    fleet_converges_shard_0 = 0,
    fleet_converges_shard_1 = 1,
    fleet_converges_shard_2 = 2,
    fleet_converges_shard_3 = 3,
    fleet_converges_shard_4 = 4,
    fleet_converges_shard_5 = 5,
    fleet_converges_shard_6 = 6,
    fleet_converges_shard_7 = 7
);

shards!(
    Mode::Byzantine,
    honest_nodes_converge_past_a_byzantine_member_shard_0 = 0,
    honest_nodes_converge_past_a_byzantine_member_shard_1 = 1,
    honest_nodes_converge_past_a_byzantine_member_shard_2 = 2,
    honest_nodes_converge_past_a_byzantine_member_shard_3 = 3,
    honest_nodes_converge_past_a_byzantine_member_shard_4 = 4,
    honest_nodes_converge_past_a_byzantine_member_shard_5 = 5,
    honest_nodes_converge_past_a_byzantine_member_shard_6 = 6,
    honest_nodes_converge_past_a_byzantine_member_shard_7 = 7
);
