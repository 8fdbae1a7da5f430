//! `outpost backup` while officers write, and `outpostd --restore` into an
//! empty data directory: every write acknowledged before the backup began
//! is in the restored post, and the backup is in its audit log. A damaged
//! backup, an existing file and a data directory that holds a store are
//! refused, naming the problem, and nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use outpost_tests::harness::{Post, PostOptions, Run, binary, wait_for};

fn restore(file: &Path, data_dir: &Path) -> Run {
    let out = Command::new(binary("outpostd"))
        .arg("--restore")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run outpostd --restore");
    Run::from_output(out)
}

fn holds(post: &Post, id: &str) -> bool {
    post.outpost(&["--json", "watchlist", "show", id, "--purpose", "backup test"]).code == 0
}

#[test]
fn a_backup_under_write_load_restores_every_acknowledged_write() {
    let post = Post::start();
    post.import_generated(11, 3000, 500);

    // Officers keep adding while the backup is taken.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (socket, acknowledged, stop) = (post.socket(), acknowledged.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let out = Command::new(binary("outpost"))
                    .args(["--json", "--socket"])
                    .arg(&socket)
                    .args(["watchlist", "add", "person", "--name", &format!("Ерлан Нуртаев {n}")])
                    .args(["--category", "warning", "--reason", "backup under load"])
                    .output()
                    .unwrap();
                let run = Run::from_output(out);
                assert_eq!(run.code, 0, "a write failed during the backup: {run:?}");
                acknowledged.lock().unwrap().push(run.json()["id"].as_str().unwrap().to_string());
            }
        })
    };
    wait_for("officers' first writes", Duration::from_secs(60), || acknowledged.lock().unwrap().len() >= 5);
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("kz-nurzhol.backup");
    let taken = post.outpost(&["--json", "backup", file.to_str().unwrap()]);
    assert_eq!(taken.code, 0, "{taken:?}\n{}", post.log());
    let during = acknowledged.lock().unwrap().len();
    // Writes go on after the backup too.
    wait_for("writes after the backup", Duration::from_secs(60), || acknowledged.lock().unwrap().len() >= during + 3);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let summary = taken.json();
    assert!(summary["rows"].as_u64().unwrap() > 3000, "{summary}");
    assert_eq!(summary["bytes"].as_u64().unwrap(), std::fs::metadata(&file).unwrap().len());
    assert!(!backups.path().join("kz-nurzhol.backup.partial").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let restored_dir = tempfile::tempdir().unwrap();
    let data = restored_dir.path().join("data");
    let run = restore(&file, &data);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(summary["sha256"].as_str().unwrap()), "{run:?}");

    let restored = Post::start_with(PostOptions { data_from: Some(data), ..Default::default() });
    let total = restored.entry_count();
    assert!(total >= 3000 + before.len() as u64, "{total}");
    for id in &before {
        assert!(holds(&restored, id), "write {id}, acknowledged before the backup, is missing");
    }
    let found = restored.outpost(&["--json", "watchlist", "search", "Ерлан Нуртаев", "--purpose", "backup test"]);
    assert_eq!(found.code, 0, "the search index is rebuilt from the restored store: {found:?}");
    assert!(!found.json()["matches"].as_array().unwrap().is_empty(), "{found:?}");
    let audit = restored.json(&["audit", "--limit", "500"]);
    let records = audit["records"].as_array().unwrap();
    assert!(records.iter().any(|r| r["action"] == "store.backup"), "the backup is in its own audit log");
}

#[test]
fn a_bad_backup_an_existing_file_and_a_store_in_the_way_are_refused() {
    let post = Post::start();
    post.add_person("Алишер Каримов");
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("post.backup");

    std::fs::write(&file, b"keep me").unwrap();
    let refused = post.outpost(&["backup", file.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("exists"), "{refused:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(post.outpost(&["backup", file.to_str().unwrap()]).code, 0);
    let good = std::fs::read(&file).unwrap();

    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("data");
    for (what, bytes) in [
        ("cut short", good[..good.len() - 10].to_vec()),
        ("not a backup", b"SQLite format 3\0 and more".to_vec()),
        ("damaged", {
            let mut bad = good.clone();
            let middle = bad.len() / 2;
            bad[middle] ^= 0xff;
            bad
        }),
    ] {
        let bad = backups.path().join("bad.backup");
        std::fs::write(&bad, bytes).unwrap();
        let run = restore(&bad, &data);
        assert_eq!(run.code, 65, "{what}: {run:?}");
        assert!(run.stderr.contains("nothing was restored"), "{what}: {run:?}");
        let left = std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "{what}: a refused restore left files in the data directory");
    }

    let run = restore(&file, &post.data_dir());
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("restore only into an empty data directory"), "{run:?}");
    assert_eq!(post.entry_count(), 1, "the running post is untouched");
}
