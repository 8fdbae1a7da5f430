//! Restarts and compaction keep data and the search index intact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use outpost_tests::harness::{Post, PostOptions, wait_for};

#[test]
fn changes_compact_in_the_background_and_survive_a_clean_restart() {
    let mut post =
        Post::start_with(PostOptions { extra_config: "compact_after_changes = 5".into(), ..Default::default() });
    let id = post.json(&[
        "watchlist",
        "add",
        "person",
        "--name",
        "Шерзод Юсупов",
        "--category",
        "discreet-check",
        "--reason",
        "v0",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    for n in 1..=30 {
        post.json(&["watchlist", "amend", &id, "--reason", &format!("v{n}")]);
    }
    wait_for("compaction", Duration::from_secs(20), || {
        post.json(&["status"])["storage"]["pending_changes"].as_u64().unwrap() < 5
    });
    let status = post.stop();
    assert!(status.success(), "outpostd exited with {status} on SIGTERM");
    assert!(!post.socket().exists(), "a clean stop removes the socket");

    post.spawn();
    assert_eq!(post.json(&["watchlist", "show", &id])["reason"], "v30");
    let matches = post.json(&["watchlist", "search", "Sherzod Iusupov", "--purpose", "restart check"]);
    assert_eq!(matches["matches"][0]["id"], id.as_str(), "the index is rebuilt from the projection");
    post.json(&["watchlist", "amend", &id, "--reason", "v31"]);
    assert_eq!(post.json(&["watchlist", "show", &id])["reason"], "v31");
}

#[test]
fn a_stale_socket_from_a_crash_is_replaced() {
    let mut post = Post::start();
    post.kill();
    assert!(post.socket().exists(), "SIGKILL leaves the socket file behind");
    post.spawn();
    assert_eq!(post.json(&["status"])["entries"], 0);
}
