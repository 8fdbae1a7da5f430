//! A store written before fleet trust: `tests/data/pre-trust-store` was
//! written by `outpostd` at commit 43edbbd (the last release without the
//! roster) as post `kz-old-post` of KAZ-BS: two watchlist entries (one
//! amended) and an incident. Its changes carry actors made from the
//! store's random node id, not from the node's key. The node signs that
//! history once at start; the fleet holds it back until the admin binds
//! the old actor to the node (`--legacy-actor`), then takes it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use outpost_tests::harness::{FleetKey, Post, PostOptions, free_port, network_config, networked_post, wait_for};

const DEADLINE: Duration = Duration::from_secs(60);
/// The node id the fixture's store was created with.
const OLD_ACTOR: &str = "f58c0d726e8e4fcbab93cac064b08d63";

fn signed_history_lines(post: &Post) -> usize {
    post.log().matches("signed this node's history from before fleet trust").count()
}

#[test]
fn a_store_from_before_fleet_trust_is_signed_once_and_the_fleet_takes_it_once_its_old_actor_is_enrolled() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let centre = networked_post("kz-centre", "KAZ-BS", &key, ports[0], &[]);
    key.enroll(&centre, &centre);
    let mut old = Post::start_with(PostOptions {
        node_name: "kz-old-post".into(),
        authority: "KAZ-BS".into(),
        extra_config: network_config(&key, ports[1], &[ports[0]]),
        data_from: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pre-trust-store")),
        ..Default::default()
    });
    // Its own data reads as before, and it signed its history.
    let status = old.json(&["status"]);
    assert_eq!((status["entries"].as_u64(), status["incidents"].as_u64()), (Some(2), Some(1)), "{status}");
    assert_eq!(signed_history_lines(&old), 1, "{}", old.log());
    assert_eq!(status["legacy_actor"], OLD_ACTOR, "{status}");
    assert_eq!(status["legacy_actor_bound"], false);
    let shown = old.outpost(&["status"]);
    assert!(shown.stdout.contains(&format!("--legacy-actor {OLD_ACTOR}")), "{}", shown.stdout);

    // Enrolled without its old actor, it syncs, but its old changes have
    // no member to answer for them: the centre holds them back.
    key.enroll(&centre, &old);
    wait_for("the centre to hold the old changes back", DEADLINE, || centre.held_changes() > 0);
    assert_eq!(centre.entry_count(), 0);
    eprintln!("held at the centre before the old actor is bound: {}", centre.held_changes());

    // Its old actor bound to it, the fleet takes its history.
    let run = key.enroll_with(&centre, &old, "centre", &["--grant", "incident-log", "--legacy-actor", OLD_ACTOR]);
    assert_eq!(run.code, 0, "{run:?}");
    wait_for("the centre to take the old history", DEADLINE, || {
        let status = centre.json(&["status"]);
        status["entries"] == 2 && status["incidents"] == 1
    });
    assert_eq!(centre.held_changes(), 0);
    wait_for("the old post to hold the roster", DEADLINE, || old.json(&["status"])["legacy_actor_bound"] == true);
    // A written-since change travels as any other.
    let new = old.add_person("Шерзод Рахимов");
    wait_for("the new entry at the centre", DEADLINE, || {
        centre.outpost(&["--json", "watchlist", "show", &new, "--purpose", "legacy test"]).code == 0
    });

    // Signed once: a restart does not sign again.
    assert!(old.stop().success());
    old.spawn();
    assert_eq!(signed_history_lines(&old), 1, "{}", old.log());
    assert_eq!(old.entry_count(), 3);
}
