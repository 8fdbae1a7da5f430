//! Real `outpostd` processes replicating over loopback, driven through the
//! real `outpost` CLI: changes hop along a line, a cut-off post catches up,
//! a post killed mid-sync loses nothing, and a post with another key is
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use outpost_tests::harness::{FleetKey, Post, free_port, networked_post, wait_for};
use outpost_tests::link_emulator::{Link, LinkProfile};

const SYNC_DEADLINE: Duration = Duration::from_secs(60);

fn holds(post: &Post, id: &str) -> bool {
    post.outpost(&["--json", "watchlist", "show", id, "--purpose", "fleet test"]).code == 0
}

#[test]
fn a_change_hops_along_a_line_and_a_cut_off_post_catches_up() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port(), free_port()];
    let centre = networked_post("centre", "KAZ-BS", &key, ports[0], &[]);
    let mut middle = networked_post("post-a", "KAZ-BS", &key, ports[1], &[ports[0]]);
    let end = networked_post("post-b", "UZB-DCS", &key, ports[2], &[ports[1]]);
    // Enrolled at the centre; the roster reaches the others hop by hop.
    key.enroll_all(&centre, &[&centre, &middle, &end]);

    // The end post never talks to the centre: the entry must hop.
    let first = centre.add_person("Мухаммад Алиев");
    wait_for("the entry to reach post-b through post-a", SYNC_DEADLINE, || holds(&end, &first));
    let names = end.connected_peers();
    assert_eq!(names, vec!["post-a".to_string()], "post-b talks only to post-a");

    // Cut the middle post off; both ends keep recording.
    assert!(middle.stop().success());
    let at_centre = centre.add_person("Ерлан Сейткали");
    let at_end = end.add_person("Шерзод Рахимов");
    assert!(!holds(&end, &at_centre) && !holds(&centre, &at_end));

    middle.spawn();
    wait_for("both ends to converge after the heal", SYNC_DEADLINE, || {
        holds(&end, &at_centre) && holds(&centre, &at_end) && holds(&middle, &at_centre) && holds(&middle, &at_end)
    });
    for p in [&centre, &middle, &end] {
        assert_eq!(p.entry_count(), 3, "{}", p.log());
    }
    // Every post shows the peers it knows and what it holds with them.
    let peers = middle.json(&["peers"]);
    let list = peers["peers"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{peers}");
    assert!(list.iter().all(|p| p["connected"] == true && p["bytes_received"].as_u64().unwrap() > 0), "{peers}");
    let status = end.json(&["status"]);
    assert!(status["peer_id"].as_str().unwrap().starts_with("12D3KooW"), "{status}");
    assert_eq!(status["listen_addrs"][0], format!("/ip4/127.0.0.1/tcp/{}", ports[2]));
    assert!(status["replication"]["stalest_document"].is_string(), "{status}");
}

#[test]
fn a_post_killed_mid_sync_loses_nothing_and_finishes_after_restart() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let centre = networked_post("centre", "KAZ-BS", &key, ports[0], &[]);
    // Until it is enrolled, a node writes only its own incident log.
    key.enroll(&centre, &centre);
    centre.import_generated(7, 3000, 100);
    let total = centre.entry_count();
    assert_eq!(total, 3000);

    // A slow link, so that the kill lands while the list is on its way.
    let link = Link::start(ports[0], LinkProfile::rate(60_000), 1);
    let mut post = networked_post("post-a", "KAZ-BS", &key, ports[1], &[link.port()]);
    key.enroll(&centre, &post);
    wait_for("the first entries to arrive", SYNC_DEADLINE, || post.entry_count() > 0);
    let before_kill = post.entry_count();
    post.kill();
    assert!(before_kill < total, "the whole list arrived before the kill; slow the link");
    post.spawn();
    let after_restart = post.entry_count();
    assert!(after_restart >= before_kill, "stored entries survive SIGKILL: {after_restart} < {before_kill}");
    wait_for("the rest after the restart", SYNC_DEADLINE, || post.entry_count() == total);
    let status = post.json(&["status"]);
    assert_eq!(status["storage"]["repaired_on_open"], false, "{status}");
    // Written at the post after the restart, it reaches the centre too.
    let back = post.add_person("Гульнара Каримова");
    wait_for("the post's entry at the centre", SYNC_DEADLINE, || holds(&centre, &back));
}

#[test]
fn a_post_with_another_key_is_refused() {
    let fleet = FleetKey::generate();
    let stranger_key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let centre = networked_post("centre", "KAZ-BS", &fleet, ports[0], &[]);
    let stranger = networked_post("stranger", "KAZ-BS", &stranger_key, ports[1], &[ports[0]]);
    fleet.enroll(&centre, &centre);
    let secret = centre.add_person("Алишер Назаров");
    wait_for("the centre to refuse the stranger", SYNC_DEADLINE, || {
        centre.log().contains("refused an incoming connection")
    });
    assert!(centre.connected_peers().is_empty(), "{}", centre.log());
    assert!(stranger.connected_peers().is_empty(), "{}", stranger.log());
    assert!(!holds(&stranger, &secret));
    // Both log their key's fingerprint, which is how an admin sees the mismatch.
    let fingerprint = |p: &Post| p.json(&["status"])["replication"]["psk_fingerprint"].as_str().unwrap().to_string();
    assert_ne!(fingerprint(&centre), fingerprint(&stranger));
    assert!(centre.log().contains("psk_fingerprint"));
}
