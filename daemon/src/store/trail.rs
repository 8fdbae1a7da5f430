//! The trail of other posts' audit logs: each record this node holds, by
//! post and number, so that a record arriving can be checked against its
//! neighbours in a few lookups; and the alarms those checks raised.

use outpost_model::audit::log::TrailEntry;
use redb::ReadableTable;

use super::{AUDIT_ALARMS, AUDIT_TRAIL, Batch, Store, StoreError, db};

/// Writes the trail parts of a batch, inside its transaction. A number
/// already on the trail keeps its first record: that is the one a fork is
/// measured against.
pub(super) fn write(txn: &redb::WriteTransaction, batch: &Batch) -> Result<(), StoreError> {
    let mut trail = txn.open_table(AUDIT_TRAIL).map_err(db)?;
    for (post, entry, seq) in &batch.trail {
        if trail.get((post.as_str(), *seq)).map_err(db)?.is_none() {
            trail.insert((post.as_str(), *seq), serde_json::to_vec(entry)?.as_slice()).map_err(db)?;
        }
    }
    let mut alarms = txn.open_table(AUDIT_ALARMS).map_err(db)?;
    for (post, seq, text) in &batch.alarms {
        let kept = match alarms.get((post.as_str(), *seq)).map_err(db)? {
            Some(old) if old.value().contains(text.as_str()) => None,
            Some(old) => Some(format!("{}; {text}", old.value())),
            None => Some(text.clone()),
        };
        if let Some(kept) = kept {
            alarms.insert((post.as_str(), *seq), kept.as_str()).map_err(db)?;
        }
    }
    Ok(())
}

impl Store {
    /// The record of `post`'s audit log numbered `seq` that this node holds.
    pub fn trail_entry(&self, post: &str, seq: u64) -> Result<Option<TrailEntry>, StoreError> {
        let txn = self.read_txn()?;
        let trail = txn.open_table(AUDIT_TRAIL).map_err(db)?;
        let Some(row) = trail.get((post, seq)).map_err(db)? else { return Ok(None) };
        serde_json::from_slice(row.value()).map(Some).map_err(|e| StoreError::Damaged {
            table: "audit_trail",
            key: format!("{post}/{seq}"),
            detail: e.to_string(),
        })
    }

    /// Every alarm raised about a post's audit log (`None`: any post's),
    /// as (post, record number, what showed).
    pub fn audit_alarms(&self, post: Option<&str>) -> Result<Vec<(String, u64, String)>, StoreError> {
        let txn = self.read_txn()?;
        let alarms = txn.open_table(AUDIT_ALARMS).map_err(db)?;
        let mut out = Vec::new();
        for row in alarms.iter().map_err(db)? {
            let (key, text) = row.map_err(db)?;
            let (who, seq) = key.value();
            if post.is_none_or(|p| p == who) {
                out.push((who.to_string(), seq, text.value().to_string()));
            }
        }
        Ok(out)
    }
}
