//! Whole-document bundles, kept by heads: a document that has not changed
//! is not saved and compressed again for the next peer that needs it whole
//! (a snapshot, or a catch-up the whole document carries best). Saving and
//! compressing a shard is the writer's longest job, and a peer that claims
//! to hold nothing and resets again and again would otherwise make this
//! node do it in a loop.

use std::collections::BTreeMap;

use automerge::ChangeHash;

use super::sync::tip_proofs;
use super::{DocHost, Engine, sorted};
use crate::ids::DocId;
use crate::replication::bundle::{BundleError, BundlePayload};
use crate::trust::proof::Proof;

/// Bytes of bundles kept in all; the oldest go first beyond.
pub(super) const MAX_CACHED_SNAPSHOT_BYTES: usize = 32 << 20;

#[derive(Debug, Default)]
pub(super) struct Snapshots {
    kept: BTreeMap<DocId, Kept>,
    bytes: usize,
    /// Counts insertions, so that the oldest is known without a clock.
    made: u64,
}

/// A bundle, and what it was made of: the same document at the same heads
/// with the same proofs (an attestation adds one) makes the same bundle.
#[derive(Debug)]
struct Kept {
    heads: Vec<ChangeHash>,
    proofs: Vec<Proof>,
    parts: Vec<Vec<u8>>,
    made: u64,
}

impl Snapshots {
    fn get(&self, doc: &DocId, heads: &[ChangeHash], proofs: &[Proof]) -> Option<Vec<Vec<u8>>> {
        self.kept.get(doc).filter(|k| k.heads == heads && k.proofs == proofs).map(|k| k.parts.clone())
    }

    fn keep(&mut self, doc: &DocId, (heads, proofs): (Vec<ChangeHash>, Vec<Proof>), parts: &[Vec<u8>]) {
        let size: usize = parts.iter().map(Vec::len).sum();
        if size > MAX_CACHED_SNAPSHOT_BYTES {
            return;
        }
        if let Some(old) = self.kept.remove(doc) {
            self.bytes -= old.parts.iter().map(Vec::len).sum::<usize>();
        }
        while self.bytes + size > MAX_CACHED_SNAPSHOT_BYTES {
            let Some(oldest) = self.kept.iter().min_by_key(|(_, k)| k.made).map(|(d, _)| d.clone()) else { break };
            if let Some(old) = self.kept.remove(&oldest) {
                self.bytes -= old.parts.iter().map(Vec::len).sum::<usize>();
            }
        }
        self.made += 1;
        self.bytes += size;
        self.kept.insert(doc.clone(), Kept { heads, proofs, parts: parts.to_vec(), made: self.made });
    }
}

impl Engine {
    /// `doc` whole, as bundle parts: its heads, its saved form and the
    /// proofs over its actors' newest changes, compressed; from the cache
    /// while the document has not changed.
    pub(super) fn whole_parts(&mut self, doc: &DocId, host: &mut dyn DocHost) -> Result<Vec<Vec<u8>>, BundleError> {
        let document = host.doc(doc).map_err(BundleError::Malformed)?;
        let heads = sorted(document.heads());
        let proofs = if self.signs() { tip_proofs(&self.fresh_proofs, host, doc) } else { Vec::new() };
        if let Some(parts) = self.snapshots.get(doc, &heads, &proofs) {
            return Ok(parts);
        }
        let document = host.doc(doc).map_err(BundleError::Malformed)?;
        let parts = BundlePayload::new(&heads, vec![document.save()], proofs.clone()).into_parts()?;
        self.snapshots.keep(doc, (heads, proofs), &parts);
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: u8) -> DocId {
        crate::schema::DocKind::Watchlist { authority: "KAZ-BS".into(), shard: n }.doc_id()
    }

    #[test]
    fn a_bundle_is_kept_for_its_heads_and_proofs_and_the_oldest_go_beyond_the_bound() {
        let mut kept = Snapshots::default();
        let heads = vec![ChangeHash([1; 32])];
        let third = vec![vec![0u8; MAX_CACHED_SNAPSHOT_BYTES / 3]];
        kept.keep(&doc(0), (heads.clone(), Vec::new()), &third);
        assert_eq!(kept.get(&doc(0), &heads, &[]), Some(third.clone()));
        assert_eq!(kept.get(&doc(0), &[ChangeHash([2; 32])], &[]), None, "other heads, another bundle");
        kept.keep(&doc(1), (heads.clone(), Vec::new()), &third);
        kept.keep(&doc(2), (heads.clone(), Vec::new()), &third);
        kept.keep(&doc(3), (heads.clone(), Vec::new()), &third);
        assert_eq!(kept.get(&doc(0), &heads, &[]), None, "the oldest went");
        assert!(kept.get(&doc(3), &heads, &[]).is_some());
        assert!(kept.bytes <= MAX_CACHED_SNAPSHOT_BYTES);
    }
}
