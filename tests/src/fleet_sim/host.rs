//! What the byzantine node holds: its documents in memory (lost in a
//! crash) over what it stored. Honest nodes run the daemon's writer
//! instead ([`super::writer_node`]); the byzantine node runs the model's
//! engine on this host, so that it can also store what no writer would.

use std::collections::BTreeMap;

use automerge::{ActorId, ChangeHash};
use outpost_model::DocId;
use outpost_model::admission::Held;
use outpost_model::replication::engine::{DocHost, PeerKey};
use outpost_model::schema::Document;
use outpost_model::trust::Signer;
use outpost_model::trust::proof::StoredProof;
use outpost_model::trust::roster::Member;

/// What survives a crash.
#[derive(Debug, Default)]
pub(super) struct Stored {
    /// Each change as the store keeps it: its hash, then its bytes.
    pub(super) changes: BTreeMap<DocId, Vec<Vec<u8>>>,
    pub(super) sync_states: BTreeMap<(PeerKey, DocId), Vec<u8>>,
    pub(super) proofs: BTreeMap<(DocId, ChangeHash), Vec<StoredProof>>,
    pub(super) held: BTreeMap<DocId, Vec<Held>>,
    pub(super) roster: Option<Vec<u8>>,
}

pub(super) struct SimHost {
    pub(super) actor: ActorId,
    pub(super) docs: BTreeMap<DocId, Document>,
    pub(super) stored: Stored,
}

pub(super) fn load(id: &DocId, stored: &Stored) -> Result<Document, String> {
    let changes = stored.changes.get(id).map(Vec::as_slice).unwrap_or_default();
    Document::load(id, None, changes.iter().map(Vec::as_slice)).map_err(|e| e.to_string())
}

impl DocHost for SimHost {
    fn doc(&mut self, id: &DocId) -> Result<&mut Document, String> {
        if !self.docs.contains_key(id) {
            let mut doc = load(id, &self.stored)?;
            doc.set_actor(self.actor.clone());
            self.docs.insert(id.clone(), doc);
        }
        self.docs.get_mut(id).ok_or_else(|| "document vanished".to_string())
    }

    fn sync_state(&mut self, peer: &PeerKey, doc: &DocId) -> Option<Vec<u8>> {
        self.stored.sync_states.get(&(peer.clone(), doc.clone())).cloned()
    }

    fn proofs(&mut self, doc: &DocId, change: &ChangeHash) -> Vec<StoredProof> {
        self.stored.proofs.get(&(doc.clone(), *change)).cloned().unwrap_or_default()
    }

    fn discard(&mut self, doc: &DocId) {
        self.docs.remove(doc);
    }
}

impl SimHost {
    /// Stores what `doc` holds in memory beyond `since`, with `proofs`.
    pub(super) fn store(&mut self, doc: &DocId, since: &[ChangeHash], proofs: Vec<(ChangeHash, StoredProof)>) {
        if let Some(document) = self.docs.get_mut(doc) {
            let changes = document.stored_changes_since(since);
            self.stored.changes.entry(doc.clone()).or_default().extend(changes);
        }
        for (hash, proof) in proofs {
            self.stored.proofs.entry((doc.clone(), hash)).or_default().push(proof);
        }
    }

    /// Attests the changes of newly revoked `members` it holds beyond their
    /// cuts, stored with the roster, as the daemon's writer does.
    pub(super) fn attest(&mut self, members: &[Member], signer: &Signer) {
        let docs: Vec<DocId> = self.stored.changes.keys().cloned().collect();
        for doc in docs {
            let Ok(document) = self.doc(&doc) else { continue };
            let mut found = Vec::new();
            for member in members {
                found.extend(outpost_model::trust::attest::attestations(document, member, signer));
            }
            for (hash, proof) in found {
                self.stored.proofs.entry((doc.clone(), hash)).or_default().push(proof);
            }
        }
    }
}
