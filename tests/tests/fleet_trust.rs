//! The roster between real daemons: a node that holds the fleet key but is
//! not on the roster gets the roster and no document byte, and syncs within
//! seconds of its enrolment; a change by a member this node does not know
//! yet waits in the quarantine (through a restart) and is applied once the
//! roster that enrols its author arrives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use outpost_model::api::NewEntryInput;
use outpost_model::date::Timestamp;
use outpost_model::ids::EntryId;
use outpost_model::replication::engine::DocHost;
use outpost_model::schema::{ChangeMeta, DocKind};
use outpost_model::trust::keys::parse_secret_file;
use outpost_model::trust::proof::sign_change;
use outpost_model::trust::roster::{Member, Role, SignedRoster};
use outpost_model::trust::{PublicKey, Signer};
use outpost_model::validate::{PostContext, new_entry};
use outpost_tests::harness::{FleetKey, Post, free_port, networked_post, wait_for};
use outpost_tests::rogue::Rogue;

const DEADLINE: Duration = Duration::from_secs(60);

/// Bytes `post` received from the peer named `from`, from `outpost peers`.
fn bytes_from(post: &Post, from: &str) -> u64 {
    post.peer_named(from).and_then(|p| p["bytes_received"].as_u64()).unwrap_or(0)
}

#[test]
fn a_key_holder_off_the_roster_gets_no_document_byte_until_it_is_enrolled() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let centre = networked_post("kz-centre", "KAZ-BS", &key, ports[0], &[]);
    key.enroll(&centre, &centre);
    for n in 0..20 {
        centre.add_person(&format!("Мухаммад Алиев {n}"));
    }
    // It holds the fleet key and the admin's public key, and is nobody.
    let outsider = networked_post("kz-outsider", "KAZ-BS", &key, ports[1], &[ports[0]]);
    wait_for("the outsider to receive the roster", DEADLINE, || outsider.roster_version() == centre.roster_version());
    let roster_len = centre.roster_bytes().len() as u64;
    // A check asked for at the centre reaches the outsider as the roster
    // version alone, and nothing is sent after it.
    let before = bytes_from(&outsider, "kz-centre");
    // A new entry is pushed to members only.
    centre.add_person("Ерлан Сейткали");
    assert_eq!(centre.outpost(&["sync"]).code, 0);
    wait_for("the centre's check to reach the outsider", DEADLINE, || bytes_from(&outsider, "kz-centre") > before);
    let status = outsider.json(&["status"]);
    assert_eq!(status["documents"], 0, "{status}");
    assert_eq!(status["entries"], 0, "{status}");
    let received = bytes_from(&outsider, "kz-centre");
    eprintln!("the outsider received {received} B from the centre; the roster is {roster_len} B");
    assert!(
        received > roster_len && received < roster_len + 512,
        "the outsider received {received} B; the roster is {roster_len} B: a greeting and the roster only"
    );
    assert!(centre.connected_peers().contains(&"kz-outsider".to_string()), "the connection is kept");

    // Enrolled at the centre, it syncs on the connection it has, within
    // seconds, not after a redial.
    let started = Instant::now();
    key.enroll(&centre, &outsider);
    wait_for("the enrolled outsider to hold the watchlist", Duration::from_secs(20), || outsider.entry_count() == 21);
    let took = started.elapsed();
    eprintln!("enrolment to a full watchlist at the outsider: {took:?}");
    assert!(took < Duration::from_secs(20), "enrolment took {took:?} to take effect");

    // Who handed in each roster, and what it changed, is in the centre's
    // audit log.
    let audit = centre.json(&["audit"]);
    let records = audit["records"].as_array().unwrap();
    let enrolled = records
        .iter()
        .filter(|r| r["action"] == "fleet.roster")
        .find(|r| r["detail"].as_str().unwrap().contains("enrolled kz-outsider (centre of KAZ-BS)"))
        .unwrap_or_else(|| panic!("the enrolment is not audited: {audit}"));
    assert!(enrolled["user"].as_str().is_some_and(|u| !u.is_empty()), "{enrolled}");
    assert_eq!(enrolled["role"], "admin", "{enrolled}");
}

#[test]
fn a_change_by_a_member_not_yet_on_this_nodes_roster_waits_and_is_applied_when_the_roster_arrives() {
    let key = FleetKey::generate();
    let port = free_port();
    let mut centre = networked_post("kz-centre", "KAZ-BS", &key, port, &[]);
    key.enroll(&centre, &centre);
    // The relay: a member that already holds the roster enrolling the new
    // centre, and forwards the new centre's change ahead of that roster,
    // as a reordering link or a courier's bundle might. (A watchlist goes
    // to the whole fleet; a new post's incident log would not be relayed
    // at all by a node that does not know the post yet, since need-to-know
    // cannot tell who may receive it.)
    const RELAY: [u8; 32] = [31; 32];
    let relay_key = Signer::from_secret(RELAY).public();
    let admin_key = key.admin_key();
    let enrolled = key.enroll_peer(&centre, &relay_key.peer_id(), "kz-relay", "KAZ-BS", "centre", &[]);
    assert_eq!(enrolled.code, 0, "{enrolled:?}");
    let anchor = PublicKey::parse_hex(&key.admin).unwrap();
    let current = centre.roster_bytes();

    // The next roster, signed here with the admin key, enrols kz-new, a
    // second KAZ-BS centre.
    let admin = Signer::from_secret(parse_secret_file(&std::fs::read_to_string(&admin_key).unwrap()).unwrap());
    let newcomer = Signer::from_secret([32; 32]);
    let roster = SignedRoster::decode(&current).unwrap().verify(&anchor).unwrap();
    let member = Member::new(newcomer.public(), "kz-new", Role::Centre, "KAZ-BS", Some("KAZ".into()));
    let next = SignedRoster::sign(&roster.enroll(member).unwrap(), &admin, Vec::new()).unwrap().encode().unwrap();

    let relay = Rogue::start(RELAY, "kz-relay", anchor, Some(&current), &key.path(), port);
    wait_for("the relay to connect", DEADLINE, || relay.connected());

    // kz-new's first watchlist entry, signed by kz-new, handed to the relay.
    let now = Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64,
    );
    let ctx = PostContext { now, offset: time::UtcOffset::UTC, authority: "KAZ-BS".into(), post: "kz-new".into() };
    let id = EntryId::owned_by("KAZ-BS", uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0042));
    let input = NewEntryInput {
        kind: "person".into(),
        category: "warning".into(),
        reason: "entered at kz-new on its first day".into(),
        names: vec!["Ерлан Сейткали".into()],
        ..Default::default()
    };
    let draft = new_entry(&input, id, &ctx).unwrap();
    let doc = DocKind::watchlist_for("KAZ-BS", &id).doc_id();
    let mut actor = newcomer.public().actor_prefix().to_vec();
    actor.extend_from_slice(&[0, 0, 0, 1]);
    relay.act(move |mind, now| {
        let document = mind.host.doc(&doc).unwrap();
        let own = document.read().get_actor().clone();
        document.set_actor(automerge::ActorId::from(actor));
        let meta = ChangeMeta { at: now, by: "1000@kz-new".into(), op: "watchlist.add" };
        document.transact(&meta, |r| r.add_entry(&draft)).unwrap();
        document.set_actor(own);
        let change = document.changes_since(document.genesis_heads().to_vec().as_slice()).pop().unwrap();
        let proof = sign_change(&newcomer, &doc, &change.hash());
        mind.host.store(&doc, &[], vec![(change.hash(), proof)]);
        mind.engine.handle_local_change(now, &doc, &mut mind.host)
    });
    wait_for("the centre to hold the change", DEADLINE, || centre.held_changes() == 1);
    let shown = centre.outpost(&["--json", "watchlist", "show", &id.to_string(), "--purpose", "test"]);
    assert_ne!(shown.code, 0, "not applied while its author is unknown: {shown:?}");
    assert!(centre.log().contains("change held until it can be judged"), "{}", centre.log());

    // The quarantine is stored: it survives a restart.
    assert!(centre.stop().success());
    centre.spawn();
    assert_eq!(centre.held_changes(), 1, "{}", centre.log());
    wait_for("the relay to reconnect", DEADLINE, || relay.connected() && centre.connected_peers().len() == 1);

    // The roster that enrols kz-new reaches the centre: the change goes in.
    let version = SignedRoster::decode(&next).unwrap().verify(&anchor).unwrap().version;
    relay.act(move |mind, now| mind.engine.handle_roster(now, &next, &mut mind.host).unwrap());
    wait_for("the centre to install the newer roster", DEADLINE, || centre.roster_version() == version);
    wait_for("the held change to be applied", DEADLINE, || {
        centre.outpost(&["--json", "watchlist", "show", &id.to_string(), "--purpose", "test"]).code == 0
    });
    assert_eq!(centre.held_changes(), 0);
    relay.stop();
}
