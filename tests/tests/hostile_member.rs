//! The bounds on what one enrolled but hostile member can make a post
//! hold, against a real daemon: a member that opens more sync streams than
//! it may has its connection closed; changes that arrive before what they
//! depend on (bundles come in any order) are held on disk, not in memory,
//! survive a restart, and go in once their parent arrives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use outpost_daemon::net::MAX_INBOUND_STREAMS_PER_PEER;
use outpost_model::ids::IncidentId;
use outpost_model::trust::{PublicKey, Signer};
use outpost_tests::harness::{FleetKey, Post, free_port, networked_post, wait_for};
use outpost_tests::rogue::{Rogue, bundle_frames, incident_chain};

const DEADLINE: Duration = Duration::from_secs(60);
const SECRET: [u8; 32] = [43; 32];

#[test]
fn a_member_opening_streams_beyond_the_limit_is_disconnected() {
    let key = FleetKey::generate();
    let port = free_port();
    let centre = networked_post("kz-centre", "KAZ-BS", &key, port, &[]);
    key.enroll(&centre, &centre);
    let rogue_peer = Signer::from_secret(SECRET).public().peer_id();
    let enrolled = key.enroll_peer(&centre, &rogue_peer, "kz-rogue", "KAZ-BS", "post", &[]);
    assert_eq!(enrolled.code, 0, "{enrolled:?}");
    let anchor = PublicKey::parse_hex(&key.admin).unwrap();
    let rogue = Rogue::start(SECRET, "kz-rogue", anchor, Some(&centre.roster_bytes()), &key.path(), port);
    wait_for("the rogue to connect", DEADLINE, || rogue.connected() && centre.connected_peers().len() == 1);
    let dropped = |log: &str| log.matches("opened more sync streams than it may").count();
    // One at a time, so that each reaches the daemon: the first fills the
    // second place, the next one is one too many.
    rogue.extra_streams(1);
    wait_for("the second stream to be taken", DEADLINE, || centre.log().contains("frame is empty"));
    assert_eq!(dropped(&centre.log()), 0);
    rogue.extra_streams(1);
    wait_for("the connection to be closed", DEADLINE, || dropped(&centre.log()) == 1);
    wait_for("the rogue to see it", DEADLINE, || {
        rogue.seen.lock().unwrap().disconnects.iter().any(|d| d.contains("closed the connection"))
    });
    assert_eq!(MAX_INBOUND_STREAMS_PER_PEER, 2);
    rogue.stop();
}

fn holds_incident(post: &Post, id: &IncidentId) -> bool {
    post.outpost(&["--json", "incident", "show", &id.to_string()]).code == 0
}

/// A member that sends a change before the one it depends on (a bundle
/// out of order) gets it held, on disk and within its share of the
/// quarantine; the held change survives a restart and goes in as soon as
/// its parent arrives.
#[test]
fn a_change_that_arrives_before_its_parent_is_held_on_disk_and_goes_in_with_it() {
    const MEMBER: [u8; 32] = [44; 32];
    let key = FleetKey::generate();
    let port = free_port();
    let mut centre = networked_post("kz-centre", "KAZ-BS", &key, port, &[]);
    key.enroll(&centre, &centre);
    let member = Signer::from_secret(MEMBER).public().peer_id();
    let enrolled = key.enroll_peer(&centre, &member, "kz-south", "KAZ-BS", "post", &[]);
    assert_eq!(enrolled.code, 0, "{enrolled:?}");
    let anchor = PublicKey::parse_hex(&key.admin).unwrap();
    let (log, changes) = incident_chain(MEMBER, "kz-south", "KAZ-BS", 2);
    let signer = Signer::from_secret(MEMBER);
    let bundles: Vec<_> =
        changes.iter().map(|c| bundle_frames(7_000, &log, std::slice::from_ref(c), &signer)).collect();
    let incidents: Vec<IncidentId> = (0..2u128)
        .map(|k| IncidentId::owned_by("kz-south", uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000 | k)))
        .collect();
    let connect = |centre: &Post| {
        let rogue = Rogue::start(MEMBER, "kz-south", anchor, Some(&centre.roster_bytes()), &key.path(), port);
        wait_for("the member to be greeted", DEADLINE, || {
            centre.peer_named("kz-south").is_some_and(|p| p["connected"] == true)
        });
        rogue
    };

    let rogue = connect(&centre);
    for frame in &bundles[1] {
        rogue.raw(frame.clone());
    }
    wait_for("the orphan to be held", DEADLINE, || centre.held_changes() == 1);
    assert!(!holds_incident(&centre, &incidents[1]), "an orphan is not applied");
    assert!(centre.log().contains("does not hold yet"), "the log says why it waits");
    rogue.stop();

    centre.stop();
    centre.spawn();
    assert_eq!(centre.held_changes(), 1, "the held orphan survives a restart");

    let rogue = connect(&centre);
    for frame in &bundles[0] {
        rogue.raw(frame.clone());
    }
    wait_for("both incidents to be in", DEADLINE, || {
        holds_incident(&centre, &incidents[0]) && holds_incident(&centre, &incidents[1])
    });
    wait_for("nothing to be held any more", DEADLINE, || centre.held_changes() == 0);
    rogue.stop();
}
