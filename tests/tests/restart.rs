//! Restarts and compaction keep data and the search index intact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use outpost_tests::harness::{Post, PostOptions};

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
    // 31 changes went to the shard and 31 audit records to the post's
    // audit document; each is compacted on its own once it holds 5, so
    // together they keep fewer than 2 × 5.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending = post.json(&["status"])["storage"]["pending_changes"].as_u64().unwrap();
        if pending < 10 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} changes still pending after 20 s; log:\n{}", post.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = post.stop();
    assert!(status.success(), "outpostd exited with {status} on SIGTERM");
    assert!(!post.socket().exists(), "a clean stop removes the socket");
    {
        const DOC_CHANGES: redb::TableDefinition<(&str, u64), &[u8]> = redb::TableDefinition::new("doc_changes");
        let db = redb::Database::open(post.data_dir().join("outpost.redb")).unwrap();
        use redb::{ReadableDatabase, ReadableTable};
        let txn = db.begin_read().unwrap();
        let mut per_doc = std::collections::BTreeMap::<String, u64>::new();
        for row in txn.open_table(DOC_CHANGES).unwrap().iter().unwrap() {
            *per_doc.entry(row.unwrap().0.value().0.to_string()).or_default() += 1;
        }
        assert!(per_doc.values().all(|n| *n < 5), "every document is compacted below 5 changes: {per_doc:?}");
    }

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

/// A post upgraded from an older matcher finds its index records stale and
/// rebuilds them from the projection before it answers; the next start
/// reloads them.
#[test]
fn stale_index_records_are_rebuilt_at_start_and_then_reloaded() {
    let mut post = Post::start();
    let mut ids = Vec::new();
    for name in ["Мухаммад Алиев", "Ҷамшед Раҳмонов", "Нұрсұлтан Жақсыбеков"]
    {
        let args = ["watchlist", "add", "person", "--name", name, "--category", "warning", "--reason", "upgrade"];
        ids.push(post.json(&args)["id"].as_str().unwrap().to_string());
    }
    post.stop();
    {
        const TABLE_VERSIONS: redb::TableDefinition<&str, u32> = redb::TableDefinition::new("table_versions");
        let db = redb::Database::open(post.data_dir().join("outpost.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TABLE_VERSIONS).unwrap().insert("search_keys", 1).unwrap();
        txn.commit().unwrap();
    }
    post.spawn();
    assert!(post.log().contains("search index rebuilt from the projection entries=3"), "{}", post.log());
    for (query, id) in ["MUKHAMMAD ALIEV", "Jamshed Rahmonov", "Nursultan Zhaksybekov"].iter().zip(&ids) {
        let found = post.json(&["watchlist", "search", query, "--purpose", "upgrade check"]);
        assert_eq!(found["matches"][0]["id"], id.as_str(), "{query}");
    }
    post.stop();
    post.spawn();
    assert!(post.log().contains("search index loaded"), "{}", post.log());
    let found = post.json(&["watchlist", "search", "ALIEV<<MUKHAMMAD", "--purpose", "upgrade check"]);
    assert_eq!(found["matches"][0]["id"], ids[0].as_str());
}
