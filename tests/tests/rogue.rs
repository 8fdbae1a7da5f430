//! A rogue member against real daemons: it holds a post's key and the
//! fleet key and speaks the real protocol, and sends forged signatures, a
//! change made with another member's actor, a post's change to a centre's
//! watchlist, a schema-breaking change, deflate bombs in changes and in a
//! whole-document chunk, and, once revoked, tries again, directly and
//! through relays. The centre it talks to refuses each by name, counts
//! them, stays up within its memory budget, and it and the post behind it
//! (two hops from the rogue, which refuses what relays offer it on its own
//! checks) hold none of it while their honest data converges.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Duration;

use automerge::transaction::Transactable;
use outpost_model::DocId;
use outpost_model::api::{NewEntryInput, NewIncidentInput};
use outpost_model::date::Timestamp;
use outpost_model::ids::{EntryId, IncidentId};
use outpost_model::replication::bundle::BundlePayload;
use outpost_model::replication::engine::Effect;
use outpost_model::replication::frame::{Body, BundleKind};
use outpost_model::schema::{ChangeMeta, DocKind, Document};
use outpost_model::trust::proof::{StoredProof, sign_change};
use outpost_model::trust::{PublicKey, Signer};
use outpost_model::validate::{PostContext, new_entry, new_incident};
use outpost_tests::harness::{FleetKey, Post, free_port, networked_post, wait_for};
use outpost_tests::rogue::{Mind, Rogue, forged_proof, uleb};

const DEADLINE: Duration = Duration::from_secs(60);
const SECRET: [u8; 32] = [42; 32];

fn holds_entry(post: &Post, id: &str) -> bool {
    post.outpost(&["--json", "watchlist", "show", id, "--purpose", "rogue test"]).code == 0
}

fn holds_incident(post: &Post, id: &str) -> bool {
    post.outpost(&["--json", "incident", "show", id]).code == 0
}

/// Refused changes from the rogue at `post`, by reason.
fn refused(post: &Post, rogue: &str, reason: &str) -> u64 {
    let peers = post.json(&["peers"]);
    peers["peers"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["peer_id"] == rogue))
        .and_then(|p| p["refused"][reason].as_u64())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    )
}

fn context() -> PostContext {
    PostContext { now: now(), offset: time::UtcOffset::UTC, authority: "KAZ-BS".into(), post: "kz-rogue".into() }
}

fn meta() -> ChangeMeta {
    ChangeMeta { at: now(), by: "666@kz-rogue".into(), op: "rogue" }
}

/// How the rogue proves what it sends.
#[derive(Clone, Copy)]
enum Proofs {
    Own,
    Forged,
    /// Signed with the key of this secret: another member's.
    As([u8; 32]),
}

/// Stores what the rogue changed in `doc` since its last push, with the
/// proofs chosen, and pushes it.
fn push(mind: &mut Mind, now: Timestamp, doc: &DocId, proofs: Proofs) -> Vec<Effect> {
    let since = mind.host.stored_heads.get(doc).cloned().unwrap_or_default();
    let Ok(document) = outpost_model::replication::engine::DocHost::doc(&mut mind.host, doc) else { return vec![] };
    let changes = document.changes_since(&since);
    let proofs: Vec<(automerge::ChangeHash, StoredProof)> = changes
        .iter()
        .map(|c| {
            let proof = match proofs {
                Proofs::Own => sign_change(&mind.signer, doc, &c.hash()),
                Proofs::Forged => forged_proof(),
                Proofs::As(secret) => sign_change(&Signer::from_secret(secret), doc, &c.hash()),
            };
            (c.hash(), proof)
        })
        .collect();
    mind.host.store(doc, &since, proofs);
    mind.engine.handle_local_change(now, doc, &mut mind.host)
}

/// The rogue writes `edit` into `doc` (with `actor`, if given) and pushes.
fn write_and_push(
    rogue: &Rogue,
    doc: DocId,
    actor: Option<automerge::ActorId>,
    proofs: Proofs,
    edit: impl FnOnce(&mut Document) + Send + 'static,
) {
    rogue.act(move |mind, now| {
        let Ok(document) = outpost_model::replication::engine::DocHost::doc(&mut mind.host, &doc) else {
            return vec![];
        };
        let own = document.read().get_actor().clone();
        if let Some(actor) = actor {
            document.set_actor(actor);
        }
        edit(document);
        document.set_actor(own);
        push(mind, now, &doc, proofs)
    });
}

fn entry_draft(name: &str, n: u128) -> (EntryId, outpost_model::watchlist::EntryDraft) {
    let id = EntryId::owned_by("KAZ-BS", uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000 | n));
    let input = NewEntryInput {
        kind: "person".into(),
        category: "warning".into(),
        reason: "rogue".into(),
        names: vec![name.into()],
        ..Default::default()
    };
    (id, new_entry(&input, id, &context()).unwrap())
}

/// A change made on a plain Automerge copy of `doc`: any operation at all.
fn raw_change(document: &mut Document, edit: impl FnOnce(&mut automerge::AutoCommit)) {
    let mut copy =
        automerge::AutoCommit::load(&document.save()).unwrap().with_actor(document.read().get_actor().clone());
    let before = copy.get_heads();
    edit(&mut copy);
    copy.commit();
    let changes = copy.get_changes(&before);
    document.apply_changes(changes).unwrap();
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An Automerge chunk of `kind` (0 document, 2 compressed change) around
/// `body`; the checksum is never reached.
fn chunk(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, kind];
    uleb(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// A whole-document chunk with one deflated column of 100 MiB of zeros.
fn document_bomb() -> Vec<u8> {
    let column = deflate(&vec![0u8; 100 << 20]);
    let mut body = Vec::new();
    for n in [0u64, 0, 1] {
        uleb(n, &mut body);
    }
    uleb(0x10 | 0x08 | 2, &mut body);
    uleb(column.len() as u64, &mut body);
    uleb(0, &mut body);
    body.extend_from_slice(&column);
    chunk(0, &body)
}

/// A sync message carrying `chunks` as its changes.
fn sync_message(chunks: Vec<Vec<u8>>) -> Vec<u8> {
    use automerge::sync::SyncDoc;
    let mut doc = automerge::AutoCommit::new();
    let mut state = automerge::sync::State::new();
    let mut message = doc.sync().generate_sync_message(&mut state).unwrap();
    message.changes = automerge::sync::ChunkList::from(chunks);
    message.encode()
}

#[test]
fn a_rogue_member_is_refused_at_every_hop_and_honest_data_converges() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let centre = networked_post("kz-centre", "KAZ-BS", &key, ports[0], &[]);
    let east = networked_post("kz-east", "KAZ-BS", &key, ports[1], &[ports[0]]);
    key.enroll_all(&centre, &[&centre, &east]);
    let rogue_key = Signer::from_secret(SECRET).public();
    let rogue_peer = rogue_key.peer_id();
    let admin_key = key.admin_key();
    let enrolled = key.enroll_peer(&centre, &rogue_peer, "kz-rogue", "KAZ-BS", "post", &[]);
    assert_eq!(enrolled.code, 0, "{enrolled:?}");
    wait_for("the roster to reach kz-east", DEADLINE, || east.roster_version() == 3);
    let first = centre.add_person("Мухаммад Алиев");
    wait_for("an honest entry to reach kz-east", DEADLINE, || holds_entry(&east, &first));

    let anchor = PublicKey::parse_hex(&key.admin).unwrap();
    let rogue = Rogue::start(SECRET, "kz-rogue", anchor, Some(&centre.roster_bytes()), &key.path(), ports[0]);
    let shard = DocKind::watchlist_for("KAZ-BS", &EntryId::parse(&first).unwrap()).doc_id();
    wait_for("the rogue to receive the centre's watchlist", DEADLINE, || {
        let (tx, rx) = std::sync::mpsc::channel();
        let wanted = shard.clone();
        rogue.act(move |mind, _| {
            let _ = tx.send(mind.host.docs.contains_key(&wanted) && mind.host.stored.contains_key(&wanted));
            vec![]
        });
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or(false)
    });
    let centre_pid = centre.pid().unwrap();
    let rss_before = rss_kib(centre_pid);

    // 1. A forged signature on a change the rogue may make (its own log).
    let incident = IncidentId::owned_by("kz-rogue", uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001));
    let draft = new_incident(
        &NewIncidentInput { incident_type: "seizure".into(), narrative: "forged".into(), ..Default::default() },
        incident,
        &context(),
    )
    .unwrap();
    let own_log = DocKind::Incidents { post: "kz-rogue".into(), month: draft.occurred_at.utc_month() }.doc_id();
    write_and_push(&rogue, own_log.clone(), None, Proofs::Forged, move |doc| {
        doc.transact(&meta(), |r| r.add_incident(&draft)).unwrap();
    });
    wait_for("the forged signature to be refused", DEADLINE, || refused(&centre, &rogue_peer, "bad-signature") >= 1);

    // 2. A change made with the centre's actor, signed by the rogue.
    let mut centre_actor = PublicKey::from_peer_id(&centre.peer_id()).unwrap().actor_prefix().to_vec();
    centre_actor.extend_from_slice(&[9, 9, 9, 9]);
    let (impostor, draft) = entry_draft("Ложный Центр", 2);
    let impostor_doc = DocKind::watchlist_for("KAZ-BS", &impostor).doc_id();
    write_and_push(
        &rogue,
        impostor_doc.clone(),
        Some(automerge::ActorId::from(centre_actor)),
        Proofs::Own,
        move |doc| {
            doc.transact(&meta(), |r| r.add_entry(&draft)).unwrap();
        },
    );
    wait_for("the borrowed actor to be refused", DEADLINE, || refused(&centre, &rogue_peer, "bad-signature") >= 2);

    // 3. A post's change to its centre's watchlist, honestly signed.
    // In another shard than the refused impostor, which its copy holds, so
    // that the change does not fail only for depending on it.
    let (planted, draft) = (3..)
        .map(|n| entry_draft("Подброшенный Список", n))
        .find(|(id, _)| DocKind::watchlist_for("KAZ-BS", id).doc_id() != impostor_doc)
        .unwrap();
    let planted_doc = DocKind::watchlist_for("KAZ-BS", &planted).doc_id();
    write_and_push(&rogue, planted_doc, None, Proofs::Own, move |doc| {
        doc.transact(&meta(), |r| r.add_entry(&draft)).unwrap();
    });
    wait_for("the post's watchlist change to be refused", DEADLINE, || {
        refused(&centre, &rogue_peer, "not-allowed") >= 1
    });

    // 4. A schema-breaking change in a document it may write (another
    // month's log, so that nothing refused before is beneath it).
    let other_log = DocKind::Incidents { post: "kz-rogue".into(), month: "2026-01".into() }.doc_id();
    write_and_push(&rogue, other_log, None, Proofs::Own, |doc| {
        raw_change(doc, |copy| {
            copy.put(automerge::ROOT, "incidents", "x").unwrap();
        });
    });
    wait_for("the schema-breaking change to be refused", DEADLINE, || refused(&centre, &rogue_peer, "field") >= 1);

    // 5. Deflate bombs: a thousand copies of a change that expands to 1 MiB
    // in one sync message, and a whole-document chunk with a 100 MiB column.
    let slot = 40_000;
    rogue.raw(Body::Open { slot, doc: own_log.to_string(), priority: 2 }.encode().unwrap());
    let mut bomb_doc = automerge::AutoCommit::new();
    bomb_doc.put(automerge::ROOT, "x", 1).unwrap();
    let hash = bomb_doc
        .commit_with(automerge::transaction::CommitOptions::default().with_message("a".repeat(1 << 20)))
        .unwrap();
    let bomb = bomb_doc.get_change_by_hash(&hash).unwrap().bytes().to_vec();
    let copies = (900 * 1024) / bomb.len();
    assert!(copies > 64, "{copies} copies fit a frame: each is {} B", bomb.len());
    let message = sync_message(vec![bomb.repeat(copies)]);
    rogue.raw(Body::Sync { slot, message, proofs: vec![] }.encode().unwrap());
    let parts = BundlePayload::new(&[], vec![document_bomb()], vec![]).into_parts().unwrap();
    let of = parts.len() as u16;
    let shard_slot = slot + 1;
    rogue.raw(Body::Open { slot: shard_slot, doc: shard.to_string(), priority: 1 }.encode().unwrap());
    for (part, data) in parts.into_iter().enumerate() {
        rogue.raw(
            Body::Bundle { slot: shard_slot, kind: BundleKind::Snapshot, part: part as u16, of, data }
                .encode()
                .unwrap(),
        );
    }
    wait_for("both bombs to be refused", DEADLINE, || {
        let log = centre.log();
        log.matches("expand past").count() >= 2
    });
    let rss_after = rss_kib(centre_pid);
    eprintln!("the centre's RSS: {rss_before} KiB before the bombs, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 300 * 1024,
        "the centre grew from {rss_before} KiB to {rss_after} KiB under the bombs"
    );

    // Honest data still flows both ways.
    let at_centre = centre.add_person("Ерлан Сейткали");
    let at_east = east.add_person("Шерзод Рахимов");
    wait_for("honest data to converge", DEADLINE, || holds_entry(&east, &at_centre) && holds_entry(&centre, &at_east));

    // 6. Revoked, the rogue is closed and turned away; what it writes now
    // reaches nobody.
    let revoked = centre.outpost(&["fleet", "revoke", &rogue_peer, "--admin-key", admin_key.to_str().unwrap()]);
    assert_eq!(revoked.code, 0, "{revoked:?}");
    wait_for("the rogue to be cut off", DEADLINE, || {
        rogue.seen.lock().map(|s| s.disconnects.iter().any(|d| d.contains("closed"))).unwrap_or(false)
    });
    let late = IncidentId::owned_by("kz-rogue", uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0006));
    let draft = new_incident(
        &NewIncidentInput {
            incident_type: "seizure".into(),
            narrative: "after revocation".into(),
            ..Default::default()
        },
        late,
        &context(),
    )
    .unwrap();
    write_and_push(&rogue, own_log.clone(), None, Proofs::Own, move |doc| {
        doc.transact(&meta(), |r| r.add_incident(&draft)).unwrap();
    });
    wait_for("the centre to turn the revoked rogue away", DEADLINE, || centre.log().contains("revoked from the fleet"));

    // 7. Its later change, honestly signed by it, relayed by a member that
    // holds the roster with the revocation and attests nothing: refused by
    // the centre, and by kz-east two hops from the rogue, each on its own
    // checks. The relays also offer kz-east a forged signature.
    const RELAY: [u8; 32] = [43; 32];
    let relay_peer = Signer::from_secret(RELAY).public().peer_id();
    let enrolled = key.enroll_peer(&centre, &relay_peer, "kz-relay", "KAZ-BS", "centre", &[]);
    assert_eq!(enrolled.code, 0, "{enrolled:?}");
    let version = centre.roster_version();
    wait_for("the roster enrolling the relay to reach kz-east", DEADLINE, || east.roster_version() == version);
    let roster = centre.roster_bytes();
    let relays =
        [ports[0], ports[1]].map(|port| Rogue::start(RELAY, "kz-relay", anchor, Some(&roster), &key.path(), port));
    wait_for("the relays to connect", DEADLINE, || relays.iter().all(Rogue::connected));
    let mut rogue_actor = rogue_key.actor_prefix().to_vec();
    rogue_actor.extend_from_slice(&[0, 0, 0, 7]);
    let after_revocation =
        IncidentId::owned_by("kz-rogue", uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0007));
    for relay in &relays {
        let draft = new_incident(
            &NewIncidentInput {
                incident_type: "seizure".into(),
                narrative: "written after the revocation".into(),
                ..Default::default()
            },
            after_revocation,
            &context(),
        )
        .unwrap();
        let actor = automerge::ActorId::from(rogue_actor.clone());
        write_and_push(relay, own_log.clone(), Some(actor), Proofs::As(SECRET), move |doc| {
            doc.transact(&meta(), |r| r.add_incident(&draft)).unwrap();
        });
    }
    for post in [&centre, &east] {
        wait_for("the revoked member's later change to be refused", DEADLINE, || {
            refused(post, &relay_peer, "revoked") >= 1
        });
    }
    let (forged_at_east, draft) = entry_draft("Поддельная Подпись", 8);
    let forged_doc = DocKind::watchlist_for("KAZ-BS", &forged_at_east).doc_id();
    write_and_push(&relays[1], forged_doc, None, Proofs::Forged, move |doc| {
        doc.transact(&meta(), |r| r.add_entry(&draft)).unwrap();
    });
    wait_for("kz-east to refuse a forged signature", DEADLINE, || refused(&east, &relay_peer, "bad-signature") >= 1);
    assert!(!holds_incident(&east, &after_revocation.to_string()));
    assert!(!holds_entry(&east, &forged_at_east.to_string()));

    // Nothing of the rogue's is held by either honest daemon, and both are
    // up and in agreement.
    for post in [&centre, &east] {
        for id in [incident, late, after_revocation] {
            assert!(!holds_incident(post, &id.to_string()), "{} holds the rogue's incident {id}", post.name);
        }
        for id in [impostor, planted] {
            assert!(!holds_entry(post, &id.to_string()), "{} holds the rogue's entry {id}", post.name);
        }
        assert_eq!(post.json(&["status"])["entries"], 3, "{}", post.log());
    }
    let roster = centre.json(&["fleet", "roster"]);
    let members = roster["members"].as_array().unwrap();
    assert!(members.iter().any(|m| m["peer_id"] == rogue_peer && m["revoked"] == true), "{roster}");
    rogue.stop();
    for relay in relays {
        relay.stop();
    }
}
