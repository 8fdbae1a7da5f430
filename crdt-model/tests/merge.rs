//! What concurrent edits at different posts merge into.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outpost_model::api::{AmendInput, NewEntryInput, NewIncidentInput};
use outpost_model::date::{Timestamp, parse_utc_offset};
use outpost_model::ids::{EntryId, IncidentId, NodeId};
use outpost_model::schema::incidents::read_incident;
use outpost_model::schema::watchlist::read_entry;
use outpost_model::schema::{ChangeMeta, DocKind, Document, actor_for};
use outpost_model::validate::{PostContext, amendment, new_entry, new_incident};
use outpost_model::vocab::{EntryStatus, FollowUp, SubjectKind};
use outpost_model::watchlist::{Entry, Subject};

fn ctx() -> PostContext {
    PostContext {
        now: Timestamp::parse("now", "2026-11-27T10:00:00Z").unwrap(),
        offset: parse_utc_offset("+05:00").unwrap(),
        authority: "TJK-BS".into(),
        post: "tj-panj".into(),
    }
}

fn meta(op: &'static str) -> ChangeMeta {
    ChangeMeta { at: ctx().now, by: "1000@tj-panj".into(), op }
}

fn actor(n: u8) -> automerge::ActorId {
    actor_for(&NodeId::from_bytes([n; 16]), [n; 4])
}

const ID: u128 = 0x0193a5c2_7b1e_7d3f_9c4a_5e6f7a8b9c0d;

fn entry_id() -> EntryId {
    EntryId::from_uuid(uuid::Uuid::from_u128(ID))
}

/// A document holding one person entry, written by node 1.
fn base() -> Document {
    let id = entry_id();
    let input = NewEntryInput {
        kind: "person".into(),
        category: "wanted-for-arrest".into(),
        reason: "trafficking".into(),
        action: Some("detain".into()),
        names: vec!["Мухаммад Алиев".into()],
        ..Default::default()
    };
    let draft = new_entry(&input, id, &ctx()).unwrap();
    let mut doc = Document::genesis(DocKind::watchlist_for("TJK-BS", &id)).unwrap();
    doc.set_actor(actor(1));
    doc.transact(&meta("watchlist.add"), |r| r.add_entry(&draft)).unwrap();
    doc
}

fn amend(doc: &mut Document, input: AmendInput) {
    let a = amendment(&input, SubjectKind::Person, ctx().today(), &ctx()).unwrap();
    doc.transact(&meta("watchlist.amend"), |r| r.amend_entry(&entry_id(), &a)).unwrap();
}

/// Two replicas that set the reason to different values concurrently.
fn concurrent_reasons() -> (Document, Document) {
    let mut a = base();
    let mut b = a.fork(actor(2));
    amend(&mut a, AmendInput { reason: Some("heroin".into()), ..Default::default() });
    amend(&mut b, AmendInput { reason: Some("opium".into()), ..Default::default() });
    (a, b)
}

fn merged(a: &mut Document, b: &mut Document) -> Entry {
    a.merge(b).unwrap();
    read_entry(a, entry_id()).unwrap().unwrap()
}

fn names(entry: &Entry) -> Vec<String> {
    match &entry.subject {
        Subject::Person(p) => p.names.iter().map(|n| n.text.clone()).collect(),
        _ => vec![],
    }
}

#[test]
fn edits_to_different_fields_both_survive() {
    let mut a = base();
    let mut b = a.fork(actor(2));
    amend(&mut a, AmendInput { reason: Some("trafficking, 2 kg heroin".into()), ..Default::default() });
    amend(&mut b, AmendInput { action: Some("detain, call CARICC".into()), ..Default::default() });
    let entry = merged(&mut a, &mut b);
    assert_eq!(entry.reason, "trafficking, 2 kg heroin");
    assert_eq!(entry.action, "detain, call CARICC");
    assert!(entry.conflicts.is_empty(), "{:?}", entry.conflicts);
}

#[test]
fn concurrent_name_additions_both_survive() {
    let mut a = base();
    let mut b = a.fork(actor(2));
    amend(&mut a, AmendInput { add_names: vec!["Muhammad Aliyev".into()], ..Default::default() });
    amend(&mut b, AmendInput { add_names: vec!["MUKHAMMAD ALIEV".into()], ..Default::default() });
    let entry = merged(&mut a, &mut b);
    assert_eq!(names(&entry).len(), 3, "{:?}", names(&entry));
}

#[test]
fn an_addition_wins_over_a_concurrent_removal() {
    let mut a = base();
    amend(&mut a, AmendInput { add_names: vec!["Muhammad Aliyev".into()], ..Default::default() });
    let mut b = a.fork(actor(2));
    amend(&mut a, AmendInput { remove_names: vec!["muhammad aliyev".into()], ..Default::default() });
    // b re-asserts the alias it learnt from another source
    amend(&mut b, AmendInput { add_names: vec!["Muhammad Aliyev".into()], ..Default::default() });
    let entry = merged(&mut a, &mut b);
    assert!(names(&entry).contains(&"Muhammad Aliyev".to_string()), "{:?}", names(&entry));
}

#[test]
fn concurrent_values_of_one_field_are_kept_as_a_conflict() {
    let (mut a, mut b) = concurrent_reasons();
    let entry = merged(&mut a, &mut b);
    let conflict = entry.conflicts.iter().find(|c| c.field == "reason").expect("a conflict on reason");
    let mut values = conflict.values.clone();
    values.sort();
    assert_eq!(values, vec!["heroin".to_string(), "opium".to_string()]);
    assert!(values.contains(&entry.reason));
    // The same merge seen from the other side shows the same winner.
    let (mut a2, mut b2) = concurrent_reasons();
    assert_eq!(merged(&mut b2, &mut a2).reason, entry.reason);
}

#[test]
fn resolving_a_conflict_clears_it() {
    let (mut a, mut b) = concurrent_reasons();
    merged(&mut a, &mut b);
    amend(&mut a, AmendInput { reason: Some("heroin and opium".into()), ..Default::default() });
    let entry = read_entry(&a, entry_id()).unwrap().unwrap();
    assert!(entry.conflicts.is_empty());
    assert_eq!(entry.reason, "heroin and opium");
}

#[test]
fn a_closure_is_never_undone_by_a_concurrent_reactivation() {
    let mut a = base();
    a.transact(&meta("watchlist.suspend"), |r| r.set_entry_status(&entry_id(), EntryStatus::Suspended, "review"))
        .unwrap();
    let mut b = a.fork(actor(2));
    a.transact(&meta("watchlist.close"), |r| r.set_entry_status(&entry_id(), EntryStatus::Closed, "arrested")).unwrap();
    b.transact(&meta("watchlist.activate"), |r| r.set_entry_status(&entry_id(), EntryStatus::Active, "review done"))
        .unwrap();
    let entry = merged(&mut b, &mut a);
    assert_eq!(entry.status, EntryStatus::Closed);
    assert!(entry.conflicts.iter().any(|c| c.field == "status"));
}

#[test]
fn a_failed_edit_leaves_the_document_untouched() {
    let mut a = base();
    let before = a.heads();
    let missing = EntryId::from_uuid(uuid::Uuid::from_u128(7));
    let result = a.transact(&meta("watchlist.amend"), |r| {
        r.amend_entry(
            &entry_id(),
            &outpost_model::watchlist::Amendment { reason: Some("half-written".into()), ..Default::default() },
        )?;
        r.amend_entry(&missing, &outpost_model::watchlist::Amendment::default())
    });
    assert!(result.is_err());
    assert_eq!(a.heads(), before);
    assert_eq!(read_entry(&a, entry_id()).unwrap().unwrap().reason, "trafficking");
}

#[test]
fn a_stored_document_reloads_from_snapshot_plus_changes() {
    let mut a = base();
    let snapshot = a.save();
    let (_, change) = a
        .transact(&meta("watchlist.amend"), |r| {
            r.amend_entry(
                &entry_id(),
                &outpost_model::watchlist::Amendment { reason: Some("updated".into()), ..Default::default() },
            )
        })
        .unwrap();
    let change = change.expect("the amendment wrote a change");
    let mut loaded = Document::load(a.id(), Some(&snapshot), [change.as_slice()]).unwrap();
    assert_eq!(loaded.heads(), a.heads());
    assert_eq!(read_entry(&loaded, entry_id()).unwrap().unwrap().reason, "updated");
}

#[test]
fn concurrent_notes_on_an_incident_both_survive_in_one_order() {
    let kind = DocKind::Incidents { post: "tj-panj".into(), month: "2026-11".into() };
    let id = IncidentId::from_uuid(uuid::Uuid::from_u128(ID + 1));
    let input = NewIncidentInput {
        incident_type: "seizure".into(),
        narrative: "Vehicle stopped".into(),
        seized: vec!["heroin:2:kg".into()],
        ..Default::default()
    };
    let draft = new_incident(&input, id, &ctx()).unwrap();
    let mut a = Document::genesis(kind).unwrap();
    a.set_actor(actor(1));
    a.transact(&meta("incident.log"), |r| r.add_incident(&draft)).unwrap();
    let mut b = a.fork(actor(2));
    a.transact(&meta("incident.note"), |r| r.append_note(&id, "Driver detained")).unwrap();
    b.transact(&meta("incident.note"), |r| r.append_note(&id, "Lab sample sent")).unwrap();
    b.transact(&meta("incident.close"), |r| r.set_follow_up(&id, FollowUp::Referred)).unwrap();
    let mut c = b.fork(actor(3));
    a.merge(&mut b).unwrap();
    c.merge(&mut a).unwrap();
    let from_a = read_incident(&a, id).unwrap().unwrap();
    let from_c = read_incident(&c, id).unwrap().unwrap();
    assert_eq!(from_a.narrative.len(), 3);
    assert_eq!(from_a, from_c);
    assert_eq!(from_a.follow_up, FollowUp::Referred);
    assert_eq!(from_a.seized[0].quantity, "2");
}

#[test]
fn removing_and_adding_the_same_name_fixes_its_spelling() {
    let mut a = base();
    amend(
        &mut a,
        AmendInput {
            remove_names: vec!["мухаммад алиев".into()],
            add_names: vec!["МУХАММАД АЛИЕВ".into()],
            ..Default::default()
        },
    );
    let entry = read_entry(&a, entry_id()).unwrap().unwrap();
    assert_eq!(names(&entry), vec!["МУХАММАД АЛИЕВ".to_string()]);
}

#[test]
fn the_last_name_of_a_person_cannot_be_removed() {
    let mut a = base();
    let before = a.heads();
    let removal = amendment(
        &AmendInput { remove_names: vec!["Мухаммад Алиев".into()], ..Default::default() },
        SubjectKind::Person,
        ctx().today(),
        &ctx(),
    )
    .unwrap();
    let err = a.transact(&meta("watchlist.amend"), |r| r.amend_entry(&entry_id(), &removal)).unwrap_err();
    assert!(err.to_string().contains("at least one name"), "{err}");
    assert_eq!(a.heads(), before);
}

#[test]
fn a_stored_change_that_does_not_match_its_hash_is_refused() {
    let mut a = base();
    let snapshot = a.save();
    let amendment = outpost_model::watchlist::Amendment { reason: Some("updated".into()), ..Default::default() };
    let (_, change) = a.transact(&meta("watchlist.amend"), |r| r.amend_entry(&entry_id(), &amendment)).unwrap();
    let mut change = change.unwrap();
    change[0] ^= 0xff;
    let err = Document::load(a.id(), Some(&snapshot), [change.as_slice()]).unwrap_err().to_string();
    assert!(err.contains("stored change 1") && err.contains("does not match its hash"), "{err}");
}
