//! Field-level rules: which operations a change may carry, given what its
//! signer may write ([`Scope`]) in this document.
//!
//! Every operation names the object it acts on by the id of the operation
//! that made it. Objects are located by their path from the root: objects
//! this copy holds through the document, objects made earlier in the same
//! batch (or the same change) through the batch's own record of them.

use std::collections::{BTreeMap, BTreeSet};

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::{ActorId, Change, ScalarValue};

use crate::ids::{EntryId, IncidentId};
use crate::schema::{DocKind, Document, Seg};
use crate::trust::policy::Scope;

/// Objects made by the changes of a batch admitted so far, by the id of
/// the operation that made them.
#[derive(Debug, Default)]
pub(super) struct Made {
    paths: BTreeMap<(u64, ActorId), Vec<Seg>>,
}

impl Made {
    fn path(&self, doc: &Document, obj: &ObjectId) -> Option<Vec<Seg>> {
        match obj {
            ObjectId::Root => Some(Vec::new()),
            ObjectId::Id(op) => self
                .paths
                .get(&(op.counter(), op.actor().clone()))
                .cloned()
                .or_else(|| doc.path_of(op.counter(), op.actor())),
        }
    }
}

/// What one change does, once its operations pass.
#[derive(Debug, Default)]
pub(super) struct Effects {
    /// Records it touches (their keys in the record map).
    pub touched: BTreeSet<String>,
    made: Vec<((u64, ActorId), Vec<Seg>)>,
}

impl Effects {
    /// Keeps the objects this change made, for the changes after it.
    pub(super) fn keep_objects(&mut self, made: &mut Made) {
        made.paths.extend(self.made.drain(..));
    }
}

fn seg_of(key: &Key) -> Seg {
    match key {
        Key::Map(k) => Seg::Key(k.to_string()),
        Key::Seq(_) => Seg::Elem,
    }
}

/// Which ids a change may create records under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NewIds {
    /// Only ids tagged for the document's owner, in the shard the id picks
    /// ([`crate::ids::owner_tag`]).
    Owned,
    /// Any id older than this (ms since the epoch), else as `Owned`: a
    /// store's history from before fleet trust, written by a legacy actor
    /// before the admin bound it, made ids without tags.
    OlderThan(i64),
    /// Any id: `--psk-only` fleets judge no owners.
    Any,
}

/// Why `key` may not name a new record in a document of `kind`, if it may
/// not.
fn new_record_refusal(kind: &DocKind, key: &str, ids: NewIds) -> Option<String> {
    let owned = match kind {
        // Only its post writes an audit log (`policy::scope`), under the
        // records' own hashes.
        DocKind::Audit { .. } => {
            return (!crate::schema::audit::is_record_key(key))
                .then(|| format!("creates a record under {key:?}, which is not a record hash"));
        }
        DocKind::Watchlist { authority, .. } => match EntryId::parse(key) {
            Err(_) => return Some(format!("creates a record under {key:?}, which is not an entry id")),
            Ok(id) => (id.belongs_to(authority) && DocKind::watchlist_for(authority, &id) == *kind)
                .then_some(())
                .ok_or_else(|| format!("entry id {key} is not one of {authority}'s for this shard")),
        },
        DocKind::Incidents { post, .. } => match IncidentId::parse(key) {
            Err(_) => return Some(format!("creates a record under {key:?}, which is not an incident id")),
            Ok(id) => {
                id.belongs_to(post).then_some(()).ok_or_else(|| format!("incident id {key} is not one of {post}'s"))
            }
        },
    };
    let old_enough = |until: i64| {
        let millis = match kind {
            DocKind::Watchlist { .. } => EntryId::parse(key).ok().and_then(|id| id.as_uuid().get_timestamp()),
            DocKind::Incidents { .. } => IncidentId::parse(key).ok().and_then(|id| id.as_uuid().get_timestamp()),
            DocKind::Audit { .. } => None,
        }
        .map(|t| t.to_unix())
        .map(|(secs, nanos)| {
            i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000) + i64::from(nanos / 1_000_000)
        });
        millis.is_some_and(|at| at < until)
    };
    match (owned, ids) {
        (Err(_), NewIds::OlderThan(until)) if old_enough(until) => None,
        (Err(why), NewIds::Owned | NewIds::OlderThan(_)) => {
            Some(format!("creates a record under an id made for another owner: {why}"))
        }
        _ => None,
    }
}

/// Whether `op`, acting on the record map, makes a new record (a map
/// replacing nothing) under a key its document's owner may use; a key it
/// may not is the whole change's refusal.
fn new_record(doc: &Document, op: &automerge::legacy::Op, ids: NewIds, effects: &mut Effects) -> Result<bool, String> {
    let Key::Map(key) = &op.key else { return Ok(false) };
    let fresh = matches!(op.action, OpType::Make(automerge::ObjType::Map)) && op.pred.is_empty();
    if fresh {
        effects.touched.insert(key.to_string());
        if let Some(why) = new_record_refusal(doc.kind(), key, ids) {
            return Err(why);
        }
    }
    Ok(fresh)
}

/// Checks every operation of `change` against `scope`. On failure, says
/// which operation and why, for the log.
pub(super) fn check(
    doc: &Document,
    made: &Made,
    change: &Change,
    (scope, ids): (Scope, NewIds),
) -> Result<Effects, String> {
    // Automerge unwraps on some malformed changes (an op naming an actor
    // the change does not list): such a change is refused, not a crash.
    let expanded = crate::error::guard(|| change.decode())
        .map_err(|panic| format!("wrote operations that do not decode ({panic})"))?;
    let records = doc.kind().records_key();
    let start = change.start_op().get();
    let actor = change.actor_id().clone();
    let mut effects = Effects::default();
    // Objects made by this change are found before the batch keeps them.
    let mut mine: BTreeMap<(u64, ActorId), Vec<Seg>> = BTreeMap::new();
    for (i, op) in expanded.operations.iter().enumerate() {
        let path = match &op.obj {
            ObjectId::Id(id) => mine.get(&(id.counter(), id.actor().clone())).cloned(),
            ObjectId::Root => None,
        };
        let Some(path) = path.or_else(|| made.path(doc, &op.obj)) else {
            return Err(format!("operation {} acts on an object this node does not know", i + 1));
        };
        let at = || {
            let mut shown: Vec<String> = path
                .iter()
                .map(|s| match s {
                    Seg::Key(k) => k.clone(),
                    Seg::Elem => "[]".into(),
                })
                .collect();
            shown.push(match &op.key {
                Key::Map(k) => k.to_string(),
                Key::Seq(_) => "[]".into(),
            });
            format!("/{}", shown.join("/"))
        };
        // Notes are append-only: only the change that made a note may
        // write its fields.
        let made_here = matches!(&op.obj, ObjectId::Id(id) if mine.contains_key(&(id.counter(), id.actor().clone())));
        let allowed = match scope {
            Scope::Nothing => false,
            Scope::Records => match path.as_slice() {
                // The root holds the document's identity and its record map.
                [] => false,
                // A new record: a map under a record id, replacing nothing.
                [Seg::Key(k)] if k == records => new_record(doc, op, ids, &mut effects)?,
                [Seg::Key(k), Seg::Key(record), ..] if k == records => {
                    effects.touched.insert(record.clone());
                    true
                }
                _ => false,
            },
            // An audit record: a new map under its hash, and its two
            // fields, written by the change that made it; nothing else,
            // ever.
            Scope::Append => match path.as_slice() {
                [Seg::Key(k)] if k == records => new_record(doc, op, ids, &mut effects)?,
                [Seg::Key(k), Seg::Key(_)] if k == records && made_here => {
                    matches!(&op.key, Key::Map(key) if key == "record" || key == "signature")
                        && matches!(op.action, OpType::Put(ScalarValue::Str(_)))
                        && op.pred.is_empty()
                }
                _ => false,
            },
            Scope::NotesAndReferrals => match path.as_slice() {
                [Seg::Key(k), Seg::Key(record)] if k == records => {
                    effects.touched.insert(record.clone());
                    match (&op.key, &op.action) {
                        (Key::Map(key), OpType::Put(ScalarValue::Str(value))) if key == "follow_up" => {
                            value.as_str() == "referred"
                        }
                        (Key::Map(key), OpType::Put(ScalarValue::Timestamp(_))) => key == "updated_at",
                        (Key::Map(key), OpType::Put(ScalarValue::Str(_))) => key == "updated_by",
                        _ => false,
                    }
                }
                // A new note in the narrative. Where it goes is not
                // checked: "at the end" depends on which notes a node
                // holds, and admission must not depend on arrival order.
                [Seg::Key(k), Seg::Key(record), Seg::Key(list)] if k == records && list == "narrative" => {
                    effects.touched.insert(record.clone());
                    op.insert && matches!(op.action, OpType::Make(automerge::ObjType::Map))
                }
                // The new note's fields, written by the change that made it.
                [Seg::Key(k), Seg::Key(record), Seg::Key(list), Seg::Elem]
                    if k == records && list == "narrative" && made_here =>
                {
                    effects.touched.insert(record.clone());
                    matches!(&op.key, Key::Map(key) if ["at", "by", "text"].contains(&key.as_str()))
                        && matches!(op.action, OpType::Put(_))
                }
                _ => false,
            },
        };
        if !allowed {
            return Err(format!("may not change {}", at()));
        }
        if let OpType::Make(_) = op.action {
            let mut made_path = path.clone();
            made_path.push(seg_of(&op.key));
            let id = (start + i as u64, actor.clone());
            mine.insert(id.clone(), made_path.clone());
            effects.made.push((id, made_path));
        }
    }
    Ok(effects)
}
