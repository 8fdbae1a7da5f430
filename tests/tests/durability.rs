//! Nothing acknowledged is ever lost: a stream of writes, SIGKILL at a
//! random moment, restart, check — many times over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use outpost_cli::client::Client;
use outpost_model::api::{AmendInput, NewEntryInput, Request, Response};
use outpost_tests::harness::{Post, wait_for};
use rand::{Rng, SeedableRng};

/// Kill cycles; OUTPOST_KILL_CYCLES raises it for a longer soak.
fn cycles() -> usize {
    std::env::var("OUTPOST_KILL_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(60)
}

#[derive(Default)]
struct Acknowledged {
    ids: BTreeSet<String>,
    /// The highest amendment number the daemon acknowledged for the canary.
    canary_version: usize,
}

fn entry(n: usize) -> NewEntryInput {
    NewEntryInput {
        kind: "person".into(),
        category: "warning".into(),
        reason: format!("durability write {n}"),
        names: vec![format!("Тимур Рахимов {n}")],
        ..Default::default()
    }
}

/// Writes until the connection breaks, recording what was acknowledged.
fn write_stream(
    post_socket: std::path::PathBuf,
    canary: String,
    start: usize,
    acked: Arc<AtomicUsize>,
) -> Acknowledged {
    let mut done = Acknowledged::default();
    let Ok(mut client) = Client::connect(&post_socket) else { return done };
    for n in start.. {
        let request = if n % 3 == 0 {
            let amendment = AmendInput { reason: Some(format!("canary {n}")), ..Default::default() };
            Request::WatchlistAmend { id: canary.clone(), amendment: Box::new(amendment) }
        } else {
            Request::WatchlistAdd { entry: Box::new(entry(n)) }
        };
        match client.call(request) {
            Ok(Response::Created(created)) => {
                done.ids.insert(created.id);
            }
            Ok(Response::Entry(_)) => done.canary_version = n,
            Ok(other) => panic!("unexpected reply {other:?}"),
            Err(_) => return done,
        }
        acked.fetch_add(1, Ordering::SeqCst);
    }
    done
}

#[test]
fn acknowledged_writes_survive_sigkill_mid_stream() {
    let mut post = Post::start();
    let canary = post.json(&[
        "watchlist",
        "add",
        "person",
        "--name",
        "Канарейка",
        "--category",
        "warning",
        "--reason",
        "canary 0",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut all_acked: BTreeSet<String> = BTreeSet::from([canary.clone()]);
    let mut canary_version = 0;
    let mut next = 1;
    let cycles = cycles();
    for cycle in 0..cycles {
        let acked = Arc::new(AtomicUsize::new(0));
        let stop_at = rng.random_range(1..25);
        let (socket, canary_id, counter) = (post.socket(), canary.clone(), acked.clone());
        let writer = std::thread::spawn(move || write_stream(socket, canary_id, next, counter));
        wait_for("acknowledged writes", Duration::from_secs(30), || acked.load(Ordering::SeqCst) >= stop_at);
        post.kill();
        let done = writer.join().unwrap();
        next += 1000;
        all_acked.extend(done.ids);
        canary_version = canary_version.max(done.canary_version);

        post.spawn();
        let status = post.json(&["status"]);
        assert_eq!(status["storage"]["repaired_on_open"], false, "cycle {cycle}: the database needed repair");
        let listed = post.json(&["watchlist", "list", "--limit", "10000"]);
        let present: BTreeSet<String> =
            listed["entries"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
        let lost: Vec<&String> = all_acked.difference(&present).collect();
        assert!(lost.is_empty(), "cycle {cycle}: acknowledged entries lost after SIGKILL: {lost:?}");
        let reason = post.json(&["watchlist", "show", &canary])["reason"].as_str().unwrap().to_string();
        let stored: usize = reason.trim_start_matches("canary ").parse().unwrap();
        assert!(stored >= canary_version, "cycle {cycle}: canary amendment {canary_version} lost, found {stored}");
    }
    let search = post.json(&["watchlist", "search", "Тимур Рахимов", "--purpose", "durability check", "--limit", "5"]);
    assert!(!search["matches"].as_array().unwrap().is_empty());
    assert!(all_acked.len() > cycles, "the stream wrote too little to test anything");
}
