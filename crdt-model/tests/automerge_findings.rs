//! The Automerge bytes behind fuzzing findings F1–F4 (`fuzz/README.md`),
//! through the path a peer's bytes take: parsed within the receive budget,
//! admitted with no roster (`--psk-only`, where anyone with the fleet key
//! may send them), applied and read back. Automerge 0.12 panicked on each;
//! now each is refused, or applied whole, and the document stays readable.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use outpost_model::admission::{Authority, Incoming, admit};
use outpost_model::replication::received::{Budget, ReceiveLimits, changes_within};
use outpost_model::schema::{DocKind, Document};

const F1: &[u8] = include_bytes!("../../fuzz/crashes/automerge/f1-changes");
const F2: &[u8] = include_bytes!("../../fuzz/crashes/automerge/f2-changes");
const F3: &[u8] = include_bytes!("../../fuzz/crashes/automerge/f3-changes");
const F4: &[u8] = include_bytes!("../../fuzz/crashes/automerge/f4-document-chunk");

/// The document the fuzz world's changes were made on.
fn incidents() -> Document {
    let id = DocKind::Incidents { post: "node-2".into(), month: "2026-10".into() }.doc_id();
    Document::load(&id, None, std::iter::empty()).unwrap()
}

/// Parses, admits, applies and reads back `bytes`; says how many changes
/// went in.
fn receive(bytes: &[u8]) -> Result<usize, String> {
    let mut doc = incidents();
    let genesis = doc.genesis_heads().to_vec();
    let mut budget = Budget::new(ReceiveLimits::default());
    let changes = changes_within([bytes], &genesis, &mut budget).map_err(|e| e.to_string())?;
    let verdict = admit(&mut doc, Incoming { changes, proofs: &[] }, &Authority::Open, &BTreeMap::new());
    let before = doc.heads();
    let admitted = verdict.admitted_hashes();
    doc.apply_changes(verdict.admitted.clone())
        .and_then(|()| doc.check_round_trip(&before, &admitted))
        .map_err(|e| e.to_string())?;
    // Whatever went in reads back, whole.
    let stored = doc.stored_changes_since(&before);
    assert_eq!(stored.len(), admitted.len());
    assert!(doc.knows(&admitted.iter().copied().collect::<Vec<_>>()));
    Ok(admitted.len())
}

#[test]
fn changes_automerge_panicked_on_are_refused_or_go_in_whole() {
    for (name, bytes) in [("F1", F1), ("F2", F2), ("F3", F3)] {
        match receive(bytes) {
            Ok(n) => eprintln!("{name}: {n} change(s) admitted, applied and read back"),
            Err(err) => {
                assert!(!err.is_empty(), "{name}: refused without a reason");
                eprintln!("{name}: refused: {err}");
            }
        }
    }
}

#[test]
fn a_document_chunk_automerge_panicked_on_is_refused_by_name() {
    let err = receive(F4).unwrap_err();
    assert!(!err.is_empty());
    let id = DocKind::Incidents { post: "node-2".into(), month: "2026-10".into() }.doc_id();
    assert!(Document::load(&id, Some(F4), std::iter::empty()).is_err());
}
