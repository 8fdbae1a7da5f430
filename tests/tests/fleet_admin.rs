//! The fleet administrator's commands through the real `outpost` CLI:
//! `fleet init` with no daemon, key files others can read refused, the
//! admin key handed over (`rotate-admin`) with the retired key refused
//! afterwards, and an explicit `--psk-only` fleet replicating with no
//! roster and saying so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use outpost_tests::harness::{FleetKey, Post, PostOptions, Run, binary, free_port, networked_post, wait_for};

const DEADLINE: Duration = Duration::from_secs(60);

fn outpost(args: &[&str]) -> Run {
    let output = Command::new(binary("outpost"))
        .args(args)
        // No daemon anywhere: `fleet init` must not need one.
        .env("OUTPOST_SOCKET", "/nonexistent/outpostd.sock")
        .output()
        .expect("run outpost");
    Run::from_output(output)
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn fleet_init_writes_private_keys_with_no_daemon_and_never_overwrites_them() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    let text = outpost(&["fleet", "init", "--dir", fleet.to_str().unwrap()]);
    assert_eq!(text.code, 0, "{text:?}");
    let printed = text.stdout.trim();
    assert_eq!(printed.len(), 64, "{printed:?}");
    assert!(printed.chars().all(|c| c.is_ascii_hexdigit()), "{printed:?}");
    assert_eq!(mode(&fleet.join("admin.key")), 0o600);
    assert_eq!(mode(&fleet.join("swarm.key")), 0o600);
    // Again in the same place: refused, the keys untouched.
    let before = std::fs::read(fleet.join("admin.key")).unwrap();
    let again = outpost(&["--json", "fleet", "init", "--dir", fleet.to_str().unwrap()]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("never overwritten"), "{again:?}");
    assert_eq!(std::fs::read(fleet.join("admin.key")).unwrap(), before);
    // The JSON form prints the same kind of key.
    let other = dir.path().join("other");
    let json = outpost(&["--json", "fleet", "init", "--dir", other.to_str().unwrap()]);
    assert_eq!(json.code, 0, "{json:?}");
    let admin = json.json()["fleet_admin"].as_str().unwrap().to_string();
    assert_eq!(admin.len(), 64);
}

#[test]
fn the_admin_key_is_handed_over_and_the_retired_key_signs_nothing_more() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let centre = networked_post("kz-centre", "KAZ-BS", &key, ports[0], &[]);
    let post = networked_post("kz-nurzhol", "KAZ-BS", &key, ports[1], &[ports[0]]);
    key.enroll(&centre, &centre);

    // An admin key others can read is refused before anything is signed.
    let loose = key.admin_key().with_file_name("loose.key");
    std::fs::copy(key.admin_key(), &loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o640)).unwrap();
    let peer = post.peer_id();
    let loose_run = FleetKey::enroll_signed(&loose, &centre, (&peer, "kz-nurzhol", "KAZ-BS", "post"), &[]);
    assert_eq!(loose_run.code, 2, "{loose_run:?}");
    assert!(loose_run.stderr.contains("lets others read it"), "{loose_run:?}");

    // Handed over: the new key file is private, and the roster carries the
    // handover to the post.
    let successor = key.admin_key().with_file_name("admin-2.key");
    let rotated = centre.json(&[
        "fleet",
        "rotate-admin",
        "--admin-key",
        key.admin_key().to_str().unwrap(),
        "--out",
        successor.to_str().unwrap(),
    ]);
    assert_eq!(mode(&successor), 0o600);
    let version = rotated["version"].as_u64().unwrap();
    wait_for("the post to hold the rotated roster", DEADLINE, || post.roster_version() == version);

    // The new key enrols; the retired one is refused by the CLI, which
    // checks the roster's chain.
    let with_old = FleetKey::enroll_signed(&key.admin_key(), &centre, (&peer, "kz-nurzhol", "KAZ-BS", "post"), &[]);
    assert_ne!(with_old.code, 0, "{with_old:?}");
    assert!(with_old.stderr.contains("not the fleet's current admin key"), "{with_old:?}");
    let with_new = FleetKey::enroll_signed(&successor, &centre, (&peer, "kz-nurzhol", "KAZ-BS", "post"), &[]);
    assert_eq!(with_new.code, 0, "{with_new:?}");
    let entry = centre.add_person("Мухаммад Алиев");
    wait_for("the entry to reach the newly enrolled post", DEADLINE, || {
        post.outpost(&["--json", "watchlist", "show", &entry, "--purpose", "admin test"]).code == 0
    });
}

#[test]
fn a_psk_only_fleet_replicates_with_no_roster_and_says_so() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let psk_only = |name: &str, port: u16, peers: &[u16]| {
        let peers: Vec<String> = peers.iter().map(|p| format!("\"/ip4/127.0.0.1/tcp/{p}\"")).collect();
        Post::start_with(PostOptions {
            node_name: name.into(),
            authority: "KAZ-BS".into(),
            extra_config: format!(
                "[network]\nlisten = [\"/ip4/127.0.0.1/tcp/{port}\"]\npeers = [{}]\npsk_file = \"{}\"\nmdns = false\npsk_only = true\n",
                peers.join(", "),
                key.path().display()
            ),
            ..Default::default()
        })
    };
    let a = psk_only("kz-a", ports[0], &[]);
    let b = psk_only("kz-b", ports[1], &[ports[0]]);
    let status = a.json(&["status"]);
    assert_eq!(status["replication"]["membership"], "psk-only", "{status}");
    assert!(a.outpost(&["status"]).stdout.contains("psk-only"));
    assert!(a.log().contains("--psk-only: every holder of the fleet key is a full member"), "{}", a.log());
    let entry = a.add_person("Ерлан Сейткали");
    wait_for("the entry to reach kz-b with no roster", DEADLINE, || {
        b.outpost(&["--json", "watchlist", "show", &entry, "--purpose", "admin test"]).code == 0
    });
}
