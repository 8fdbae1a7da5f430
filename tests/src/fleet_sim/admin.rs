//! The fleet's administrator in the simulator: holds the admin key and the
//! newest roster, and hands signed rosters to nodes, as `outpost fleet`
//! does at whichever post the administrator sits at. Which node gets which
//! version, and when, is the seed's: so versions reach nodes late and out
//! of order.

use outpost_model::trust::roster::{CutEntry, Member, Roster, SignedRoster};
use outpost_model::trust::{PublicKey, Signer};
use rand::Rng;
use rand::rngs::StdRng;

pub(super) struct Admin {
    signer: Signer,
    roster: Roster,
    /// Every version signed so far, oldest first.
    signed: Vec<Vec<u8>>,
}

/// What the administrator does to the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RosterChange {
    /// Enrols the node that started outside the roster.
    EnrolLate,
    /// Revokes the byzantine node, with the cut the chosen node knows.
    RevokeByzantine,
    /// Hands an old version to a node, as a courier with a stale copy
    /// would: it must be ignored.
    Stale,
}

impl Admin {
    pub(super) fn new(rng: &mut StdRng, members: Vec<Member>) -> Self {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret[..]);
        let signer = Signer::from_secret(secret);
        let mut roster = Roster::default();
        for member in members {
            roster = roster.enroll(member).expect("a valid member");
        }
        let mut admin = Self { signer, roster, signed: Vec::new() };
        admin.sign();
        admin
    }

    pub(super) fn anchor(&self) -> PublicKey {
        self.signer.public()
    }

    fn sign(&mut self) -> Vec<u8> {
        let bytes = SignedRoster::sign(&self.roster, &self.signer, Vec::new())
            .and_then(|s| s.encode())
            .expect("a roster that signs");
        self.signed.push(bytes.clone());
        bytes
    }

    pub(super) fn current(&self) -> Vec<u8> {
        self.signed.last().cloned().unwrap_or_default()
    }

    pub(super) fn enroll(&mut self, member: Member) -> Vec<u8> {
        self.roster = self.roster.enroll(member).expect("an enrolment the roster takes");
        self.sign()
    }

    /// `key`'s entry in the newest roster.
    pub(super) fn member(&self, key: &PublicKey) -> Option<Member> {
        self.roster.member(key).cloned()
    }

    pub(super) fn revoke(&mut self, key: &PublicKey, cut: Vec<CutEntry>) -> Vec<u8> {
        self.roster = self.roster.revoke(key, cut).expect("a member to revoke");
        self.sign()
    }

    /// A version older than the newest, if there is one.
    pub(super) fn stale(&self, rng: &mut StdRng) -> Option<Vec<u8>> {
        let older = self.signed.len().checked_sub(1)?;
        (older > 0).then(|| self.signed[rng.random_range(0..older)].clone())
    }

    /// Whether `key` is revoked in the roster `bytes` (a frame's roster).
    pub(super) fn revokes(&self, bytes: &[u8], key: &PublicKey) -> bool {
        outpost_model::trust::Fleet::verify(bytes, &self.anchor())
            .ok()
            .and_then(|fleet| fleet.member(key).map(|m| !m.is_active()))
            .unwrap_or(false)
    }
}
