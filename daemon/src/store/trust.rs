//! What trust keeps on disk: the proofs beside changes, the quarantine of
//! changes waiting for a roster, and the roster itself.

use automerge::ChangeHash;
use outpost_model::DocId;
use outpost_model::date::Timestamp;
use outpost_model::trust::proof::StoredProof;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::{ATTESTED, Batch, CHANGE_PROOFS, META, QUARANTINE, Store, StoreError, db};

const ROSTER_KEY: &str = "roster";
/// The node id of a store written before fleet trust: the first 16 bytes
/// of every actor its node wrote with then.
pub(super) const LEGACY_ACTOR_KEY: &str = "legacy_actor";
/// Present until the node has signed that history.
pub(super) const LEGACY_UNSIGNED_KEY: &str = "legacy_history_unsigned";

/// A change held back, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldRecord {
    /// The change's bytes, as Automerge encodes it.
    pub change: Vec<u8>,
    pub proofs: Vec<StoredProof>,
    /// Why it waits, for `outpost status` and the log.
    pub reason: String,
    pub since: Timestamp,
    /// The peer it came from, whose share of the quarantine it takes.
    pub from: String,
    /// The newest roster version that peer had announced.
    pub announced: u64,
}

/// The held changes that read, and the rows that did not.
pub type Held = (Vec<(DocId, ChangeHash, HeldRecord)>, Vec<StoreError>);

fn damaged(table: &'static str, key: String, err: impl std::fmt::Display) -> StoreError {
    StoreError::Damaged { table, key, detail: err.to_string() }
}

/// Writes the trust parts of a batch, inside its transaction.
pub(super) fn write(txn: &redb::WriteTransaction, batch: &Batch) -> Result<(), StoreError> {
    let mut proofs = txn.open_table(CHANGE_PROOFS).map_err(db)?;
    for (doc, hash, proof) in &batch.proofs {
        let key = (doc.as_str(), hash.0.as_slice());
        let mut kept: Vec<StoredProof> = match proofs.get(key).map_err(db)? {
            Some(row) => postcard::from_bytes(row.value()).unwrap_or_else(|err| {
                tracing::warn!(%doc, change = %hash, error = %err, "a damaged proofs row is replaced");
                Vec::new()
            }),
            None => Vec::new(),
        };
        if !kept.contains(proof) {
            kept.push(*proof);
            proofs.insert(key, postcard::to_stdvec(&kept)?.as_slice()).map_err(db)?;
        }
    }
    let mut held = txn.open_table(QUARANTINE).map_err(db)?;
    for (doc, hash) in &batch.release {
        held.remove((doc.as_str(), hash.0.as_slice())).map_err(db)?;
    }
    for (doc, hash, record) in &batch.hold {
        held.insert((doc.as_str(), hash.0.as_slice()), postcard::to_stdvec(record)?.as_slice()).map_err(db)?;
    }
    if let Some(roster) = &batch.roster {
        txn.open_table(META).map_err(db)?.insert(ROSTER_KEY, roster.as_slice()).map_err(db)?;
    }
    if batch.legacy_history_signed {
        txn.open_table(META).map_err(db)?.remove(LEGACY_UNSIGNED_KEY).map_err(db)?;
    }
    let mut attested = txn.open_table(ATTESTED).map_err(db)?;
    for (member, changes) in &batch.attested {
        let count = attested.get(member.as_str()).map_err(db)?.map_or(0, |v| v.value());
        attested.insert(member.as_str(), count.saturating_add(*changes)).map_err(db)?;
    }
    Ok(())
}

impl Store {
    /// The proofs kept beside one change.
    pub fn proofs(&self, doc: &DocId, hash: &ChangeHash) -> Result<Vec<StoredProof>, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(CHANGE_PROOFS).map_err(db)?;
        match table.get((doc.as_str(), hash.0.as_slice())).map_err(db)? {
            Some(row) => {
                postcard::from_bytes(row.value()).map_err(|e| damaged("change_proofs", format!("{doc} {hash}"), e))
            }
            None => Ok(Vec::new()),
        }
    }

    /// The signed roster this node holds, if any.
    pub fn roster(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(META).map_err(db)?;
        Ok(table.get(ROSTER_KEY).map_err(db)?.map(|v| v.value().to_vec()))
    }

    /// Every held change, by document. A damaged row is named and skipped.
    pub fn held(&self) -> Result<Held, StoreError> {
        let low: (&str, &[u8]) = ("", &[]);
        self.held_rows(low..)
    }

    /// The actor prefix this node wrote with before fleet trust, if its
    /// store is that old, and whether that history still waits to be
    /// signed.
    pub fn legacy_actor(&self) -> Result<Option<([u8; 16], bool)>, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(META).map_err(db)?;
        let Some(actor) = table.get(LEGACY_ACTOR_KEY).map_err(db)? else { return Ok(None) };
        let actor: [u8; 16] =
            actor.value().try_into().map_err(|_| damaged("meta", LEGACY_ACTOR_KEY.into(), "not 16 bytes"))?;
        let unsigned = table.get(LEGACY_UNSIGNED_KEY).map_err(db)?.is_some();
        Ok(Some((actor, unsigned)))
    }

    /// Changes of each revoked member admitted here on an attestation.
    pub fn attested_counts(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(ATTESTED).map_err(db)?;
        let mut out = std::collections::BTreeMap::new();
        for row in table.iter().map_err(db)? {
            let (member, count) = row.map_err(db)?;
            out.insert(member.value().to_string(), count.value());
        }
        Ok(out)
    }

    /// The held changes of `doc`. A damaged row is named and skipped.
    pub fn held_in(&self, doc: &DocId) -> Result<Held, StoreError> {
        let low: &[u8] = &[];
        let high: &[u8] = &[0xff; 33];
        self.held_rows((doc.as_str(), low)..=(doc.as_str(), high))
    }

    /// The held changes of `doc` among `hashes` (those no longer held are
    /// left out). A damaged row is named and skipped.
    pub fn held_changes(&self, doc: &DocId, hashes: &[ChangeHash]) -> Result<Held, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(QUARANTINE).map_err(db)?;
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for hash in hashes {
            let Some(row) = table.get((doc.as_str(), hash.0.as_slice())).map_err(db)? else { continue };
            match postcard::from_bytes(row.value()) {
                Ok(record) => out.push((doc.clone(), *hash, record)),
                Err(err) => bad.push(damaged("quarantine", format!("{doc} {hash}"), err)),
            }
        }
        Ok((out, bad))
    }

    fn held_rows<'k>(&self, keys: impl std::ops::RangeBounds<(&'k str, &'k [u8])>) -> Result<Held, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(QUARANTINE).map_err(db)?;
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for row in table.range(keys).map_err(db)? {
            let (key, value) = row.map_err(db)?;
            let (doc, hash) = key.value();
            let decoded = DocId::parse(doc).map_err(|e| damaged("quarantine", doc.to_string(), e)).and_then(|d| {
                Ok((
                    d,
                    ChangeHash(
                        hash.try_into()
                            .map_err(|_| damaged("quarantine", doc.to_string(), "a hash not of 32 bytes"))?,
                    ),
                    postcard::from_bytes(value.value())?,
                ))
            });
            match decoded {
                Ok(found) => out.push(found),
                Err(err) => bad.push(damaged("quarantine", format!("{doc} {}", hex::encode(hash)), err)),
            }
        }
        Ok((out, bad))
    }
}
