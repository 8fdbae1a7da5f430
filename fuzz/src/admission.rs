//! Target `admission`: `admission::admit`, the one admission path.
//!
//! The input picks a document (as node A holds it), the authority it is
//! judged by (no roster; the world's fleet; the fleet with a newer roster
//! known), then makes changes: each by an author (a member of any role, the
//! revoked member, a stranger, the document's genesis actor, any actor), on
//! one of two branches of the document's history, with real writes
//! (entries, incidents, notes) and raw Automerge operations (on the root,
//! replacing or deleting records, new records under owned and foreign ids,
//! fields, lists). Each change gets a proof or not: its author's signature,
//! another member's, an attestation, garbage. The changes are then
//! reordered, dropped or corrupted before `admit` sees them.
//!
//! What must hold: every change judged is one that was sent and is judged
//! once; what is admitted applies, whole, in order; no change that writes
//! the root, or replaces or deletes a record, is admitted under any
//! authority; no change by the genesis actor is; in a fleet, every
//! admitted change is by a member that may write, covered by a valid
//! signature of its author over it or a later admitted change of the same
//! member, and a revoked member's only with an attestation; every proof
//! kept verifies; with no roster, no proof is kept or counted bad.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, AutoCommit, Change, ChangeHash, ObjType, ROOT, ReadDoc, ScalarValue};
use outpost_model::admission::{Authority, Incoming, Reason, admit};
use outpost_model::ids::DocId;
use outpost_model::replication::pair::{node_actor, node_signer};
use outpost_model::schema::{DocKind, Document};
use outpost_model::trust::proof::{Proof, StoredProof, attest, attest_message, change_message, sign_change};
use outpost_model::trust::{Fleet, Role, Signature, Signer};

use crate::input::Input;
use crate::world::{EARLIER_MONTH, MONTH, NOW, World, add_entry, add_incident, world};

/// Changes one input may make.
const MAX_CHANGES: usize = 12;

struct Made {
    change: Change,
    /// Writes the root, or replaces or deletes a record.
    forbidden: bool,
    /// Whose key signs for it, when anyone's does.
    signer: Signer,
}

/// A copy of document `choice` as A holds it, and two copies of its
/// Automerge document to write on. Forked from copies loaded once per
/// thread.
fn receiver(world: &World, choice: usize) -> (Document, [AutoCommit; 2]) {
    thread_local! {
        static LOADED: std::cell::RefCell<BTreeMap<usize, (Document, AutoCommit)>> =
            const { std::cell::RefCell::new(BTreeMap::new()) };
    }
    LOADED.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (doc, raw) = cell.entry(choice).or_insert_with(|| {
            let mut doc = load_receiver(world, choice);
            let raw = AutoCommit::load(&doc.save()).expect("saved loads");
            (doc, raw)
        });
        (doc.fork(node_actor(1)), [raw.fork(), raw.fork()])
    })
}

fn load_receiver(world: &World, choice: usize) -> Document {
    let id = match choice {
        0 => crate::world::watchlist(),
        1 => crate::world::incidents(MONTH),
        2 => crate::world::incidents(EARLIER_MONTH),
        _ => DocKind::Audit { post: "node-2".into(), month: MONTH.into() }.doc_id(),
    };
    match world.a_docs.iter().find(|(d, _)| *d == id) {
        Some((_, bytes)) => Document::load(&id, Some(bytes), std::iter::empty()).expect("the world's documents load"),
        None => Document::load(&id, None, std::iter::empty()).expect("a genesis loads"),
    }
}

/// An author: its actor and the key that signs for it.
fn author(input: &mut Input<'_>, doc: &Document) -> (ActorId, Signer) {
    match input.choose(10) {
        n @ 0..=5 => {
            let n = n as u8 + 1;
            let mut actor = node_actor(n).to_bytes().to_vec();
            // Another of the member's actors, now and then.
            if input.byte() < 32 {
                actor[19] ^= 0x40;
            }
            (ActorId::from(actor), node_signer(n))
        }
        6 => (node_actor(2), node_signer(2)),
        7 => (doc.genesis_actor(), node_signer(1)),
        _ => (ActorId::from(input.array::<20>().to_vec()), node_signer(1 + input.byte() % 6)),
    }
}

const ROOT_KEYS: &[&str] = &["schema", "kind", "authority", "entries", "incidents", "records", "x"];
const FIELDS: &[&str] = &["names", "status", "reason", "updated_at", "updated_by", "narrative", "follow_up", "record"];

/// A key in the record map: an existing record, a new id the owner may
/// use, one it may not, or bytes from the input.
fn record_key(input: &mut Input<'_>, doc: &AutoCommit, records: &automerge::ObjId, kind: &DocKind) -> String {
    let existing: Vec<String> = doc.keys(records).collect();
    match input.choose(5) {
        0 | 1 if !existing.is_empty() => existing[input.choose(existing.len())].clone(),
        2 => match kind {
            DocKind::Watchlist { .. } => {
                kind.entry_id_from(u128::from(input.u32())).map(|id| id.to_string()).unwrap_or_default()
            }
            DocKind::Incidents { post, .. } => {
                outpost_model::ids::IncidentId::owned_by(post, uuid::Uuid::from_u128(u128::from(input.u32())))
                    .to_string()
            }
            DocKind::Audit { .. } => format!("{:064x}", input.u64()),
        },
        3 => {
            outpost_model::ids::EntryId::owned_by("UZB-DCS", uuid::Uuid::from_u128(u128::from(input.u32()))).to_string()
        }
        _ => input.string(),
    }
}

fn scalar(input: &mut Input<'_>) -> ScalarValue {
    match input.choose(5) {
        0 => ScalarValue::Str(input.string().into()),
        1 => ScalarValue::Uint(input.u64()),
        2 => ScalarValue::Timestamp(NOW),
        3 => ScalarValue::Str("referred".into()),
        _ => ScalarValue::Null,
    }
}

/// One raw operation on `doc`; whether the rules forbid it everywhere.
fn raw_op(input: &mut Input<'_>, doc: &mut AutoCommit, kind: &DocKind) -> bool {
    let Ok(Some((_, records))) = doc.get(ROOT, kind.records_key()) else {
        return false;
    };
    // Only an operation really made counts: deleting a key that is not
    // there makes none.
    let before = doc.pending_ops();
    let made = |doc: &AutoCommit| doc.pending_ops() > before;
    match input.choose(8) {
        0 => {
            let key = ROOT_KEYS[input.choose(ROOT_KEYS.len())];
            doc.put(ROOT, key, scalar(input)).is_ok() && made(doc)
        }
        1 => {
            let key = record_key(input, doc, &records, kind);
            doc.delete(&records, key.as_str()).is_ok() && made(doc)
        }
        2 => {
            let key = record_key(input, doc, &records, kind);
            doc.put(&records, key.as_str(), scalar(input)).is_ok() && made(doc)
        }
        3 => {
            // A new record, or one put over an existing record.
            let key = record_key(input, doc, &records, kind);
            let replaces = doc.get(&records, key.as_str()).ok().flatten().is_some();
            match doc.put_object(&records, key.as_str(), ObjType::Map) {
                Ok(record) => {
                    for _ in 0..input.choose(3) {
                        let field = FIELDS[input.choose(FIELDS.len())];
                        let _ = doc.put(&record, field, scalar(input));
                    }
                    replaces && made(doc)
                }
                Err(_) => false,
            }
        }
        4 | 5 => {
            // A field of an existing record.
            let key = record_key(input, doc, &records, kind);
            if let Ok(Some((_, record))) = doc.get(&records, key.as_str()) {
                let field = FIELDS[input.choose(FIELDS.len())];
                let _ = match input.choose(3) {
                    0 => doc.delete(&record, field),
                    1 => doc.put_object(&record, field, ObjType::Map).map(|_| ()),
                    _ => doc.put(&record, field, scalar(input)),
                };
            }
            false
        }
        6 => {
            // A note appended to an incident's narrative.
            let key = record_key(input, doc, &records, kind);
            if let Ok(Some((_, record))) = doc.get(&records, key.as_str())
                && let Ok(Some((_, narrative))) = doc.get(&record, "narrative")
            {
                let at = doc.length(&narrative);
                if let Ok(note) = doc.insert_object(&narrative, at, ObjType::Map) {
                    let _ = doc.put(&note, "text", input.string());
                    let _ = doc.put(&note, "at", ScalarValue::Timestamp(NOW));
                    if input.flag() {
                        let _ = doc.put(&note, "evil", 1u64);
                    }
                }
            }
            false
        }
        _ => {
            // A list under a record.
            let key = record_key(input, doc, &records, kind);
            if let Ok(Some((_, record))) = doc.get(&records, key.as_str())
                && let Ok(list) = doc.put_object(&record, "list", ObjType::List)
            {
                let _ = doc.insert(&list, 0, scalar(input));
            }
            false
        }
    }
}

/// A write an officer makes, through the model, on the document as A
/// holds it: what honest nodes send. Applied to `branch` as well, so that
/// later changes there build on it.
fn honest_write(
    input: &mut Input<'_>,
    base: &mut Document,
    branch: &mut AutoCommit,
    actor: &ActorId,
) -> Option<Change> {
    let mut doc = base.fork(actor.clone());
    let before = doc.heads();
    let seed = u128::from(input.u32());
    match doc.kind().clone() {
        DocKind::Watchlist { .. } => {
            add_entry(&mut doc, seed, "Fuzz Person", "node-1");
        }
        DocKind::Incidents { post, .. } => {
            add_incident(&mut doc, seed, "fuzzed incident", &post, None);
        }
        DocKind::Audit { .. } => return None,
    }
    let change = doc.changes_since(&before).into_iter().next()?;
    branch.apply_changes([change.clone()]).ok()?;
    Some(change)
}

/// A change's bytes with one byte flipped, as a peer could send them:
/// with the chunk's checksum left as it was, or made right again (what a
/// peer that crafts a change does). `None` if Automerge does not parse
/// them.
pub fn corrupt(input: &mut Input<'_>, bytes: &[u8]) -> Option<Change> {
    let mut bytes = bytes.to_vec();
    if bytes.is_empty() {
        return None;
    }
    let at = usize::from(input.u16()) % bytes.len();
    bytes[at] ^= input.byte() | 1;
    if input.flag() && bytes.len() > 8 {
        // Magic (4 bytes), checksum (4: the first of the SHA-256 of what
        // follows), then the chunk.
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes[8..]);
        bytes[4..8].copy_from_slice(&digest[..4]);
    }
    Change::from_bytes(bytes).ok()
}

/// A proof over the change `hash`, as its author (`signer`) would send
/// it, or not.
fn proof_for(input: &mut Input<'_>, doc: &DocId, signer: &Signer, hash: &ChangeHash) -> Option<StoredProof> {
    let hash = *hash;
    match input.choose(8) {
        0 | 1 => None,
        2..=4 => Some(sign_change(signer, doc, &hash)),
        5 => Some(sign_change(&node_signer(1 + input.byte() % 6), doc, &hash)),
        6 => Some(attest(&node_signer(1 + input.byte() % 6), doc, &hash)),
        _ => {
            let mut bytes = [0u8; 64];
            bytes[..16].copy_from_slice(&input.array::<16>());
            Some(StoredProof { attester: input.flag().then(|| input.array()), signature: Signature::from_bytes(bytes) })
        }
    }
}

pub fn run(data: &[u8]) {
    let world = world();
    let mut input = Input::new(data);
    let (mut doc, mut branches) = receiver(world, input.choose(4));
    let id = doc.id().clone();
    let kind = doc.kind().clone();
    let authority = match input.choose(3) {
        0 => Authority::Open,
        n => Authority::Fleet { fleet: &world.verified, newer_known: n == 2 },
    };
    let count = 1 + input.choose(MAX_CHANGES);
    let order = input.choose(3);
    let mut made: Vec<Made> = Vec::new();
    // What is sent: some changes dropped, corrupted or sent twice; each with
    // a proof or not.
    let mut sent_of: Vec<Vec<Change>> = Vec::new();
    let mut stored: Vec<(ChangeHash, StoredProof)> = Vec::new();
    for _ in 0..count {
        let branch = &mut branches[input.choose(2)];
        let (actor, signer) = author(&mut input, &doc);
        branch.set_actor(actor.clone());
        let change = if input.choose(4) == 0 {
            honest_write(&mut input, &mut doc, branch, &actor)
                .filter(|c| !made.iter().any(|m| m.change.hash() == c.hash()))
                .map(|change| Made { change, forbidden: false, signer })
        } else {
            let mut forbidden = false;
            for _ in 0..1 + input.choose(3) {
                forbidden |= raw_op(&mut input, branch, &kind);
            }
            branch
                .commit_with(CommitOptions::default().with_time(NOW))
                .and_then(|hash| branch.get_change_by_hash(&hash))
                .map(|change| Made { change, forbidden, signer })
        };
        let Some(change) = change else { continue };
        let copies = match input.choose(16) {
            0 => Vec::new(),
            1 => corrupt(&mut input, change.change.raw_bytes()).into_iter().collect(),
            2 => vec![change.change.clone(), change.change.clone()],
            _ => vec![change.change.clone()],
        };
        // The proof is over what is sent: a member that crafts a change
        // signs it.
        let over = copies.first().map_or(change.change.hash(), Change::hash);
        if let Some(proof) = proof_for(&mut input, &id, &change.signer, &over) {
            stored.push((over, proof));
        }
        sent_of.push(copies);
        made.push(change);
    }
    match order {
        0 => {}
        1 => sent_of.reverse(),
        _ => {
            let by = 1.min(sent_of.len());
            sent_of.rotate_left(by);
        }
    }
    let sent: Vec<Change> = sent_of.into_iter().flatten().collect();
    // Proofs as they travel: by actor index and sequence number.
    let actors: Vec<ActorId> = sent.iter().map(|c| c.actor_id().clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let by_hash: BTreeMap<ChangeHash, &Change> = sent.iter().map(|c| (c.hash(), c)).collect();
    let mut proofs: Vec<Proof> = Vec::new();
    for (hash, proof) in &stored {
        let Some(change) = by_hash.get(hash) else { continue };
        let Ok(actor) = actors.binary_search(change.actor_id()) else { continue };
        let mut wire =
            Proof { actor: actor as u16, seq: change.seq(), attester: proof.attester, signature: proof.signature };
        if input.byte() == 0xff {
            wire.seq = wire.seq.wrapping_add(1);
        }
        proofs.push(wire);
    }
    let mut excluded = BTreeMap::new();
    if input.byte() == 0xfe
        && let Some(change) = sent.first()
    {
        excluded.insert(change.hash(), Reason::Schema("fuzz".into()));
    }
    let new: BTreeSet<ChangeHash> = sent.iter().map(Change::hash).filter(|h| !doc.knows(&[*h])).collect();
    if crate::debug() {
        for change in &sent {
            let forbidden = made.iter().any(|m| m.forbidden && m.change.hash() == change.hash());
            eprintln!(
                "  sent {} actor {} seq {} deps {:?} forbidden {forbidden} bytes {}",
                change.hash(),
                change.actor_id(),
                change.seq(),
                change.deps(),
                hex::encode(change.raw_bytes())
            );
            match std::panic::catch_unwind(|| change.decode()) {
                Ok(decoded) => {
                    for op in decoded.operations {
                        eprintln!("    {op:?}");
                    }
                }
                Err(_) => eprintln!("    (Automerge panics decoding it)"),
            }
        }
    }
    let verdict = admit(&mut doc, Incoming { changes: sent.clone(), proofs: &proofs }, &authority, &excluded);

    if crate::debug() {
        eprintln!(
            "admission {id} {}: made {}, sent {}, admitted {}, rejected {:?}, held {:?}, proofs kept {}, bad {}",
            match authority {
                Authority::Open => "open",
                Authority::Fleet { newer_known: false, .. } => "fleet",
                Authority::Fleet { .. } => "fleet+newer",
            },
            made.len(),
            sent.len(),
            verdict.admitted.len(),
            verdict.rejected.iter().map(|(_, _, r)| r.to_string()).collect::<Vec<_>>(),
            verdict.held.iter().map(|h| h.reason.kind()).collect::<Vec<_>>(),
            verdict.proofs.len(),
            verdict.bad_proofs
        );
    }
    // Judged once each, and only what was sent.
    let admitted: Vec<ChangeHash> = verdict.admitted.iter().map(Change::hash).collect();
    let rejected: Vec<ChangeHash> = verdict.rejected.iter().map(|(h, _, _)| *h).collect();
    let held: Vec<ChangeHash> = verdict.held.iter().map(|h| h.change.hash()).collect();
    let mut judged = BTreeSet::new();
    for hash in admitted.iter().chain(&rejected).chain(&held) {
        assert!(new.contains(hash), "judged change {hash}, which was not sent or is held already");
        assert!(judged.insert(*hash), "change {hash} judged twice");
    }
    let tangled = verdict.rejected.iter().any(|(_, _, r)| *r == Reason::Tangled);
    if !tangled {
        assert_eq!(judged, new, "some changes sent were neither admitted, refused nor held");
    }
    if !tangled {
        let orphans = verdict.held.iter().filter(|h| h.reason == Reason::MissingDependencies).count();
        assert_eq!(verdict.waiting, orphans, "orphans counted as waiting are not the orphans held");
    }
    for (hash, _, reason) in &verdict.rejected {
        assert!(!reason.to_string().is_empty() && !reason.kind().is_empty(), "{hash}: a reason with no words");
    }

    // The rules every authority keeps.
    let forbidden: BTreeSet<ChangeHash> = made.iter().filter(|m| m.forbidden).map(|m| m.change.hash()).collect();
    let genesis = doc.genesis_actor();
    for change in &verdict.admitted {
        let hash = change.hash();
        assert!(!forbidden.contains(&hash), "admitted change {hash}, which writes the root or replaces a record");
        assert!(*change.actor_id() != genesis, "admitted change {hash} by the genesis actor");
    }
    match authority {
        Authority::Open => {
            assert!(verdict.proofs.is_empty(), "proofs kept with no roster to check them by");
            assert_eq!(verdict.bad_proofs, 0, "proofs counted bad with no roster");
        }
        Authority::Fleet { fleet, .. } => fleet_rules(fleet, &id, &verdict, &proofs, &sent),
    }

    // What is admitted applies, whole and in order, and comes back as it
    // was sent; or Automerge refuses it by panicking, or gives it back
    // otherwise, which the model turns into an error (since `728e4f4` and
    // `Document::check_round_trip`, after F2, F3 and E2): the engine then keeps
    // nothing of the batch.
    let before = doc.heads();
    match doc
        .apply_changes(verdict.admitted.clone())
        .and_then(|()| doc.check_round_trip(&before, &admitted.iter().copied().collect()))
    {
        Ok(()) => {}
        Err(outpost_model::ModelError::AutomergePanicked(_) | outpost_model::ModelError::NotGivenBack(_)) => return,
        Err(err) => panic!("admitted changes do not apply: {err}"),
    }
    for hash in &admitted {
        assert!(doc.knows(&[*hash]), "admitted change {hash} waits for a dependency that was not admitted");
    }
}

/// In a fleet: members that may write, signed, revoked ones attested.
fn fleet_rules(
    fleet: &Fleet,
    doc: &DocId,
    verdict: &outpost_model::admission::Verdict,
    proofs: &[Proof],
    sent: &[Change],
) {
    let actors: Vec<ActorId> = sent.iter().map(|c| c.actor_id().clone()).collect::<BTreeSet<_>>().into_iter().collect();
    // Changes with a valid author signature over them, checked here.
    let mut signed: BTreeSet<ChangeHash> = BTreeSet::new();
    for proof in proofs.iter().filter(|p| p.attester.is_none()) {
        for change in sent {
            let matches = actors.get(usize::from(proof.actor)) == Some(change.actor_id()) && change.seq() == proof.seq;
            let Some(member) = fleet.member_of_actor(change.actor_id().to_bytes()) else { continue };
            if matches && member.key.verifies(&change_message(doc, &change.hash()), &proof.signature) {
                signed.insert(change.hash());
            }
        }
    }
    let admitted: BTreeMap<ChangeHash, &Change> = verdict.admitted.iter().map(|c| (c.hash(), c)).collect();
    for change in &verdict.admitted {
        let hash = change.hash();
        let Some(member) = fleet.member_of_actor(change.actor_id().to_bytes()) else {
            panic!("admitted change {hash} by an actor no member writes with");
        };
        assert!(member.role != Role::Observer || !member.rights.is_empty(), "admitted a change by an observer");
        if !member.is_active() {
            assert!(verdict.attested.contains(&hash), "admitted change {hash} of a revoked member unattested");
        }
        // Covered: signed itself, or an ancestor of an admitted change of
        // the same member that is signed.
        let covered = admitted.values().any(|later| {
            signed.contains(&later.hash())
                && fleet.member_of_actor(later.actor_id().to_bytes()).is_some_and(|m| m.key == member.key)
                && reaches(&admitted, later.hash(), hash)
        });
        assert!(covered, "admitted change {hash} with no valid signature of its author covering it");
    }
    for (hash, proof) in &verdict.proofs {
        let Some(change) = admitted.get(hash) else { panic!("a proof kept for change {hash}, not admitted") };
        let ok = match proof.attester {
            None => fleet
                .member_of_actor(change.actor_id().to_bytes())
                .is_some_and(|m| m.key.verifies(&change_message(doc, hash), &proof.signature)),
            Some(prefix) => fleet
                .member_with_prefix(&prefix)
                .is_some_and(|m| m.key.verifies(&attest_message(doc, hash), &proof.signature)),
        };
        assert!(ok, "a proof kept for change {hash} does not verify");
    }
}

/// Whether `to` is `from` or one of its ancestors among `changes`.
fn reaches(changes: &BTreeMap<ChangeHash, &Change>, from: ChangeHash, to: ChangeHash) -> bool {
    let mut seen = BTreeSet::new();
    let mut queue = vec![from];
    while let Some(hash) = queue.pop() {
        if hash == to {
            return true;
        }
        if !seen.insert(hash) {
            continue;
        }
        if let Some(change) = changes.get(&hash) {
            queue.extend(change.deps().iter().copied());
        }
    }
    false
}
