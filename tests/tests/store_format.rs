//! Upgrades never cost a record: a store written in today's format
//! (`tests/data/store-format-1`, committed, never regenerated) opens in
//! every later build with every record intact, and a store written by a
//! newer release is refused with a clear message and left untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use outpost_tests::harness::{Post, PostOptions, Run, binary};

const WANTED: &str = "01a25268-80e2-7431-af8c-1a614b139d6d";
const SUSPENDED: &str = "01a25268-815a-7431-be8c-2300d9a66333";
const INCIDENT: &str = "01a25268-81d9-7d79-9eef-f21cb1358fd5";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/store-format-1")
}

fn fixture_post() -> Post {
    Post::start_with(PostOptions { node_name: "kz-format1".into(), data_from: Some(fixture()), ..Default::default() })
}

#[test]
fn a_store_in_format_1_opens_with_every_record_and_takes_new_ones() {
    let post = fixture_post();
    let status = post.json(&["status"]);
    assert_eq!((status["entries"].as_u64(), status["incidents"].as_u64()), (Some(2), Some(1)), "{status}");
    let wanted = post.json(&["watchlist", "show", WANTED]);
    assert_eq!(wanted["category"], "wanted-for-arrest", "{wanted}");
    assert_eq!(wanted["status"], "active", "{wanted}");
    let suspended = post.json(&["watchlist", "show", SUSPENDED]);
    assert_eq!(suspended["status"], "suspended", "{suspended}");
    let incident = post.json(&["incident", "show", INCIDENT]);
    assert_eq!(incident["narrative"][0]["text"], "Fixture seizure at the format-1 post", "{incident}");
    assert_eq!(incident["hits"][0], WANTED, "{incident}");
    // The search index comes back too: a Cyrillic name found from Latin.
    let found = post.json(&["watchlist", "search", "--purpose", "format fixture test", "Gulnara Kasymova"]);
    assert!(found.to_string().contains(SUSPENDED), "{found}");
    // And it goes on taking writes.
    post.add_person("Timur Bekov");
    assert_eq!(post.json(&["status"])["entries"].as_u64(), Some(3));
}

#[test]
fn a_store_from_a_newer_release_is_refused_with_exit_78_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for file in ["outpost.redb", "node.key"] {
        std::fs::copy(fixture().join(file), data.join(file)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(data.join("node.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // A newer release moved one table to format 2.
    {
        let database = redb::Database::create(data.join("outpost.redb")).unwrap();
        let txn = database.begin_write().unwrap();
        {
            let versions: redb::TableDefinition<&str, u32> = redb::TableDefinition::new("table_versions");
            let mut table = txn.open_table(versions).unwrap();
            table.insert("doc_changes", 2).unwrap();
        }
        txn.commit().unwrap();
    }
    let before = std::fs::read(data.join("outpost.redb")).unwrap();
    let run = Run::from_output(
        Command::new(binary("outpostd"))
            .args(["--authority", "KAZ-BS", "--node-name", "kz-format1", "--data-dir"])
            .arg(&data)
            .arg("--socket")
            .arg(dir.path().join("outpostd.sock"))
            .output()
            .unwrap(),
    );
    // 78: the unit's RestartPreventExitStatus=, no restart loop.
    assert_eq!(run.code, 78, "{run:?}");
    assert!(
        run.stderr.contains("table doc_changes has format version 2, newer than this outpostd supports (1)")
            && run.stderr.contains("upgrade outpostd"),
        "{run:?}"
    );
    let after = std::fs::read(data.join("outpost.redb")).unwrap();
    assert!(before == after, "the newer store was modified by the refusing build");
}
