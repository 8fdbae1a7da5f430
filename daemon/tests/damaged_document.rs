//! A damaged document on disk costs writes to that document only, with an
//! error naming it; everything else keeps working and nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{add, start};
use outpost_daemon::store::{Batch, Store};
use outpost_daemon::writer::{Caller, WriteOp};
use outpost_model::api::{AmendInput, ErrorKind};

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
