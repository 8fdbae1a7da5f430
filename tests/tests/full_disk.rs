//! A real full disk: the post's data directory is a small tmpfs the test
//! mounts (needs root), filled up while officers write. Writes are refused
//! with a clear error, nothing acknowledged is lost, the daemon keeps
//! answering (a search, which must be audited first, is refused as clearly
//! as a write), and once there is room again it takes writes with no
//! restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outpost_tests::harness::{Post, PostOptions, running_as_root};

#[test]
fn a_full_disk_refuses_writes_clearly_and_the_post_recovers_by_itself() {
    if !running_as_root("mounts a tmpfs") {
        return;
    }
    let post = Post::start_with(PostOptions { data_tmpfs: Some(8 * 1024 * 1024), ..Default::default() });
    let mut acked = Vec::new();
    for n in 0..20 {
        acked.push(post.add_person(&format!("Алишер Каримов {n}")));
    }
    // Fill what is left of the disk, leaving a few pages.
    let filler = post.data_dir().join("filler");
    let stat = nix::sys::statvfs::statvfs(&post.data_dir()).unwrap();
    let free = stat.blocks_available() * stat.fragment_size();
    std::fs::write(&filler, vec![0u8; free.saturating_sub(64 * 1024) as usize]).unwrap();

    let mut refused = None;
    for n in 0..5000 {
        let run = post.outpost(&[
            "--json",
            "watchlist",
            "add",
            "person",
            "--name",
            &format!("Нурлан Абдиев {n}"),
            "--category",
            "warning",
            "--reason",
            "filling the disk",
        ]);
        if run.code == 0 {
            acked.push(run.json()["id"].as_str().unwrap().to_string());
        } else {
            refused = Some(run);
            break;
        }
    }
    let refused = refused.expect("the disk never filled");
    assert!(refused.stderr.contains("the disk is full"), "{refused:?}\n{}", post.log());
    assert!(refused.stderr.contains("nothing was stored"), "{refused:?}");
    // The daemon is up and says so; a search cannot be audited, so it is
    // refused, by name.
    let status = post.outpost(&["--json", "status"]);
    assert_eq!(status.code, 0, "{status:?}");
    let search = post.outpost(&["watchlist", "search", "Каримов", "--purpose", "check"]);
    assert_ne!(search.code, 0);
    assert!(search.stderr.contains("the disk is full"), "{search:?}");

    std::fs::remove_file(&filler).unwrap();
    let after = post.outpost(&[
        "--json",
        "watchlist",
        "add",
        "person",
        "--name",
        "Тимур Атаев",
        "--category",
        "warning",
        "--reason",
        "room again",
    ]);
    assert_eq!(after.code, 0, "no write after the disk had room again: {after:?}\n{}", post.log());
    acked.push(after.json()["id"].as_str().unwrap().to_string());
    eprintln!("{} writes acknowledged around a full disk", acked.len());
    for id in &acked {
        let shown = post.outpost(&["--json", "watchlist", "show", id, "--purpose", "full disk test"]);
        assert_eq!(shown.code, 0, "acknowledged entry {id} is lost: {shown:?}");
    }
    assert_eq!(post.entry_count(), acked.len() as u64);
}
