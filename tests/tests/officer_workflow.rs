//! One post end to end, through the real `outpost` and `outpostd` binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outpost_tests::harness::{Post, binary};
use serde_json::Value;

fn add_aliev(post: &Post) -> String {
    let created = post.json(&[
        "watchlist",
        "add",
        "person",
        "--name",
        "Мухаммад Алиев",
        "--name",
        "Muhammad Aliyev",
        "--dob",
        "1985-03-07",
        "--nationality",
        "TJK",
        "--document",
        "passport:TJK:A1234567",
        "--category",
        "wanted-for-arrest",
        "--reason",
        "Heroin trafficking, case 12/2026",
        "--action",
        "Detain and inform CARICC",
        "--warning",
        "armed",
    ]);
    created["id"].as_str().unwrap().to_string()
}

fn search(post: &Post, query: &str) -> Vec<Value> {
    post.json(&["watchlist", "search", query, "--purpose", "routine check"])["matches"].as_array().unwrap().clone()
}

#[test]
fn a_latin_search_finds_the_cyrillic_entry_and_shows_its_original_name() {
    let post = Post::start();
    let id = add_aliev(&post);
    for query in ["MUKHAMMAD ALIEV", "Aliev Mukhammad", "ALIEV<<MUKHAMMAD", "мухаммад алиев", "a1234567"] {
        let matches = search(&post, query);
        assert_eq!(matches.len(), 1, "{query}: {matches:?}");
        let hit = &matches[0];
        assert_eq!(hit["id"], id.as_str());
        assert_eq!(hit["score"], 1.0, "{query}");
        assert!(hit["reason"].as_str().unwrap().len() > 3);
        assert!(hit["alert"].as_bool().unwrap());
        let expected = if query == "a1234567" { "a1234567" } else { "Мухаммад Алиев" };
        assert_eq!(hit["name"], expected);
    }
    assert!(search(&post, "Karimov").is_empty());
    let surname_only = &search(&post, "Aliev")[0];
    assert_eq!(surname_only["alert"], false, "a surname alone is a weak match, not an alert");
    let human = post.outpost(&["watchlist", "search", "Aliev Mukhammad", "--purpose", "check"]);
    assert!(human.stdout.contains("Мухаммад Алиев") && human.stdout.contains("ALERT"), "{}", human.stdout);
    assert!(human.stdout.contains("WARNING: ARMED"), "{}", human.stdout);
}

#[test]
fn explain_shows_which_words_aligned_and_why() {
    let post = Post::start();
    add_aliev(&post);
    let explained =
        post.outpost(&["watchlist", "search", "ALIEV Magomed Karimovich", "--explain", "--purpose", "check"]);
    assert_eq!(explained.code, 0, "{}", explained.stderr);
    for expected in
        ["YOU TYPED", "Magomed", "Мухаммад", "equivalent name", "forms of Muhammad", "Karimovich", "no partner"]
    {
        assert!(explained.stdout.contains(expected), "missing {expected:?} in\n{}", explained.stdout);
    }
    let hit = &search(&post, "Muxammad Aliyev")[0];
    let words = hit["explanation"].as_array().unwrap();
    assert_eq!(words.len(), 2, "{hit}");
    assert_eq!(words[0]["stored"], "Мухаммад");
    assert_eq!(words[0]["how"], "transliteration");
    assert!(words[0]["detail"].as_str().unwrap().contains("kh/x/h"), "{hit}");
}

#[test]
fn searches_need_a_purpose_and_are_audited_with_uid_query_and_results() {
    let post = Post::start();
    let id = add_aliev(&post);
    let refused = post.outpost(&["watchlist", "search", "Aliev"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    let refused = post.outpost(&["watchlist", "search", "Aliev", "--purpose", "  "]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("purpose must not be empty"), "{refused:?}");

    search(&post, "Aliev");
    let audit = post.json(&["audit"]);
    assert_eq!(audit["chain_verified"], true);
    let records = audit["records"].as_array().unwrap();
    let searched = records.iter().find(|r| r["action"] == "watchlist.search").expect("search audited");
    assert_eq!(searched["purpose"], "routine check");
    assert!(searched["detail"].as_str().unwrap().contains("Aliev"));
    assert_eq!(searched["result_ids"][0], id.as_str());
    assert_eq!(searched["uid"].as_u64().unwrap(), u64::from(nix::unistd::getuid().as_raw()));
    let added = records.iter().find(|r| r["action"] == "watchlist.add").expect("add audited");
    assert_eq!(added["result_ids"][0], id.as_str());
}

#[test]
fn an_entry_lives_through_amend_suspend_and_close() {
    let post = Post::start();
    let id = add_aliev(&post);
    let tail = id.rsplit('-').next().unwrap();
    let shown = post.json(&["watchlist", "show", tail, "--purpose", "follow-up of hit"]);
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["subject"]["names"][0]["text"], "Мухаммад Алиев");
    assert_eq!(shown["subject"]["names"][0]["script"], "cyrillic");

    let amended = post.json(&["watchlist", "amend", &id, "--add-name", "MUXAMMAD ALIEV", "--expires", "2030-01-01"]);
    assert_eq!(amended["subject"]["names"].as_array().unwrap().len(), 3);
    assert_eq!(amended["expires"], "2030-01-01");
    assert_eq!(search(&post, "MUXAMMAD ALIEV")[0]["id"], id.as_str());

    post.json(&["watchlist", "suspend", &id, "--reason", "under review"]);
    let hit = &search(&post, "Muhammad Aliyev")[0];
    assert_eq!(hit["status"], "suspended");
    assert_eq!(hit["alert"], false);
    post.json(&["watchlist", "reactivate", &id, "--reason", "review done"]);
    post.json(&["watchlist", "close", &id, "--reason", "arrested 2026-11-20"]);
    let again = post.outpost(&["watchlist", "reactivate", &id, "--reason", "mistake"]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("cannot change status from closed to active"), "{again:?}");
    let listed = post.json(&["watchlist", "list", "--status", "closed"]);
    assert_eq!(listed["total"], 1);
}

#[test]
fn exit_codes_tell_bad_input_missing_and_unreachable_apart() {
    let post = Post::start();
    let bad = post.outpost(&[
        "watchlist",
        "add",
        "person",
        "--name",
        "X",
        "--dob",
        "1985-02-30",
        "--category",
        "warning",
        "--reason",
        "r",
    ]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("impossible date \"1985-02-30\""), "{bad:?}");
    let missing = post.outpost(&["watchlist", "show", "0123456789ab"]);
    assert_eq!(missing.code, 4, "{missing:?}");
    let json_error = post.outpost(&["--json", "watchlist", "show", "0123456789ab"]);
    assert_eq!(json_error.json()["error"]["kind"], "not_found");

    let unreachable = std::process::Command::new(binary("outpost"))
        .args(["--socket", "/nonexistent/outpostd.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach outpostd"));
}

#[test]
fn status_reports_identity_and_counts() {
    let post = Post::start();
    add_aliev(&post);
    let status = post.json(&["status"]);
    for key in ["node_id", "node_name", "authority", "version", "entries", "incidents", "documents"] {
        assert!(status.get(key).is_some(), "status lacks {key}: {status}");
    }
    assert_eq!(status["entries"], 1);
    assert_eq!(status["node_name"], "kz-nurzhol");
    assert_eq!(status["storage"]["repaired_on_open"], false);
}

#[test]
fn an_incident_is_logged_linked_annotated_and_closed() {
    let post = Post::start();
    let person = add_aliev(&post);
    let vehicle = post.json(&[
        "watchlist",
        "add",
        "vehicle",
        "--plate",
        "777 АВС 02",
        "--category",
        "seize-object",
        "--reason",
        "used in smuggling",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = post.json(&[
        "incident",
        "log",
        "--type",
        "seizure",
        "--at",
        "2026-11-27 09:15",
        "--narrative",
        "Героин в запасном колесе / heroin in the spare tyre",
        "--seized",
        "heroin:1.25:kg",
        "--person",
        "ALIEV MUKHAMMAD",
        "--plate",
        "777ABC02",
        "--hit",
        &person,
        "--hit",
        &vehicle,
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = post.json(&["incident", "show", &id]);
    assert_eq!(shown["occurred_at"], "2026-11-27T09:15:00+05:00");
    assert_eq!(shown["seized"][0]["quantity"], "1.25");
    assert_eq!(shown["seized"][0]["unit"], "kg");
    assert_eq!(shown["persons"][0]["entry"], person.as_str());
    assert_eq!(shown["vehicles"][0]["entry"], vehicle.as_str());

    post.json(&["incident", "note", &id, "Driver handed to the Drug Control Agency"]);
    let closed = post.json(&["incident", "close", &id, "--note", "Case 4471 opened"]);
    assert_eq!(closed["follow_up"], "closed");
    let narrative = closed["narrative"].as_array().unwrap();
    assert_eq!(narrative.len(), 3);
    assert!(narrative[0]["text"].as_str().unwrap().starts_with("Героин"));
    let listed = post.json(&["incident", "list"]);
    assert_eq!(listed["incidents"][0]["follow_up"], "closed");

    let no_unit = post.outpost(&["incident", "log", "--type", "seizure", "--narrative", "x", "--seized", "heroin:2"]);
    assert_eq!(no_unit.code, 2);
    assert!(no_unit.stderr.contains("has no unit"), "{no_unit:?}");
    let bad_hit = post.outpost(&[
        "incident",
        "log",
        "--type",
        "seizure",
        "--narrative",
        "x",
        "--hit",
        "01234567-89ab-7def-8123-456789abcdef",
    ]);
    assert_eq!(bad_hit.code, 4, "{bad_hit:?}");
}

#[test]
fn an_import_stores_every_entry_or_none() {
    let post = Post::start();
    let dir = tempfile::tempdir().unwrap();
    let mut generator = outpost_tests::sample::Generator::new(3);
    let lines: Vec<String> = (0..250).map(|_| serde_json::to_string(&generator.entry()).unwrap()).collect();
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, lines.join("\n")).unwrap();
    let imported = post.json(&["watchlist", "import", good.to_str().unwrap(), "--batch", "100"]);
    assert_eq!(imported["imported"], 250);
    assert_eq!(post.json(&["status"])["entries"], 250);

    let mut broken = lines[..10].to_vec();
    broken.push(r#"{"kind":"person","category":"nonsense","reason":"r","names":["A B"]}"#.into());
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, broken.join("\n")).unwrap();
    let refused = post.outpost(&["watchlist", "import", bad.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("entry 11: unknown category \"nonsense\""), "{refused:?}");
    assert_eq!(post.json(&["status"])["entries"], 250, "a refused batch stores nothing");
}

#[test]
fn a_second_daemon_on_the_same_data_is_refused_with_a_reason() {
    let post = Post::start();
    let output = std::process::Command::new(binary("outpostd"))
        .args(["--authority", "KAZ-BS", "--node-name", "kz-two", "--data-dir"])
        .arg(post.data_dir())
        .arg("--socket")
        .arg(post.data_dir().join("second.sock"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already in use by another outpostd"), "{stderr}");
    assert_eq!(post.json(&["status"])["node_name"], "kz-nurzhol");
}

#[test]
fn a_bad_config_file_stops_the_daemon_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("outpostd.toml");
    std::fs::write(&config, "authority = \"KAZ-BS\"\ndata_directory = \"/tmp/x\"\n").unwrap();
    let output = std::process::Command::new(binary("outpostd")).arg("--config").arg(&config).output().unwrap();
    // 78 (EX_CONFIG): the unit's RestartPreventExitStatus=, so no restart loop.
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `data_directory`") && stderr.contains("line 2"), "{stderr}");
}
