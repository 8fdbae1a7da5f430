//! Fleet trust: the signed roster of members, their keys and rights, and
//! the proofs (signatures, attestations) every change carries.
//!
//! - [`keys`]: ed25519 keys, libp2p peer ids, actor prefixes, signing.
//! - [`roster`]: the roster the admin key signs, and the rules by which a
//!   newer one replaces an older one.
//! - [`policy`]: which part of which document a member may write.
//! - [`readers`]: which documents a member may receive (need-to-know).
//! - [`proof`]: what a change's signature or attestation signs, as stored
//!   and as it travels.
//! - [`attest`]: a node's attestations of a revoked member's changes it
//!   admitted before it knew of the revocation.
//!
//! Pure: the model reads no key file and draws no key; callers pass the
//! secret bytes in.

pub mod attest;
pub mod keys;
pub mod policy;
pub mod proof;
pub mod readers;
pub mod roster;

use thiserror::Error;

pub use keys::{PublicKey, Signature, Signer};
pub use roster::{Fleet, Member, Right, Role, Roster, SignedRoster};

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustError {
    #[error("bad key: {0}")]
    BadKey(String),
    #[error("{peer:?} is not a peer id: {reason}")]
    BadPeerId { peer: String, reason: String },
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("invalid roster: {0}")]
    Invalid(String),
    #[error("roster version {offered} is not newer than version {held}, which this node holds")]
    NotNewer { offered: u64, held: u64 },
    #[error("{0} is not a member of the fleet")]
    NotMember(String),
}

impl From<crate::error::ValidationError> for TrustError {
    fn from(err: crate::error::ValidationError) -> Self {
        TrustError::Invalid(err.to_string())
    }
}
