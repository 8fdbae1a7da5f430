//! What the daemon's in-process tests share: a writer over a store, and
//! officers' writes.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, RwLock};

use outpost_daemon::store::Store;
use outpost_daemon::writer::{self, Caller, SharedIndex, WriteOp, WriterHandle, WriterSettings, Written};
use outpost_model::api::{ApiError, NewEntryInput};
use outpost_model::schema::actor_for;
use outpost_model::search::{NameIndex, WatchlistIndex};
use outpost_model::watchlist::Entry;

/// A writer thread over `store`, networking off.
pub fn start(store: Arc<Store>) -> (WriterHandle, std::thread::JoinHandle<()>) {
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
        clock: Arc::new(outpost_daemon::clock::SystemClock),
        daemon_uid: 0,
        latencies: Default::default(),
    };
    let (handle, thread) = writer::spawn(store, index, settings, None).unwrap();
    (handle, thread.join)
}

pub fn person(name: &str) -> NewEntryInput {
    NewEntryInput {
        kind: "person".into(),
        category: "warning".into(),
        reason: "test".into(),
        names: vec![name.into()],
        ..Default::default()
    }
}

/// Adds entries as one officer's write.
pub async fn try_add(writer: &WriterHandle, names: &[&str]) -> Result<Vec<Entry>, ApiError> {
    let inputs = names.iter().map(|n| person(n)).collect();
    match writer.submit(WriteOp::AddEntries { inputs }, &Caller::daemon()).await? {
        Written::Entries(entries) => Ok(entries),
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn add(writer: &WriterHandle, names: &[&str]) -> Vec<Entry> {
    try_add(writer, names).await.unwrap()
}
