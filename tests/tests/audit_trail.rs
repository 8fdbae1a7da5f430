//! A post's audit log reaches its national centre, where tampering shows.
//! The post's database is edited offline (a record rewritten and the chain
//! recomputed, the last records truncated); after the next sync the
//! centre's `outpost audit verify --post` fails, naming what it found, and
//! `outpost status` there raises the alarm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use outpost_model::audit::{AuditEvent, AuditRecord, seal};
use outpost_tests::harness::{FleetKey, Post, free_port, networked_post, wait_for};
use redb::{ReadableDatabase, ReadableTable};

const DEADLINE: Duration = Duration::from_secs(60);
const AUDIT: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit");

fn search(post: &Post, name: &str) {
    let run = post.outpost(&["--json", "watchlist", "search", name, "--purpose", "bus 214, seat 12"]);
    assert_eq!(run.code, 0, "{run:?}");
}

/// How many of `post`'s records the centre holds, or `None` before any.
fn held_at_centre(centre: &Post, post: &str) -> Option<u64> {
    let run = centre.outpost(&["--json", "audit", "--post", post]);
    (run.code == 0).then(|| run.json()["chain_length"].as_u64().unwrap_or(0))
}

/// Rewrites record `rewrite` of the post's local log (recomputing every
/// hash after it, as someone covering their tracks would) and drops the
/// last `truncate` records, with the daemon stopped.
fn tamper(data_dir: &std::path::Path, rewrite: u64, truncate: u64) {
    let db = redb::Database::open(data_dir.join("outpost.redb")).unwrap();
    let records: Vec<AuditRecord> = {
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(AUDIT).unwrap();
        table.iter().unwrap().map(|row| serde_json::from_slice(row.unwrap().1.value()).unwrap()).collect()
    };
    let last = records.len() as u64;
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(AUDIT).unwrap();
        let mut prev = records[(rewrite - 2) as usize].hash.clone();
        for record in records.iter().filter(|r| r.seq >= rewrite && r.seq <= last - truncate) {
            let mut event = AuditEvent {
                at: record.at,
                uid: record.uid,
                pid: record.pid,
                user: record.user.clone(),
                role: record.role.clone(),
                action: record.action.clone(),
                purpose: record.purpose.clone(),
                detail: record.detail.clone(),
                result_ids: record.result_ids.clone(),
            };
            if record.seq == rewrite {
                event.purpose = Some("routine".into());
                event.detail = "nothing of interest".into();
            }
            let sealed = seal(event, record.seq, &record.node, &prev);
            prev = sealed.hash.clone();
            table.insert(record.seq, serde_json::to_vec(&sealed).unwrap().as_slice()).unwrap();
        }
        for seq in (last - truncate + 1)..=last {
            table.remove(seq).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[test]
fn a_posts_audit_log_rewritten_offline_is_caught_at_its_national_centre() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let centre = networked_post("kz-centre", "KAZ-BS", &key, ports[0], &[]);
    let mut post = networked_post("kz-post", "KAZ-BS", &key, ports[1], &[ports[0]]);
    key.enroll(&centre, &centre);
    let run = key.enroll_with(&centre, &post, "post", &[]);
    assert_eq!(run.code, 0, "{run:?}");
    wait_for("the post to hold the roster", DEADLINE, || post.roster_version() == centre.roster_version());
    for name in ["ALIEV", "KARIMOV", "TOKTOGULOV", "SEITKALI", "RAKHIMOV", "NAZAROV"] {
        search(&post, name);
    }
    let own = post.json(&["audit"])["chain_length"].as_u64().unwrap();
    assert_eq!(post.outpost(&["sync"]).code, 0);
    wait_for("the centre to hold the post's whole log", DEADLINE, || held_at_centre(&centre, "kz-post") == Some(own));
    let verified = centre.outpost(&["--json", "audit", "verify", "--post", "kz-post"]);
    assert_eq!(verified.code, 0, "{verified:?}");
    let check = verified.json();
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
    assert_eq!(check["signatures_checked"], true, "{check}");
    assert_eq!(check["head_seq"].as_u64(), Some(own));
    // Whose consultations the centre reads is itself audited there.
    let shown = centre.json(&["audit", "--post", "kz-post"]);
    assert!(shown["records"].as_array().unwrap().iter().any(|r| r["detail"].as_str().unwrap().contains("KARIMOV")));

    // Offline at the post: a search rewritten, the last two removed.
    assert!(post.stop().success());
    tamper(&post.data_dir(), own - 3, 2);
    post.spawn();
    assert_eq!(post.json(&["audit"])["chain_error"], serde_json::Value::Null, "the post's own chain was recomputed");
    search(&post, "ANOTHER");
    assert_eq!(post.outpost(&["sync"]).code, 0);

    wait_for("the centre to see the tampering", DEADLINE, || {
        centre.outpost(&["audit", "verify", "--post", "kz-post"]).code == 6
    });
    let failed = centre.outpost(&["--json", "audit", "verify", "--post", "kz-post"]);
    let problems = failed.json()["problems"].clone();
    eprintln!("the centre found: {problems}");
    let text = problems.to_string();
    assert!(text.contains("forked") || text.contains("does not follow"), "{text}");
    let status = centre.json(&["status"]);
    let alarms = status["replication"]["audit_alarms"].as_array().unwrap();
    assert!(!alarms.is_empty(), "{status}");
    assert!(alarms.iter().all(|a| a.as_str().unwrap().starts_with("kz-post record")), "{status}");
    let shown = centre.outpost(&["status"]);
    assert!(shown.stdout.contains("AUDIT LOG TAMPERED"), "{shown:?}");
}
