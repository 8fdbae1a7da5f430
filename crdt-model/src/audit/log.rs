//! A post's audit log as it leaves the post: every record is mirrored into
//! the post's monthly audit document (`audit/POST/YYYY-MM`, see
//! `schema/audit.rs`) with the post's signature over the chain head it
//! makes, and replicates to the post's national centres only (the roster's
//! read policy). The centre cannot be made to forget a record (audit
//! documents only grow, and admission refuses any other change), so a post
//! whose local log was rewritten, truncated or forked offline gives itself
//! away with its next record: a second record under a number the centre
//! holds, or one that follows a record the centre never had.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AuditRecord, GENESIS_HASH, digest};
use crate::date::Timestamp;
use crate::trust::{PublicKey, Signature, Signer};

const HEAD_DOMAIN: &[u8] = b"outpost/audit-head/1\0";

/// A record as the audit document holds it, with the post's signature over
/// the chain head it makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    pub record: AuditRecord,
    pub signature: Signature,
}

fn head_message(post: &str, seq: u64, hash: &str) -> Vec<u8> {
    [HEAD_DOMAIN, post.as_bytes(), &[0], &seq.to_be_bytes(), hash.as_bytes()].concat()
}

impl SignedRecord {
    /// `record`, with `signer`'s signature over the head it makes in
    /// `post`'s log.
    pub fn sign(signer: &Signer, post: &str, record: AuditRecord) -> Self {
        let signature = signer.sign(&head_message(post, record.seq, &record.hash));
        Self { record, signature }
    }

    pub fn signed_by(&self, key: &PublicKey, post: &str) -> bool {
        key.verifies(&head_message(post, self.record.seq, &self.record.hash), &self.signature)
    }
}

/// The month (`YYYY-MM`, UTC) whose audit document holds a record made at
/// `at`.
pub fn audit_month(at: Timestamp) -> String {
    let utc = at.to_offset_datetime();
    format!("{:04}-{:02}", utc.year(), u8::from(utc.month()))
}

/// What checking a post's log found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCheck {
    pub records: u64,
    /// The lowest record number held: records before it were written
    /// before the log was mirrored.
    pub first: Option<u64>,
    /// The newest record's number and hash, as signed.
    pub head: Option<(u64, String)>,
    /// Every sign of tampering, one sentence each. Empty: the log holds.
    pub problems: Vec<String>,
}

/// Checks `post`'s log: every record's hash, its signature by `key` (when
/// given), one record per number, and each record following the one
/// before it.
pub fn check_log(post: &str, key: Option<&PublicKey>, records: &[SignedRecord]) -> LogCheck {
    let mut check = LogCheck { records: records.len() as u64, ..LogCheck::default() };
    let mut by_seq: BTreeMap<u64, Vec<&AuditRecord>> = BTreeMap::new();
    for signed in records {
        let record = &signed.record;
        if digest(record) != record.hash {
            check.problems.push(format!("record {}: its contents do not match its hash: rewritten", record.seq));
        }
        if record.node != post {
            check.problems.push(format!("record {}: written by {:?}, not by {post}", record.seq, record.node));
        }
        if let Some(key) = key
            && !signed.signed_by(key, post)
        {
            check.problems.push(format!("record {}: not signed by {post}'s key", record.seq));
        }
        by_seq.entry(record.seq).or_default().push(record);
    }
    check.first = by_seq.keys().next().copied();
    let mut before: Option<(u64, Vec<&AuditRecord>)> = None;
    for (seq, list) in &by_seq {
        let mut hashes: Vec<&str> = list.iter().map(|r| r.hash.as_str()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        if hashes.len() > 1 {
            check.problems.push(format!(
                "record {seq}: {} different records carry this number: the log was truncated or rewritten and \
                 written again (forked)",
                hashes.len()
            ));
        }
        match &before {
            None if *seq == 1 && list.iter().any(|r| r.prev_hash != GENESIS_HASH) => {
                check.problems.push("record 1 does not start a chain".into());
            }
            Some((prev_seq, prev)) if prev_seq + 1 == *seq => {
                for record in list {
                    if !prev.iter().any(|p| p.hash == record.prev_hash) {
                        check.problems.push(format!(
                            "record {seq} does not follow record {prev_seq}: the log was rewritten before it"
                        ));
                    }
                }
            }
            Some((prev_seq, _)) if prev_seq + 2 == *seq => {
                check.problems.push(format!("record {} is missing", prev_seq + 1));
            }
            Some((prev_seq, _)) => {
                check.problems.push(format!("records {} to {} are missing", prev_seq + 1, seq - 1));
            }
            None => {}
        }
        before = Some((*seq, list.clone()));
    }
    if let Some((seq, list)) = by_seq.iter().next_back()
        && let [record] = list.as_slice()
    {
        check.head = Some((*seq, record.hash.clone()));
    }
    check.problems.sort();
    check.problems.dedup();
    check
}

/// A record as the trail a centre keeps of each post's log remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailEntry {
    pub hash: String,
    pub prev: String,
}

impl TrailEntry {
    pub fn of(record: &AuditRecord) -> Self {
        Self { hash: record.hash.clone(), prev: record.prev_hash.clone() }
    }
}

/// What a record of `post`'s log that has just arrived shows, against the
/// records the receiving node already holds by number (`held`): one
/// sentence per sign of tampering. Costs a few lookups, whatever the
/// length of the log, so a centre checks every record as it arrives.
pub fn check_arrival(post: &str, record: &AuditRecord, held: impl Fn(u64) -> Option<TrailEntry>) -> Vec<String> {
    let seq = record.seq;
    let mut problems = Vec::new();
    if digest(record) != record.hash {
        problems.push(format!("record {seq}: its contents do not match its hash: rewritten"));
    }
    if record.node != post {
        problems.push(format!("record {seq}: written by {:?}, not by {post}", record.node));
    }
    if let Some(other) = held(seq).filter(|other| other.hash != record.hash) {
        problems.push(format!(
            "record {seq}: a second record with this number (the first was {}): the log was truncated or \
             rewritten and written again (forked)",
            &other.hash[..other.hash.len().min(12)]
        ));
    }
    if seq == 1 && record.prev_hash != GENESIS_HASH {
        problems.push("record 1 does not start a chain".into());
    }
    if seq.checked_sub(1).and_then(&held).is_some_and(|before| before.hash != record.prev_hash) {
        problems.push(format!(
            "record {seq} does not follow record {} held here: the log was rewritten before it",
            seq - 1
        ));
    }
    if held(seq + 1).is_some_and(|after| after.prev != record.hash) {
        problems.push(format!("record {} held here does not follow record {seq}: the log was rewritten", seq + 1));
    }
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::audit::{AuditEvent, seal};

    fn event(n: u64, detail: &str) -> AuditEvent {
        crate::test_support::search_event(Timestamp::from_millis(1_795_600_000_000 + n as i64), detail)
    }

    fn log(signer: &Signer, from: u64, to: u64, prev: &str, tag: &str) -> Vec<SignedRecord> {
        let mut prev = prev.to_string();
        (from..=to)
            .map(|seq| {
                let record = seal(event(seq, &format!("{tag} {seq}")), seq, "kz-post", &prev);
                prev = record.hash.clone();
                SignedRecord::sign(signer, "kz-post", record)
            })
            .collect()
    }

    #[test]
    fn an_honest_log_holds_and_its_head_is_signed() {
        let signer = Signer::from_secret([4; 32]);
        let records = log(&signer, 1, 6, GENESIS_HASH, "query");
        let check = check_log("kz-post", Some(&signer.public()), &records);
        assert_eq!(check.problems, Vec::<String>::new());
        assert_eq!(check.head.as_ref().map(|h| h.0), Some(6));
        let stranger = Signer::from_secret([5; 32]).public();
        assert_eq!(check_log("kz-post", Some(&stranger), &records).problems.len(), 6);
    }

    #[test]
    fn truncating_and_writing_again_shows_as_a_fork() {
        let signer = Signer::from_secret([4; 32]);
        let mut held = log(&signer, 1, 6, GENESIS_HASH, "query");
        // Offline, records 5 and 6 were deleted; the next records carry
        // their numbers again.
        let again = log(&signer, 5, 5, &held[3].record.hash, "later");
        held.extend(again);
        let check = check_log("kz-post", Some(&signer.public()), &held);
        assert!(check.problems.iter().any(|p| p.contains("record 5") && p.contains("forked")), "{:?}", check.problems);
    }

    #[test]
    fn rewriting_a_record_and_its_successors_shows_where_the_new_chain_joins() {
        let signer = Signer::from_secret([4; 32]);
        let mut held = log(&signer, 1, 4, GENESIS_HASH, "query");
        // Record 3 rewritten and the chain recomputed offline; record 5
        // then follows the rewritten record 4, which the centre never had.
        let rewritten = log(&signer, 3, 4, &held[1].record.hash, "innocent");
        let next = log(&signer, 5, 5, &rewritten[1].record.hash, "query");
        held.extend(next);
        let check = check_log("kz-post", Some(&signer.public()), &held);
        assert!(check.problems.iter().any(|p| p.contains("record 5 does not follow record 4")), "{:?}", check.problems);
        // An edit without recomputing the hash shows on the record itself.
        let mut edited = log(&signer, 1, 2, GENESIS_HASH, "query");
        edited[0].record.detail = "nothing".into();
        let check = check_log("kz-post", None, &edited);
        assert!(check.problems.iter().any(|p| p.contains("record 1: its contents")), "{:?}", check.problems);
    }

    #[test]
    fn a_log_mirrored_from_the_middle_of_its_history_holds_and_gaps_are_named() {
        let signer = Signer::from_secret([4; 32]);
        let records = log(&signer, 40, 45, "ab", "query");
        let check = check_log("kz-post", Some(&signer.public()), &records);
        assert!(check.problems.is_empty(), "{:?}", check.problems);
        assert_eq!(check.first, Some(40));
        let mut gap = records.clone();
        gap.remove(2);
        let check = check_log("kz-post", Some(&signer.public()), &gap);
        assert_eq!(check.problems, vec!["record 42 is missing".to_string()]);
    }

    #[test]
    fn each_arrival_is_checked_against_the_trail_in_a_few_lookups() {
        let signer = Signer::from_secret([4; 32]);
        let held = log(&signer, 1, 6, GENESIS_HASH, "query");
        let trail: BTreeMap<u64, TrailEntry> = held.iter().map(|s| (s.record.seq, TrailEntry::of(&s.record))).collect();
        let lookup = |seq: u64| trail.get(&seq).cloned();
        for signed in &held {
            assert!(check_arrival("kz-post", &signed.record, lookup).is_empty());
        }
        // Truncated to 4 offline, then record 5 written again.
        let again = log(&signer, 5, 5, &held[3].record.hash, "later");
        let found = check_arrival("kz-post", &again[0].record, lookup);
        assert!(found.iter().any(|p| p.contains("forked")), "{found:?}");
        assert!(found.iter().any(|p| p.contains("record 6 held here does not follow")), "{found:?}");
        // Record 7 written on a rewritten chain.
        let rewritten = log(&signer, 7, 7, "f00d", "query");
        let found = check_arrival("kz-post", &rewritten[0].record, lookup);
        assert_eq!(found, vec!["record 7 does not follow record 6 held here: the log was rewritten before it"]);
    }

    #[test]
    fn months_are_utc() {
        assert_eq!(audit_month(Timestamp::from_millis(1_795_600_000_000)), "2026-11");
        assert_eq!(audit_month(Timestamp::from_millis(0)), "1970-01");
    }
}
