//! The audit log of consultations and changes (Police Directive Art. 25):
//! who, when, what was asked, why, and what came back. Records are hash
//! chained, so removing or editing one breaks every later hash.
//!
//! A post's log also leaves the post: [`log`] is the signed copy its
//! national centre holds and checks.

pub mod log;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::date::Timestamp;

/// What the daemon knows about one audited request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: Timestamp,
    pub uid: u32,
    pub pid: Option<i32>,
    /// The caller's login name.
    pub user: String,
    /// The role the request was allowed under.
    pub role: String,
    /// e.g. `watchlist.search`, `watchlist.add`.
    pub action: String,
    pub purpose: Option<String>,
    /// The query or the change, in words.
    pub detail: String,
    /// Ids the caller was shown or changed.
    pub result_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: Timestamp,
    pub node: String,
    pub uid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The officer's login name; absent in records written before roles.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// The role the request was allowed under.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    pub detail: String,
    pub result_ids: Vec<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash before the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(crate) fn digest(record: &AuditRecord) -> String {
    let unsealed = AuditRecord { hash: String::new(), ..record.clone() };
    // serde_json writes struct fields in declaration order, so the bytes
    // hashed are stable for a given record.
    let bytes = serde_json::to_vec(&unsealed).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Appends `event` to a chain whose last record has `prev_hash`.
pub fn seal(event: AuditEvent, seq: u64, node: &str, prev_hash: &str) -> AuditRecord {
    let mut record = AuditRecord {
        seq,
        at: event.at,
        node: node.to_string(),
        uid: event.uid,
        pid: event.pid,
        user: event.user,
        role: event.role,
        action: event.action,
        purpose: event.purpose,
        detail: event.detail,
        result_ids: event.result_ids,
        prev_hash: prev_hash.to_string(),
        hash: String::new(),
    };
    record.hash = digest(&record);
    record
}

/// Where a chain stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at record {seq}: {reason}")]
pub struct ChainBreak {
    pub seq: u64,
    pub reason: String,
}

/// Incrementally verifies a chain record by record, from the first.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: u64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { expected_seq: 1, prev_hash: GENESIS_HASH.to_string() }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        let fail = |reason: String| ChainBreak { seq: record.seq, reason };
        if record.seq != self.expected_seq {
            return Err(fail(format!("expected sequence number {}", self.expected_seq)));
        }
        if record.prev_hash != self.prev_hash {
            return Err(fail("does not follow the previous record".into()));
        }
        if digest(record) != record.hash {
            return Err(fail("contents do not match its hash".into()));
        }
        self.expected_seq += 1;
        self.prev_hash = record.hash.clone();
        Ok(())
    }

    pub fn checked(&self) -> u64 {
        self.expected_seq - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            at: Timestamp::from_millis(n),
            uid: 1000,
            pid: Some(42),
            user: "aigerim".into(),
            role: "officer".into(),
            action: "watchlist.search".into(),
            purpose: Some("routine check".into()),
            detail: format!("query {n}"),
            result_ids: vec!["a".into()],
        }
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let r = seal(event(seq as i64), seq, "post", &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let mut v = ChainVerifier::default();
        for r in chain(5) {
            v.check(&r).unwrap();
        }
        assert_eq!(v.checked(), 5);
    }

    #[test]
    fn editing_a_record_breaks_the_chain_there() {
        let mut records = chain(5);
        records[2].purpose = Some("curiosity".into());
        let mut v = ChainVerifier::default();
        let err = records.iter().try_for_each(|r| v.check(r)).unwrap_err();
        assert_eq!(err.seq, 3);
    }

    #[test]
    fn a_record_from_before_roles_still_verifies() {
        let mut old =
            seal(AuditEvent { user: String::new(), role: String::new(), ..event(1) }, 1, "post", GENESIS_HASH);
        let text = serde_json::to_string(&old).unwrap();
        assert!(!text.contains("\"user\""), "{text}");
        old = serde_json::from_str(&text).unwrap();
        ChainVerifier::default().check(&old).unwrap();
    }

    #[test]
    fn removing_a_record_breaks_the_chain() {
        let mut records = chain(5);
        records.remove(1);
        let mut v = ChainVerifier::default();
        assert!(records.iter().try_for_each(|r| v.check(r)).is_err());
    }
}
