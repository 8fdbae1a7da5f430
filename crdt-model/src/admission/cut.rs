//! Which changes of a revoked member lie inside its revocation's cut.

use std::collections::BTreeMap;

use automerge::{ActorId, Change, ChangeHash};

use super::Batch;
use crate::schema::Document;

/// For each revoked actor met in one admission, the changes inside the
/// cut: found once by walking the actor's own chain down from the change
/// the cut names.
#[derive(Debug, Default)]
pub(super) struct Cuts {
    chains: BTreeMap<ActorId, Chain>,
}

#[derive(Debug)]
struct Chain {
    /// Hashes inside the cut, by sequence number, as far as known.
    inside: BTreeMap<u64, ChangeHash>,
    /// The cut's highest sequence number for this actor (0: none).
    top: u64,
    /// The walk stopped at a change not here: below this, unknown.
    known_down_to: u64,
}

impl Cuts {
    /// Whether `change` lies inside the cut; `None` when that cannot be
    /// told yet.
    pub(super) fn inside(
        &mut self,
        doc: &mut Document,
        batch: &Batch,
        cut: &[crate::trust::roster::CutEntry],
        change: &Change,
    ) -> Option<bool> {
        let actor = change.actor_id().clone();
        let chain = self.chains.entry(actor.clone()).or_insert_with(|| {
            let entry = cut.iter().find(|e| e.doc == batch.doc_id && e.actor.as_slice() == actor.to_bytes());
            let Some(entry) = entry else { return Chain { inside: BTreeMap::new(), top: 0, known_down_to: 0 } };
            walk_chain(doc, batch, &actor, entry.seq, ChangeHash(entry.hash))
        });
        let seq = change.seq();
        if seq > chain.top {
            return Some(false);
        }
        if seq < chain.known_down_to {
            return None;
        }
        Some(chain.inside.get(&seq) == Some(&change.hash()))
    }
}

/// The hashes of `actor`'s chain from `top` (at `top_seq`) down,
/// following each change's dependency on the same actor's previous change,
/// through the batch and the document.
fn walk_chain(doc: &mut Document, batch: &Batch, actor: &ActorId, top_seq: u64, top: ChangeHash) -> Chain {
    let mut inside = BTreeMap::new();
    let (mut seq, mut hash) = (top_seq, top);
    loop {
        let deps = match batch.changes.get(&hash) {
            Some(change) => Some(change.deps().to_vec()),
            None => doc.change_meta(&hash).map(|(_, _, deps)| deps),
        };
        // Not here yet: what lies below cannot be told.
        let Some(deps) = deps else { return Chain { inside, top: top_seq, known_down_to: seq + 1 } };
        inside.insert(seq, hash);
        if seq <= 1 {
            return Chain { inside, top: top_seq, known_down_to: 0 };
        }
        let previous = deps.iter().find(|dep| {
            let meta = match batch.changes.get(dep) {
                Some(change) => Some((change.actor_id().clone(), change.seq())),
                None => doc.change_meta(dep).map(|(a, s, _)| (a, s)),
            };
            meta.is_some_and(|(a, s)| &a == actor && s == seq - 1)
        });
        match previous {
            Some(previous) => (seq, hash) = (seq - 1, *previous),
            // The chain is broken (a malformed or forked history): nothing
            // below is inside.
            None => return Chain { inside, top: top_seq, known_down_to: 0 },
        }
    }
}
