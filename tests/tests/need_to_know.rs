//! Need-to-know between real daemons: a KGZ post next to a KAZ post and the
//! regional centre. The KAZ post receives zero bytes of the KGZ post's
//! incident log, counted from the frames it received, even though it is
//! linked to both nodes that hold it; the centre receives all of it; and
//! watchlists reach everyone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use outpost_tests::harness::{FleetKey, Post, free_port, networked_post, wait_for};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(60);

fn log_incident(post: &Post, narrative: &str) -> String {
    post.json(&["incident", "log", "--type", "seizure", "--narrative", narrative])["id"].as_str().unwrap().to_string()
}

/// Bytes of document frames `post` received from the peer named `from`,
/// by document kind, from `outpost peers`.
fn received_by_kind(post: &Post, from: &str) -> Value {
    post.peer_named(from).map(|p| p["document_bytes_received"].clone()).unwrap_or(Value::Null)
}

fn holds_incident(post: &Post, id: &str) -> bool {
    post.outpost(&["--json", "incident", "show", id]).code == 0
}

#[test]
fn a_kaz_post_gets_no_byte_of_a_kgz_posts_incidents_and_the_regional_centre_gets_them_all() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port(), free_port()];
    let centre = networked_post("caricc", "CARICC", &key, ports[0], &[]);
    let kaz = networked_post("kz-nurzhol", "KAZ-BS", &key, ports[1], &[ports[0]]);
    let kgz = networked_post("kg-torugart", "KGZ-BS", &key, ports[2], &[ports[0], ports[1]]);
    let enrolled = key.enroll_with(&centre, &centre, "centre", &["--regional"]);
    assert_eq!(enrolled.code, 0, "{enrolled:?}");
    for (post, extra) in [(&kaz, &["--grant", "watchlist"][..]), (&kgz, &["--grant", "watchlist"][..])] {
        let run = key.enroll_with(&centre, post, "post", extra);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let version = centre.roster_version();
    wait_for("every post to hold the roster", DEADLINE, || {
        kaz.roster_version() == version && kgz.roster_version() == version
    });

    let ids: Vec<String> = (0..5).map(|n| log_incident(&kgz, &format!("heroin in spare tyre {n}"))).collect();
    kgz.add_person("Алмаз Токтогулов");
    kaz.add_person("Ерлан Сейткали");
    for post in [&centre, &kaz, &kgz] {
        assert_eq!(post.outpost(&["sync"]).code, 0);
    }
    wait_for("the centre to hold every KGZ incident", DEADLINE, || ids.iter().all(|id| holds_incident(&centre, id)));
    wait_for("the watchlists to reach every post", DEADLINE, || {
        [&centre, &kaz, &kgz].iter().all(|post| post.entry_count() == 2)
    });
    // Another round of checks in both directions, so that anything the
    // KAZ post could be sent has had its chance.
    for post in [&centre, &kgz] {
        assert_eq!(post.outpost(&["sync"]).code, 0);
    }
    let incident = log_incident(&kgz, "one more, pushed live");
    wait_for("the live incident to reach the centre", DEADLINE, || holds_incident(&centre, &incident));
    // The KAZ post has reconciled with both and agrees with each on some
    // documents (the watchlists): each had its chance to send it anything.
    // (Document bytes from both cannot be waited for: the watchlists may
    // all reach it through the centre first.)
    wait_for("the KAZ post to have reconciled with both", DEADLINE, || {
        ["caricc", "kg-torugart"].iter().all(|from| {
            kaz.peer_named(from).is_some_and(|p| {
                p["syncing"].as_bool() == Some(true)
                    && !p["last_reconciled"].is_null()
                    && p["in_sync_documents"].as_u64().unwrap_or(0) > 0
            })
        })
    });

    for from in ["caricc", "kg-torugart"] {
        let kinds = received_by_kind(&kaz, from);
        eprintln!("the KAZ post received from {from}: {kinds}");
        assert_eq!(kinds.get("incidents").and_then(Value::as_u64).unwrap_or(0), 0, "from {from}: {kinds}");
        assert_eq!(kinds.get("unknown").and_then(Value::as_u64).unwrap_or(0), 0, "from {from}: {kinds}");
    }
    let at_centre = received_by_kind(&centre, "kg-torugart");
    eprintln!("the centre received from kg-torugart: {at_centre}");
    assert!(at_centre["incidents"].as_u64().unwrap_or(0) > 0, "{at_centre}");
    assert!(!holds_incident(&kaz, &ids[0]) && !holds_incident(&kaz, &incident));
    let status = kaz.json(&["status"]);
    assert_eq!(status["incidents"].as_u64().unwrap_or(0), 0, "{status}");
    // The KAZ post counts as in sync with its peers only the documents it
    // may receive.
    let peers = kaz.json(&["peers"]);
    for peer in peers["peers"].as_array().unwrap() {
        assert!(peer["differing"].as_array().unwrap().is_empty(), "{peer}");
    }
}

#[test]
fn the_admin_widens_or_narrows_who_receives_what_with_fleet_policy() {
    let key = FleetKey::generate();
    let centre = networked_post("kz-centre", "KAZ-BS", &key, free_port(), &[]);
    key.enroll(&centre, &centre);
    let admin_key = key.admin_key();
    let admin_key = admin_key.to_str().unwrap();
    let view = centre.json(&["fleet", "roster"]);
    assert_eq!(view["reads"], "watchlists=fleet incidents=country audit=national-centres", "{view}");
    let version = view["version"].as_u64().unwrap();

    let set = centre.outpost(&["--json", "fleet", "policy", "--incidents", "fleet", "--admin-key", admin_key]);
    assert_eq!(set.code, 0, "{set:?}");
    assert_eq!(set.json()["version"].as_u64(), Some(version + 1));
    let view = centre.json(&["fleet", "roster"]);
    assert_eq!(view["reads"], "watchlists=fleet incidents=fleet audit=national-centres", "{view}");
    let shown = centre.outpost(&["fleet", "roster"]);
    assert!(shown.stdout.contains("who receives what: watchlists=fleet incidents=fleet"), "{shown:?}");

    let same = centre.outpost(&["fleet", "policy", "--incidents", "fleet", "--admin-key", admin_key]);
    assert_eq!(same.code, 2, "{same:?}");
    assert!(same.stderr.contains("nothing to publish"), "{same:?}");
    let unknown = centre.outpost(&["fleet", "policy", "--audit", "everyone", "--admin-key", admin_key]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("expected fleet, country or national-centres"), "{unknown:?}");
    assert_eq!(centre.roster_version(), version + 1, "nothing published by the refused commands");
    // The audit log says who changed the policy.
    let audit = centre.json(&["audit"]);
    let records = audit["records"].as_array().unwrap();
    assert!(records.iter().any(|r| r["detail"].as_str().unwrap_or("").contains("who receives what")), "{audit}");
}
