//! A failing disk, through the storage seam (`store::backend`): IO errors
//! at every N-th write, a failed fsync, a full disk. No acknowledged write
//! is lost, the officer gets a clear error, and the writer reopens the
//! database by itself, so writes resume once the disk works again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{start, try_add};
use outpost_daemon::store::{Faults, Medium, Store};
use outpost_model::api::ErrorKind;
use outpost_model::watchlist::Entry;

fn faulty(dir: &std::path::Path) -> (Arc<Store>, Arc<Faults>) {
    let faults = Faults::new();
    let store = Arc::new(Store::open_on(Medium::Faulty(dir.to_path_buf(), faults.clone()), [5; 16]).unwrap());
    (store, faults)
}

/// Every acknowledged entry is in the store opened afresh from the file,
/// and its audit chain holds.
fn all_there(dir: &std::path::Path, acked: &[Entry]) {
    let store = Store::open(dir, [5; 16]).unwrap();
    for entry in acked {
        let stored = store.entry(&entry.id).unwrap();
        assert_eq!(stored.map(|e| e.id), Some(entry.id), "acknowledged entry {} is lost", entry.id);
    }
    let audit = store.audit(None, 1).unwrap();
    assert_eq!(audit.chain_error, None);
}

#[tokio::test]
async fn io_errors_at_every_nth_write_lose_no_acknowledged_write() {
    for every in [31, 47, 71, 113] {
        let dir = tempfile::tempdir().unwrap();
        let (store, faults) = faulty(dir.path());
        let (writer, thread) = start(store);
        faults.fail_every(every);
        let mut acked = Vec::new();
        let mut refused = 0;
        for n in 0..40 {
            match try_add(&writer, &[&format!("Алишер Каримов {n}")]).await {
                Ok(entries) => acked.extend(entries),
                Err(err) => {
                    refused += 1;
                    assert_eq!(err.kind, ErrorKind::Unavailable, "{}", err.message);
                    assert!(err.message.contains("nothing was stored"), "{}", err.message);
                }
            }
        }
        assert!(faults.injected() > 0 && refused > 0, "every {every}: no fault reached a commit");
        assert!(!acked.is_empty(), "every {every}: no commit got through between faults");
        // The disk heals: the next write goes in, with no restart.
        faults.heal();
        acked.extend(try_add(&writer, &["Фаррух Рахимов"]).await.unwrap());
        drop(writer);
        thread.join().unwrap();
        eprintln!("a fault at every {every}-th write: {} acknowledged, {refused} refused", acked.len());
        all_there(dir.path(), &acked);
    }
}

#[tokio::test]
async fn a_failed_fsync_acknowledges_nothing_and_the_next_write_goes_in() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty(dir.path());
    let (writer, thread) = start(store);
    let mut acked = try_add(&writer, &["Зарина Саидова"]).await.unwrap();
    faults.fail_sync(true);
    let err = try_add(&writer, &["Тимур Атаев"]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{}", err.message);
    faults.heal();
    acked.extend(try_add(&writer, &["Тимур Атаев"]).await.unwrap());
    drop(writer);
    thread.join().unwrap();
    all_there(dir.path(), &acked);
}

#[tokio::test]
async fn a_full_disk_refuses_writes_by_name_and_writes_resume_when_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let (store, faults) = faulty(dir.path());
    let (writer, thread) = start(store);
    let mut acked = try_add(&writer, &["Зарина Саидова"]).await.unwrap();
    faults.disk_full(true);
    let mut refusal = None;
    for n in 0..5000 {
        match try_add(&writer, &[&format!("Нурлан Абдиев {n}")]).await {
            Ok(entries) => acked.extend(entries),
            Err(err) => {
                refusal = Some(err);
                break;
            }
        }
    }
    let err = refusal.expect("the file never had to grow");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{}", err.message);
    assert!(err.message.contains("the disk is full"), "{}", err.message);
    // Still full: still refused, clearly, and nothing else breaks.
    let again = try_add(&writer, &["Тимур Атаев"]).await.unwrap_err();
    assert_eq!(again.kind, ErrorKind::Unavailable);
    faults.disk_full(false);
    acked.extend(try_add(&writer, &["Тимур Атаев"]).await.unwrap());
    drop(writer);
    thread.join().unwrap();
    all_there(dir.path(), &acked);
}
