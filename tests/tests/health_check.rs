//! `outpost status --check`, as a timer or a monitoring agent runs it:
//! exit 0 when the post is healthy, else the documented code of the most
//! severe failure (10 store, 11 disk, 12 peers, 13 roster), each check
//! saying what it found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use outpost_tests::harness::{
    FleetKey, Post, PostOptions, Run, free_port, network_config, networked_post, running_as_root, wait_for, wait_for_ok,
};

const DEADLINE: Duration = Duration::from_secs(60);

fn check(post: &Post) -> Run {
    post.outpost(&["--json", "status", "--check"])
}

/// Whether the check named `name` passed, from `--json` output.
fn passed(run: &Run, name: &str) -> bool {
    let report = run.json();
    let checks = report["checks"].as_array().unwrap_or_else(|| panic!("no checks: {run:?}"));
    let found = checks.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no {name} check: {run:?}"));
    found["ok"].as_bool().unwrap()
}

#[test]
fn an_enrolled_post_that_syncs_with_its_centre_is_healthy() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let centre = networked_post("kz-centre", "KAZ-BS", &key, ports[0], &[]);
    let post = networked_post("kz-nurzhol", "KAZ-BS", &key, ports[1], &[ports[0]]);
    key.enroll_all(&centre, &[&centre, &post]);
    wait_for("the post to be healthy", DEADLINE, || check(&post).code == 0);
    let run = check(&post);
    for name in ["store", "disk", "peers", "roster"] {
        assert!(passed(&run, name), "{name}: {run:?}");
    }
    let text = post.outpost(&["status", "--check"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains("ok   store") && text.stdout.contains("ok   roster"), "{text:?}");
    // Plain status is unchanged.
    assert_eq!(post.outpost(&["status"]).code, 0);
}

#[test]
fn a_post_nobody_has_heard_and_that_holds_no_roster_exits_12_naming_both() {
    let key = FleetKey::generate();
    let post = Post::start_with(PostOptions {
        extra_config: format!("[health]\nno_peer_for = \"0s\"\n{}", network_config(&key, free_port(), &[])),
        ..Default::default()
    });
    wait_for("a second of silence", DEADLINE, || check(&post).code != 0);
    let run = check(&post);
    assert_eq!(run.code, 12, "peers is the most severe failure: {run:?}");
    assert!(!passed(&run, "peers") && !passed(&run, "roster"), "{run:?}");
    assert!(passed(&run, "store") && passed(&run, "disk"), "{run:?}");
    assert!(run.stderr.contains("unhealthy: peers: no peer heard since start"), "{run:?}");
    let text = post.outpost(&["status", "--check"]);
    assert!(text.stdout.contains("FAIL roster  no roster held"), "{text:?}");
}

#[test]
fn too_little_free_disk_exits_11() {
    let post = Post::start_with(PostOptions {
        extra_config: "[health]\ndisk_min_free_mib = 1099511627776\n".into(),
        ..Default::default()
    });
    let run = check(&post);
    assert_eq!(run.code, 11, "{run:?}");
    assert!(!passed(&run, "disk") && passed(&run, "store") && passed(&run, "peers"), "{run:?}");
    assert!(passed(&run, "roster"), "a post that does not network has no roster to age: {run:?}");
}

#[test]
fn a_store_that_takes_no_write_exits_10_and_recovers_by_itself() {
    if !running_as_root("mounts a tmpfs") {
        return;
    }
    let post = Post::start_with(PostOptions {
        data_tmpfs: Some(8 * 1024 * 1024),
        extra_config: "[health]\ndisk_min_free_mib = 1\n".into(),
        ..Default::default()
    });
    assert_eq!(check(&post).code, 0, "{:?}", check(&post));
    // Fill the disk, then write until the store refuses an officer's add:
    // redb reuses the pages it freed first.
    let filler = post.data_dir().join("filler");
    let stat = nix::sys::statvfs::statvfs(&post.data_dir()).unwrap();
    std::fs::write(&filler, vec![0u8; (stat.blocks_available() * stat.fragment_size()) as usize]).unwrap_or(());
    let mut n = 0;
    wait_for("the store to refuse an add", DEADLINE, || {
        n += 1;
        let name = format!("Нурлан Абдиев {n}");
        post.outpost(&["watchlist", "add", "person", "--name", &name, "--category", "warning", "--reason", "fill"]).code
            != 0
    });
    let run = check(&post);
    assert_eq!(run.code, 10, "{run:?}\n{}", post.log());
    assert!(!passed(&run, "store") && !passed(&run, "disk"), "{run:?}");
    assert!(run.stderr.contains("unhealthy: store: a durable write failed"), "{run:?}");
    std::fs::remove_file(&filler).unwrap();
    wait_for_ok("the store to take writes again", DEADLINE, || {
        let run = check(&post);
        if run.code == 0 { Ok(()) } else { Err((run, post.log())) }
    });
}
