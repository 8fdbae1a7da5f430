//! The causal order a batch of received changes is judged in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::{Change, ChangeHash};

use crate::schema::Document;

/// Causal order of `changes` (Kahn's algorithm over dependencies among
/// them), and those with a dependency neither among them nor in `doc`,
/// with everything that depends on those.
pub(super) fn causal_order(
    doc: &mut Document,
    changes: &BTreeMap<ChangeHash, Change>,
) -> (Vec<ChangeHash>, BTreeSet<ChangeHash>) {
    let mut missing = BTreeSet::new();
    let mut waiting_on: BTreeMap<ChangeHash, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<ChangeHash, Vec<ChangeHash>> = BTreeMap::new();
    for (hash, change) in changes {
        let mut count = 0;
        for dep in change.deps() {
            if changes.contains_key(dep) {
                count += 1;
                dependents.entry(*dep).or_default().push(*hash);
            } else if !doc.knows(&[*dep]) {
                missing.insert(*hash);
            }
        }
        waiting_on.insert(*hash, count);
    }
    let mut ready: VecDeque<ChangeHash> = waiting_on.iter().filter(|(_, n)| **n == 0).map(|(h, _)| *h).collect();
    let mut order = Vec::new();
    while let Some(hash) = ready.pop_front() {
        if missing.contains(&hash) {
            // Its dependents cannot be applied either.
            for next in dependents.get(&hash).into_iter().flatten() {
                missing.insert(*next);
            }
        } else {
            order.push(hash);
        }
        for next in dependents.get(&hash).into_iter().flatten() {
            if let Some(n) = waiting_on.get_mut(next) {
                *n -= 1;
                if *n == 0 {
                    ready.push_back(*next);
                }
            }
        }
    }
    // A cycle cannot be hashed into existence; anything left is missing.
    let ordered: BTreeSet<ChangeHash> = order.iter().copied().collect();
    for hash in changes.keys() {
        if !ordered.contains(hash) {
            missing.insert(*hash);
        }
    }
    order.retain(|h| !missing.contains(h));
    (order, missing)
}
