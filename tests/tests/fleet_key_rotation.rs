//! A fleet key rotation with posts at every stage at once (ADMIN.md,
//! "Rotating keys"): a centre at step 2 (the old key, and the new one as
//! the next, on a second port); a post at step 3 (the new key, and the old
//! one as the next) that reaches the centre's old-key port by falling back
//! to its next key; a post at step 4 (the new key only) that reaches the
//! centre on its next-key port; and a post at step 2 that reaches the
//! step-4 post by falling back. Changes still cross the whole fleet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use outpost_tests::harness::{FleetKey, Post, PostOptions, free_port, wait_for};

const SYNC_DEADLINE: Duration = Duration::from_secs(60);

fn write_swarm_key(path: &Path, byte: u8) {
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
    write!(file, "/key/swarm/psk/1.0.0/\n/base16/\n{}\n", format!("{byte:02x}").repeat(32)).unwrap();
}

fn post(name: &str, network: String) -> Post {
    Post::start_with(PostOptions {
        node_name: name.into(),
        authority: "KAZ-BS".into(),
        extra_config: network,
        ..Default::default()
    })
}

fn network(key: &FleetKey, current: &Path, listen: u16, peers: &[u16], next: Option<(&Path, u16)>) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"/ip4/127.0.0.1/tcp/{p}\"")).collect();
    let mut text = format!(
        "[network]\nlisten = [\"/ip4/127.0.0.1/tcp/{listen}\"]\npeers = [{}]\npsk_file = \"{}\"\nmdns = false\nfleet_admin = \"{}\"\n",
        peers.join(", "),
        current.display(),
        key.admin
    );
    if let Some((next, port)) = next {
        text += &format!("psk_next_file = \"{}\"\nlisten_next = [\"/ip4/127.0.0.1/tcp/{port}\"]\n", next.display());
    }
    text
}

fn holds(post: &Post, id: &str) -> bool {
    post.outpost(&["--json", "watchlist", "show", id, "--purpose", "rotation test"]).code == 0
}

#[test]
fn posts_on_the_old_key_the_new_key_and_both_keep_replicating() {
    let fleet = FleetKey::generate();
    let keys = tempfile::tempdir().unwrap();
    let new_key = keys.path().join("swarm-next.key");
    write_swarm_key(&new_key, 0x5a);
    let old_key = fleet.path();
    let [centre_port, centre_next_port, switched_port, both_port] =
        [free_port(), free_port(), free_port(), free_port()];

    // The centre holds both keys; the switched post holds only the new one
    // and can reach the centre only on the next key's listener.
    let centre = post("centre", network(&fleet, &old_key, centre_port, &[], Some((&new_key, centre_next_port))));
    let switched = post("switched", network(&fleet, &new_key, switched_port, &[centre_next_port], None));
    // This post holds both and dials the switched post's only port: its
    // first dial, with the old key, fails; the retry with the next works.
    let both = post("both-keys", network(&fleet, &old_key, both_port, &[switched_port], Some((&new_key, free_port()))));
    // Step 3: the new key is its own, the old one its next; it dials the
    // centre's usual port, which still speaks the old key.
    let swapped =
        post("swapped", network(&fleet, &new_key, free_port(), &[centre_port], Some((&old_key, free_port()))));
    fleet.enroll_all(&centre, &[&centre, &switched, &both, &swapped]);

    let status = centre.json(&["status"]);
    let current = status["replication"]["psk_fingerprint"].as_str().unwrap().to_string();
    let next = status["replication"]["psk_next_fingerprint"].as_str().expect("the next key's fingerprint").to_string();
    assert_ne!(current, next, "{status}");
    assert_eq!(switched.json(&["status"])["replication"]["psk_fingerprint"], next.as_str());
    let shown = centre.outpost(&["status"]);
    assert!(shown.stdout.contains("Next fleet key") && shown.stdout.contains(&next), "{shown:?}");

    // From the centre through the switched post to the one holding both:
    // both links are on the new key.
    let id = centre.add_person("Нурлан Абенов");
    wait_for("the entry to cross both links on the new key", SYNC_DEADLINE, || holds(&both, &id));
    assert_eq!(switched.connected_peers().len(), 2, "{}", switched.log());
    let back = both.add_person("Бекзод Каримов");
    wait_for("an entry to come back the other way", SYNC_DEADLINE, || holds(&centre, &back));
    assert!(both.log().contains("dialling again with the other fleet key"), "{}", both.log());
    wait_for("the step-3 post to receive it over the old key", SYNC_DEADLINE, || holds(&swapped, &id));
    assert!(swapped.log().contains("dialling again with the other fleet key"), "{}", swapped.log());
}

#[test]
fn a_post_with_only_the_old_key_cannot_join_a_post_with_only_the_new_one() {
    let fleet = FleetKey::generate();
    let keys = tempfile::tempdir().unwrap();
    let new_key = keys.path().join("swarm-next.key");
    write_swarm_key(&new_key, 0xa5);
    let [switched_port, old_port] = [free_port(), free_port()];
    let switched = post("switched", network(&fleet, &new_key, switched_port, &[], None));
    let old = post("old-only", network(&fleet, &fleet.path(), old_port, &[switched_port], None));
    fleet.enroll_all(&switched, &[&switched, &old]);
    wait_for("the old-only post's dial to fail", SYNC_DEADLINE, || old.log().contains("dial failed"));
    assert!(switched.connected_peers().is_empty() && old.connected_peers().is_empty(), "{}", switched.log());
    assert!(!old.log().contains("dialling again with the other fleet key"), "{}", old.log());
}
