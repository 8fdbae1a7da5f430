//! Fleet trust on the writer: which identity this node writes with (its
//! roster entry wins over its config), the same admission an officer's
//! change meets as a peer's, signing, rosters an administrator publishes,
//! the history written before fleet trust, attestations, and the cut a
//! revocation records.

use std::collections::BTreeSet;

use automerge::Change;
use outpost_model::DocId;
use outpost_model::admission::{self, Reason, Standing};
use outpost_model::api::{ApiError, ErrorKind};
use outpost_model::replication::engine::Effect;
use outpost_model::replication::engine::Trust;
use outpost_model::trust::attest::attestations;
use outpost_model::trust::proof::sign_change;
use outpost_model::trust::roster::{CutEntry, Member};
use outpost_model::trust::{PublicKey, TrustError};

use super::{Caller, Writer, internal};
use crate::store::Batch;
use crate::{engine_now, now};

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
        let key = self.settings.signer.public();
        let engine = self.replication.as_ref().map(|r| &r.engine);
        let standing = match engine.filter(|e| matches!(e.trust(), Trust::Fleet { .. })) {
            None => Standing::Open,
            Some(engine) => match engine.fleet().and_then(|f| Some((f, f.member(&key)?))) {
                Some((fleet, member)) => Standing::Member { fleet, member },
                None => Standing::Unenrolled { name: &self.settings.post },
            },
        };
        let mut proofs = Vec::new();
        for (doc, stored) in &batch.changes {
            let change = Change::from_bytes(stored.get(32..).unwrap_or_default().to_vec()).map_err(internal)?;
            let document = self.cache.loaded(doc)?;
            if let Err(reason) = admission::check_local(document, &change, standing) {
                return Err(refused_locally(doc, &reason));
            }
            proofs.push((doc.clone(), change.hash(), sign_change(&self.settings.signer, doc, &change.hash())));
        }
        batch.proofs.extend(proofs);
        Ok(())
    }

    /// A roster an administrator signed: installed and spread if valid.
    /// Either way, who handed it in and what it changes (or why it was
    /// refused) goes into the audit log.
    pub(super) fn publish_roster(&mut self, bytes: &[u8], caller: &Caller) -> Result<u64, ApiError> {
        let Some(replication) = self.replication.as_mut() else {
            return Err(ApiError::new(ErrorKind::BadInput, "this post does not network, so it holds no roster"));
        };
        let before = replication.engine.fleet().map(|f| f.roster.clone());
        self.cache.pinned = true;
        let effects = replication.engine.handle_roster(engine_now(), bytes, &mut self.cache).map_err(trust_error);
        self.cache.pinned = false;
        let (detail, outcome) = match effects {
            Ok(effects) => {
                let version = replication_version(&effects).unwrap_or_default();
                self.carry_out(effects, Vec::new());
                let changes = match self.replication.as_ref().and_then(|r| r.engine.fleet()) {
                    Some(fleet) => fleet.roster.changes_from(before.as_ref()),
                    None => Vec::new(),
                };
                (format!("installed roster version {version}: {}", changes.join("; ")), Ok(version))
            }
            Err(err) => (format!("refused a roster: {}", err.message), Err(err)),
        };
        self.audit_fleet(caller, "fleet.roster", detail);
        outcome
    }

    /// An audit record of a fleet operation asked for on this node.
    pub(super) fn audit_fleet(&mut self, caller: &Caller, action: &str, detail: String) {
        let event = caller.audit_event(now(), action, None, detail, Vec::new());
        if let Err(err) = self.commit_and_index(Batch { audit: vec![event], ..Batch::default() }, Vec::new()) {
            tracing::error!(error = %err.message, action, "cannot write the audit record of a fleet operation");
        }
    }

    /// Attests, into `batch`, the changes of newly revoked members this
    /// node holds beyond their cuts: it admitted them before it knew of the
    /// revocation. They go into the batch that stores the roster, so that
    /// no crash can leave this node holding the roster and such a change
    /// without the attestation every other node needs to take it.
    pub(super) fn stage_attestations(&mut self, revoked: &[PublicKey], batch: &mut Batch) {
        let members: Vec<Member> =
            revoked.iter().filter_map(|key| self.replication.as_ref()?.engine.fleet()?.member(key).cloned()).collect();
        let docs = match self.store.doc_ids() {
            Ok(docs) => docs,
            Err(err) => {
                tracing::error!(error = %err, "cannot list documents to attest a revoked member's changes");
                return;
            }
        };
        // Documents first met in this batch are not in the store yet.
        let mut docs: BTreeSet<DocId> = docs.into_iter().collect();
        docs.extend(batch.changes.iter().map(|(doc, _)| doc.clone()));
        let signer = &self.settings.signer;
        for doc in docs {
            let found = self.cache.read(&doc, |document| {
                members.iter().flat_map(|m| attestations(document, m, signer)).collect::<Vec<_>>()
            });
            let found = match found {
                Ok(found) => found,
                Err(err) => {
                    tracing::error!(%doc, error = %err.message, "cannot load a document to attest a revoked member's changes in it");
                    continue;
                }
            };
            for (hash, proof) in found {
                tracing::info!(%doc, change = %hash, "attested a revoked member's change admitted before the revocation");
                batch.proofs.push((doc.clone(), hash, proof));
            }
        }
    }

    /// Signs, once, what this node wrote before fleet trust: the newest
    /// change of each of its old actors in every document, which covers
    /// the earlier ones through the hash chain. The roster binds the old
    /// actors to this node when the admin enrols it with `--legacy-actor`.
    pub(super) fn sign_legacy_history(&mut self) {
        let legacy = match self.store.legacy_actor() {
            Ok(Some((actor, true))) => actor,
            Ok(_) => return,
            Err(err) => {
                tracing::error!(error = %err, "cannot tell whether this store's history is signed");
                return;
            }
        };
        let docs = match self.store.doc_ids() {
            Ok(docs) => docs,
            Err(err) => {
                tracing::error!(error = %err, "cannot list documents to sign the history written before fleet trust; tried again at next start");
                return;
            }
        };
        let mut batch = Batch { legacy_history_signed: true, ..Batch::default() };
        for doc in docs {
            let tips = match self.cache.read(&doc, |document| document.actor_tips()) {
                Ok(tips) => tips,
                Err(err) => {
                    tracing::error!(%doc, error = %err.message, "a document written before fleet trust cannot be loaded; its history stays unsigned until it can");
                    return;
                }
            };
            for (actor, _, hash) in tips {
                if actor.to_bytes().get(..16) == Some(legacy.as_slice()) {
                    batch.proofs.push((doc.clone(), hash, sign_change(&self.settings.signer, &doc, &hash)));
                }
            }
        }
        let signed = batch.proofs.len();
        match self.store.commit(batch) {
            Ok(_) => tracing::warn!(
                legacy_actor = %hex::encode(legacy), signed_changes = signed,
                "signed this node's history from before fleet trust; enrol it with --legacy-actor {} so that the fleet takes it",
                hex::encode(legacy)
            ),
            Err(err) => {
                tracing::error!(error = %err, "cannot store the signatures over the history written before fleet trust; tried again at next start")
            }
        }
    }

    /// For each actor of `peer` in each stored document, its newest change
    /// here: the cut a revocation records, computed from what this node
    /// holds.
    pub(super) fn cut_for(&mut self, peer: &str, caller: &Caller) -> Result<Vec<CutEntry>, ApiError> {
        let cut = self.compute_cut(peer)?;
        self.audit_fleet(caller, "fleet.cut", format!("the cut to revoke {peer}: {} entries", cut.len()));
        Ok(cut)
    }

    fn compute_cut(&mut self, peer: &str) -> Result<Vec<CutEntry>, ApiError> {
        let key = PublicKey::from_peer_id(peer).map_err(trust_error)?;
        let fleet = self.replication.as_ref().and_then(|r| r.engine.fleet());
        let member = fleet.and_then(|f| f.member(&key).cloned()).ok_or_else(|| {
            ApiError::new(ErrorKind::NotFound, format!("{peer} is not a member of the roster this node holds"))
        })?;
        let docs = self.store.doc_ids().map_err(internal)?;
        let mut cut = Vec::new();
        for doc in docs {
            // The cut must name every change of the member this node holds:
            // a document it cannot read fails the cut, not left out.
            let tips = self.cache.read(&doc, |document| document.actor_tips())?;
            for (actor, seq, hash) in tips {
                if member.writes_with(actor.to_bytes()) {
                    cut.push(CutEntry { doc: doc.clone(), actor: actor.to_bytes().to_vec(), seq, hash: hash.0 });
                }
            }
        }
        Ok(cut)
    }
}

impl Writer {
    pub(super) fn trust_report(&self) -> super::TrustReport {
        use outpost_model::replication::engine::Trust;
        let held = self.quarantine.len();
        let conflicts = self.identity_conflicts();
        let Some(replication) = self.replication.as_ref() else {
            return super::TrustReport { mode: "off", held, conflicts, ..Default::default() };
        };
        let engine = &replication.engine;
        let mode = match engine.trust() {
            Trust::Fleet { .. } => "fleet",
            Trust::PskOnly => "psk-only",
            Trust::Closed => "nobody",
        };
        let anchor = match engine.trust() {
            Trust::Fleet { anchor } => Some(anchor),
            _ => None,
        };
        super::TrustReport {
            mode,
            anchor,
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
