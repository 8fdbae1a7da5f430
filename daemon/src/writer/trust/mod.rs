//! Fleet trust on the writer: which identity this node writes with (its
//! roster entry wins over its config), the same admission an officer's
//! change meets as a peer's, and signing; where this node stands, for
//! `outpost status`. Rosters an administrator hands in (`roster`),
//! revocation (`revocation`) and the history written before fleet trust
//! (`legacy`) have their own files.

mod legacy;
mod revocation;
mod roster;

use automerge::Change;
use outpost_model::DocId;
use outpost_model::admission::{self, Reason, Standing};
use outpost_model::api::{ApiError, ErrorKind};
use outpost_model::replication::engine::Effect;
use outpost_model::replication::engine::Trust;
use outpost_model::trust::TrustError;
use outpost_model::trust::proof::sign_change;
use outpost_model::trust::roster::Member;

use super::{Writer, internal};
use crate::store::Batch;

/// A change this node made, with its signature, as a batch keeps it.
pub(super) type SignedChange = (DocId, automerge::ChangeHash, outpost_model::trust::proof::StoredProof);

/// Who this node writes as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub post: String,
    pub authority: String,
}

impl Writer {
    /// This node's own roster entry, if the roster it holds lists it.
    pub(super) fn own_member(&self) -> Option<&Member> {
        let key = self.settings.signer.public();
        self.replication.as_ref()?.engine.fleet()?.member(&key)
    }

    /// The name and authority this node writes with: its roster entry's,
    /// when it has one, else its config's.
    pub(super) fn identity(&self) -> Identity {
        match self.own_member() {
            Some(member) => Identity { post: member.name.clone(), authority: member.authority.clone() },
            None => Identity { post: self.settings.post.clone(), authority: self.settings.authority.clone() },
        }
    }

    /// Where the config and the roster entry disagree, in words.
    pub(super) fn identity_conflicts(&self) -> Vec<String> {
        let Some(member) = self.own_member() else { return Vec::new() };
        let mut out = Vec::new();
        if member.name != self.settings.post {
            out.push(format!(
                "the roster names this node {:?}; its config says {:?}; the roster's name is used",
                member.name, self.settings.post
            ));
        }
        if member.authority != self.settings.authority {
            out.push(format!(
                "the roster gives this node authority {}; its config says {}; the roster's is used",
                member.authority, self.settings.authority
            ));
        }
        out
    }

    pub(super) fn log_identity(&self) {
        for conflict in self.identity_conflicts() {
            tracing::warn!(conflict = %conflict, "configuration disagrees with the fleet roster");
        }
    }

    /// Checks the changes of an officer's write against the rules every
    /// other node will apply to them, and signs them into the batch.
    pub(super) fn admit_and_sign(&mut self, batch: &mut Batch) -> Result<(), ApiError> {
        let mut proofs = Vec::new();
        for (doc, stored) in &batch.changes {
            proofs.push(self.admit_and_sign_one(doc, stored)?);
        }
        batch.proofs.extend(proofs);
        Ok(())
    }

    /// Checks one change this node just made to `doc` (stored form) as
    /// every other node will, and signs it.
    pub(super) fn admit_and_sign_one(&self, doc: &DocId, stored: &[u8]) -> Result<SignedChange, ApiError> {
        let key = self.settings.signer.public();
        let engine = self.replication.as_ref().map(|r| &r.engine);
        let standing = match engine.filter(|e| matches!(e.trust(), Trust::Fleet { .. })) {
            None => Standing::Open,
            Some(engine) => match engine.fleet().and_then(|f| Some((f, f.member(&key)?))) {
                Some((fleet, member)) => Standing::Member { fleet, member },
                None => Standing::Unenrolled { name: &self.settings.post },
            },
        };
        let change = Change::from_bytes(stored.get(32..).unwrap_or_default().to_vec()).map_err(internal)?;
        let document = self.cache.loaded(doc)?;
        if let Err(reason) = admission::check_local(document, &change, standing) {
            return Err(refused_locally(doc, &reason));
        }
        Ok((doc.clone(), change.hash(), sign_change(&self.settings.signer, doc, &change.hash())))
    }

    pub(super) fn trust_report(&self) -> super::TrustReport {
        let held = self.quarantine.len();
        let conflicts = self.identity_conflicts();
        let Some(replication) = self.replication.as_ref() else {
            return super::TrustReport { mode: "off", held, conflicts, ..Default::default() };
        };
        let engine = &replication.engine;
        super::TrustReport {
            mode: engine.trust().as_str(),
            anchor: engine.trust().anchor(),
            fleet: engine.fleet().cloned(),
            member: self.own_member().cloned(),
            conflicts,
            held,
            attested: self.store.attested_counts().unwrap_or_else(|err| {
                tracing::error!(error = %err, "cannot read the counts of attested changes");
                Default::default()
            }),
        }
    }
}

fn replication_version(effects: &[Effect]) -> Option<u64> {
    effects.iter().find_map(|e| if let Effect::RosterInstalled { version, .. } = e { Some(*version) } else { None })
}

fn trust_error(err: TrustError) -> ApiError {
    ApiError::new(ErrorKind::BadInput, err.to_string())
}

fn refused_locally(doc: &DocId, reason: &Reason) -> ApiError {
    ApiError::new(
        ErrorKind::Forbidden,
        format!("this node may not make this change to {doc}: {reason}; every other member would refuse it"),
    )
}
