//! Property: replicas that edit concurrently and merge in any order converge
//! to identical heads and identical entries, and no committed change is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use automerge::{ChangeHash, ReadDoc};
use outpost_model::api::NewEntryInput;
use outpost_model::date::{PartialDate, Timestamp};
use outpost_model::ids::{EntryId, NodeId};
use outpost_model::schema::watchlist::read_entries;
use outpost_model::schema::{ChangeMeta, DocKind, Document, actor_for};
use outpost_model::validate::{PostContext, name, new_entry, plate};
use outpost_model::vocab::{Category, EntryStatus, NameKind, Warning};
use outpost_model::watchlist::Amendment;
use proptest::prelude::*;

const REPLICAS: usize = 3;
const NAMES: [&str; 4] = ["Мухаммад Алиев", "Muhammad Aliyev", "Алишер", "Ali"];
const DOBS: [&str; 3] = ["1985", "1985-03", "1990-01-02"];

#[derive(Debug, Clone)]
enum Op {
    Reason(u8),
    Action(u8),
    Category(u8),
    AddName(u8),
    RemoveName(u8),
    AddDob(u8),
    RemoveDob(u8),
    AddWarning(u8),
    RemoveWarning(u8),
    AddPlate(u8),
    Status(u8),
    Expires(Option<u8>),
    AddEntry(u8),
}

fn op() -> impl Strategy<Value = (u8, Op)> {
    let op = prop_oneof![
        (0u8..4).prop_map(Op::Reason),
        (0u8..4).prop_map(Op::Action),
        (0u8..9).prop_map(Op::Category),
        (0u8..4).prop_map(Op::AddName),
        (0u8..4).prop_map(Op::RemoveName),
        (0u8..3).prop_map(Op::AddDob),
        (0u8..3).prop_map(Op::RemoveDob),
        (0u8..5).prop_map(Op::AddWarning),
        (0u8..5).prop_map(Op::RemoveWarning),
        (0u8..3).prop_map(Op::AddPlate),
        (0u8..3).prop_map(Op::Status),
        proptest::option::of(0u8..20).prop_map(Op::Expires),
        (0u8..3).prop_map(Op::AddEntry),
    ];
    (0u8..2, op)
}

/// Ops per replica (each aimed at entry 0 or 1), then merges (from, to).
type Round = (Vec<Vec<(u8, Op)>>, Vec<(usize, usize)>);

fn scenario() -> impl Strategy<Value = Vec<Round>> {
    let round = (
        proptest::collection::vec(proptest::collection::vec(op(), 0..6), REPLICAS),
        proptest::collection::vec((0..REPLICAS, 0..REPLICAS), 0..4),
    );
    proptest::collection::vec(round, 1..4)
}

fn ctx() -> PostContext {
    PostContext {
        now: Timestamp::parse("now", "2026-11-27T10:00:00Z").unwrap(),
        offset: time::UtcOffset::UTC,
        authority: "KGZ-GPS".into(),
        post: "kg-dostuk".into(),
    }
}

fn entry_id(n: u128) -> EntryId {
    EntryId::from_uuid(uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0000 + n))
}

fn meta() -> ChangeMeta {
    ChangeMeta { at: ctx().now, by: "1000@kg-dostuk".into(), op: "test" }
}

fn genesis_with_entries() -> Document {
    let mut doc = Document::genesis(DocKind::Watchlist { authority: "KGZ-GPS".into(), shard: 0 }).unwrap();
    doc.set_actor(actor_for(&NodeId::from_bytes([9; 16]), [9; 4]));
    for n in 0..2 {
        let input = NewEntryInput {
            kind: "person".into(),
            category: "warning".into(),
            reason: "base".into(),
            names: vec![NAMES[0].into()],
            ..Default::default()
        };
        let draft = new_entry(&input, entry_id(n), &ctx()).unwrap();
        doc.transact(&meta(), |r| r.add_entry(&draft)).unwrap();
    }
    doc
}

/// Applies one op; ops the model refuses (removing an absent name, an
/// impossible status change) must leave the document as it was.
fn apply(doc: &mut Document, replica: usize, target: u8, op: &Op, committed: &mut Vec<ChangeHash>) {
    let id = entry_id(u128::from(target));
    let mut a = Amendment::default();
    let status = match op {
        Op::Reason(n) => {
            a.reason = Some(format!("reason {n}"));
            None
        }
        Op::Action(n) => {
            a.action = Some(format!("action {n}"));
            None
        }
        Op::Category(n) => {
            a.category = Some(Category::ALL[*n as usize]);
            None
        }
        Op::AddName(n) => {
            a.add_names = vec![name(NAMES[*n as usize], NameKind::Alias).unwrap()];
            None
        }
        Op::RemoveName(n) => {
            a.remove_names = vec![NAMES[*n as usize].to_lowercase()];
            None
        }
        Op::AddDob(n) => {
            a.add_dobs = vec![PartialDate::parse("dob", DOBS[*n as usize]).unwrap()];
            None
        }
        Op::RemoveDob(n) => {
            a.remove_dobs = vec![PartialDate::parse("dob", DOBS[*n as usize]).unwrap()];
            None
        }
        Op::AddWarning(n) => {
            a.add_warnings = vec![Warning::ALL[*n as usize]];
            None
        }
        Op::RemoveWarning(n) => {
            a.remove_warnings = vec![Warning::ALL[*n as usize]];
            None
        }
        Op::AddPlate(n) => {
            a.add_plates = vec![plate(&format!("{n}77 ABC 02")).unwrap()];
            None
        }
        Op::Status(n) => Some(EntryStatus::ALL[*n as usize]),
        Op::Expires(n) => {
            a.expires =
                Some(n.map(|d| outpost_model::date::Day::parse("e", &format!("2027-01-{:02}", d + 1)).unwrap()));
            None
        }
        Op::AddEntry(n) => {
            let input = NewEntryInput {
                kind: "person".into(),
                category: "warning".into(),
                reason: format!("new {replica}/{n}"),
                names: vec![NAMES[*n as usize].into()],
                ..Default::default()
            };
            let new_id = entry_id(100 + (replica as u128) * 10 + u128::from(*n));
            let draft = new_entry(&input, new_id, &ctx()).unwrap();
            if let Ok((_, Some(_))) = doc.transact(&meta(), |r| r.add_entry(&draft)) {
                committed.extend(doc.heads());
            }
            return;
        }
    };
    let before = doc.heads();
    let result = doc.transact(&meta(), |r| match status {
        Some(s) => r.set_entry_status(&id, s, "test"),
        None => r.amend_entry(&id, &a),
    });
    match result {
        Ok((_, Some(_))) => committed.extend(doc.heads()),
        Ok((_, None)) => {}
        Err(_) => assert_eq!(doc.heads(), before, "a refused edit changed the document"),
    }
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 1 {
        return vec![vec![0]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_merge_order_converges(rounds in scenario()) {
        let mut base = genesis_with_entries();
        let mut replicas: Vec<Document> = (0..REPLICAS)
            .map(|r| base.fork(actor_for(&NodeId::from_bytes([r as u8 + 1; 16]), [r as u8; 4])))
            .collect();
        let mut committed = Vec::new();
        for (ops, merges) in &rounds {
            for (r, replica_ops) in ops.iter().enumerate() {
                for (target, op) in replica_ops {
                    apply(&mut replicas[r], r, *target, op, &mut committed);
                }
            }
            for &(from, to) in merges {
                if from != to {
                    let mut source = replicas[from].fork(actor_for(&NodeId::from_bytes([0xee; 16]), [0; 4]));
                    replicas[to].merge(&mut source).unwrap();
                }
            }
        }

        let mut outcomes = Vec::new();
        for order in permutations(REPLICAS) {
            let mut acc = base.fork(actor_for(&NodeId::from_bytes([0xaa; 16]), [0; 4]));
            for i in order {
                let mut copy = replicas[i].fork(actor_for(&NodeId::from_bytes([0xbb; 16]), [0; 4]));
                acc.merge(&mut copy).unwrap();
            }
            let mut heads = acc.heads();
            heads.sort();
            outcomes.push((heads, read_entries(&acc).unwrap(), acc));
        }
        let (first_heads, first_entries, first_doc) = &outcomes[0];
        for (heads, entries, _) in &outcomes[1..] {
            prop_assert_eq!(heads, first_heads);
            prop_assert_eq!(entries, first_entries);
        }
        for hash in &committed {
            prop_assert!(first_doc.read().get_change_by_hash(hash).is_some(), "lost change {}", hash);
        }
    }
}
