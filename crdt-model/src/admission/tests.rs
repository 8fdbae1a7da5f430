//! The admission rules, one by one, on real changes between two copies of
//! a document: one member writes, another node admits.

use automerge::ROOT;
use automerge::transaction::Transactable;

use super::*;
use crate::date::Timestamp;
use crate::ids::IncidentId;
use crate::schema::{ChangeMeta, DocKind};
use crate::test_support::incident_draft;
use crate::trust::proof::{attest, sign_change, wire_proofs};
use crate::trust::roster::{CutEntry, Right, Role, Roster, SignedRoster};
use crate::trust::{PublicKey, Signer};

const AT: i64 = 1_795_000_000_000;

struct World {
    fleet: Fleet,
    signers: BTreeMap<&'static str, Signer>,
}

fn member(signer: &Signer, name: &str, role: Role, authority: &str) -> Member {
    Member::new(signer.public(), name, role, authority, Member::default_country(authority))
}

/// A fleet of a KAZ-BS centre, a KAZ-BS post, a UZB-DCS centre and an
/// observer, with `edit` applied to the roster before it is signed.
fn world_with(edit: impl FnOnce(Roster, &BTreeMap<&'static str, Signer>) -> Roster) -> World {
    let signers: BTreeMap<&'static str, Signer> = [
        ("kz-centre", Signer::from_secret([1; 32])),
        ("kz-post", Signer::from_secret([2; 32])),
        ("uz-centre", Signer::from_secret([3; 32])),
        ("observer", Signer::from_secret([4; 32])),
        ("stranger", Signer::from_secret([5; 32])),
    ]
    .into_iter()
    .collect();
    let roles = [
        ("kz-centre", Role::Centre, "KAZ-BS"),
        ("kz-post", Role::Post, "KAZ-BS"),
        ("uz-centre", Role::Centre, "UZB-DCS"),
        ("observer", Role::Observer, "CARICC"),
    ];
    let mut roster = Roster::default();
    for (name, role, authority) in roles {
        roster = roster.enroll(member(&signers[name], name, role, authority)).unwrap();
    }
    let roster = edit(roster, &signers);
    let admin = Signer::from_secret([100; 32]);
    let bytes = SignedRoster::sign(&roster, &admin, Vec::new()).unwrap().encode().unwrap();
    World { fleet: Fleet::verify(&bytes, &admin.public()).unwrap(), signers }
}

fn world() -> World {
    world_with(|r, _| r)
}

fn actor(signer: &Signer, nonce: u8) -> automerge::ActorId {
    let mut bytes = signer.public().actor_prefix().to_vec();
    bytes.extend_from_slice(&[nonce; 4]);
    automerge::ActorId::from(bytes)
}

fn kaz_shard() -> DocKind {
    DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 0 }
}

/// A copy of the document written with `signer`'s actor.
fn copy(kind: &DocKind, signer: &Signer) -> Document {
    let mut doc = Document::genesis(kind.clone()).unwrap();
    doc.set_actor(actor(signer, 1));
    doc
}

fn meta(op: &'static str) -> ChangeMeta {
    ChangeMeta { at: Timestamp::from_millis(AT), by: "1000@test".into(), op }
}

/// The changes `doc` made since `before`, each signed by `signer`.
fn signed_since(doc: &mut Document, before: &[ChangeHash], signer: &Signer) -> (Vec<Change>, Vec<StoredProof>) {
    let changes = doc.changes_since(before);
    let proofs = changes.iter().map(|c| sign_change(signer, doc.id(), &c.hash())).collect();
    (changes, proofs)
}

/// Wire proofs for `changes` from the proofs over them (by position).
fn wire(changes: &[Change], proofs: &[StoredProof]) -> Vec<Proof> {
    let by_hash: BTreeMap<ChangeHash, StoredProof> =
        changes.iter().map(Change::hash).zip(proofs.iter().copied()).collect();
    wire_proofs(changes, |h| by_hash.get(h).copied().into_iter().collect())
}

fn fleet(world: &World) -> Authority<'_> {
    Authority::Fleet { fleet: &world.fleet, newer_known: false }
}

fn judge(receiver: &mut Document, changes: Vec<Change>, proofs: &[Proof], authority: &Authority<'_>) -> Verdict {
    admit(receiver, Incoming { changes, proofs }, authority, &BTreeMap::new())
}

fn reasons(verdict: &Verdict) -> Vec<&'static str> {
    verdict.rejected.iter().map(|(_, _, r)| r.kind()).collect()
}

fn add_entry(doc: &mut Document, n: u128) {
    crate::test_support::add_person(doc, n, "Мухаммад Алиев", Timestamp::from_millis(AT));
}

#[test]
fn a_members_signed_change_to_its_own_watchlist_is_admitted_with_its_proof() {
    let w = world();
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), centre);
    let before = writer.heads();
    add_entry(&mut writer, 1);
    let (changes, proofs) = signed_since(&mut writer, &before, centre);
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let verdict = judge(&mut receiver, changes, &wire(&writer.changes_since(&before), &proofs), &fleet(&w));
    assert_eq!(verdict.admitted.len(), 1, "{:?}", verdict.rejected);
    assert_eq!(verdict.proofs.len(), 1);
    assert_eq!(verdict.touched.values().next().map(BTreeSet::len), Some(1));
}

#[test]
fn forged_missing_and_borrowed_signatures_are_refused() {
    let w = world();
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), centre);
    let before = writer.heads();
    add_entry(&mut writer, 1);
    let changes = writer.changes_since(&before);
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    // Signed by another key than the author's.
    let forged = [sign_change(&w.signers["uz-centre"], writer.id(), &changes[0].hash())];
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &forged), &fleet(&w));
    assert_eq!(reasons(&verdict), ["bad-signature"]);
    let verdict = judge(&mut receiver, changes.clone(), &[], &fleet(&w));
    assert_eq!(reasons(&verdict), ["unsigned"]);
    // A signature over another document's change of the same hash does
    // not count: the document id is signed too.
    let other = DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 1 }.doc_id();
    let elsewhere = [sign_change(centre, &other, &changes[0].hash())];
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &elsewhere), &fleet(&w));
    assert_eq!(reasons(&verdict), ["bad-signature"]);
}

#[test]
fn a_change_made_with_another_members_actor_fails_that_members_key() {
    let w = world();
    // The post writes with the centre's actor, and signs with its own key.
    let mut writer = copy(&kaz_shard(), &w.signers["kz-centre"]);
    let before = writer.heads();
    add_entry(&mut writer, 1);
    let (changes, proofs) = signed_since(&mut writer, &before, &w.signers["kz-post"]);
    let mut receiver = copy(&kaz_shard(), &w.signers["uz-centre"]);
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(reasons(&verdict), ["bad-signature"]);
}

#[test]
fn a_post_writing_a_centres_watchlist_is_refused_unless_a_newer_roster_may_allow_it() {
    let w = world();
    let post = &w.signers["kz-post"];
    let mut writer = copy(&kaz_shard(), post);
    let before = writer.heads();
    add_entry(&mut writer, 1);
    let (changes, proofs) = signed_since(&mut writer, &before, post);
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-centre"]);
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(reasons(&verdict), ["not-allowed"]);
    let newer = Authority::Fleet { fleet: &w.fleet, newer_known: true };
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &newer);
    assert!(verdict.rejected.is_empty());
    assert_eq!(verdict.held.len(), 1);
    assert_eq!(verdict.held[0].proofs.len(), 1, "the proof waits with the change");
    // Granted the right, the same change is admitted.
    let granted = world_with(|r, s| {
        let mut post = member(&s["kz-post"], "kz-post", Role::Post, "KAZ-BS");
        post.rights = vec![Right::Watchlist { authority: "KAZ-BS".into() }];
        r.enroll(post).unwrap()
    });
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&granted));
    assert_eq!(verdict.admitted.len(), 1, "{:?}", verdict.rejected);
}

#[test]
fn changes_to_the_root_or_that_replace_or_delete_records_are_refused_for_any_writer() {
    let w = world();
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), centre);
    add_entry(&mut writer, 1);
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    receiver.merge(&mut writer).unwrap();
    let records = writer.records_obj().unwrap();
    let entry = kaz_shard().entry_id_from(1).unwrap().to_string();
    type Edit = Box<dyn Fn(&mut crate::schema::Records<'_>) -> Result<(), crate::ModelError>>;
    let records2 = records.clone();
    let entry2 = entry.clone();
    let records3 = records.clone();
    let attacks: Vec<(&str, Edit)> = vec![
        ("/entries", Box::new(|r| Ok(r.doc.put(ROOT, "entries", "x").map(|_| ())?))),
        ("/schema", Box::new(|r| Ok(r.doc.put(ROOT, "schema", 99).map(|_| ())?))),
        ("/authority", Box::new(|r| Ok(r.doc.put(ROOT, "authority", "UZB-DCS").map(|_| ())?))),
        ("delete", Box::new(move |r| Ok(r.doc.delete(&records2, entry2.as_str())?))),
        (
            "replace",
            Box::new(move |r| {
                r.doc.put_object(
                    &records3,
                    kaz_shard().entry_id_from(1).unwrap().to_string(),
                    automerge::ObjType::Map,
                )?;
                Ok(())
            }),
        ),
        ("junk key", Box::new(move |r| Ok(r.doc.put(&records, "not-a-uuid", 1).map(|_| ())?))),
    ];
    for (what, attack) in attacks {
        let before = writer.heads();
        let mut fork = writer.fork(actor(centre, 2));
        fork.transact(&meta("attack"), |r| attack(r)).unwrap();
        let (changes, proofs) = signed_since(&mut fork, &before, centre);
        let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
        assert_eq!(reasons(&verdict), ["field"], "{what}: {:?}", verdict.rejected);
    }
}

#[test]
fn a_centre_may_annotate_and_refer_its_countrys_incidents_and_do_nothing_else() {
    let w = world();
    let post = &w.signers["kz-post"];
    let kind = DocKind::Incidents { post: "kz-post".into(), month: "2026-11".into() };
    let mut post_copy = copy(&kind, post);
    let id = IncidentId::owned_by("kz-post", uuid::Uuid::from_u128(42));
    let draft = incident_draft("kz-post", id, "heroin in the spare tyre", Timestamp::from_millis(AT));
    post_copy.transact(&meta("incident.log"), |r| r.add_incident(&draft)).unwrap();
    let mut centre_copy = copy(&kind, &w.signers["kz-centre"]);
    centre_copy.merge(&mut post_copy).unwrap();
    let mut receiver = copy(&kind, &w.signers["observer"]);
    receiver.merge(&mut post_copy).unwrap();

    let centre = &w.signers["kz-centre"];
    let before = centre_copy.heads();
    centre_copy
        .transact(&meta("incident.follow_up"), |r| {
            r.set_follow_up(&id, crate::vocab::FollowUp::Referred)?;
            r.append_note(&id, "case 4471 opened at the centre")
        })
        .unwrap();
    let (changes, proofs) = signed_since(&mut centre_copy, &before, centre);
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(verdict.admitted.len(), 1, "{:?}", verdict.rejected);
    receiver.apply_changes(verdict.admitted).unwrap();

    for (what, edit) in [
        (
            "closes it",
            Box::new(|r: &mut crate::schema::Records<'_>| r.set_follow_up(&id, crate::vocab::FollowUp::Closed))
                as Box<dyn Fn(&mut crate::schema::Records<'_>) -> Result<(), crate::ModelError>>,
        ),
        (
            "rewrites its type",
            Box::new(|r| {
                let obj = r.record(&id.to_string())?.unwrap();
                r.doc.put(&obj, "type", "arrest")?;
                Ok(())
            }),
        ),
    ] {
        let before = centre_copy.heads();
        let mut fork = centre_copy.fork(actor(centre, 3));
        fork.transact(&meta("attack"), |r| edit(r)).unwrap();
        let (changes, proofs) = signed_since(&mut fork, &before, centre);
        let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
        assert_eq!(reasons(&verdict), ["field"], "a centre that {what}: {:?}", verdict.rejected);
    }
    // A UZB centre may not annotate a KAZ post's incident at all.
    let uz = &w.signers["uz-centre"];
    let mut uz_copy = centre_copy.fork(actor(uz, 1));
    let before = uz_copy.heads();
    uz_copy.transact(&meta("incident.note"), |r| r.append_note(&id, "not ours")).unwrap();
    let (changes, proofs) = signed_since(&mut uz_copy, &before, uz);
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(reasons(&verdict), ["not-allowed"]);
}

#[test]
fn one_signature_over_the_newest_change_covers_the_authors_earlier_ones() {
    let w = world();
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), centre);
    let before = writer.heads();
    for n in 0..5 {
        add_entry(&mut writer, n);
    }
    let changes = writer.changes_since(&before);
    let tip = changes.iter().max_by_key(|c| c.seq()).unwrap().hash();
    let proof = sign_change(centre, writer.id(), &tip);
    let proofs = wire_proofs(&changes, |h| if *h == tip { vec![proof] } else { vec![] });
    assert_eq!(proofs.len(), 1);
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let verdict = judge(&mut receiver, changes, &proofs, &fleet(&w));
    assert_eq!(verdict.admitted.len(), 5, "{:?}", verdict.rejected);
    assert_eq!(verdict.proofs.len(), 1, "the tip's proof is stored");
}

#[test]
fn a_refused_tip_takes_the_changes_only_its_signature_covered_and_dependents_follow() {
    let w = world();
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), centre);
    let before = writer.heads();
    add_entry(&mut writer, 1);
    add_entry(&mut writer, 2);
    writer.transact(&meta("attack"), |r| Ok(r.doc.put(ROOT, "schema", 99).map(|_| ())?)).unwrap();
    let changes = writer.changes_since(&before);
    let tip = changes.iter().max_by_key(|c| c.seq()).unwrap().hash();
    let proof = sign_change(centre, writer.id(), &tip);
    let proofs = wire_proofs(&changes, |h| if *h == tip { vec![proof] } else { vec![] });
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let verdict = judge(&mut receiver, changes.clone(), &proofs, &fleet(&w));
    assert!(verdict.admitted.is_empty(), "nothing left can be proven to another node");
    assert_eq!(verdict.rejected.len(), 3);
    // Signed one by one, the honest two are admitted and the third is not.
    let each: Vec<StoredProof> = changes.iter().map(|c| sign_change(centre, writer.id(), &c.hash())).collect();
    let all: Vec<Proof> = changes
        .iter()
        .zip(&each)
        .map(|(c, p)| {
            let actors = actor_list(&changes);
            let actor = actors.binary_search(c.actor_id()).unwrap() as u16;
            Proof { actor, seq: c.seq(), attester: None, signature: p.signature }
        })
        .collect();
    let verdict = judge(&mut receiver, changes, &all, &fleet(&w));
    assert_eq!(verdict.admitted.len(), 2);
    assert_eq!(reasons(&verdict), ["field"]);
}

#[test]
fn a_change_depending_on_a_refused_one_is_refused_and_one_with_missing_dependencies_waits() {
    let w = world();
    let post = &w.signers["kz-post"];
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), post);
    let before = writer.heads();
    add_entry(&mut writer, 1);
    let mut centre_copy = writer.fork(actor(centre, 1));
    let mid = centre_copy.heads();
    add_entry(&mut centre_copy, 2);
    let mut changes = writer.changes_since(&before);
    let mut proofs = vec![sign_change(post, writer.id(), &changes[0].hash())];
    let later = centre_copy.changes_since(&mid);
    proofs.push(sign_change(centre, writer.id(), &later[0].hash()));
    changes.extend(later.clone());
    let mut receiver = copy(&kaz_shard(), &w.signers["uz-centre"]);
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(reasons(&verdict), ["not-allowed", "dependency"]);
    let verdict = judge(&mut receiver, later.clone(), &wire(&later, &proofs[1..]), &fleet(&w));
    assert!(verdict.admitted.is_empty() && verdict.rejected.is_empty());
    assert_eq!(verdict.waiting, 1);
    assert_eq!(verdict.held.len(), 1);
    assert_eq!(verdict.held[0].reason, Reason::MissingDependencies);
}

/// An orphan is held with its proofs, unchecked (a forged proof on it
/// costs no signature check and counts as nothing yet), and admitted with
/// them once its parent has arrived.
#[test]
fn an_orphan_is_held_with_its_proofs_and_admitted_once_its_parent_arrives() {
    let w = world();
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), centre);
    let before = writer.heads();
    add_entry(&mut writer, 1);
    let middle = writer.heads();
    add_entry(&mut writer, 2);
    let (changes, proofs) = signed_since(&mut writer, &before, centre);
    let (parent, child) = (changes[0].clone(), changes[1].clone());
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let forged = sign_change(&w.signers["stranger"], writer.id(), &child.hash());
    let orphan = vec![child.clone()];
    let verdict = judge(&mut receiver, orphan.clone(), &wire(&orphan, &[forged]), &fleet(&w));
    assert_eq!((verdict.admitted.len(), verdict.rejected.len(), verdict.bad_proofs), (0, 0, 0));
    assert_eq!(verdict.held.len(), 1);
    assert_eq!(verdict.held[0].reason, Reason::MissingDependencies);
    let verdict = judge(&mut receiver, orphan.clone(), &wire(&orphan, &proofs[1..]), &fleet(&w));
    let kept = verdict.held[0].proofs.clone();
    assert_eq!(kept, proofs[1..].to_vec(), "the orphan's proofs are kept with it");
    let parent_only = vec![parent];
    let verdict = judge(&mut receiver, parent_only.clone(), &wire(&parent_only, &proofs[..1]), &fleet(&w));
    receiver.apply_changes(verdict.admitted).unwrap();
    assert_eq!(receiver.heads(), middle);
    let verdict = judge(&mut receiver, orphan.clone(), &wire(&orphan, &kept), &fleet(&w));
    assert_eq!(verdict.admitted.len(), 1, "{:?}", verdict.rejected);
}

#[test]
fn a_second_change_with_one_sequence_number_is_the_authors_fork_only_when_signed() {
    let w = world();
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), centre);
    let base = writer.heads();
    let mut a = writer.fork(actor(centre, 1));
    let mut b = writer.fork(actor(centre, 1));
    add_entry(&mut a, 1);
    add_entry(&mut b, 2);
    let mut changes = a.changes_since(&base);
    changes.extend(b.changes_since(&base));
    let proofs: Vec<StoredProof> = changes.iter().map(|c| sign_change(centre, writer.id(), &c.hash())).collect();
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    // Both signed by their author, sent together: its fork, both refused
    // (a proof names its change by (actor, seq), so each is tried on both).
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(reasons(&verdict), ["equivocation", "equivocation"]);
    assert_eq!(verdict.bad_proofs, 0);
    // A forged change beside a real one does not get the real one refused.
    let mut forged = writer.fork(actor(centre, 1));
    add_entry(&mut forged, 3);
    let mut pair = forged.changes_since(&base);
    pair.push(changes[1].clone());
    let mut fresh = copy(&kaz_shard(), &w.signers["kz-post"]);
    let verdict = judge(&mut fresh, pair, &wire(&changes[1..], &proofs[1..]), &fleet(&w));
    assert_eq!(verdict.admitted_hashes(), [changes[1].hash()].into(), "{:?}", verdict.rejected);
    // One of them already here, the other signed by its author: the
    // author's fork, refused by name.
    let mut holder = copy(&kaz_shard(), &w.signers["kz-post"]);
    holder.apply_changes(vec![changes[0].clone()]).unwrap();
    let verdict = judge(&mut holder, vec![changes[1].clone()], &wire(&changes[1..], &proofs[1..]), &fleet(&w));
    assert_eq!(reasons(&verdict), ["equivocation"]);
}

#[test]
fn an_unknown_signer_waits_for_a_newer_roster() {
    let w = world();
    let stranger = &w.signers["stranger"];
    let mut writer = copy(&kaz_shard(), stranger);
    let before = writer.heads();
    add_entry(&mut writer, 1);
    let (changes, proofs) = signed_since(&mut writer, &before, stranger);
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(verdict.held.len(), 1);
    assert_eq!(verdict.held[0].reason, Reason::UnknownSigner);
    assert_eq!(verdict.held[0].proofs.len(), 1);
}

#[test]
fn a_revoked_members_changes_count_inside_the_cut_or_when_attested() {
    let centre_signer = Signer::from_secret([1; 32]);
    let mut writer = copy(&kaz_shard(), &centre_signer);
    let base = writer.heads();
    add_entry(&mut writer, 1);
    add_entry(&mut writer, 2);
    let inside = writer.changes_since(&base);
    let cut_tip = inside.iter().max_by_key(|c| c.seq()).unwrap().clone();
    let mid = writer.heads();
    add_entry(&mut writer, 3);
    let after = writer.changes_since(&mid);
    let cut = cut_at(&writer, &cut_tip);
    let w = world_with(move |r, s| r.revoke(&s["kz-centre"].public(), cut).unwrap());
    let all = writer.changes_since(&base);
    let proofs: Vec<StoredProof> = all.iter().map(|c| sign_change(&centre_signer, writer.id(), &c.hash())).collect();
    let by_hash: BTreeMap<ChangeHash, StoredProof> = all.iter().map(Change::hash).zip(proofs.iter().copied()).collect();
    let stored = |h: &ChangeHash| by_hash.get(h).copied().into_iter().collect::<Vec<_>>();

    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let verdict = judge(&mut receiver, all.clone(), &wire_proofs(&all, stored), &fleet(&w));
    assert_eq!(verdict.admitted.len(), 0, "the tip is outside the cut, so nothing is proven");
    let verdict = judge(&mut receiver, inside.clone(), &wire_proofs(&inside, stored), &fleet(&w));
    assert_eq!(verdict.admitted.len(), 2, "inside the cut: {:?}", verdict.rejected);
    receiver.apply_changes(verdict.admitted).unwrap();
    let verdict = judge(&mut receiver, after.clone(), &wire_proofs(&after, stored), &fleet(&w));
    assert_eq!(reasons(&verdict), ["revoked"]);
    // An active member attests it admitted the later change.
    let attestation = attest(&w.signers["kz-post"], writer.id(), &after[0].hash());
    let mut with = wire_proofs(&after, stored);
    with.extend(wire_proofs(&after, |_| vec![attestation]));
    let verdict = judge(&mut receiver, after.clone(), &with, &fleet(&w));
    assert_eq!(verdict.admitted.len(), 1, "{:?}", verdict.rejected);
    assert_eq!(verdict.attested, [after[0].hash()].into());
    // An attestation by a stranger counts for nothing.
    let forged = attest(&w.signers["stranger"], writer.id(), &after[0].hash());
    let mut with_forged = wire_proofs(&after, stored);
    with_forged.extend(wire_proofs(&after, |_| vec![forged]));
    let verdict = judge(&mut receiver, after.clone(), &with_forged, &fleet(&w));
    assert_eq!(reasons(&verdict), ["revoked"]);
}

/// An attestation says a change was admitted before a revocation was
/// known; it never says who wrote it. A member attesting a change of its
/// own making under a revoked member's actor proves nothing.
#[test]
fn an_attestation_without_the_authors_signature_admits_nothing() {
    let centre_signer = Signer::from_secret([1; 32]);
    let mut writer = copy(&kaz_shard(), &centre_signer);
    let base = writer.heads();
    add_entry(&mut writer, 1);
    let tip = writer.changes_since(&base).pop().unwrap();
    let cut = cut_at(&writer, &tip);
    let w = world_with(move |r, s| r.revoke(&s["kz-centre"].public(), cut).unwrap());
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let inside = writer.changes_since(&base);
    let signed = sign_change(&centre_signer, writer.id(), &tip.hash());
    let verdict = judge(&mut receiver, inside.clone(), &wire(&inside, &[signed]), &fleet(&w));
    assert_eq!(verdict.admitted.len(), 1, "{:?}", verdict.rejected);
    receiver.apply_changes(verdict.admitted).unwrap();

    // kz-post, active, fabricates an entry as the revoked centre and
    // attests it.
    let mid = writer.heads();
    add_entry(&mut writer, 2);
    let fabricated = writer.changes_since(&mid);
    let attestation = attest(&w.signers["kz-post"], writer.id(), &fabricated[0].hash());
    let verdict = judge(&mut receiver, fabricated.clone(), &wire(&fabricated, &[attestation]), &fleet(&w));
    assert!(verdict.admitted.is_empty());
    assert_eq!(reasons(&verdict), ["unsigned"]);
    // Inside the cut too: an attestation does not stand in for the author.
    let mut fresh = copy(&kaz_shard(), &w.signers["kz-post"]);
    let attestation = attest(&w.signers["kz-post"], writer.id(), &tip.hash());
    let verdict = judge(&mut fresh, inside.clone(), &wire(&inside, &[attestation]), &fleet(&w));
    assert_eq!(reasons(&verdict), ["unsigned"]);
}

#[test]
fn the_cut_waits_while_the_change_it_names_is_not_here() {
    let centre_signer = Signer::from_secret([1; 32]);
    let mut writer = copy(&kaz_shard(), &centre_signer);
    let base = writer.heads();
    add_entry(&mut writer, 1);
    add_entry(&mut writer, 2);
    let changes = writer.changes_since(&base);
    let tip = changes.iter().max_by_key(|c| c.seq()).unwrap().clone();
    let first: Vec<Change> = changes.iter().filter(|c| c.seq() < tip.seq()).cloned().collect();
    let cut = cut_at(&writer, &tip);
    let w = world_with(move |r, s| r.revoke(&s["kz-centre"].public(), cut).unwrap());
    let proof = sign_change(&centre_signer, writer.id(), &first[0].hash());
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let verdict = judge(&mut receiver, first.clone(), &wire(&first, &[proof]), &fleet(&w));
    assert_eq!(verdict.held.first().map(|h| h.reason.clone()), Some(Reason::CutUnknown));
}

#[test]
fn with_no_roster_signatures_are_not_asked_for_but_documents_stay_whole() {
    let signer = Signer::from_secret([9; 32]);
    let mut writer = copy(&kaz_shard(), &signer);
    let before = writer.heads();
    add_entry(&mut writer, 1);
    writer.transact(&meta("attack"), |r| Ok(r.doc.put(ROOT, "entries", "x").map(|_| ())?)).unwrap();
    let changes = writer.changes_since(&before);
    let mut receiver = copy(&kaz_shard(), &Signer::from_secret([8; 32]));
    let verdict = judge(&mut receiver, changes, &[], &Authority::Open);
    assert_eq!(verdict.admitted.len(), 1);
    assert_eq!(reasons(&verdict), ["field"]);
}

#[test]
fn an_officers_change_meets_the_same_rules_before_it_is_stored() {
    let w = world();
    let post_signer = &w.signers["kz-post"];
    let post = w.fleet.member(&post_signer.public()).unwrap().clone();
    let mut at_post = copy(&kaz_shard(), post_signer);
    add_entry(&mut at_post, 1);
    let change = at_post.changes_since(at_post.genesis_heads().to_vec().as_slice()).pop().unwrap();
    let err = check_local(&at_post, &change, Standing::Member { fleet: &w.fleet, member: &post }).unwrap_err();
    assert_eq!(err.kind(), "not-allowed");
    let unenrolled = check_local(&at_post, &change, Standing::Unenrolled { name: "kz-post" }).unwrap_err();
    assert!(unenrolled.to_string().contains("not on the fleet roster yet"), "{unenrolled}");
    assert!(check_local(&at_post, &change, Standing::Open).is_ok(), "no roster asked for: local rules");
    let centre = w.fleet.member(&w.signers["kz-centre"].public()).unwrap().clone();
    assert!(check_local(&at_post, &change, Standing::Member { fleet: &w.fleet, member: &centre }).is_ok());
    let stranger_key: PublicKey = w.signers["stranger"].public();
    assert!(w.fleet.member(&stranger_key).is_none());

    let log = DocKind::Incidents { post: "kz-post".into(), month: "2026-11".into() };
    let mut own_log = copy(&log, post_signer);
    let id = IncidentId::owned_by("kz-post", uuid::Uuid::from_u128(7));
    let draft = incident_draft("kz-post", id, "logged before enrolment", Timestamp::from_millis(AT));
    own_log.transact(&meta("incident.log"), |r| r.add_incident(&draft)).unwrap();
    let change = own_log.changes_since(own_log.genesis_heads().to_vec().as_slice()).pop().unwrap();
    assert!(check_local(&own_log, &change, Standing::Unenrolled { name: "kz-post" }).is_ok(), "its own log");
    assert!(check_local(&own_log, &change, Standing::Unenrolled { name: "kz-east" }).is_err(), "another's log");
}

/// A seizure logged at `post` of KAZ-BS.
/// A cut at `tip`, the newest change of its actor kept.
fn cut_at(writer: &Document, tip: &Change) -> Vec<CutEntry> {
    vec![CutEntry {
        doc: writer.id().clone(),
        actor: tip.actor_id().to_bytes().to_vec(),
        seq: tip.seq(),
        hash: tip.hash().0,
    }]
}

#[test]
fn copies_of_a_proof_are_checked_once_and_a_bad_proof_beside_a_good_one_is_dropped_alone() {
    let w = world();
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), centre);
    let base = writer.heads();
    add_entry(&mut writer, 1);
    let (changes, proofs) = signed_since(&mut writer, &base, centre);
    let good = wire(&changes, &proofs);
    // A thousand copies of the good proof, and a forged one put first.
    let mut forged = good.clone();
    forged[0].signature = crate::trust::Signature::from_bytes([7; 64]);
    let mut sent = forged.clone();
    for _ in 0..1000 {
        sent.extend(good.iter().copied());
    }
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let verdict = judge(&mut receiver, changes.clone(), &sent, &fleet(&w));
    assert_eq!(verdict.admitted.len(), 1, "{:?}", verdict.rejected);
    assert_eq!(verdict.bad_proofs, 1, "the forged proof is counted, each copy of the good one is not");
    assert_eq!(verdict.proofs.len(), 1, "the good proof is kept to pass on");
    assert_eq!(verdict.proofs[0].1, proofs[0]);
}

/// Projections and the search index know a record by its id alone: a
/// writer creating a record in its own document under an id made for
/// another owner's would hide that owner's record everywhere.
#[test]
fn a_new_record_must_carry_an_id_made_for_its_documents_owner() {
    let w = world();
    let centre = &w.signers["kz-centre"];
    // The id of an entry UZB-DCS issued, reused in KAZ-BS's own watchlist.
    let uzb = DocKind::Watchlist { authority: "UZB-DCS".into(), shard: 3 };
    let stolen = uzb.entry_id_from(5).unwrap();
    let mut sneaky = stolen;
    // … in the KAZ-BS shard that id would pick, so only the tag tells.
    let kaz_doc = DocKind::watchlist_for("KAZ-BS", &sneaky);
    let mut writer = copy(&kaz_doc, centre);
    let mut target = copy(&kaz_doc, &w.signers["kz-post"]);
    let before = writer.heads();
    let draft = entry_draft(sneaky, "Ложный Двойник");
    writer.transact(&meta("watchlist.add"), |r| r.add_entry(&draft)).unwrap();
    let (changes, proofs) = signed_since(&mut writer, &before, centre);
    let verdict = judge(&mut target, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(reasons(&verdict), ["field"], "{:?}", verdict.rejected);
    assert!(format!("{:?}", verdict.rejected).contains("another owner"), "{:?}", verdict.rejected);
    // Its own id in the wrong shard is refused too.
    sneaky = kaz_shard().entry_id_from(9).unwrap();
    let other_shard = DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 7 };
    assert_ne!(DocKind::watchlist_for("KAZ-BS", &sneaky), other_shard);
    let mut writer = copy(&other_shard, centre);
    let before = writer.heads();
    let draft = entry_draft(sneaky, "Ложный Двойник");
    writer.transact(&meta("watchlist.add"), |r| r.add_entry(&draft)).unwrap();
    let (changes, proofs) = signed_since(&mut writer, &before, centre);
    let mut target = copy(&other_shard, &w.signers["kz-post"]);
    let verdict = judge(&mut target, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(reasons(&verdict), ["field"], "{:?}", verdict.rejected);
    // An officer's write meets the same rule.
    let change = changes[0].clone();
    let centre_member = w.fleet.member(&centre.public()).unwrap();
    assert!(check_local(&writer, &change, Standing::Member { fleet: &w.fleet, member: centre_member }).is_err());
    // Another post's incident id in one's own log.
    let log = DocKind::Incidents { post: "kz-post".into(), month: "2026-11".into() };
    let mut own_log = copy(&log, &w.signers["kz-post"]);
    let draft = incident_draft(
        "kz-post",
        IncidentId::owned_by("kz-east", uuid::Uuid::from_u128(3)),
        "copied id",
        Timestamp::from_millis(AT),
    );
    let before = own_log.heads();
    own_log.transact(&meta("incident.log"), |r| r.add_incident(&draft)).unwrap();
    let (changes, proofs) = signed_since(&mut own_log, &before, &w.signers["kz-post"]);
    let mut at_centre = copy(&log, centre);
    let verdict = judge(&mut at_centre, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
    assert_eq!(reasons(&verdict), ["field"], "{:?}", verdict.rejected);
}

/// A store's history from before fleet trust has records under ids with no
/// owner's tag: a legacy actor's change is let through for ids older than
/// the admin's binding of it, and for no newer one, so the history it
/// stands for cannot grow.
#[test]
fn a_legacy_actor_creates_untagged_records_only_with_ids_older_than_its_binding() {
    const BOUND_AT: i64 = 1_796_000_000_000;
    const OLD_PREFIX: [u8; 16] = [0xaa; 16];
    let w = world_with(|r, s| {
        let mut centre = member(&s["kz-centre"], "kz-centre", Role::Centre, "KAZ-BS");
        centre.legacy_actors = vec![OLD_PREFIX];
        centre.legacy_until_ms = BOUND_AT;
        r.enroll(centre).unwrap()
    });
    let centre = &w.signers["kz-centre"];
    let mut legacy_actor = OLD_PREFIX.to_vec();
    legacy_actor.extend_from_slice(&[0, 0, 0, 9]);
    let untagged_at = |millis: i64| {
        // A UUIDv7 with this time and no tag, in the shard it picks.
        (0u128..)
            .map(|n| {
                let bits = (millis as u128) << 80 | 0x7000 << 64 | 0x8000_0000_0000_0000 | n;
                crate::ids::EntryId::from_uuid(uuid::Uuid::from_u128(bits))
            })
            .find(|id| !id.belongs_to("KAZ-BS"))
            .unwrap()
    };
    for (millis, admitted) in [(BOUND_AT - 86_400_000, true), (BOUND_AT + 1, false)] {
        let id = untagged_at(millis);
        let kind = DocKind::watchlist_for("KAZ-BS", &id);
        let mut writer = copy(&kind, centre);
        writer.set_actor(automerge::ActorId::from(legacy_actor.clone()));
        let before = writer.heads();
        let draft = entry_draft(id, "Мухаммад Алиев");
        writer.transact(&meta("watchlist.add"), |r| r.add_entry(&draft)).unwrap();
        let (changes, proofs) = signed_since(&mut writer, &before, centre);
        let mut receiver = copy(&kind, &w.signers["kz-post"]);
        let verdict = judge(&mut receiver, changes.clone(), &wire(&changes, &proofs), &fleet(&w));
        assert_eq!(verdict.admitted.len() == 1, admitted, "{millis}: {:?}", verdict.rejected);
    }
}

/// A person entry issued by KAZ-BS at its centre, under `id`.
fn entry_draft(id: crate::ids::EntryId, name: &str) -> crate::watchlist::EntryDraft {
    let ctx = crate::validate::PostContext {
        now: Timestamp::from_millis(AT),
        offset: time::UtcOffset::UTC,
        authority: "KAZ-BS".into(),
        post: "kz-centre".into(),
    };
    crate::validate::new_entry(&crate::test_support::person(name), id, &ctx).unwrap()
}

#[test]
fn a_change_must_take_its_authors_next_sequence_number() {
    // Automerge numbers an actor's changes 1, 2, 3, ... and its change
    // graph panics on a document that breaks that (fuzzing findings F2,
    // F3): admission refuses such a change, signed or not, under any
    // authority.
    let w = world();
    let centre = &w.signers["kz-centre"];
    let mut writer = copy(&kaz_shard(), centre);
    let base = writer.heads();
    let renumbered = |change: &Change, seq: u64| {
        let mut expanded = change.decode();
        expanded.seq = seq;
        Change::from(expanded)
    };
    let mut first = writer.fork(actor(centre, 1));
    add_entry(&mut first, 1);
    let made = first.changes_since(&base);
    // The actor's first change, numbered 3: a gap.
    let gap = vec![renumbered(&made[0], 3)];
    for authority in [Authority::Open, fleet(&w)] {
        let proofs: Vec<StoredProof> = gap.iter().map(|c| sign_change(centre, writer.id(), &c.hash())).collect();
        let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
        let verdict = judge(&mut receiver, gap.clone(), &wire(&gap, &proofs), &authority);
        assert_eq!(reasons(&verdict), ["sequence"], "{authority:?}");
    }
    // A number already taken in the document, by a change no one signed:
    // refused as unsigned (no strike: anyone can forge a copy), and with
    // no roster, where nothing is signed, for its number.
    let mut holder = copy(&kaz_shard(), &w.signers["kz-post"]);
    holder.apply_changes(made.clone()).unwrap();
    let mut other = writer.fork(actor(centre, 1));
    add_entry(&mut other, 2);
    let taken = other.changes_since(&base);
    let verdict = judge(&mut holder, taken.clone(), &[], &fleet(&w));
    assert_eq!(reasons(&verdict), ["unsigned"]);
    let verdict = judge(&mut holder, taken.clone(), &[], &Authority::Open);
    assert_eq!(reasons(&verdict), ["equivocation"]);
    // The document is whole: what it holds is read back.
    assert_eq!(holder.stored_changes_since(&base).len(), 1);
    // The next number is taken, in a batch after the first.
    let mut next = first.fork(actor(centre, 1));
    add_entry(&mut next, 3);
    let mut both = made.clone();
    both.extend(next.changes_since(&first.heads()));
    let proofs: Vec<StoredProof> = both.iter().map(|c| sign_change(centre, writer.id(), &c.hash())).collect();
    let mut receiver = copy(&kaz_shard(), &w.signers["kz-post"]);
    let verdict = judge(&mut receiver, both.clone(), &wire(&both, &proofs), &fleet(&w));
    assert_eq!(verdict.admitted.len(), 2, "{:?}", verdict.rejected);
}
