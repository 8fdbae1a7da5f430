use outpost_model::audit::AuditEvent;
use outpost_model::date::Timestamp;

use super::*;

fn store(dir: &Path) -> Store {
    Store::open(dir, [7; 16]).unwrap()
}

fn event(n: i64) -> AuditEvent {
    AuditEvent {
        at: Timestamp::from_millis(n),
        uid: 1000,
        pid: None,
        user: "aigerim".into(),
        role: "officer".into(),
        action: "watchlist.search".into(),
        purpose: Some("check".into()),
        detail: format!("query {n}"),
        result_ids: vec![],
    }
}

#[test]
fn the_node_id_is_created_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(dir.path()).node_id();
    let again = Store::open(dir.path(), [9; 16]).unwrap().node_id();
    assert_eq!(first, again);
}

#[test]
fn a_second_daemon_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = store(dir.path());
    let err = Store::open(dir.path(), [9; 16]).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err}");
}

#[test]
fn old_index_records_stay_stale_until_they_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path());
        assert!(s.search_keys_stale(), "a new database has no records yet");
        s.replace_index_records(&[]).unwrap();
        let txn = s.begin_write().unwrap();
        txn.open_table(TABLE_VERSIONS).unwrap().insert("search_keys", INDEX_RECORD_VERSION - 1).unwrap();
        txn.commit().unwrap();
    }
    // A start that dies before rebuilding must leave them stale.
    assert!(store(dir.path()).search_keys_stale());
    let s = store(dir.path());
    assert!(s.search_keys_stale());
    s.replace_index_records(&[]).unwrap();
    drop(s);
    assert!(!store(dir.path()).search_keys_stale());
}

#[test]
fn a_table_from_a_newer_release_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path());
        let txn = s.begin_write().unwrap();
        txn.open_table(TABLE_VERSIONS).unwrap().insert("entries", 99).unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(dir.path(), [7; 16]).unwrap_err().to_string();
    assert!(err.contains("table entries has format version 99"), "{err}");
}

#[test]
fn changes_get_consecutive_sequence_numbers_per_document_and_compact_away() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let a = DocId::parse("watchlist/KAZ-BS/00").unwrap();
    let b = DocId::parse("watchlist/KAZ-BS/01").unwrap();
    let receipt = s
        .commit(Batch {
            changes: vec![(a.clone(), vec![1]), (b.clone(), vec![2]), (a.clone(), vec![3])],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(receipt.change_seqs, vec![(a.clone(), 1), (b.clone(), 1), (a.clone(), 2)]);
    assert_eq!(s.load_doc(&a).unwrap().changes, vec![(1, vec![1]), (2, vec![3])]);
    s.compact(&a, &[42], 1).unwrap();
    let stored = s.load_doc(&a).unwrap();
    assert_eq!(stored.snapshot, Some(vec![42]));
    assert_eq!(stored.changes, vec![(2, vec![3])]);
    assert_eq!(s.doc_ids().unwrap(), vec![a.clone(), b]);
    s.compact(&a, &[43], 2).unwrap();
    let receipt = s.commit(Batch { changes: vec![(a.clone(), vec![4])], ..Default::default() }).unwrap();
    assert_eq!(receipt.change_seqs, vec![(a, 3)], "sequence numbers are never reused after compaction");
}

/// Seals `events` onto the store's chain, as the writer does.
fn sealed(s: &Store, events: Vec<AuditEvent>) -> Vec<AuditRecord> {
    let (mut seq, mut prev) = s.audit_head().unwrap();
    events
        .into_iter()
        .map(|event| {
            seq += 1;
            let record = outpost_model::audit::seal(event, seq, "test-post", &prev);
            prev = record.hash.clone();
            record
        })
        .collect()
}

#[test]
fn audit_records_chain_across_commits_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    for n in 0..3 {
        s.commit(Batch { audit: sealed(&s, vec![event(n), event(n + 10)]), ..Default::default() }).unwrap();
    }
    let view = s.audit(None, 4).unwrap();
    assert_eq!(view.chain_length, 6);
    assert_eq!(view.records.len(), 4);
    assert_eq!(view.records[0].seq, 3);
    assert_eq!(view.chain_error, None);
    let since = s.audit(Some(Timestamp::from_millis(11)), 100).unwrap();
    assert_eq!(since.records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4, 6]);
}

#[test]
fn a_record_that_does_not_continue_the_stored_chain_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let first = sealed(&s, vec![event(1)]);
    s.commit(Batch { audit: first.clone(), ..Default::default() }).unwrap();
    // Sealed onto a head that is no longer the stored one.
    let stale = outpost_model::audit::seal(event(2), 1, "test-post", outpost_model::audit::GENESIS_HASH);
    let a = DocId::parse("watchlist/KAZ-BS/01").unwrap();
    let err = s.commit(Batch { changes: vec![(a.clone(), vec![1])], audit: vec![stale], ..Default::default() });
    assert!(matches!(err, Err(StoreError::AuditOutOfStep { seq: 1, last: 1 })), "{err:?}");
    assert!(s.load_doc(&a).unwrap().changes.is_empty(), "nothing of the batch was stored");
    assert_eq!(s.audit_head().unwrap(), (1, first[0].hash.clone()));
}

#[test]
fn a_tampered_audit_record_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.commit(Batch { audit: sealed(&s, vec![event(1), event(2), event(3)]), ..Default::default() }).unwrap();
    {
        let txn = s.begin_write().unwrap();
        {
            let mut audit = txn.open_table(AUDIT).unwrap();
            let mut record: AuditRecord = serde_json::from_slice(audit.get(2).unwrap().unwrap().value()).unwrap();
            record.purpose = Some("edited".into());
            audit.insert(2, serde_json::to_vec(&record).unwrap().as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let view = s.audit(None, 10).unwrap();
    let error = view.chain_error.unwrap();
    assert!(error.contains("record 2"), "{error}");
}

#[test]
fn a_damaged_projection_row_is_named_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    {
        let txn = s.begin_write().unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert("0193a5c2-0000-7000-8000-000000000000", b"{not json".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let mut seen = 0;
    let damaged = s.for_each_entry(|_| seen += 1).unwrap();
    assert_eq!(seen, 0);
    assert_eq!(damaged.len(), 1);
    assert!(damaged[0].to_string().contains("damaged row in entries at 0193a5c2"), "{}", damaged[0]);
}

#[test]
fn the_database_is_readable_by_the_daemons_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    drop(store(dir.path()));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    // Restored from a backup with a loose mode, it is tightened at open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(store(dir.path()));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_store_in_memory_works_and_is_never_reopened_empty() {
    let s = Store::open_on(Medium::Memory, [3; 16]).unwrap();
    let a = DocId::parse("watchlist/KAZ-BS/01").unwrap();
    s.commit(Batch { changes: vec![(a.clone(), vec![1])], audit: sealed(&s, vec![event(1)]), ..Default::default() })
        .unwrap();
    assert_eq!(s.load_doc(&a).unwrap().changes, vec![(1, vec![1])]);
    assert!(matches!(s.reopen(), Err(StoreError::Unavailable(_))));
    assert_eq!(s.audit(None, 10).unwrap().chain_length, 1, "still there");
}

#[test]
fn after_an_io_error_the_store_refuses_everything_until_reopened_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let s = Store::open_on(Medium::Faulty(dir.path().to_path_buf(), faults.clone()), [3; 16]).unwrap();
    let a = DocId::parse("watchlist/KAZ-BS/01").unwrap();
    s.commit(Batch { changes: vec![(a.clone(), vec![1])], ..Default::default() }).unwrap();
    faults.fail_write_in(1);
    let err = s.commit(Batch { changes: vec![(a.clone(), vec![2])], ..Default::default() }).unwrap_err();
    assert!(err.needs_reopen(), "{err}");
    let refused = s.commit(Batch { changes: vec![(a.clone(), vec![3])], ..Default::default() }).unwrap_err();
    assert!(refused.needs_reopen(), "redb refuses until reopened: {refused}");
    s.reopen().unwrap();
    assert_eq!(s.load_doc(&a).unwrap().changes, vec![(1, vec![1])], "the committed change, and only it");
    s.commit(Batch { changes: vec![(a.clone(), vec![4])], ..Default::default() }).unwrap();
    assert_eq!(s.load_doc(&a).unwrap().changes.len(), 2);
}
