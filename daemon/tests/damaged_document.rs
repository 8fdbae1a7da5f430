//! A damaged document on disk costs writes to that document only, with an
//! error naming it; everything else keeps working and nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, RwLock};

use outpost_daemon::store::{Batch, Store};
use outpost_daemon::writer::{self, Caller, SharedIndex, WriteOp, WriterHandle, WriterSettings, Written};
use outpost_model::api::{AmendInput, ErrorKind, NewEntryInput};
use outpost_model::schema::actor_for;
use outpost_model::search::{NameIndex, WatchlistIndex};
use outpost_model::watchlist::Entry;

fn start(store: Arc<Store>) -> (WriterHandle, std::thread::JoinHandle<()>) {
    let index: SharedIndex = Arc::new(RwLock::new(Box::new(NameIndex::new()) as Box<dyn WatchlistIndex>));
    let settings = WriterSettings {
        post: "kz-test".into(),
        authority: "KAZ-BS".into(),
        offset: time::UtcOffset::UTC,
        actor: actor_for(&store.node_id(), [1, 2, 3, 4]),
        signer: outpost_model::trust::Signer::from_secret([7; 32]),
        compact_after_changes: 1000,
        max_loaded_docs: 64,
        quarantine: writer::QuarantineLimits::default(),
    };
    let (handle, thread) = writer::spawn(store, index, settings, None).unwrap();
    (handle, thread.join)
}

fn person(name: &str) -> NewEntryInput {
    NewEntryInput {
        kind: "person".into(),
        category: "warning".into(),
        reason: "test".into(),
        names: vec![name.into()],
        ..Default::default()
    }
}

async fn add(writer: &WriterHandle, names: &[&str]) -> Vec<Entry> {
    let inputs = names.iter().map(|n| person(n)).collect();
    match writer.submit(WriteOp::AddEntries { inputs }, &Caller::daemon()).await.unwrap() {
        Written::Entries(entries) => entries,
        other => panic!("unexpected {other:?}"),
    }
}

fn amend(reason: &str) -> Box<AmendInput> {
    Box::new(AmendInput { reason: Some(reason.into()), ..Default::default() })
}

#[tokio::test]
async fn a_garbage_change_on_disk_refuses_writes_to_its_document_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), [5; 16]).unwrap());
    let (writer, thread) = start(store.clone());
    let entries = add(&writer, &["Алишер Каримов", "Фаррух Рахимов", "Зарина Саидова", "Тимур Атаев"]).await;
    drop(writer);
    thread.join().unwrap();

    let victim = entries[0].clone();
    let healthy = entries.iter().find(|e| e.doc != victim.doc).expect("entries in two documents").clone();
    store
        .commit(Batch {
            changes: vec![(victim.doc.clone(), b"not an automerge change".to_vec())],
            ..Default::default()
        })
        .unwrap();

    let (writer, thread) = start(store.clone());
    let err = writer.submit(WriteOp::Amend { id: victim.id, input: amend("x") }, &Caller::daemon()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains(&format!("document {} cannot be loaded", victim.doc)), "{}", err.message);

    writer.submit(WriteOp::Amend { id: healthy.id, input: amend("still writable") }, &Caller::daemon()).await.unwrap();
    assert_eq!(store.entry(&healthy.id).unwrap().unwrap().reason, "still writable");
    assert_eq!(
        store.entry(&victim.id).unwrap().unwrap().reason,
        "test",
        "the damaged document's data is still readable"
    );
    drop(writer);
    thread.join().unwrap();
}
