//! Proofs that a change may be applied: the author's signature, or an
//! honest member's attestation that it admitted the change (for a revoked
//! member's changes that slipped in before the revocation was known).
//!
//! A proof signs the change's hash, which commits to the change's whole
//! history, and the document's id. One proof over an actor's newest change
//! in a message therefore vouches for that actor's earlier changes in it,
//! which is how a bundle of thousands of changes carries a handful of
//! signatures.

use automerge::ChangeHash;
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
