//! A store written before fleet trust: its node signs that history once.

use outpost_model::trust::proof::sign_change;

use crate::store::Batch;
use crate::writer::Writer;

impl Writer {
    /// Signs, once, what this node wrote before fleet trust: the newest
    /// change of each of its old actors in every document, which covers
    /// the earlier ones through the hash chain. The roster binds the old
    /// actors to this node when the admin enrols it with `--legacy-actor`.
    pub(in crate::writer) fn sign_legacy_history(&mut self) {
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
}
