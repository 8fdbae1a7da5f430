//! The bounds on what one enrolled but hostile member can make a post
//! hold, against a real daemon: a member that opens more sync streams than
//! it may has its connection closed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use outpost_daemon::net::MAX_INBOUND_STREAMS_PER_PEER;
use outpost_model::trust::{PublicKey, Signer};
use outpost_tests::harness::{FleetKey, free_port, networked_post, wait_for};
use outpost_tests::rogue::Rogue;

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
