//! The engine on its own, through two engines joined in memory
//! ([`crate::replication::pair`]): what crosses the wire, how a lost frame
//! is recovered, and that every bound in [`Limits`] holds.

use super::*;
use crate::replication::digest::View;
use crate::replication::frame::Body;
use crate::replication::pair::{FrameFilter, Node, Pair, Side};

const NOW: i64 = 1_795_600_000_000;

fn add_entry(doc: &mut Document, n: u128) {
    crate::test_support::add_person(doc, n, &format!("Мухаммад Алиев {n}"), Timestamp::from_millis(NOW));
}

fn shard(n: u8) -> DocId {
    DocKind::Watchlist { authority: "KAZ-BS".into(), shard: n }.doc_id()
}

/// A watchlist shard with `entries` entries, written by actor `writer`.
fn doc_with(shard_no: u8, entries: u128, writer: u8) -> Document {
    let mut doc = Document::genesis(DocKind::Watchlist { authority: "KAZ-BS".into(), shard: shard_no }).unwrap();
    doc.set_actor(automerge::ActorId::from([writer; 16]));
    for n in 0..entries {
        add_entry(&mut doc, u128::from(shard_no) << 64 | n);
    }
    doc
}

/// Gives A's copy of `doc` one more entry, as an officer's write would.
fn write_at_a(pair: &mut Pair, doc: &DocId, n: u128) {
    let document = pair.a.host.doc(doc).unwrap();
    add_entry(document, n);
}

/// Records every frame `from` sends, decoded.
fn sent_bodies(pair: &mut Pair, from: Side) -> std::rc::Rc<std::cell::RefCell<Vec<Body>>> {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let record = seen.clone();
    pair.keep = Some(FrameFilter(Box::new(move |_, side, frame| {
        if side == from {
            record.borrow_mut().push(Body::decode(frame).unwrap());
        }
        true
    })));
    seen
}

#[test]
fn peers_in_sync_reconnect_with_a_greeting_and_one_digest_each_way() {
    let a = doc_with(1, 3, 1);
    let mut b = Document::load(a.id(), None, std::iter::empty()).unwrap();
    let mut a = a;
    b.merge(&mut a).unwrap();
    let mut pair = Pair::new(Node::new(1, vec![a]), Node::new(2, vec![b]));
    let first = pair.connect();
    assert!(pair.in_sync());
    pair.disconnect();
    let again = pair.connect();
    assert_eq!(again.frames, 4, "two Hellos and two digests");
    assert!(again.bytes < 200, "{} B to find nothing differs", again.bytes);
    assert!(first.bytes <= again.bytes + 200, "first {} B, again {} B", first.bytes, again.bytes);
    assert!(pair.disconnects.is_empty() && pair.problems.is_empty(), "{:?}", pair.problems);
}

#[test]
fn a_peer_with_no_copy_gets_a_snapshot_and_confirms_it() {
    let mut pair = Pair::new(Node::new(1, vec![doc_with(2, 20, 1)]), Node::new(2, Vec::new()));
    let seen = sent_bodies(&mut pair, Side::B);
    pair.connect();
    assert!(pair.in_sync());
    assert!(pair.b.host.docs.contains_key(&shard(2)));
    assert!(seen.borrow().iter().any(|b| matches!(b, Body::Done { .. })), "B confirms the snapshot with Done");
}

#[test]
fn a_local_change_is_pushed_in_one_message_and_one_reply() {
    let mut pair = Pair::new(Node::new(1, vec![doc_with(3, 2, 1)]), Node::new(2, Vec::new()));
    pair.connect();
    write_at_a(&mut pair, &shard(3), 99);
    let push = pair.push_from_a(&shard(3));
    assert!(pair.in_sync());
    assert_eq!(push.frames, 2, "the change, then the peer's reply");
}

#[test]
fn a_lost_sync_message_is_recovered_by_a_two_sided_reset() {
    let mut pair = Pair::new(Node::new(1, vec![doc_with(4, 2, 1)]), Node::new(2, Vec::new()));
    pair.connect();
    write_at_a(&mut pair, &shard(4), 7);
    // The push is lost on the wire.
    pair.keep = Some(FrameFilter(Box::new(|_, side, frame| {
        !(side == Side::A && matches!(Body::decode(frame), Ok(Body::Sync { .. })))
    })));
    pair.push_from_a(&shard(4));
    assert!(!pair.in_sync());
    pair.keep = None;
    // The reply is overdue after 30 s plus the time the frame could take.
    pair.advance(60_000);
    assert!(pair.in_sync(), "{:?}", pair.problems);
    assert!(pair.problems.iter().any(|p| p.contains("no reply in time")), "{:?}", pair.problems);
}

#[test]
fn a_frame_before_hello_is_dropped() {
    let mut pair = Pair::new(Node::new(1, Vec::new()), Node::new(2, Vec::new()));
    let kb = pair.b.key.clone();
    pair.a.engine.handle_connected(pair.now, &kb);
    let frame = Body::Done { slot: 1, fingerprint: 1 }.encode().unwrap();
    pair.deliver(Side::B, &frame);
    assert!(pair.problems.iter().any(|p| p.contains("before Hello")), "{:?}", pair.problems);
}

#[test]
fn a_peer_sending_garbage_is_cut_off_at_the_limit() {
    let limits = Limits { max_bad_frames: 2, ..Limits::default() };
    let mut pair = Pair::new(Node::with_limits(1, Vec::new(), limits), Node::new(2, Vec::new()));
    pair.connect();
    for _ in 0..2 {
        pair.deliver(Side::B, b"\x01garbage");
    }
    assert!(pair.disconnects.is_empty(), "two bad frames are within the limit");
    pair.deliver(Side::B, b"\x01garbage");
    assert!(matches!(pair.disconnects.as_slice(), [(Side::A, reason)] if reason.contains("do not decode")));
}

#[test]
fn a_peer_opening_too_many_aliases_is_cut_off() {
    let limits = Limits { max_aliases: 3, ..Limits::default() };
    let mut pair = Pair::new(Node::with_limits(1, Vec::new(), limits), Node::new(2, Vec::new()));
    pair.connect();
    for slot in 0..4u32 {
        let open = Body::Open { slot, doc: shard(slot as u8).to_string(), priority: 1 };
        pair.deliver(Side::B, &open.encode().unwrap());
    }
    assert!(matches!(pair.disconnects.as_slice(), [(Side::A, reason)] if reason.contains("opened more than 3")));
}

#[test]
fn reconcile_frames_beyond_the_period_cap_cut_the_peer_off() {
    let limits = Limits { max_reconcile_frames: 3, ..Limits::default() };
    let mut pair = Pair::new(Node::with_limits(1, Vec::new(), limits), Node::new(2, Vec::new()));
    pair.connect();
    let digest = Body::Reconcile { roster: 0, parts: View::default().opening() }.encode().unwrap();
    // The connection's own digest counted once already.
    for _ in 0..3 {
        pair.deliver(Side::B, &digest);
    }
    assert!(matches!(pair.disconnects.as_slice(), [(Side::A, reason)] if reason.contains("reconcile frames")));
}

#[test]
fn at_most_max_active_sessions_await_replies_and_the_rest_queue() {
    let docs: Vec<Document> = (0..6).map(|n| doc_with(n, 1, 1)).collect();
    let limits = Limits { max_active: 2, ..Limits::default() };
    let mut pair = Pair::new(Node::with_limits(1, docs, limits), Node::new(2, Vec::new()));
    // Snapshots A has sent that B has not yet confirmed, at most.
    let outstanding = std::rc::Rc::new(std::cell::Cell::new((0i32, 0i32)));
    let track = outstanding.clone();
    pair.keep = Some(FrameFilter(Box::new(move |_, side, frame| {
        let (now, most) = track.get();
        let now = match (side, Body::decode(frame)) {
            (Side::A, Ok(Body::Bundle { .. })) => now + 1,
            (Side::B, Ok(Body::Done { .. })) => now - 1,
            _ => now,
        };
        track.set((now, most.max(now)));
        true
    })));
    pair.connect();
    assert!(pair.in_sync(), "every queued document is synced in the end");
    assert_eq!(outstanding.get(), (0, 2), "(unconfirmed at the end, most unconfirmed at once)");
}

/// The same inputs give the same frames, byte for byte: engine state is
/// ordered, so one simulator seed replays exactly.
#[test]
fn the_same_inputs_give_the_same_frames() {
    let run = || {
        let docs: Vec<Document> = (0..5).map(|n| doc_with(n, 3, 1)).collect();
        let mut pair = Pair::new(Node::new(1, docs), Node::new(2, vec![doc_with(3, 2, 2)]));
        let frames = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let record = frames.clone();
        pair.keep = Some(FrameFilter(Box::new(move |_, _, frame| {
            record.borrow_mut().push(frame.to_vec());
            true
        })));
        pair.connect();
        assert!(pair.in_sync());
        frames.take()
    };
    assert_eq!(run(), run());
}

// With a roster: members only, signed changes, the roster ahead of all.

use crate::replication::pair::{TestFleet, node_actor};
use crate::trust::roster::Right;

/// A watchlist shard with `entries` entries written by node `writer`.
fn member_doc(shard_no: u8, entries: u128, writer: u8) -> Document {
    let mut doc = Document::genesis(DocKind::Watchlist { authority: "KAZ-BS".into(), shard: shard_no }).unwrap();
    doc.set_actor(node_actor(writer));
    for n in 0..entries {
        add_entry(&mut doc, u128::from(shard_no) << 64 | n);
    }
    doc
}

#[test]
fn members_exchange_signed_changes_and_keep_the_proofs() {
    let fleet = TestFleet::centres(2);
    let mut pair =
        Pair::new(Node::in_fleet(1, vec![member_doc(1, 3, 1)], &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    pair.connect();
    assert!(pair.in_sync(), "{:?}", pair.problems);
    write_at_a(&mut pair, &shard(1), 77);
    pair.push_from_a(&shard(1));
    assert!(pair.in_sync(), "{:?}", pair.problems);
    assert!(pair.disconnects.is_empty());
    let tips = pair.b.host.doc(&shard(1)).unwrap().actor_tips();
    let a_tip = tips.iter().find(|(actor, _, _)| *actor == node_actor(1)).unwrap();
    assert!(!pair.b.host.proofs(&shard(1), &a_tip.2).is_empty(), "B keeps A's proof to pass on");
}

#[test]
fn a_peer_not_on_the_roster_gets_the_roster_and_nothing_else() {
    let fleet = TestFleet::centres(1);
    let mut outsider = TestFleet::centres(1);
    // The outsider knows the same admin key but holds no roster yet.
    outsider.roster = crate::trust::roster::Roster::default();
    let mut pair =
        Pair::new(Node::in_fleet(1, vec![member_doc(1, 3, 1)], &fleet), Node::build_unenrolled(2, fleet.anchor()));
    let seen = sent_bodies(&mut pair, Side::A);
    pair.connect();
    // An officer's change at A is pushed to members only.
    write_at_a(&mut pair, &shard(1), 100);
    pair.push_from_a(&shard(1));
    // The periodic check says which roster A holds and no more, and is not
    // due again at once: a connected non-member must not spin the timer.
    pair.advance(Limits::default().recheck_every_ms + 1);
    let due = pair.timers[Side::A as usize].expect("a timer for the next check");
    assert!(due > pair.now, "the next check is due at {due}, now is {}", pair.now);
    let kinds: Vec<&'static str> = seen
        .borrow()
        .iter()
        .map(|b| match b {
            Body::Hello { .. } => "hello",
            Body::Roster { .. } => "roster",
            Body::Reconcile { parts, .. } if parts.is_empty() => "roster version",
            _ => "document",
        })
        .collect();
    assert_eq!(kinds, ["hello", "roster", "roster version"], "zero document bytes to a non-member");
    assert!(!pair.b.host.docs.contains_key(&shard(1)));
    assert_eq!(pair.b.engine.fleet().map(|f| f.version()), Some(1), "it holds the roster now");
}

#[test]
fn enrolling_a_connected_peer_starts_the_sync_at_once() {
    let mut fleet = TestFleet::centres(1);
    let mut pair =
        Pair::new(Node::in_fleet(1, vec![member_doc(1, 3, 1)], &fleet), Node::build_unenrolled(2, fleet.anchor()));
    pair.connect();
    assert!(!pair.in_sync());
    // The admin enrols node 2 at node 1: the new roster reaches node 2 on
    // the live connection, and both start syncing.
    let grown = TestFleet::centres(2);
    fleet.roster = grown.roster;
    let now = pair.now;
    let effects = pair.a.engine.handle_roster(now, &fleet.signed(), &mut pair.a.host).unwrap();
    pair.carry(Side::A, effects);
    pair.settle();
    assert!(pair.in_sync(), "{:?}", pair.problems);
}

#[test]
fn a_peer_calling_itself_by_another_members_name_is_cut_off() {
    let fleet = TestFleet::centres(2);
    let mut pair = Pair::new(Node::in_fleet(1, Vec::new(), &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    let kb = pair.b.key.clone();
    pair.a.engine.handle_connected(pair.now, &kb);
    let liar = Body::Hello {
        node: crate::replication::pair::node_signer(2).public().actor_prefix(),
        name: "node-1".into(),
        features: 0,
        max_frame: 1 << 20,
        roster: 1,
    };
    pair.deliver(Side::B, &liar.encode().unwrap());
    assert!(matches!(pair.disconnects.as_slice(), [(Side::A, r)] if r.contains("the roster names it")));
    let wrong_node = Body::Hello { node: [9; 16], name: "node-2".into(), features: 0, max_frame: 1 << 20, roster: 1 };
    pair.disconnects.clear();
    pair.a.engine.handle_connected(pair.now, &kb);
    pair.deliver(Side::B, &wrong_node.encode().unwrap());
    assert!(matches!(pair.disconnects.as_slice(), [(Side::A, r)] if r.contains("not its key's")));
}

#[test]
fn a_change_beyond_the_signers_rights_is_refused_counted_and_repeats_cut_the_peer_off_across_connections() {
    let fleet = TestFleet::centres(2);
    let limits = Limits { max_refused_changes: 1, ..Limits::default() };
    let mut b = Node::in_fleet(2, Vec::new(), &fleet);
    b.engine = {
        let mut config = EngineConfig::new(b.signer.public(), "node-2", Trust::Fleet { anchor: fleet.anchor() });
        config.limits = limits;
        let mut engine = Engine::new(config);
        engine.set_roster(&fleet.signed()).unwrap();
        engine
    };
    let mut pair = Pair::new(Node::in_fleet(1, vec![member_doc(1, 1, 1)], &fleet), b);
    pair.connect();
    assert!(pair.in_sync());
    let document = pair.a.host.doc(&shard(1)).unwrap();
    let meta = crate::schema::ChangeMeta { at: Timestamp::from_millis(NOW), by: "1000@x".into(), op: "attack" };
    document
        .transact(&meta, |r| {
            use automerge::transaction::Transactable;
            Ok(r.doc.put(automerge::ROOT, "schema", "x").map(|_| ())?)
        })
        .unwrap();
    pair.push_from_a(&shard(1));
    let refused = pair.b.engine.peer_summary(&pair.a.key.clone()).map(|s| s.refused);
    assert_eq!(refused.and_then(|r| r.get("field").copied()), Some(1), "{:?}", pair.problems);
    assert!(pair.disconnects.is_empty());
    // A new connection does not wipe the slate: the change offered again
    // is the strike too many.
    pair.disconnect();
    pair.connect();
    assert!(matches!(pair.disconnects.as_slice(), [(Side::B, r)] if r.contains("cut off")), "{:?}", pair.disconnects);
    // Reconnecting within the cut-off is turned away.
    pair.disconnects.clear();
    pair.disconnect();
    pair.connect();
    assert!(pair.disconnects.iter().any(|(side, r)| *side == Side::B && r.contains("cut off")));
}

#[test]
fn a_change_from_a_newly_granted_writer_waits_for_the_roster_that_grants_it() {
    let old = TestFleet::centres(2);
    let mut new = TestFleet::centres(2);
    // Node 1, a KAZ-BS centre, is granted the UZB-DCS watchlists in a
    // roster node 2 has not seen yet.
    new.grant(1, Right::Watchlist { authority: "UZB-DCS".into() });
    let uzb = DocKind::Watchlist { authority: "UZB-DCS".into(), shard: 2 };
    let mut doc = Document::genesis(uzb.clone()).unwrap();
    doc.set_actor(node_actor(1));
    add_entry(&mut doc, 5);
    let mut pair = Pair::new(Node::in_fleet(1, vec![doc], &new), Node::in_fleet(2, Vec::new(), &old));
    // The roster frame is lost, so the change comes first.
    pair.keep = Some(FrameFilter(Box::new(|_, _, frame| !matches!(Body::decode(frame), Ok(Body::Roster { .. })))));
    pair.connect();
    assert!(!pair.in_sync());
    assert_eq!(pair.b.host.held.values().map(Vec::len).sum::<usize>(), 1, "{:?}", pair.problems);
    assert!(pair.problems.iter().any(|p| p.contains("held back")), "{:?}", pair.problems);
    // Handed back before the roster comes (another change to the document
    // does that at the daemon), it waits again rather than being refused:
    // the peer's announced roster is still newer than the one held here.
    let held = std::mem::take(&mut pair.b.host.held);
    for (doc, held) in held {
        assert!(held.iter().all(|h| h.announced == new.roster.version), "{:?}", held.iter().map(|h| h.announced));
        let now = pair.now;
        let effects = pair.b.engine.handle_held(now, &doc, held, &mut pair.b.host);
        pair.carry(Side::B, effects);
    }
    assert_eq!(pair.b.host.held.values().map(Vec::len).sum::<usize>(), 1, "{:?}", pair.problems);
    // The roster arrives later: the held change is admitted.
    pair.keep = None;
    let now = pair.now;
    let effects = pair.b.engine.handle_roster(now, &new.signed(), &mut pair.b.host).unwrap();
    pair.carry(Side::B, effects);
    pair.settle();
    assert!(pair.in_sync(), "the change waited, then was admitted: {:?}", pair.problems);
    assert!(pair.b.host.held.values().all(Vec::is_empty));
}

#[test]
fn revoking_a_peer_closes_its_connection_and_turns_it_away() {
    let mut fleet = TestFleet::centres(2);
    let mut pair = Pair::new(Node::in_fleet(1, Vec::new(), &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    pair.connect();
    fleet.roster = fleet.roster.revoke(&crate::replication::pair::node_signer(2).public(), Vec::new()).unwrap();
    let now = pair.now;
    let effects = pair.a.engine.handle_roster(now, &fleet.signed(), &mut pair.a.host).unwrap();
    pair.carry(Side::A, effects);
    assert!(pair.disconnects.iter().any(|(s, r)| *s == Side::A && r.contains("revoked")));
    pair.disconnects.clear();
    let kb = pair.b.key.clone();
    let effects = pair.a.engine.handle_connected(pair.now, &kb);
    pair.carry(Side::A, effects);
    assert!(pair.disconnects.iter().any(|(s, r)| *s == Side::A && r.contains("revoked")));
}

#[test]
fn a_node_with_no_fleet_admin_key_replicates_with_nobody() {
    let mut a = Node::new(1, Vec::new());
    a.engine = Engine::new(EngineConfig::new(a.signer.public(), "node-1", Trust::Closed));
    let mut pair = Pair::new(a, Node::new(2, Vec::new()));
    pair.connect();
    assert!(pair.disconnects.iter().any(|(s, r)| *s == Side::A && r.contains("replicates with nobody")));
}

/// M (node 1) is revoked at B (node 2) with the cut of what B holds. C
/// (node 3) had taken a later change from M before it knew: once C learns
/// of the revocation it attests that change, and B admits it on C's word;
/// M's own word no longer counts.
#[test]
fn a_revoked_members_change_that_slipped_in_first_is_attested_and_admitted() {
    let mut fleet = TestFleet::centres(3);
    let mut mb = Pair::new(Node::in_fleet(1, vec![member_doc(1, 1, 1)], &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    mb.connect();
    assert!(mb.in_sync());
    mb.disconnect();
    let Pair { a: mut m, b, .. } = mb;
    // M writes again, and only C gets it.
    add_entry(m.host.doc(&shard(1)).unwrap(), 99);
    let mut mc = Pair::new(m, Node::in_fleet(3, Vec::new(), &fleet));
    mc.connect();
    mc.push_from_a(&shard(1));
    assert!(mc.in_sync());
    mc.disconnect();
    let Pair { a: m, b: c, .. } = mc;

    // B revokes M, keeping what B holds of it.
    let m_actor = node_actor(1);
    let mut bc = Pair::new(b, c);
    let tip = bc.a.host.doc(&shard(1)).unwrap().actor_tips().into_iter().find(|t| t.0 == m_actor).unwrap();
    let cut = vec![crate::trust::roster::CutEntry {
        doc: shard(1),
        actor: m_actor.to_bytes().to_vec(),
        seq: tip.1,
        hash: tip.2.0,
    }];
    fleet.roster = fleet.roster.revoke(&crate::replication::pair::node_signer(1).public(), cut).unwrap();
    let now = bc.now;
    let effects = bc.a.engine.handle_roster(now, &fleet.signed(), &mut bc.a.host).unwrap();
    bc.carry(Side::A, effects);
    bc.connect();
    // The next digest exchange carries C's attestation.
    bc.advance(11 * 60 * 1000);
    assert!(bc.in_sync(), "{:?}", bc.problems);
    assert_eq!(bc.a.host.attested.get("node-1"), Some(&1));

    // M's own later change is refused everywhere now.
    let Pair { b: c, .. } = bc;
    let mut m = m;
    add_entry(m.host.doc(&shard(1)).unwrap(), 100);
    let mut mc = Pair::new(m, c);
    mc.connect();
    assert!(mc.disconnects.iter().any(|(s, r)| *s == Side::B && r.contains("revoked")), "{:?}", mc.disconnects);
}

/// A node enrolled under another name than its config's greets with the
/// roster's, so peers that check the name against the roster keep it.
#[test]
fn a_node_enrolled_under_another_name_than_its_configs_greets_with_the_rosters() {
    let mut fleet = TestFleet::centres(1);
    let renamed = crate::trust::Member::new(
        crate::replication::pair::node_signer(2).public(),
        "kz-east",
        crate::trust::Role::Centre,
        "KAZ-BS",
        Some("KAZ".into()),
    );
    fleet.roster = fleet.roster.enroll(renamed).unwrap();
    // Node 2's engine is configured as "node-2".
    let mut pair =
        Pair::new(Node::in_fleet(1, vec![member_doc(1, 2, 1)], &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    pair.connect();
    assert!(pair.disconnects.is_empty(), "{:?}", pair.disconnects);
    assert!(pair.in_sync(), "{:?}", pair.problems);
    assert_eq!(pair.a.engine.peer_summary(&pair.b.key.clone()).map(|s| s.name), Some("kz-east".to_string()));
}

/// Node 1 signs two changes with one sequence number and gives one to
/// node 2, the other to node 3. When 2 and 3 meet, each refuses the other's
/// copy by name, blames node 1, and holds nothing against the relay: even
/// with no refusal allowed, neither cuts the other off.
#[test]
fn a_members_forked_history_is_blamed_on_it_and_not_on_the_relays() {
    use crate::replication::pair::node_signer;
    let fleet = TestFleet::centres(3);
    let mut original = member_doc(1, 1, 1);
    let mut fork = original.fork(node_actor(1));
    add_entry(&mut original, 100);
    add_entry(&mut fork, 200);
    let id = shard(1);
    let strict = Limits { max_refused_changes: 0, ..Limits::default() };
    let mut nodes = Vec::new();
    for (n, doc) in [(2u8, original), (3u8, fork)] {
        let mut node = Node::in_fleet(n, vec![doc], &fleet);
        let mut config =
            EngineConfig::new(node.signer.public(), &format!("node-{n}"), Trust::Fleet { anchor: fleet.anchor() });
        config.limits = strict.clone();
        node.engine = Engine::new(config);
        node.engine.set_roster(&fleet.signed()).unwrap();
        node.engine.set_held(&id, &node.host.doc(&id).unwrap().heads());
        // Each took node 1's change with node 1's signature.
        let tips = node.host.doc(&id).unwrap().actor_tips();
        let (_, _, tip) = tips.iter().find(|(a, _, _)| *a == node_actor(1)).unwrap();
        node.host.proofs.insert((id.clone(), *tip), vec![crate::trust::proof::sign_change(&node_signer(1), &id, tip)]);
        nodes.push(node);
    }
    let c = nodes.pop().unwrap();
    let b = nodes.pop().unwrap();
    let mut pair = Pair::new(b, c);
    pair.connect();
    assert!(pair.disconnects.is_empty(), "{:?}", pair.disconnects);
    assert!(pair.problems.iter().any(|p| p.contains("revoke node-1")), "{:?}", pair.problems);
    let refused = pair.b.engine.peer_summary(&pair.a.key.clone()).map(|s| s.refused).unwrap_or_default();
    assert!(refused.get("equivocation").is_some_and(|n| *n >= 1), "{refused:?}");
}

/// A change inside what its author may write, that leaves a record
/// unreadable once applied, is found only after applying: the document is
/// reloaded and the batch admitted again without it, so another member's
/// honest change that came in the same message still goes in.
#[test]
fn a_change_that_breaks_a_record_is_refused_after_applying_and_the_honest_one_beside_it_goes_in() {
    use crate::replication::pair::node_signer;
    let fleet = TestFleet::centres(3);
    let mut pair =
        Pair::new(Node::in_fleet(1, vec![member_doc(1, 1, 1)], &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    pair.connect();
    assert!(pair.in_sync());
    let first = shard(1);
    let broken_entry = {
        use automerge::ReadDoc;
        let doc = pair.a.host.doc(&first).unwrap();
        let records = doc.records_obj().unwrap();
        doc.read().keys(&records).next().unwrap()
    };
    // Node 3's entry, which node 1 holds with node 3's signature.
    let since = pair.a.host.doc(&first).unwrap().heads();
    let document = pair.a.host.doc(&first).unwrap();
    document.set_actor(node_actor(3));
    add_entry(document, 77);
    document.set_actor(node_actor(1));
    let honest = document.heads();
    let proof = crate::trust::proof::sign_change(&node_signer(3), &first, &honest[0]);
    pair.a.host.store(&first, &since, vec![(honest[0], proof)]);
    // Then node 1 sets its own entry's status to a number, which no node
    // can read; both go in one message.
    let document = pair.a.host.doc(&first).unwrap();
    let meta = crate::schema::ChangeMeta { at: Timestamp::from_millis(NOW), by: "1000@x".into(), op: "break" };
    document
        .transact(&meta, |r| {
            use automerge::ReadDoc;
            use automerge::transaction::Transactable;
            let (_, record) = r.doc.get(&r.records, broken_entry.as_str())?.ok_or(automerge::AutomergeError::Fail)?;
            r.doc.put(&record, "status", 99)?;
            Ok(())
        })
        .unwrap();
    pair.push_from_a(&first);
    let at_b = pair.b.host.doc(&first).unwrap();
    assert!(at_b.knows(&honest), "the honest entry went in: {:?}", pair.problems);
    let entries = crate::schema::watchlist::read_entries(at_b).unwrap();
    assert_eq!(entries.len(), 2, "{:?}", pair.problems);
    let refused = pair.b.engine.peer_summary(&pair.a.key.clone()).map(|s| s.refused).unwrap_or_default();
    assert_eq!(refused.get("schema"), Some(&1), "{refused:?} {:?}", pair.problems);
}

/// A node that holds a change its peer refuses (here one its author had
/// no right to make) offers it again only about once per check period,
/// not in a loop of refusals and restarts.
#[test]
fn a_change_the_peer_keeps_refusing_is_offered_again_only_now_and_then() {
    use crate::trust::roster::Role;
    // node-2 writes UZB-DCS's watchlists; node-1 may not.
    let fleet = TestFleet::with_members(&[(1, Role::Centre, "KAZ-BS"), (2, Role::Centre, "UZB-DCS")]);
    let uzb = DocKind::Watchlist { authority: "UZB-DCS".into(), shard: 4 };
    let mut doc = Document::genesis(uzb.clone()).unwrap();
    doc.set_actor(node_actor(1));
    add_entry(&mut doc, 3);
    let mut pair = Pair::new(Node::in_fleet(1, vec![doc], &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    pair.connect();
    assert!(!pair.in_sync());
    let after_connect = pair.traffic.frames;
    // Two minutes of timers: no new attempt at the refused document.
    for _ in 0..8 {
        pair.advance(15_000);
    }
    let quiet = pair.traffic.frames - after_connect;
    assert!(quiet <= 4, "{quiet} frames in two minutes after the refusals: {:?}", pair.problems);
    let refused = pair.b.engine.peer_summary(&pair.a.key.clone()).map(|s| s.refused).unwrap_or_default();
    assert!(refused.get("not-allowed").is_some_and(|n| *n <= 2), "{refused:?}");
}

/// node-1 a KGZ post, node-2 a KAZ post, node-3 the regional centre.
fn three_countries() -> crate::replication::pair::TestFleet {
    use crate::trust::roster::Role;
    TestFleet::with_members(&[(1, Role::Post, "KGZ-BS"), (2, Role::Post, "KAZ-BS"), (3, Role::Centre, "CARICC")])
}

/// node-1's incident log for November, with one incident.
fn kgz_incidents() -> Document {
    let kind = DocKind::Incidents { post: "node-1".into(), month: "2026-11".into() };
    let mut doc = Document::genesis(kind).unwrap();
    doc.set_actor(node_actor(1));
    let id = crate::ids::IncidentId::owned_by("node-1", uuid::Uuid::from_u128(7));
    let draft =
        crate::test_support::incident_draft("node-1", id, "heroin in a spare tyre", Timestamp::from_millis(NOW));
    let meta =
        crate::schema::ChangeMeta { at: Timestamp::from_millis(NOW), by: "1000@node-1".into(), op: "incident.log" };
    doc.transact(&meta, |r| r.add_incident(&draft)).unwrap();
    doc
}

fn kgz_watchlist() -> Document {
    let mut doc = Document::genesis(DocKind::Watchlist { authority: "KGZ-BS".into(), shard: 2 }).unwrap();
    doc.set_actor(node_actor(1));
    crate::test_support::add_person(&mut doc, 5, "Алмаз Токтогулов", Timestamp::from_millis(NOW));
    doc
}

/// Every frame node-1 sends node `to` over a first sync, as bytes.
fn frames_from_kgz_post(docs: Vec<Document>, to: u8) -> (Vec<Vec<u8>>, Pair) {
    let fleet = three_countries();
    let mut pair = Pair::new(Node::in_fleet(1, docs, &fleet), Node::in_fleet(to, Vec::new(), &fleet));
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let record = seen.clone();
    pair.keep = Some(FrameFilter(Box::new(move |_, side, frame| {
        if side == Side::A {
            record.borrow_mut().push(frame.to_vec());
        }
        true
    })));
    pair.connect();
    pair.advance(Limits::default().recheck_every_ms + 1);
    let frames = seen.borrow().clone();
    (frames, pair)
}

#[test]
fn a_post_outside_a_documents_audience_receives_not_a_byte_of_it() {
    let incidents = kgz_incidents().id().clone();
    let (with_incidents, mut pair) = frames_from_kgz_post(vec![kgz_watchlist(), kgz_incidents()], 2);
    let (without, _) = frames_from_kgz_post(vec![kgz_watchlist()], 2);
    // Byte for byte what the KAZ post would get if the incident log did
    // not exist: not its contents, not its id, not its place in the digest.
    assert_eq!(with_incidents, without);
    assert!(pair.b.host.docs.contains_key(&kgz_watchlist().id().clone()), "watchlists go to the whole fleet");
    assert!(!pair.b.host.docs.contains_key(&incidents));
    assert!(pair.problems.is_empty(), "{:?}", pair.problems);
    // A KAZ post that names the document anyway is refused, and learns
    // nothing it did not already say.
    let seen = sent_bodies(&mut pair, Side::A);
    let open = Body::Open { slot: 9, doc: incidents.to_string(), priority: 2 }.encode().unwrap();
    pair.deliver(Side::B, &open);
    pair.settle();
    assert!(matches!(seen.borrow().as_slice(), [Body::Refuse { slot: 9, .. }]), "{:?}", seen.borrow());
    // The regional centre is in the audience and gets it.
    let (_, mut to_centre) = frames_from_kgz_post(vec![kgz_watchlist(), kgz_incidents()], 3);
    assert!(to_centre.in_sync(), "{:?}", to_centre.problems);
}

/// Whether both sides hold `doc` with the same heads.
fn same_heads(pair: &mut Pair, doc: &DocId) -> bool {
    let mut a = pair.a.host.docs.get_mut(doc).map(Document::heads);
    let mut b = pair.b.host.docs.get_mut(doc).map(Document::heads);
    for heads in [&mut a, &mut b].into_iter().flatten() {
        heads.sort_unstable();
    }
    a.is_some() && a == b
}

#[test]
fn a_relay_outside_the_audience_does_not_carry_the_document_on() {
    // The regional centre holds the KGZ incident log; a KAZ post syncing
    // with it gets the watchlist and nothing of the incidents.
    let fleet = three_countries();
    let mut regional = Document::genesis(DocKind::Watchlist { authority: "CARICC".into(), shard: 0 }).unwrap();
    regional.set_actor(node_actor(3));
    let id = regional.kind().entry_id_from(11).unwrap();
    let ctx = crate::validate::PostContext {
        now: Timestamp::from_millis(NOW),
        offset: time::UtcOffset::UTC,
        authority: "CARICC".into(),
        post: "node-3".into(),
    };
    let draft = crate::validate::new_entry(&crate::test_support::person("Алмаз Токтогулов"), id, &ctx).unwrap();
    let meta =
        crate::schema::ChangeMeta { at: Timestamp::from_millis(NOW), by: "1@node-3".into(), op: "watchlist.add" };
    regional.transact(&meta, |r| r.add_entry(&draft)).unwrap();
    let watchlist = regional.id().clone();
    let incidents = kgz_incidents().id().clone();
    let mut pair =
        Pair::new(Node::in_fleet(3, vec![regional, kgz_incidents()], &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    pair.connect();
    assert!(same_heads(&mut pair, &watchlist), "{:?}", pair.problems);
    assert!(!pair.b.host.docs.contains_key(&incidents));
    // A change to the incident log at the centre is pushed to nobody here.
    let note = crate::ids::IncidentId::owned_by("node-1", uuid::Uuid::from_u128(8));
    let draft = crate::test_support::incident_draft("node-1", note, "second", Timestamp::from_millis(NOW));
    let meta =
        crate::schema::ChangeMeta { at: Timestamp::from_millis(NOW), by: "1000@node-1".into(), op: "incident.log" };
    pair.a.host.doc(&incidents).unwrap().transact(&meta, |r| r.add_incident(&draft)).unwrap();
    assert_eq!(pair.push_from_a(&incidents).frames, 0, "no frame about the incident log crosses");
}

#[test]
fn a_peer_that_resets_again_and_again_gets_the_document_rebuilt_only_a_few_times_a_period() {
    let mut pair = Pair::new(Node::new(1, vec![doc_with(4, 40, 1)]), Node::new(2, Vec::new()));
    pair.connect();
    assert!(pair.in_sync());
    let slot = *pair.b.engine.peers.get(&pair.a.key).unwrap().my_slots.get(&shard(4)).unwrap();
    let limit = Limits::default().max_restarts_per_doc;
    let mut answered = Vec::new();
    for _ in 0..limit + 6 {
        let before = pair.traffic;
        // B claims it lost everything: a reset, then the sync states it
        // holds nothing.
        pair.b.engine.peers.get_mut(&pair.a.key).unwrap().sessions.clear();
        let reset = Body::Reset { slot, reason: "start again".into() }.encode().unwrap();
        pair.deliver(Side::B, &reset);
        pair.settle();
        answered.push(pair.traffic.bytes - before.bytes);
    }
    let rebuilt = answered.iter().filter(|b| **b > 0).count() as u32;
    assert!(rebuilt >= 1 && rebuilt <= limit, "the document was sent again {rebuilt} times: {answered:?}");
    assert_eq!(answered.last(), Some(&0), "{answered:?}");
    assert!(pair.problems.iter().any(|p| p.contains("started over more than")), "{:?}", pair.problems);
    // A new period lifts it.
    pair.advance(Limits::default().recheck_every_ms + 1);
    assert!(pair.in_sync(), "{:?}", pair.problems);
}

/// Sends `changes` of `doc` from A to B as one `Changes` bundle, each
/// signed by A, on A's slot for the document.
fn bundle_from_a(pair: &mut Pair, doc: &DocId, changes: &[automerge::Change]) {
    let slot = *pair.a.engine.peers.get(&pair.b.key).unwrap().my_slots.get(doc).unwrap();
    let signer = pair.a.signer.clone();
    let proofs = crate::trust::proof::wire_proofs(changes, |h| vec![crate::trust::proof::sign_change(&signer, doc, h)]);
    let chunks = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
    let parts = crate::replication::bundle::BundlePayload::new(&[], chunks, proofs).into_parts().unwrap();
    let of = parts.len() as u16;
    for (part, data) in parts.into_iter().enumerate() {
        let kind = crate::replication::frame::BundleKind::Changes;
        pair.deliver(Side::A, &Body::Bundle { slot, kind, part: part as u16, of, data }.encode().unwrap());
    }
}

/// A bundle whose first change is missing (bundles may arrive in any
/// order) is neither applied nor refused: its changes are held, and go in
/// once what they depend on has arrived.
#[test]
fn an_orphan_in_a_bundle_is_held_and_goes_in_once_its_parent_arrives() {
    let fleet = TestFleet::centres(2);
    let mut pair =
        Pair::new(Node::in_fleet(1, vec![member_doc(1, 3, 1)], &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    pair.connect();
    assert!(pair.in_sync(), "{:?}", pair.problems);
    let before = pair.a.host.doc(&shard(1)).unwrap().heads();
    write_at_a(&mut pair, &shard(1), 70);
    write_at_a(&mut pair, &shard(1), 71);
    let changes = pair.a.host.doc(&shard(1)).unwrap().changes_since(&before);
    let (parent, child) = (changes[0].clone(), changes[1].clone());
    let b_before = pair.b.host.doc(&shard(1)).unwrap().heads();

    bundle_from_a(&mut pair, &shard(1), std::slice::from_ref(&child));
    assert_eq!(pair.b.host.doc(&shard(1)).unwrap().heads(), b_before, "the orphan is not applied");
    let held = pair.b.host.held.remove(&shard(1)).unwrap_or_default();
    assert_eq!(held.len(), 1, "the orphan is held");
    assert_eq!(held[0].reason, crate::admission::Reason::MissingDependencies);
    assert!(!held[0].proofs.is_empty(), "with its proof");
    assert!(pair.disconnects.is_empty(), "an orphan is no fault: {:?}", pair.disconnects);
    assert!(!pair.problems.iter().any(|p| p.contains("refused")), "{:?}", pair.problems);

    bundle_from_a(&mut pair, &shard(1), std::slice::from_ref(&parent));
    assert!(pair.b.host.doc(&shard(1)).unwrap().knows(&[parent.hash()]));
    // The writer hands held changes back once their document changed.
    let now = pair.now;
    let effects = pair.b.engine.handle_held(now, &shard(1), held, &mut pair.b.host);
    pair.carry(Side::B, effects);
    assert!(pair.b.host.doc(&shard(1)).unwrap().knows(&[child.hash()]), "{:?}", pair.problems);
    assert!(pair.b.host.held.get(&shard(1)).is_none_or(Vec::is_empty), "nothing waits any more");
    let stored = pair.b.host.proofs(&shard(1), &child.hash());
    assert!(!stored.is_empty(), "the orphan's proof is kept beside it once it goes in");
}

/// Bundle parts being reassembled from one peer are bounded: a peer that
/// sends more at once is cut off.
#[test]
fn a_peer_sending_bundle_parts_beyond_the_reassembly_bound_is_cut_off() {
    let limits = Limits { max_peer_reassembly_bytes: 4096, ..Limits::default() };
    let mut pair = Pair::new(Node::with_limits(1, Vec::new(), limits), Node::new(2, Vec::new()));
    pair.connect();
    let open = Body::Open { slot: 7, doc: shard(5).to_string(), priority: 1 };
    pair.deliver(Side::B, &open.encode().unwrap());
    let kind = crate::replication::frame::BundleKind::Snapshot;
    for part in 0..2u16 {
        let data = vec![part as u8; 1500];
        pair.deliver(Side::B, &Body::Bundle { slot: 7, kind, part, of: 8, data }.encode().unwrap());
    }
    assert!(pair.disconnects.is_empty(), "3,000 bytes are within the bound");
    let data = vec![9; 1500];
    pair.deliver(Side::B, &Body::Bundle { slot: 7, kind, part: 2, of: 8, data }.encode().unwrap());
    assert!(
        matches!(pair.disconnects.as_slice(), [(Side::A, reason)] if reason.contains("bundles of more than 4096")),
        "{:?}",
        pair.disconnects
    );
}

/// The Bloom filters a peer's sync messages carry are kept by its
/// sessions; what one peer may make this node keep is bounded.
#[test]
fn a_peers_bloom_filters_beyond_the_bound_are_refused() {
    // A filter over five changes takes 10 bytes: 3 of header, 50 bits.
    for (limit, refused) in [(8, true), (Limits::default().max_peer_bloom_bytes, false)] {
        let limits = Limits { max_peer_bloom_bytes: limit, ..Limits::default() };
        let mut pair =
            Pair::new(Node::with_limits(1, vec![doc_with(1, 5, 1)], limits), Node::new(2, vec![doc_with(1, 5, 2)]));
        pair.connect();
        let said = pair.problems.iter().any(|p| p.contains("Bloom filters would take more than"));
        assert_eq!(said, refused, "limit {limit}: {:?}", pair.problems);
        assert_eq!(pair.in_sync(), !refused, "limit {limit}");
    }
}

/// A peer cannot make this node open (and queue, and load) documents that
/// no member may write, or months that have not begun: junk ids are
/// refused before anything is loaded for them.
#[test]
fn a_peer_opening_junk_documents_is_refused_by_name() {
    let fleet = TestFleet::centres(2);
    let mut pair = Pair::new(Node::in_fleet(1, Vec::new(), &fleet), Node::in_fleet(2, Vec::new(), &fleet));
    pair.connect();
    let junk = [
        ("watchlist/NOBODY/00", "no member of the roster may write it"),
        ("incidents/node-2/2999-01", "has not begun"),
        ("audit/node-2/2999-01", "has not begun"),
    ];
    // An opening sync message, as a peer with an empty copy sends.
    let message = {
        let mut empty = automerge::AutoCommit::new();
        let mut state = automerge::sync::State::new();
        automerge::sync::SyncDoc::generate_sync_message(&empty.sync(), &mut state).unwrap().encode()
    };
    let open_and_sync = |pair: &mut Pair, slot: u32, doc: &str| {
        pair.deliver(Side::B, &Body::Open { slot, doc: doc.to_string(), priority: 1 }.encode().unwrap());
        pair.deliver(Side::B, &Body::Sync { slot, message: message.clone(), proofs: vec![] }.encode().unwrap());
    };
    for (n, (doc, why)) in junk.iter().enumerate() {
        open_and_sync(&mut pair, 100 + n as u32, doc);
        assert!(pair.problems.iter().any(|p| p.contains(doc) && p.contains(why)), "{doc}: {:?}", pair.problems);
        let id = DocId::parse(doc).unwrap();
        assert!(!pair.a.host.docs.contains_key(&id), "nothing is loaded for junk");
        assert!(!pair.a.engine.peers.get(&pair.b.key).unwrap().sessions.contains_key(&id));
    }
    let before = pair.problems.len();
    open_and_sync(&mut pair, 200, "incidents/node-2/2026-11");
    assert_eq!(pair.problems.len(), before, "{:?}", pair.problems);
    let real = DocId::parse("incidents/node-2/2026-11").unwrap();
    assert!(pair.a.engine.peers.get(&pair.b.key).unwrap().sessions.contains_key(&real));
    assert!(pair.disconnects.is_empty());
}

/// Whatever a peer names, watchlist shards are synced first: a document id
/// that is not a known kind goes last.
#[test]
fn a_junk_document_id_never_sorts_ahead_of_watchlist_shards() {
    let mut ids: Vec<DocId> = ["audit/kz/2026-11", "0000", "incidents/kz/2026-11", "watchlist/ZZZ/0f", "-"]
        .iter()
        .filter_map(|s| DocId::parse(s).ok())
        .collect();
    ids.push(shard(3));
    let mut queue: BTreeSet<_> = ids.iter().map(|d| (lane_of(d).0, lane_of(d).1, d.clone())).collect();
    let first_two: Vec<DocId> = (0..2).filter_map(|_| queue.pop_first()).map(|(_, _, d)| d).collect();
    assert!(
        first_two.iter().all(|d| d.as_str().starts_with("watchlist/")),
        "watchlist shards come first: {first_two:?}"
    );
    let last = queue.pop_last().map(|(_, _, d)| d).unwrap();
    assert!(DocKind::parse(&last).is_err() || last.as_str().starts_with("audit/"), "{last}");
}

/// Reconnecting does not lift a per-period cap: the restarts a document
/// made with a peer are counted across its connections.
#[test]
fn reconnecting_does_not_reset_the_count_of_restarts() {
    // The first snapshot counts as one start.
    let limits = Limits { max_restarts_per_doc: 3, ..Limits::default() };
    let mut pair = Pair::new(Node::with_limits(1, vec![doc_with(4, 40, 1)], limits), Node::new(2, Vec::new()));
    let reset_from_b = |pair: &mut Pair| {
        let slot = 900;
        pair.deliver(Side::B, &Body::Open { slot, doc: shard(4).to_string(), priority: 1 }.encode().unwrap());
        pair.b.engine.peers.get_mut(&pair.a.key).unwrap().sessions.clear();
        let before = pair.traffic;
        pair.deliver(Side::B, &Body::Reset { slot, reason: "start again".into() }.encode().unwrap());
        pair.settle();
        pair.traffic.bytes - before.bytes
    };
    pair.connect();
    assert!(pair.in_sync());
    assert!(reset_from_b(&mut pair) > 0);
    assert!(reset_from_b(&mut pair) > 0);
    pair.disconnect();
    pair.connect();
    assert_eq!(reset_from_b(&mut pair), 0, "the fourth start in the period is refused after a reconnect too");
    assert!(pair.problems.iter().any(|p| p.contains("started over more than 3")), "{:?}", pair.problems);
}

#[test]
fn the_roster_counts_as_confirmed_when_installed_or_when_a_peer_greets_with_the_same_version() {
    let fleet = TestFleet::centres(2);
    let mut pair = Pair::new(Node::in_fleet(1, Vec::new(), &fleet), Node::build_unenrolled(2, fleet.anchor()));
    // A holds its roster from the start, but nothing has confirmed it yet;
    // B holds none.
    assert_eq!(pair.a.engine.roster_confirmed_at(), None);
    assert_eq!(pair.b.engine.roster_confirmed_at(), None);
    pair.connect();
    // B installs A's roster: confirmed at B when installed.
    let held = pair.a.engine.fleet().map(|f| f.version());
    assert!(held.is_some());
    assert_eq!(pair.b.engine.fleet().map(|f| f.version()), held);
    let installed = pair.b.engine.roster_confirmed_at().expect("confirmed on install");
    assert_eq!(pair.a.engine.roster_confirmed_at(), None, "B greeted A before it held the roster");
    // A hears B greet with the same version once they meet again.
    pair.advance(1_000);
    pair.disconnect();
    pair.connect();
    let confirmed = pair.a.engine.roster_confirmed_at().expect("confirmed by a peer's hello");
    assert!(confirmed >= installed, "{confirmed:?} {installed:?}");
}
