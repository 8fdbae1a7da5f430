//! Revocation on the writer: the cut a revocation records, and this node's
//! attestations of a newly revoked member's changes it admitted before it
//! knew.

use std::collections::BTreeSet;

use outpost_model::DocId;
use outpost_model::api::{ApiError, ErrorKind};
use outpost_model::trust::PublicKey;
use outpost_model::trust::attest::{attestations, cut_in};
use outpost_model::trust::roster::{CutEntry, Member};

use super::trust_error;
use crate::store::Batch;
use crate::writer::{Caller, Writer, internal};

impl Writer {
    /// Attests, into `batch`, the changes of newly revoked members this
    /// node holds beyond their cuts: it admitted them before it knew of the
    /// revocation. They go into the batch that stores the roster, so that
    /// no crash can leave this node holding the roster and such a change
    /// without the attestation every other node needs to take it.
    pub(in crate::writer) fn stage_attestations(&mut self, revoked: &[PublicKey], batch: &mut Batch) {
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

    /// For each actor of `peer` in each stored document, its newest change
    /// here: the cut a revocation records, computed from what this node
    /// holds.
    pub(in crate::writer) fn cut_for(&mut self, peer: &str, caller: &Caller) -> Result<Vec<CutEntry>, ApiError> {
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
            cut.extend(self.cache.read(&doc, |document| cut_in(document, &member))?);
        }
        Ok(cut)
    }
}
