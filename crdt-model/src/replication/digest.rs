//! Which documents two peers hold differently, found without listing them.
//!
//! Each document a node holds is an item: a 64-bit key from its id and a
//! 64-bit fingerprint of its id and heads. A range of keys is summarised by
//! the number of items in it and the XOR of their fingerprints, and
//! compared in 20 bytes. Peers start by comparing the summary of the whole
//! key space; a range whose summaries differ is split into 16 until it
//! holds few enough items to list. This is range-based set reconciliation
//! (Meyer, 2023): two peers in sync exchange one summary each, whatever
//! the number of documents, and each differing document costs a few ranges
//! and one listed item.
//!
//! Three things make it safe between members that do not trust each other:
//! - **A view per peer.** A node reconciles with each peer over the
//!   documents that peer may receive ([`Inventory::view`]), so the digest
//!   reveals nothing of the others, not even that they exist.
//! - **Keys may collide.** Two document ids an insider picks can share a
//!   64-bit key (about 2³² work); items are kept per (key, id), so the
//!   second never hides the first, and listed items are matched by (key,
//!   fingerprint).
//! - **Fingerprints are salted with the sender's key.** A summary or item a
//!   node sends is computed with its own key, and one it receives is
//!   compared with its items computed with the sender's key. A peer that
//!   echoes a node's own opening back therefore does not match it: to make
//!   a range look agreed, a peer must know the state of every document in
//!   it.
//!
//! Pure and sans-IO: the replication engine decides when to send what.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::DocId;

/// Where a document sits in the key space.
pub type DocKey = u64;
/// A document's id and heads, hashed (salted with the sender's key in a
/// digest).
pub type Fingerprint = u64;
/// A document's id and heads, hashed in full: what an [`Inventory`] keeps.
pub type StateHash = [u8; 32];

/// A range is listed item by item once it holds at most this many.
pub const LIST_AT_MOST: u32 = 16;
/// A range that must be refined is split into this many.
pub const SPLIT_INTO: u64 = 16;

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn first_u64(digest: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

pub fn doc_key(doc: &DocId) -> DocKey {
    first_u64(&hash(&[b"outpost/doc-key/1", doc.as_str().as_bytes()]))
}

/// The hash of a document's state; the order of `heads` does not matter.
pub fn state_hash(doc: &DocId, heads: &[ChangeHash]) -> StateHash {
    let mut sorted: Vec<&[u8]> = heads.iter().map(|h| h.0.as_slice()).collect();
    sorted.sort_unstable();
    let mut parts: Vec<&[u8]> = vec![b"outpost/doc-state/1", doc.as_str().as_bytes()];
    parts.extend(sorted);
    hash(&parts)
}

/// The unsalted fingerprint of a document's state, as `Done` confirms a
/// snapshot with: its receiver holds the state it names.
pub fn fingerprint(doc: &DocId, heads: &[ChangeHash]) -> Fingerprint {
    first_u64(&state_hash(doc, heads))
}

/// A state's fingerprint as the node with key `salt` sends it.
fn salted(salt: &[u8], state: &StateHash) -> Fingerprint {
    first_u64(&hash(&[b"outpost/doc-digest/2", salt, state]))
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
    items: BTreeMap<DocKey, BTreeMap<DocId, StateHash>>,
}

/// The reply to a message, and the documents of ours the peer lacks or
/// holds in another state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub reply: Vec<Part>,
    pub differing: Vec<DocId>,
    /// The part of `differing` that the peer holds no copy of at all.
    pub absent: Vec<DocId>,
    /// Documents both sides were shown to hold in the same state.
    pub agreed: Vec<DocId>,
}

impl Inventory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a document's current heads.
    pub fn set(&mut self, doc: &DocId, heads: &[ChangeHash]) {
        self.items.entry(doc_key(doc)).or_default().insert(doc.clone(), state_hash(doc, heads));
    }

    pub fn remove(&mut self, doc: &DocId) {
        let key = doc_key(doc);
        if let Some(at_key) = self.items.get_mut(&key) {
            at_key.remove(doc);
            if at_key.is_empty() {
                self.items.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.items.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every document held, with the hash of its state.
    pub fn iter(&self) -> impl Iterator<Item = (&DocId, &StateHash)> {
        self.items.values().flatten()
    }

    pub fn state_of(&self, doc: &DocId) -> Option<&StateHash> {
        self.items.get(&doc_key(doc)).and_then(|at_key| at_key.get(doc))
    }

    /// What this node reconciles with one peer: the documents `shown`
    /// lets it see, fingerprinted with this node's key `mine` for what it
    /// sends and with the peer's key `theirs` for what it receives.
    pub fn view(&self, mine: &[u8], theirs: &[u8], mut shown: impl FnMut(&DocId) -> bool) -> View {
        let mut items: BTreeMap<DocKey, Vec<ViewItem>> = BTreeMap::new();
        for (key, at_key) in &self.items {
            for (doc, state) in at_key.iter().filter(|(doc, _)| shown(doc)) {
                items.entry(*key).or_default().push(ViewItem {
                    doc: doc.clone(),
                    mine: salted(mine, state),
                    theirs: salted(theirs, state),
                });
            }
        }
        View { items }
    }
}

#[derive(Debug, Clone)]
struct ViewItem {
    doc: DocId,
    /// As this node sends it.
    mine: Fingerprint,
    /// As the peer sends it.
    theirs: Fingerprint,
}

/// The documents one peer may see, fingerprinted for the exchange with it.
#[derive(Debug, Clone, Default)]
pub struct View {
    items: BTreeMap<DocKey, Vec<ViewItem>>,
}

impl View {
    pub fn len(&self) -> usize {
        self.items.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn in_range(&self, first: DocKey, last: DocKey) -> impl Iterator<Item = (DocKey, &ViewItem)> {
        self.items.range(first..=last).flat_map(|(key, items)| items.iter().map(move |item| (*key, item)))
    }

    /// This node's summary of a range, as it sends it.
    pub fn summary(&self, first: DocKey, last: DocKey) -> RangeSummary {
        self.summarise(first, last, |item| item.mine)
    }

    fn summarise(&self, first: DocKey, last: DocKey, fp: impl Fn(&ViewItem) -> Fingerprint) -> RangeSummary {
        let (count, xor) = self.in_range(first, last).fold((0u32, 0u64), |(n, x), (_, item)| (n + 1, x ^ fp(item)));
        RangeSummary { first, last, count, xor }
    }

    /// The message that starts a reconciliation: the whole key space.
    pub fn opening(&self) -> Vec<Part> {
        vec![Part::Range(self.summary(0, DocKey::MAX))]
    }

    fn items_in(&self, first: DocKey, last: DocKey) -> Vec<(DocKey, Fingerprint)> {
        self.in_range(first, last).map(|(key, item)| (key, item.mine)).collect()
    }

    fn docs_in(&self, first: DocKey, last: DocKey) -> impl Iterator<Item = DocId> + '_ {
        self.in_range(first, last).map(|(_, item)| item.doc.clone())
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
                    let expected = self.summarise(theirs.first, theirs.last, |item| item.theirs);
                    if expected.count == theirs.count && expected.xor == theirs.xor {
                        step.agreed.extend(self.docs_in(theirs.first, theirs.last));
                        continue;
                    }
                    if expected.count <= LIST_AT_MOST || theirs.first == theirs.last {
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
                    let listed = items.iter().filter(|(k, _)| (*first..=*last).contains(k));
                    let theirs: BTreeSet<(DocKey, Fingerprint)> = listed.clone().copied().collect();
                    let keys: BTreeSet<DocKey> = listed.map(|(k, _)| *k).collect();
                    for (key, item) in self.in_range(*first, *last) {
                        if theirs.contains(&(key, item.theirs)) {
                            step.agreed.push(item.doc.clone());
                        } else {
                            step.differing.push(item.doc.clone());
                            // Another document under the same key may be
                            // what the peer holds: then it is not known to
                            // lack this one, only to differ.
                            if !keys.contains(&key) {
                                step.absent.push(item.doc.clone());
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
        for list in [&mut step.differing, &mut step.absent, &mut step.agreed] {
            list.sort();
            list.dedup();
        }
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

    const A: &[u8] = b"key of a";
    const B: &[u8] = b"key of b";

    /// Runs a whole reconciliation; returns what each side found to send
    /// and the bytes exchanged.
    fn reconcile(a: &Inventory, b: &Inventory) -> (BTreeSet<DocId>, BTreeSet<DocId>, usize, usize) {
        let (a, b) = (a.view(A, B, |_| true), b.view(B, A, |_| true));
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
    fn a_peer_that_echoes_our_opening_does_not_make_anything_look_agreed() {
        let mut a = Inventory::new();
        for n in 0..100 {
            a.set(&doc(n), &heads(1));
        }
        let view = a.view(A, B, |_| true);
        let step = view.step(&view.opening());
        assert!(step.agreed.is_empty(), "{:?}", step.agreed);
        // Nor does echoing the items we list.
        let listed = view.step(&[Part::Range(RangeSummary { first: 0, last: 1 << 58, count: 0, xor: 0 })]);
        let echoed: Vec<Part> = listed
            .reply
            .into_iter()
            .map(|p| match p {
                Part::Items { first, last, items, .. } => Part::Items { first, last, items, answer: true },
                other => other,
            })
            .collect();
        assert!(view.step(&echoed).agreed.is_empty());
        // A peer that holds the same states does agree, in one round.
        let theirs = a.view(B, A, |_| true);
        assert_eq!(view.step(&theirs.opening()).agreed.len(), 100);
    }

    #[test]
    fn documents_a_peer_may_not_see_leave_no_trace_in_its_digest() {
        let mut with_secret = Inventory::new();
        let mut without = Inventory::new();
        for n in 0..40 {
            with_secret.set(&doc(n), &heads(1));
            without.set(&doc(n), &heads(1));
        }
        let secret = DocId::parse("incidents/kg-torugart/2026-11").unwrap();
        with_secret.set(&secret, &heads(7));
        let filtered = with_secret.view(A, B, |d| *d != secret);
        let plain = without.view(A, B, |_| true);
        assert_eq!(filtered.opening(), plain.opening());
        let probe = [Part::Range(RangeSummary { first: 0, last: DocKey::MAX, count: 0, xor: 0 })];
        assert_eq!(filtered.step(&probe), plain.step(&probe));
        assert_eq!(filtered.len(), 40);
    }

    #[test]
    fn documents_whose_keys_collide_are_both_kept_and_both_reconciled() {
        let (first, second) = (doc(1), doc(2));
        let key = doc_key(&first);
        // The second id is planted under the first's key, as an insider
        // who searched 2^32 ids would.
        let plant = |inventory: &mut Inventory, d: &DocId, v: u8| {
            inventory.items.entry(key).or_default().insert(d.clone(), state_hash(d, &heads(v)));
        };
        let (mut a, mut b) = (Inventory::new(), Inventory::new());
        plant(&mut a, &first, 1);
        plant(&mut a, &second, 1);
        plant(&mut b, &first, 2);
        assert_eq!(a.len(), 2, "the second id does not replace the first");
        let (to_b, to_a, _, _) = reconcile(&a, &b);
        assert_eq!(to_b, BTreeSet::from([first.clone(), second.clone()]));
        assert_eq!(to_a, BTreeSet::from([first.clone()]));
        // Only the document whose key nobody else holds is known absent.
        let (va, vb) = (a.view(A, B, |_| true), b.view(B, A, |_| true));
        let listed = vb.step(&[Part::Range(RangeSummary { first: 0, last: DocKey::MAX, count: 9, xor: 9 })]);
        let step = va.step(&listed.reply);
        assert!(step.absent.is_empty(), "{:?}", step.absent);
        assert_eq!(a.state_of(&first), Some(&state_hash(&first, &heads(1))));
        a.remove(&first);
        assert_eq!(a.len(), 1, "removing one leaves the other under the same key");
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
