//! The one admission path: whether changes may be applied to a document.
//!
//! Changes received in a sync message, in a bundle, or held in quarantine
//! all pass [`admit`]; an officer's own change passes [`check_local`],
//! which applies the same rules to a change this node just made. The
//! checks, per change, in causal order:
//!
//! - **size** was bounded before the changes were parsed
//!   ([`crate::replication::received`]);
//! - **equivocation**: one actor, one sequence number, one change;
//! - **signer**: the change's actor is bound to a roster member (derived
//!   from its key, or listed as a legacy actor); an unknown signer waits
//!   in quarantine, since this node's roster may be the older one;
//! - **signature**: a valid proof by that member covers the change: over
//!   it, or over a later change of the same member in the same batch whose
//!   hash commits to it;
//! - **revocation**: a revoked member's change counts only inside the
//!   revocation's cut ([`cut`]), or when an active member attests it
//!   admitted it before it learned of the revocation (the author's own
//!   signature is needed all the same);
//! - **rights**: the member may write this document ([`policy::scope`]),
//!   and every operation stays inside what it may write, a new record
//!   under an id made for the document's owner ([`fields`]);
//! - **dependencies**: a change that depends on a refused one is refused;
//!   one whose dependencies are missing (an orphan) is held, unjudged and
//!   its proofs unchecked, and judged once they arrive: Automerge itself
//!   never holds an orphan, so what it would queue in memory is stored,
//!   within the quarantine's bounds, and never acknowledged to a sender
//!   until it applies. Changes are judged in causal order ([`order`]).
//!
//! The schema check (records still read after applying) needs the
//! changes applied; the caller applies the admitted ones, checks the
//! records each touched ([`Verdict::touched`]) and, if one no longer
//! reads, calls [`admit`] again with the culprits excluded.

mod cut;
mod fields;
mod order;

use cut::Cuts;
use fields::NewIds;
use order::causal_order;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::{ActorId, Change, ChangeHash};

use crate::schema::Document;
use crate::trust::policy::{self, Scope};
use crate::trust::proof::{Proof, StoredProof, actor_list, attest_message, change_message};
use crate::trust::roster::{Fleet, Member};

/// What changes are judged by.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'a> {
    /// No roster: every holder of the fleet key counts as a full member
    /// (`--psk-only`). The rules that keep a document whole still apply: no
    /// change to its root, no record replaced or deleted, every record
    /// readable.
    Open,
    /// Judged by this roster. `newer_known`: a peer announced a newer
    /// roster, so a change refused here only for its signer's rights waits
    /// instead, as the newer roster may grant them.
    Fleet { fleet: &'a Fleet, newer_known: bool },
}

/// Changes as they arrived, with the proofs that came with them.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub changes: Vec<Change>,
    pub proofs: &'a [Proof],
}

/// Why a change was not applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Its author signed two changes with one sequence number.
    Equivocation,
    /// It claims the actor of the document's deterministic genesis.
    NotGenesis,
    /// No roster member writes with its actor (it waits).
    UnknownSigner,
    /// No valid proof by its author covers it.
    Unsigned,
    /// A proof came with it, and does not verify.
    BadSignature,
    /// Its author may not write this document.
    NotAllowed(String),
    /// An operation reaches beyond what its author may write.
    Field(String),
    /// Its author was revoked, and it is outside the revocation's cut with
    /// no attestation.
    Revoked,
    /// Its author was revoked and the change the cut names is not here yet
    /// (it waits).
    CutUnknown,
    /// It depends on a change that was refused.
    Dependency,
    /// Applied, it left a record unreadable.
    Schema(String),
    /// Its batch's proofs cover one another in a chain too long to settle.
    Tangled,
    /// It depends on a change this node does not hold yet (it waits, and
    /// is judged once that arrives).
    MissingDependencies,
    /// Its sequence number does not follow its author's last change here
    /// (a gap, or a number already taken), or it names an author out of
    /// place: Automerge's change graph assumes neither happens.
    Sequence,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Equivocation => f.write_str("its author signed two changes with one sequence number"),
            Reason::NotGenesis => f.write_str("it claims the document's genesis actor"),
            Reason::UnknownSigner => f.write_str("no roster member writes with its actor"),
            Reason::Unsigned => f.write_str("no valid signature by its author covers it"),
            Reason::BadSignature => f.write_str("its signature does not verify"),
            Reason::NotAllowed(what) => write!(f, "its author may not write {what}"),
            Reason::Field(what) => write!(f, "its author {what}"),
            Reason::Revoked => f.write_str("its author was revoked and no member attests it"),
            Reason::CutUnknown => f.write_str("its author was revoked and the change the cut names is not here yet"),
            Reason::Dependency => f.write_str("it depends on a refused change"),
            Reason::Schema(what) => write!(f, "it leaves a record unreadable: {what}"),
            Reason::Tangled => {
                f.write_str("its batch's signatures cover one another in a chain no honest sender makes")
            }
            Reason::MissingDependencies => f.write_str("it depends on a change this node does not hold yet"),
            Reason::Sequence => f.write_str("its sequence number does not follow its author's previous change"),
        }
    }
}

impl Reason {
    /// The short name a counter is kept under.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Equivocation => "equivocation",
            Reason::NotGenesis => "not-genesis",
            Reason::UnknownSigner => "unknown-signer",
            Reason::Unsigned => "unsigned",
            Reason::BadSignature => "bad-signature",
            Reason::NotAllowed(_) => "not-allowed",
            Reason::Field(_) => "field",
            Reason::Revoked => "revoked",
            Reason::CutUnknown => "cut-unknown",
            Reason::Dependency => "dependency",
            Reason::Schema(_) => "schema",
            Reason::Tangled => "tangled",
            Reason::MissingDependencies => "missing-dependencies",
            Reason::Sequence => "sequence",
        }
    }

    /// A refusal that an honest peer may cause, so it does not count
    /// against the peer. A missing proof happens when a sync round resends
    /// a change without the later change whose proof covers it; a change
    /// beyond a revocation's cut comes from a peer that admitted it before
    /// it learned of the revocation; a dependent follows its parent. A
    /// right refused may be a node's own writes from before its enrolment
    /// (its own incident log under a name the roster did not give it), or
    /// come from the other side of two rosters published with one version:
    /// counted, never a strike. A proof that does not verify, a field or
    /// record broken is never honest.
    pub fn may_be_honest(&self) -> bool {
        matches!(
            self,
            Reason::UnknownSigner
                | Reason::Unsigned
                | Reason::NotAllowed(_)
                | Reason::CutUnknown
                | Reason::Revoked
                | Reason::Dependency
                | Reason::MissingDependencies
        )
    }
}

/// A change held back until a newer roster, or the change a cut names,
/// may let it in: the change, the proofs over it, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub change: Change,
    pub proofs: Vec<StoredProof>,
    pub reason: Reason,
    /// The newest roster version the node it came from had announced:
    /// while that is newer than the roster this node holds, a change
    /// refused only for its author's rights waits rather than being
    /// refused, since the newer roster may grant them.
    pub announced: u64,
}

/// What [`admit`] decided.
#[derive(Debug, Default)]
pub struct Verdict {
    /// In causal order, ready to apply.
    pub admitted: Vec<Change>,
    /// Proofs over admitted changes, to store beside them.
    pub proofs: Vec<(ChangeHash, StoredProof)>,
    /// The records each admitted change touches.
    pub touched: BTreeMap<ChangeHash, BTreeSet<String>>,
    pub rejected: Vec<(ChangeHash, ActorId, Reason)>,
    pub held: Vec<Held>,
    /// Changes whose dependencies are missing: neither applied nor
    /// refused, but held (in [`Verdict::held`], for
    /// [`Reason::MissingDependencies`]).
    pub waiting: usize,
    /// Admitted changes of revoked members beyond their cuts, let in by
    /// an attestation.
    pub attested: BTreeSet<ChangeHash>,
    /// Proofs that named a member and did not verify under its key: no
    /// honest node sends one.
    pub bad_proofs: usize,
}

impl Verdict {
    pub fn admitted_hashes(&self) -> BTreeSet<ChangeHash> {
        self.admitted.iter().map(Change::hash).collect()
    }
}

/// Who makes a local change, as far as this node knows.
#[derive(Debug, Clone, Copy)]
pub enum Standing<'a> {
    /// No roster is asked for (`--psk-only`, or no admin key): the rules
    /// that keep a document whole, nothing more.
    Open,
    /// This node's entry in the roster it holds (perhaps revoked).
    Member { fleet: &'a Fleet, member: &'a Member },
    /// Configured with an admin key, but not on the roster it holds (or it
    /// holds none yet): it writes what any post may, its own incident log
    /// under the name `name`, since whatever else it wrote would be refused
    /// by the fleet once it is enrolled with a post's rights.
    Unenrolled { name: &'a str },
}

/// Checks a change this node just made (already in `doc`) by the rules a
/// received one meets, so that no node accepts from an officer what every
/// other node would refuse.
pub fn check_local(doc: &Document, change: &Change, standing: Standing<'_>) -> Result<(), Reason> {
    let scope = match standing {
        Standing::Open => Scope::Records,
        Standing::Member { member, .. } if !member.is_active() => {
            return Err(Reason::NotAllowed("anything: this node was revoked from the fleet".into()));
        }
        Standing::Member { fleet, member } => policy::scope(fleet, member, &member.rights, doc.kind()),
        Standing::Unenrolled { name } => match doc.kind() {
            crate::schema::DocKind::Incidents { post, .. } if post == name => Scope::Records,
            crate::schema::DocKind::Audit { post, .. } if post == name => Scope::Append,
            _ => {
                return Err(Reason::NotAllowed(format!(
                    "{}: this node is not on the fleet roster yet, and until it is enrolled it writes only its own incident log",
                    doc.id()
                )));
            }
        },
    };
    if scope == Scope::Nothing {
        return Err(Reason::NotAllowed(doc.id().to_string()));
    }
    let ids = if matches!(standing, Standing::Open) { NewIds::Any } else { NewIds::Owned };
    fields::check(doc, &fields::Made::default(), change, (scope, ids)).map(|_| ()).map_err(Reason::Field)
}

/// Decides which of `incoming` may be applied to `doc`. Changes `doc`
/// already holds are skipped; `excluded` are refused for the reason given
/// (the schema check's culprits, on a second pass).
pub fn admit(
    doc: &mut Document,
    incoming: Incoming<'_>,
    authority: &Authority<'_>,
    excluded: &BTreeMap<ChangeHash, Reason>,
) -> Verdict {
    let batch = Batch::new(doc, incoming);
    let proofs = batch.verify_proofs(authority);
    let mut excluded = excluded.clone();
    // A change let in only by a proof over a change that is itself refused
    // could never be proven to another node: refuse it too, and judge
    // again, until nothing changes. An honest batch settles in one or two
    // rounds; one that would take more was built to make this node work,
    // and nothing of it is taken.
    for _ in 0..MAX_ROUNDS {
        let verdict = batch.judge(doc, authority, &proofs, &excluded);
        let orphaned = batch.unproven(authority, &proofs, &verdict);
        if orphaned.is_empty() {
            return batch.finish(verdict, &proofs);
        }
        excluded.extend(orphaned.into_iter().map(|h| (h, Reason::Unsigned)));
    }
    let rejected =
        batch.order.iter().map(|hash| (*hash, batch.changes[hash].actor_id().clone(), Reason::Tangled)).collect();
    Verdict { rejected, waiting: batch.missing.len(), ..Verdict::default() }
}

/// Whether `change` takes the next sequence number of its actor, after
/// the document's changes and `last_seq` (the batch's admitted ones), and
/// names an author (Automerge's author footer), if at all, only on its
/// actor's first change: Automerge asserts both.
fn takes_next_seq(doc: &mut Document, last_seq: &BTreeMap<ActorId, u64>, change: &Change) -> bool {
    let last = match last_seq.get(change.actor_id()) {
        Some(seq) => *seq,
        None => doc.seq_of(change.actor_id()),
    };
    let author_in_place = crate::error::guard(|| change.author().is_none()).unwrap_or(false) || change.seq() == 1;
    change.seq() == last.saturating_add(1) && author_in_place
}

/// Which ids `change` may create records under: ids tagged for the
/// document's owner, or, for history written before fleet trust (a legacy
/// actor), ids older than the admin's binding of it; any, when no roster
/// is asked for.
fn new_ids(authority: &Authority<'_>, change: &Change) -> NewIds {
    let Authority::Fleet { fleet, .. } = authority else { return NewIds::Any };
    let actor = change.actor_id().to_bytes();
    match fleet.member_of_actor(actor) {
        Some(member) if actor.get(..16) != Some(member.key.actor_prefix().as_slice()) => {
            NewIds::OlderThan(member.legacy_until_ms)
        }
        _ => NewIds::Owned,
    }
}

/// Proofs kept with one held change.
const MAX_HELD_PROOFS: usize = 16;

/// Rounds of judging one batch at most; see [`admit`].
const MAX_ROUNDS: usize = 8;

/// The new changes of one admission, indexed.
struct Batch {
    doc_id: crate::ids::DocId,
    /// New changes by hash.
    changes: BTreeMap<ChangeHash, Change>,
    /// Causal order of the new changes whose dependencies are all here.
    order: Vec<ChangeHash>,
    /// New changes with a dependency neither here nor in the document.
    missing: BTreeSet<ChangeHash>,
    /// Changes that share their actor and sequence number with another in
    /// the batch, with the others.
    equivocating: BTreeMap<ChangeHash, Vec<ChangeHash>>,
    proofs: Vec<(ChangeHash, StoredProof)>,
}

/// Which proofs verified, and what they cover.
#[derive(Debug, Default)]
struct Proven {
    /// Valid author proofs: the change they sign, and the member's key.
    author: Vec<(ChangeHash, crate::trust::PublicKey)>,
    /// Valid attestations: the change they sign.
    attested: Vec<ChangeHash>,
    /// The proofs that verified: (change, attester, signature).
    valid: BTreeSet<(ChangeHash, Option<[u8; 16]>, [u8; 64])>,
    /// Changes a proof came with that did not verify under the key of the
    /// member it names.
    bad: BTreeSet<ChangeHash>,
    /// How many proofs did not verify.
    bad_proofs: usize,
}

impl Batch {
    fn new(doc: &mut Document, incoming: Incoming<'_>) -> Self {
        let actors = actor_list(&incoming.changes);
        let mut by_actor_seq: BTreeMap<(usize, u64), Vec<ChangeHash>> = BTreeMap::new();
        let mut changes = BTreeMap::new();
        for change in incoming.changes {
            let hash = change.hash();
            if let Ok(at) = actors.binary_search(change.actor_id()) {
                let slot = by_actor_seq.entry((at, change.seq())).or_default();
                if !slot.contains(&hash) {
                    slot.push(hash);
                }
            }
            if !doc.knows(&[hash]) {
                changes.insert(hash, change);
            }
        }
        let equivocating: BTreeMap<ChangeHash, Vec<ChangeHash>> = by_actor_seq
            .values()
            .filter(|hashes| hashes.len() > 1)
            .flat_map(|hashes| hashes.iter().map(|h| (*h, hashes.clone())))
            .collect();
        // A copy of a proof proves nothing more and would cost a signature
        // check. (Only exact copies go: of two different proofs by one
        // signer, the bad one must not hide the good.)
        let mut seen = BTreeSet::new();
        // A proof names its change by (actor, seq); where two changes share
        // those, it is tried on both.
        let proofs = incoming
            .proofs
            .iter()
            .flat_map(|p| {
                let hashes = by_actor_seq.get(&(usize::from(p.actor), p.seq)).cloned().unwrap_or_default();
                hashes.into_iter().map(move |hash| (hash, StoredProof { attester: p.attester, signature: p.signature }))
            })
            .filter(|(hash, p)| changes.contains_key(hash) && seen.insert((*hash, p.attester, p.signature.to_bytes())))
            .collect();
        let (order, missing) = causal_order(doc, &changes);
        Self { doc_id: doc.id().clone(), changes, order, missing, equivocating, proofs }
    }

    fn verify_proofs(&self, authority: &Authority<'_>) -> Proven {
        let mut proven = Proven::default();
        let Authority::Fleet { fleet, .. } = authority else { return proven };
        // An orphan is judged, and its proofs checked, only once what it
        // depends on has arrived.
        for (hash, proof) in self.proofs.iter().filter(|(hash, _)| !self.missing.contains(hash)) {
            let Some(change) = self.changes.get(hash) else { continue };
            let Some(author) = fleet.member_of_actor(change.actor_id().to_bytes()) else { continue };
            let verified = match proof.attester {
                None => author.key.verifies(&change_message(&self.doc_id, hash), &proof.signature),
                Some(prefix) => {
                    // Attestations count only for a revoked member's
                    // changes, and only from an active member that writes:
                    // others are not checked at all (an attester this
                    // roster does not know, or no longer counts, may be
                    // honest; its attestation just proves nothing here).
                    let attester = fleet
                        .member_with_prefix(&prefix)
                        .filter(|m| m.is_active() && m.role != crate::trust::Role::Observer && m.key != author.key);
                    let Some(attester) = attester.filter(|_| !author.is_active()) else { continue };
                    attester.key.verifies(&attest_message(&self.doc_id, hash), &proof.signature)
                }
            };
            if !verified {
                // Tried on a change that shares its (actor, seq) with
                // another, a proof meant for the other fails: no fault.
                if !self.equivocating.contains_key(hash) {
                    proven.bad.insert(*hash);
                    proven.bad_proofs += 1;
                }
                continue;
            }
            proven.valid.insert((*hash, proof.attester, proof.signature.to_bytes()));
            match proof.attester {
                None => proven.author.push((*hash, author.key)),
                Some(_) => proven.attested.push(*hash),
            }
        }
        proven
    }

    /// The new changes reachable from `starts` through dependencies (the
    /// starts included) that satisfy `keep`.
    fn ancestors(
        &self,
        starts: impl IntoIterator<Item = ChangeHash>,
        keep: impl Fn(&Change) -> bool,
    ) -> BTreeSet<ChangeHash> {
        let mut seen = BTreeSet::new();
        let mut out = BTreeSet::new();
        let mut queue: VecDeque<ChangeHash> = starts.into_iter().collect();
        while let Some(hash) = queue.pop_front() {
            if !seen.insert(hash) {
                continue;
            }
            let Some(change) = self.changes.get(&hash) else { continue };
            if keep(change) {
                out.insert(hash);
            }
            queue.extend(change.deps().iter().copied());
        }
        out
    }

    /// Changes an author proof covers, by the member's key; and changes an
    /// attestation covers. Only proofs over changes in `over` count.
    fn coverage(
        &self,
        fleet: &Fleet,
        proven: &Proven,
        over: impl Fn(&ChangeHash) -> bool,
    ) -> (BTreeSet<ChangeHash>, BTreeSet<ChangeHash>) {
        let mut by_member: BTreeMap<crate::trust::PublicKey, Vec<ChangeHash>> = BTreeMap::new();
        for (hash, key) in proven.author.iter().filter(|(h, _)| over(h)) {
            by_member.entry(*key).or_default().push(*hash);
        }
        let mut authored = BTreeSet::new();
        for (key, starts) in by_member {
            let same_member = |c: &Change| fleet.member_of_actor(c.actor_id().to_bytes()).is_some_and(|m| m.key == key);
            authored.extend(self.ancestors(starts, same_member));
        }
        let attested = self.ancestors(proven.attested.iter().copied().filter(|h| over(h)), |_| true);
        (authored, attested)
    }

    fn judge(
        &self,
        doc: &mut Document,
        authority: &Authority<'_>,
        proven: &Proven,
        excluded: &BTreeMap<ChangeHash, Reason>,
    ) -> Verdict {
        let mut verdict = Verdict::default();
        let (authored, attested) = match authority {
            Authority::Fleet { fleet, .. } => self.coverage(fleet, proven, |_| true),
            Authority::Open => Default::default(),
        };
        let signed = |hash: &ChangeHash| matches!(authority, Authority::Open) || authored.contains(hash);
        let genesis_actor = doc.genesis_actor();
        let genesis: BTreeSet<ChangeHash> = doc.genesis_heads().iter().copied().collect();
        let mut made = fields::Made::default();
        let mut cuts = Cuts::default();
        // How each change fared, so that its dependents follow it.
        let mut fate: BTreeMap<ChangeHash, Fate> = BTreeMap::new();
        // Each actor's last sequence number once this batch's admitted
        // changes are applied: Automerge numbers an actor's changes 1, 2,
        // 3, ... and its change graph panics on anything else (fuzzing
        // finding F2, F3), so a change must take exactly the next number.
        let mut last_seq: BTreeMap<ActorId, u64> = BTreeMap::new();
        for hash in &self.order {
            let change = &self.changes[hash];
            let inherited = change.deps().iter().filter_map(|d| fate.get(d)).max().copied();
            let judged = match (excluded.get(hash), inherited) {
                (Some(reason), _) => Err((Fate::Rejected, reason.clone())),
                (None, Some(Fate::Rejected)) => Err((Fate::Rejected, Reason::Dependency)),
                (None, Some(Fate::Held)) => Err((Fate::Held, Reason::Dependency)),
                _ if *change.actor_id() == genesis_actor => {
                    if genesis.contains(hash) {
                        Ok(Scope::Nothing)
                    } else {
                        Err((Fate::Rejected, Reason::NotGenesis))
                    }
                }
                // Two changes with one sequence number are the author's
                // fork only if the author signed both: a forged copy beside
                // a real change is judged (and refused) as unsigned, and
                // the real one goes on.
                _ if signed(hash)
                    && (self
                        .equivocating
                        .get(hash)
                        .is_some_and(|group| group.iter().filter(|h| signed(h)).count() > 1)
                        || doc.seq_of(change.actor_id()) >= change.seq()) =>
                {
                    Err((Fate::Rejected, Reason::Equivocation))
                }
                // The sequence rule comes after the signature and rights: a
                // forged copy of a taken number is refused as unsigned, as
                // before, and only what its author signed out of sequence
                // is refused for its number (never honest: a strike).
                _ => self
                    .scope_of(doc, authority, proven, (&authored, &attested), &mut cuts, change, &mut verdict)
                    .and_then(|scope| {
                        if takes_next_seq(doc, &last_seq, change) {
                            Ok(scope)
                        } else {
                            Err((Fate::Rejected, Reason::Sequence))
                        }
                    }),
            };
            let outcome = judged.and_then(|scope| {
                if *change.actor_id() == genesis_actor {
                    return Ok(fields::Effects::default());
                }
                fields::check(doc, &made, change, (scope, new_ids(authority, change)))
                    .map_err(|e| (Fate::Rejected, Reason::Field(e)))
            });
            match outcome {
                Ok(mut effects) => {
                    effects.keep_objects(&mut made);
                    verdict.touched.insert(*hash, std::mem::take(&mut effects.touched));
                    verdict.admitted.push(change.clone());
                    fate.insert(*hash, Fate::Admitted);
                    last_seq.insert(change.actor_id().clone(), change.seq());
                }
                Err((Fate::Held, reason)) => {
                    verdict.held.push(self.held(change, reason));
                    fate.insert(*hash, Fate::Held);
                }
                Err((_, reason)) => {
                    verdict.rejected.push((*hash, change.actor_id().clone(), reason));
                    fate.insert(*hash, Fate::Rejected);
                }
            }
        }
        verdict.waiting = self.missing.len();
        for change in self.missing.iter().filter_map(|hash| self.changes.get(hash)) {
            verdict.held.push(self.held(change, Reason::MissingDependencies));
        }
        verdict
    }

    /// `change`, to hold. What waits cannot be checked yet: a few proofs
    /// per change are kept, so that a sender cannot fill the quarantine
    /// with them.
    fn held(&self, change: &Change, reason: Reason) -> Held {
        let hash = change.hash();
        let proofs = self.proofs.iter().filter(|(h, _)| *h == hash).map(|(_, p)| *p).take(MAX_HELD_PROOFS).collect();
        Held { change: change.clone(), proofs, reason, announced: 0 }
    }

    /// The scope a change's author writes it with, or why it is not let in.
    #[allow(clippy::too_many_arguments)]
    fn scope_of(
        &self,
        doc: &mut Document,
        authority: &Authority<'_>,
        proven: &Proven,
        (authored, attested): (&BTreeSet<ChangeHash>, &BTreeSet<ChangeHash>),
        cuts: &mut Cuts,
        change: &Change,
        verdict: &mut Verdict,
    ) -> Result<Scope, (Fate, Reason)> {
        let Authority::Fleet { fleet, newer_known } = authority else { return Ok(Scope::Records) };
        let hash = change.hash();
        let Some(member) = fleet.member_of_actor(change.actor_id().to_bytes()) else {
            return Err((Fate::Held, Reason::UnknownSigner));
        };
        let unsigned = || if proven.bad.contains(&hash) { Reason::BadSignature } else { Reason::Unsigned };
        // The author's own signature is needed in every case: an
        // attestation vouches that a change was admitted before a
        // revocation was known, never for who wrote it, so that no member
        // can pass off changes of its own making as a revoked member's.
        if !authored.contains(&hash) {
            return Err((Fate::Rejected, unsigned()));
        }
        if let Some(revocation) = &member.revoked {
            match cuts.inside(doc, self, &revocation.cut, change) {
                None => return Err((Fate::Held, Reason::CutUnknown)),
                Some(true) => {}
                Some(false) if attested.contains(&hash) => {
                    verdict.attested.insert(hash);
                }
                Some(false) => return Err((Fate::Rejected, Reason::Revoked)),
            }
        }
        match policy::scope(fleet, member, &member.rights, doc.kind()) {
            Scope::Nothing => {
                let reason = Reason::NotAllowed(self.doc_id.to_string());
                Err((if *newer_known { Fate::Held } else { Fate::Rejected }, reason))
            }
            scope => Ok(scope),
        }
    }

    /// Admitted changes that only a proof over a refused change covered:
    /// the author's signature, or, beyond a revocation's cut, the
    /// attestation.
    fn unproven(&self, authority: &Authority<'_>, proven: &Proven, verdict: &Verdict) -> Vec<ChangeHash> {
        let Authority::Fleet { fleet, .. } = authority else { return Vec::new() };
        let admitted = verdict.admitted_hashes();
        let (authored, attested) = self.coverage(fleet, proven, |h| admitted.contains(h));
        verdict
            .admitted
            .iter()
            .filter(|c| {
                let hash = c.hash();
                match fleet.member_of_actor(c.actor_id().to_bytes()) {
                    Some(_) => {
                        !authored.contains(&hash) || (verdict.attested.contains(&hash) && !attested.contains(&hash))
                    }
                    None => false,
                }
            })
            .map(Change::hash)
            .collect()
    }

    /// The proofs to keep: every one that verified over an admitted change
    /// (a bad one beside it is dropped alone, so a relay cannot strip an
    /// honest change of its proof by adding garbage).
    fn finish(&self, mut verdict: Verdict, proven: &Proven) -> Verdict {
        let admitted = verdict.admitted_hashes();
        verdict.proofs = self
            .proofs
            .iter()
            .filter(|(hash, proof)| {
                admitted.contains(hash) && proven.valid.contains(&(*hash, proof.attester, proof.signature.to_bytes()))
            })
            .copied()
            .collect();
        verdict.bad_proofs = proven.bad_proofs;
        verdict
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    Admitted,
    Held,
    Rejected,
}
