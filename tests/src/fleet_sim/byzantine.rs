//! What the byzantine node writes: changes every honest node must refuse,
//! made on its own copies and offered through its real engine, exactly as
//! its honest changes are. It holds a member's key (a centre of KAZ-BS)
//! and the fleet key.

use automerge::ReadDoc;
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ChangeHash, ObjType, ROOT};
use outpost_model::date::Timestamp;
use outpost_model::replication::engine::DocHost;
use outpost_model::schema::{ChangeMeta, DocKind, Document};
use outpost_model::trust::proof::{StoredProof, sign_change};
use outpost_model::trust::{PublicKey, Signer};
use outpost_model::validate::{PostContext, new_entry, new_incident};
use outpost_model::{DocId, EntryId, IncidentId};
use rand::Rng;
use rand::rngs::StdRng;

use super::host::SimHost;
use crate::sample::Generator;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Attack {
    /// An entry written with an honest member's actor and signed by a key
    /// that is no member's. (A bad signature over its own change would
    /// prove nothing: its next honestly signed change commits to it by
    /// hash, and so signs it.)
    ForgedSignature,
    /// An entry written with an honest member's actor, signed with its own
    /// key: passing its change off as another's.
    BorrowedActor,
    /// An entry in another authority's watchlist, honestly signed.
    OtherAuthority,
    /// A change to a watchlist's root: who the document belongs to.
    RootField,
    /// An honest entry deleted.
    DeleteRecord,
    /// An honest entry's status set to a number, which no node can read.
    BreakRecord,
    /// An incident planted in an honest post's log.
    ForeignIncident,
    /// A new entry under an honest entry's id, in another shard.
    ForeignId,
}

pub(super) const ATTACKS: [Attack; 8] = [
    Attack::ForgedSignature,
    Attack::BorrowedActor,
    Attack::OtherAuthority,
    Attack::RootField,
    Attack::DeleteRecord,
    Attack::BreakRecord,
    Attack::ForeignIncident,
    Attack::ForeignId,
];

/// What the attack needs to know of the fleet.
pub(super) struct Target<'a> {
    pub(super) now: Timestamp,
    pub(super) signer: &'a Signer,
    /// Honest members: key and name.
    pub(super) victims: &'a [(PublicKey, String)],
    /// Acknowledged honest entries of KAZ-BS.
    pub(super) entries: &'a [(DocId, EntryId)],
}

/// The changes an attack made, to store and offer.
pub(super) struct Made {
    pub(super) doc: DocId,
    pub(super) stored: Vec<Vec<u8>>,
    pub(super) proofs: Vec<(ChangeHash, StoredProof)>,
}

impl Made {
    pub(super) fn hashes(&self) -> impl Iterator<Item = ChangeHash> + '_ {
        self.proofs.iter().map(|(h, _)| *h)
    }
}

fn context(now: Timestamp, authority: &str, post: &str) -> PostContext {
    PostContext { now, offset: time::UtcOffset::UTC, authority: authority.into(), post: post.into() }
}

fn meta(now: Timestamp) -> ChangeMeta {
    ChangeMeta { at: now, by: "666@byzantine".into(), op: "byzantine" }
}

/// Makes `attack` on the byzantine node's copies; `None` when there is
/// nothing to make it on yet.
pub(super) fn make(
    attack: Attack,
    target: &Target<'_>,
    host: &mut SimHost,
    sample: &mut Generator,
    rng: &mut StdRng,
) -> Option<Made> {
    let now = target.now;
    let victim = &target.victims[rng.random_range(0..target.victims.len())];
    let mut signer = target.signer.clone();
    let (doc, actor, edit): (DocId, Option<ActorId>, Edit) = match attack {
        Attack::ForgedSignature | Attack::BorrowedActor | Attack::OtherAuthority => {
            let authority = if attack == Attack::OtherAuthority { "UZB-DCS" } else { "KAZ-BS" };
            let id = EntryId::owned_by(authority, uuid::Uuid::from_u128(rng.random()));
            let draft = new_entry(&sample.entry(), id, &context(now, authority, "byzantine")).ok()?;
            let doc = DocKind::watchlist_for(authority, &id).doc_id();
            let borrowed = matches!(attack, Attack::BorrowedActor | Attack::ForgedSignature);
            let actor = borrowed.then(|| {
                let mut bytes = victim.0.actor_prefix().to_vec();
                bytes.extend_from_slice(&[0xee; 4]);
                ActorId::from(bytes)
            });
            if attack == Attack::ForgedSignature {
                let mut secret = [0u8; 32];
                rng.fill(&mut secret[..]);
                signer = Signer::from_secret(secret);
            }
            (doc, actor, Edit::Typed(Box::new(move |d| d.transact(&meta(now), |r| r.add_entry(&draft)).map(|_| ()))))
        }
        Attack::ForeignIncident => {
            let id = IncidentId::owned_by(&victim.1, uuid::Uuid::from_u128(rng.random()));
            let draft = new_incident(&sample.incident(), id, &context(now, "KAZ-BS", &victim.1)).ok()?;
            let doc = DocKind::Incidents { post: victim.1.clone(), month: draft.occurred_at.utc_month() }.doc_id();
            (doc, None, Edit::Typed(Box::new(move |d| d.transact(&meta(now), |r| r.add_incident(&draft)).map(|_| ()))))
        }
        Attack::ForeignId => {
            // An honest entry's id, for a new record in another shard of the
            // same authority: it would hide the honest entry wherever the
            // projection and the index know records by id.
            let (doc, entry) = target.entries.get(rng.random_range(0..target.entries.len().max(1)))?.clone();
            let shard = (0..16u8)
                .map(|s| DocKind::Watchlist { authority: "KAZ-BS".into(), shard: s }.doc_id())
                .find(|d| *d != doc)?;
            let draft = new_entry(&sample.entry(), entry, &context(now, "KAZ-BS", "byzantine")).ok()?;
            (shard, None, Edit::Typed(Box::new(move |d| d.transact(&meta(now), |r| r.add_entry(&draft)).map(|_| ()))))
        }
        Attack::RootField => {
            let doc = match target.entries.first() {
                Some((doc, _)) => doc.clone(),
                None => DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 0 }.doc_id(),
            };
            (doc, None, Edit::Raw(Box::new(|copy| copy.put(ROOT, "authority", "UZB-DCS").map(|_| ()))))
        }
        Attack::DeleteRecord | Attack::BreakRecord => {
            let (doc, entry) = target.entries.get(rng.random_range(0..target.entries.len().max(1)))?.clone();
            let key = entry.to_string();
            let edit: Edit = if attack == Attack::DeleteRecord {
                Edit::Raw(Box::new(move |copy| {
                    let (_, entries) = copy.get(ROOT, "entries")?.ok_or(automerge::AutomergeError::Fail)?;
                    copy.delete(&entries, key.as_str())
                }))
            } else {
                Edit::Raw(Box::new(move |copy| {
                    let (_, entries) = copy.get(ROOT, "entries")?.ok_or(automerge::AutomergeError::Fail)?;
                    let (_, record) = copy.get(&entries, key.as_str())?.ok_or(automerge::AutomergeError::Fail)?;
                    copy.put(&record, "status", 99)
                }))
            };
            (doc, None, edit)
        }
    };
    let document = host.doc(&doc).ok()?;
    if matches!(attack, Attack::DeleteRecord | Attack::BreakRecord) && !holds_entries_map(document) {
        return None;
    }
    let before = document.heads();
    let own = document.read().get_actor().clone();
    if let Some(actor) = actor {
        document.set_actor(actor);
    }
    let done = match edit {
        Edit::Typed(edit) => edit(document).map_err(|e| e.to_string()),
        Edit::Raw(edit) => raw_change(document, edit),
    };
    document.set_actor(own);
    done.ok()?;
    let stored = document.stored_changes_since(&before);
    let proofs: Vec<(ChangeHash, StoredProof)> =
        document.changes_since(&before).iter().map(|c| (c.hash(), sign_change(&signer, &doc, &c.hash()))).collect();
    (!proofs.is_empty()).then_some(Made { doc, stored, proofs })
}

type TypedEdit = Box<dyn FnOnce(&mut Document) -> Result<(), outpost_model::ModelError>>;
type RawEdit = Box<dyn FnOnce(&mut AutoCommit) -> Result<(), automerge::AutomergeError>>;

enum Edit {
    /// Through the model's own writers.
    Typed(TypedEdit),
    /// Any operation at all, on a plain Automerge copy.
    Raw(RawEdit),
}

fn holds_entries_map(document: &Document) -> bool {
    matches!(document.read().get(ROOT, "entries"), Ok(Some((automerge::Value::Object(ObjType::Map), _))))
}

fn raw_change(document: &mut Document, edit: RawEdit) -> Result<(), String> {
    let mut copy = AutoCommit::load(&document.save()).map_err(|e| e.to_string())?;
    copy.set_actor(document.read().get_actor().clone());
    let before = copy.get_heads();
    edit(&mut copy).map_err(|e| e.to_string())?;
    copy.commit();
    let changes = copy.get_changes(&before);
    document.apply_changes(changes).map_err(|e| e.to_string())
}
