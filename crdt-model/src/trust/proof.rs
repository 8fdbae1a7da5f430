//! Proofs that a change may be applied: the author's signature, or an
//! honest member's attestation that it admitted the change (for a revoked
//! member's changes that slipped in before the revocation was known).
//!
//! A proof signs the change's hash, which commits to the change's whole
//! history, and the document's id. One proof over an actor's newest change
//! in a message therefore vouches for that actor's earlier changes in it,
//! which is how a bundle of thousands of changes carries a handful of
//! signatures.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, Change, ChangeHash};
use serde::{Deserialize, Serialize};

use super::keys::{Signature, Signer};
use crate::ids::DocId;

const CHANGE_DOMAIN: &[u8] = b"outpost/change/1\0";
const ATTEST_DOMAIN: &[u8] = b"outpost/attest/1\0";

/// A proof as stored beside a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProof {
    /// `None`: signed by the change's author. `Some(prefix)`: an
    /// attestation by the member whose actor prefix this is.
    pub attester: Option<[u8; 16]>,
    pub signature: Signature,
}

/// A proof as it travels with the changes of a sync message or bundle:
/// which change it is over, named by its actor (an index into the sorted
/// distinct actors of the changes carried) and sequence number, so the
/// frame need not carry the hash, which the receiver computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub actor: u16,
    pub seq: u64,
    pub attester: Option<[u8; 16]>,
    pub signature: Signature,
}

/// What an author signs for a change of `doc`.
pub fn change_message(doc: &DocId, hash: &ChangeHash) -> Vec<u8> {
    [CHANGE_DOMAIN, doc.as_str().as_bytes(), b"\0", &hash.0].concat()
}

/// What an attester signs for a change of `doc` it admitted.
pub fn attest_message(doc: &DocId, hash: &ChangeHash) -> Vec<u8> {
    [ATTEST_DOMAIN, doc.as_str().as_bytes(), b"\0", &hash.0].concat()
}

/// The author's proof of its own change.
pub fn sign_change(signer: &Signer, doc: &DocId, hash: &ChangeHash) -> StoredProof {
    StoredProof { attester: None, signature: signer.sign(&change_message(doc, hash)) }
}

/// An attestation, by `signer`, that it admitted the change.
pub fn attest(signer: &Signer, doc: &DocId, hash: &ChangeHash) -> StoredProof {
    StoredProof { attester: Some(signer.public().actor_prefix()), signature: signer.sign(&attest_message(doc, hash)) }
}

/// The proofs to send with `changes`: every stored proof over each
/// actor's newest change among them, which covers that actor's earlier
/// ones, and every attestation over the others (an attestation made when
/// a node learned of a revocation names the newest change it held then,
/// which need not be the newest sent). `stored` gives the proofs kept
/// beside a change.
pub fn wire_proofs(changes: &[Change], mut stored: impl FnMut(&ChangeHash) -> Vec<StoredProof>) -> Vec<Proof> {
    let actors = actor_list(changes);
    let mut newest: BTreeMap<usize, u64> = BTreeMap::new();
    for change in changes {
        let Ok(at) = actors.binary_search(change.actor_id()) else { continue };
        let top = newest.entry(at).or_insert(change.seq());
        *top = (*top).max(change.seq());
    }
    let mut proofs = Vec::new();
    for change in changes {
        let Ok(at) = actors.binary_search(change.actor_id()) else { continue };
        let Ok(actor) = u16::try_from(at) else { continue };
        let is_newest = newest.get(&at) == Some(&change.seq());
        for proof in stored(&change.hash()) {
            if is_newest || proof.attester.is_some() {
                proofs.push(Proof { actor, seq: change.seq(), attester: proof.attester, signature: proof.signature });
            }
        }
    }
    proofs
}

/// The sorted distinct actors of `changes`: what a [`Proof`]'s actor
/// indexes.
pub(crate) fn actor_list(changes: &[Change]) -> Vec<ActorId> {
    let set: BTreeSet<ActorId> = changes.iter().map(|c| c.actor_id().clone()).collect();
    set.into_iter().collect()
}
