//! Which documents two peers hold differently, found without listing them.
//!
//! Each document a node holds is an item: a 64-bit key from its id and a
//! 64-bit fingerprint of its id and heads. A range of keys is summarised by
//! the number of items in it and the XOR of their fingerprints, which can
//! be kept up to date per change and compared in 20 bytes. Peers start by
//! comparing the summary of the whole key space; a range whose summaries
//! differ is split into 16 until it holds few enough items to list. This is
//! range-based set reconciliation (Meyer, 2023): two peers in sync exchange
//! one summary each, whatever the number of documents, and each differing
//! document costs a few ranges and one listed item.
//!
//! Pure and sans-IO: the replication engine decides when to send what.

use std::collections::BTreeMap;

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::DocId;

/// Where a document sits in the key space.
pub type DocKey = u64;
/// A document's id and heads, hashed.
pub type Fingerprint = u64;

/// A range is listed item by item once it holds at most this many.
pub const LIST_AT_MOST: u32 = 16;
/// A range that must be refined is split into this many.
pub const SPLIT_INTO: u64 = 16;

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

pub fn doc_key(doc: &DocId) -> DocKey {
    hash64(&[b"outpost/doc-key/1", doc.as_str().as_bytes()])
}

/// The fingerprint of a document's state; the order of `heads` does not
/// matter.
pub fn fingerprint(doc: &DocId, heads: &[ChangeHash]) -> Fingerprint {
    let mut sorted: Vec<&[u8]> = heads.iter().map(|h| h.0.as_slice()).collect();
    sorted.sort_unstable();
    let mut parts: Vec<&[u8]> = vec![b"outpost/doc-state/1", doc.as_str().as_bytes()];
    parts.extend(sorted);
    hash64(&parts)
}

/// A range of keys, both ends included, with what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSummary {
    pub first: DocKey,
    pub last: DocKey,
    pub count: u32,
    pub xor: Fingerprint,
}

/// One part of a reconciliation message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    /// Compare your summary of this range with mine.
    Range(RangeSummary),
    /// The same for each of the `SPLIT_INTO` ranges that `first..=last`
    /// splits into, in order: `(count, xor)`. The bounds are implied, which
    /// halves the bytes of a refinement.
    Split { first: DocKey, last: DocKey, summaries: Vec<(u32, Fingerprint)> },
    /// Every item I hold in this range. `answer` is set when this answers
    /// an `Items` part, so that it is not answered again.
    Items { first: DocKey, last: DocKey, items: Vec<(DocKey, Fingerprint)>, answer: bool },
}

/// What one node holds, kept up to date as documents change.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    items: BTreeMap<DocKey, (DocId, Fingerprint)>,
}

/// The reply to a message, and the documents of ours the peer lacks or
/// holds in another state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub reply: Vec<Part>,
    pub differing: Vec<DocId>,
    /// The part of `differing` that the peer holds no copy of at all.
    pub absent: Vec<DocId>,
    /// Key ranges (both ends included) in which both sides were shown to
    /// hold the same: how fresh each document is known to be.
    pub agreed: Vec<(DocKey, DocKey)>,
}

impl Inventory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a document's current heads.
    pub fn set(&mut self, doc: &DocId, heads: &[ChangeHash]) {
        self.items.insert(doc_key(doc), (doc.clone(), fingerprint(doc, heads)));
    }

    pub fn remove(&mut self, doc: &DocId) {
        self.items.remove(&doc_key(doc));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The documents whose keys fall in `first..=last`.
    pub fn docs_in(&self, first: DocKey, last: DocKey) -> impl Iterator<Item = &DocId> {
        self.items.range(first..=last).map(|(_, (doc, _))| doc)
    }

    /// Every document held, with its fingerprint.
    pub fn iter(&self) -> impl Iterator<Item = (&DocId, Fingerprint)> {
        self.items.values().map(|(doc, fp)| (doc, *fp))
    }

    pub fn fingerprint_of(&self, doc: &DocId) -> Option<Fingerprint> {
        self.items.get(&doc_key(doc)).map(|(_, fp)| *fp)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn summary(&self, first: DocKey, last: DocKey) -> RangeSummary {
        let (count, xor) = self.items.range(first..=last).fold((0u32, 0u64), |(n, x), (_, (_, fp))| (n + 1, x ^ fp));
        RangeSummary { first, last, count, xor }
    }

    /// The message that starts a reconciliation: the whole key space.
    pub fn opening(&self) -> Vec<Part> {
        vec![Part::Range(self.summary(0, DocKey::MAX))]
    }

    fn items_in(&self, first: DocKey, last: DocKey) -> Vec<(DocKey, Fingerprint)> {
        self.items.range(first..=last).map(|(k, (_, fp))| (*k, *fp)).collect()
    }

    /// Answers a peer's message. An empty reply means every range the peer
    /// asked about matches, or has been listed in full. Parts with a range
    /// that ends before it starts are skipped (frames refuse them earlier).
    pub fn step(&self, incoming: &[Part]) -> Step {
        let mut step = Step::default();
        for part in incoming {
            let (first, last) = match part {
                Part::Range(r) => (r.first, r.last),
                Part::Items { first, last, .. } | Part::Split { first, last, .. } => (*first, *last),
            };
            if first > last {
                continue;
            }
            match part {
                Part::Range(theirs) => {
                    let ours = self.summary(theirs.first, theirs.last);
                    if ours.count == theirs.count && ours.xor == theirs.xor {
                        step.agreed.push((theirs.first, theirs.last));
                        continue;
                    }
                    if ours.count <= LIST_AT_MOST || theirs.first == theirs.last {
                        step.reply.push(Part::Items {
                            first: theirs.first,
                            last: theirs.last,
                            items: self.items_in(theirs.first, theirs.last),
                            answer: false,
                        });
                    } else {
                        let summaries = split(theirs.first, theirs.last)
                            .map(|(f, l)| {
                                let s = self.summary(f, l);
                                (s.count, s.xor)
                            })
                            .collect();
                        step.reply.push(Part::Split { first: theirs.first, last: theirs.last, summaries });
                    }
                }
                Part::Split { first, last, summaries } => {
                    // A split of another shape is ignored; the periodic
                    // check starts over.
                    let ranges: Vec<(DocKey, DocKey)> =
                        if first <= last { split(*first, *last).collect() } else { Vec::new() };
                    if ranges.len() == summaries.len() {
                        let parts: Vec<Part> = ranges
                            .into_iter()
                            .zip(summaries)
                            .map(|((f, l), (count, xor))| {
                                Part::Range(RangeSummary { first: f, last: l, count: *count, xor: *xor })
                            })
                            .collect();
                        let nested = self.step(&parts);
                        step.reply.extend(nested.reply);
                        step.differing.extend(nested.differing);
                        step.absent.extend(nested.absent);
                        step.agreed.extend(nested.agreed);
                    }
                }
                Part::Items { first, last, items, answer } => {
                    let theirs: BTreeMap<DocKey, Fingerprint> =
                        items.iter().filter(|(k, _)| (*first..=*last).contains(k)).copied().collect();
                    for (key, (doc, fp)) in self.items.range(*first..=*last) {
                        match theirs.get(key) {
                            Some(theirs) if theirs == fp => step.agreed.push((*key, *key)),
                            Some(_) => step.differing.push(doc.clone()),
                            None => {
                                step.differing.push(doc.clone());
                                step.absent.push(doc.clone());
                            }
                        }
                    }
                    if !answer {
                        step.reply.push(Part::Items {
                            first: *first,
                            last: *last,
                            items: self.items_in(*first, *last),
                            answer: true,
                        });
                    }
                }
            }
        }
        step.differing.sort();
        step.differing.dedup();
        step.absent.sort();
        step.absent.dedup();
        step
    }
}

/// `SPLIT_INTO` consecutive ranges covering `first..=last` exactly.
fn split(first: DocKey, last: DocKey) -> impl Iterator<Item = (DocKey, DocKey)> {
    let span = u128::from(last - first) + 1;
    let parts = u128::from(SPLIT_INTO).min(span);
    (0..parts).map(move |i| {
        let lo = u128::from(first) + span * i / parts;
        let hi = u128::from(first) + span * (i + 1) / parts - 1;
        (lo as DocKey, hi as DocKey)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn doc(n: u32) -> DocId {
        DocId::parse(&format!("watchlist/KAZ-BS/{n}")).unwrap()
    }

    fn heads(version: u8) -> Vec<ChangeHash> {
        vec![ChangeHash([version; 32])]
    }

    /// Runs a whole reconciliation; returns what each side found to send
    /// and the bytes exchanged.
    fn reconcile(a: &Inventory, b: &Inventory) -> (BTreeSet<DocId>, BTreeSet<DocId>, usize, usize) {
        let (mut to_b, mut to_a) = (BTreeSet::new(), BTreeSet::new());
        let mut message = a.opening();
        let mut bytes = postcard::to_allocvec(&message).unwrap().len();
        let mut rounds = 0;
        let mut at_b = true;
        while !message.is_empty() {
            rounds += 1;
            assert!(rounds <= 40, "reconciliation did not end");
            let step = if at_b { b.step(&message) } else { a.step(&message) };
            if at_b { &mut to_a } else { &mut to_b }.extend(step.differing);
            message = step.reply;
            bytes += postcard::to_allocvec(&message).unwrap().len();
            at_b = !at_b;
        }
        (to_b, to_a, bytes, rounds)
    }

    #[test]
    fn peers_in_sync_exchange_one_summary_each_whatever_they_hold() {
        let mut a = Inventory::new();
        for n in 0..1000 {
            a.set(&doc(n), &heads(1));
        }
        let (to_b, to_a, bytes, rounds) = reconcile(&a, &a.clone());
        assert!(to_b.is_empty() && to_a.is_empty());
        assert_eq!(rounds, 1);
        assert!(bytes < 64, "{bytes} B to learn that 1,000 documents match");
    }

    #[test]
    fn one_changed_document_among_a_thousand_is_found_in_a_few_rounds() {
        let mut a = Inventory::new();
        for n in 0..1000 {
            a.set(&doc(n), &heads(1));
        }
        let mut b = a.clone();
        b.set(&doc(417), &heads(2));
        let (to_b, to_a, bytes, rounds) = reconcile(&a, &b);
        assert_eq!(to_b, BTreeSet::from([doc(417)]));
        assert_eq!(to_a, BTreeSet::from([doc(417)]));
        assert!(rounds <= 5, "{rounds} rounds");
        assert!(bytes < 1000, "{bytes} B");
    }

    #[test]
    fn split_covers_the_range_exactly() {
        for (first, last) in [(0, DocKey::MAX), (10, 12), (5, 5), (0, 15), (100, 1000)] {
            let ranges: Vec<_> = split(first, last).collect();
            assert_eq!(ranges.first().unwrap().0, first);
            assert_eq!(ranges.last().unwrap().1, last);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0);
            }
        }
    }

    proptest! {
        /// Whatever two peers hold, each ends up knowing exactly which of
        /// its documents the other lacks or holds in another state.
        #[test]
        fn each_side_finds_exactly_what_differs(
            a_docs in proptest::collection::btree_map(0u32..400, 0u8..3, 0..200),
            b_docs in proptest::collection::btree_map(0u32..400, 0u8..3, 0..200),
        ) {
            let (mut a, mut b) = (Inventory::new(), Inventory::new());
            for (n, v) in &a_docs { a.set(&doc(*n), &heads(*v)); }
            for (n, v) in &b_docs { b.set(&doc(*n), &heads(*v)); }
            let (to_b, to_a, _, _) = reconcile(&a, &b);
            let want_to_b: BTreeSet<DocId> =
                a_docs.iter().filter(|(n, v)| b_docs.get(n) != Some(v)).map(|(n, _)| doc(*n)).collect();
            let want_to_a: BTreeSet<DocId> =
                b_docs.iter().filter(|(n, v)| a_docs.get(n) != Some(v)).map(|(n, _)| doc(*n)).collect();
            prop_assert_eq!(to_b, want_to_b);
            prop_assert_eq!(to_a, want_to_a);
        }
    }
}
