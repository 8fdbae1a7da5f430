//! Writes the seed corpora, `corpus/<target>/seed-*`, from the real
//! encoders: frames of a real session between two members, signed
//! rosters, bundles of real signed changes, control requests as the CLI
//! sends them, and inputs that walk each target's structured steps.
//!
//! `cargo run --bin seeds -- [DIR]` (DIR defaults to `corpus`). Seeds are
//! deterministic: the world is made from fixed keys and times.

use std::path::{Path, PathBuf};

use outpost_fuzz::input::Writer;
use outpost_fuzz::world::world;
use outpost_model::api::{NewEntryInput, Request, RequestEnvelope, SearchInput, encode_frame};
use outpost_model::replication::bundle::BundlePayload;
use outpost_model::replication::frame::Body;
use outpost_model::schema::Document;
use outpost_model::trust::SignedRoster;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).expect("the corpus directory can be made");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("a seed can be written");
}

/// A seed, and the same in a `--psk-only` fleet (bit 1 of byte `at`).
fn write_both(dir: &Path, target: &str, name: &str, bytes: &[u8], at: usize) {
    write(dir, target, name, bytes);
    let mut psk = bytes.to_vec();
    psk[at] |= 2;
    write(dir, target, &format!("{name}-psk"), &psk);
}

fn frame_seeds(dir: &Path) {
    let w = world();
    let mut seen = std::collections::BTreeSet::new();
    let frames = w.session.from_a.iter().chain(&w.session.from_b);
    for (n, frame) in frames.enumerate() {
        // One of each kind of body, and size class, is enough.
        let kind = Body::decode(frame).map(|b| format!("{b:?}").chars().take(6).collect::<String>());
        if !seen.insert((kind.unwrap_or_default(), frame.len().ilog2(), frame[0])) {
            continue;
        }
        write(dir, "frame", &format!("session-{n:03}"), &[&[0u8][..], frame].concat());
    }
    for variant in 0..9u8 {
        let mut input = Writer::new();
        input.byte(1).byte(variant).byte(3).string("kz-khorgos");
        input.u32(7).u32(1 << 20).u64(2);
        write(dir, "frame", &format!("built-{variant}"), &input.finish());
    }
}

/// `step` of the engine target: slot, then the step's number.
fn step(input: &mut Writer, slot: u8, op: u8) -> &mut Writer {
    input.byte(slot).byte(op)
}

fn engine_seeds(dir: &Path) {
    let w = world();
    // The session's frames from B, fed to A as they were sent.
    let mut input = Writer::new();
    input.byte(0);
    for frame in &w.session.from_b {
        step(&mut input, 0, 0).bytes(frame);
    }
    write_both(dir, "engine_receive", "session-replay", &input.finish(), 0);
    // Connection open; B's real engine talks; time passes.
    let mut input = Writer::new();
    input.byte(0);
    step(&mut input, 0, 13);
    step(&mut input, 0, 12).u16(700);
    step(&mut input, 0, 13);
    write(dir, "engine_receive", "settle-timer", &input.finish());
    // Connected; B's recorded frames, re-slotted.
    let mut input = Writer::new();
    input.byte(1);
    for i in 0..w.session.from_b.len().min(24) {
        step(&mut input, (i % 8) as u8, 2).byte(i as u8).byte(1);
    }
    write(dir, "engine_receive", "recorded-reslotted", &input.finish());
    // A Hello that announces a newer roster, which B then sends.
    let mut input = Writer::new();
    input.byte(0);
    step(&mut input, 0, 4).byte(1).byte(1).byte(2).u32(1).u32(1 << 20);
    step(&mut input, 0, 11).byte(1);
    step(&mut input, 0, 13);
    write(dir, "engine_receive", "hello-newer-roster", &input.finish());
    // Open every document, sync real messages with real proofs, Done.
    let mut input = Writer::new();
    input.byte(1);
    for doc in 0..w.doc_ids.len() as u8 {
        step(&mut input, doc, 5).byte(doc).byte(0);
        step(&mut input, doc, 6).byte(0).byte(doc).byte(1).byte(0).byte(doc);
        step(&mut input, doc, 8).u64(u64::from(doc));
    }
    write_both(dir, "engine_receive", "open-sync-done", &input.finish(), 0);
    // A snapshot bundle of the document A lacks.
    let mut input = Writer::new();
    input.byte(1);
    step(&mut input, 5, 5).byte(2).byte(0);
    step(&mut input, 5, 7).byte(0).byte(1).byte(1).byte(2).byte(0).byte(1).byte(0).byte(0).byte(0).byte(1).byte(1);
    step(&mut input, 5, 13);
    write_both(dir, "engine_receive", "bundle-snapshot", &input.finish(), 0);
    // Reconcile, reset, refuse, reconnect, an administrator's roster.
    let mut input = Writer::new();
    input.byte(1);
    step(&mut input, 0, 10).byte(0).byte(2).byte(0).u32(1 << 20).byte(1).u64(5).byte(1).u32(9).byte(1).byte(0);
    step(&mut input, 1, 9).string("no progress for 30 s").byte(1);
    step(&mut input, 1, 9).string("not releasable").byte(0);
    step(&mut input, 0, 14);
    step(&mut input, 0, 15).byte(1);
    step(&mut input, 0, 13);
    write(dir, "engine_receive", "control-steps", &input.finish());
}

fn admission_seeds(dir: &Path) {
    // doc, authority, changes-1, order; then per change: branch, author
    // (member n-1 and 255 to keep its main actor), write (0: honest, then
    // a u32 seed; else raw ops), copies (3: once), proof (2: its author's).
    let honest = |input: &mut Writer, author: u8, seed: u32, proof: u8| {
        input.byte(0).byte(author).byte(255).byte(0).u32(seed).byte(3).byte(proof);
    };
    let mut input = Writer::new();
    input.byte(0).byte(1).byte(1).byte(0);
    honest(&mut input, 0, 11, 2);
    honest(&mut input, 1, 12, 2);
    write(dir, "admission", "watchlist-members", &input.finish());
    let mut input = Writer::new();
    input.byte(1).byte(1).byte(2).byte(0);
    honest(&mut input, 1, 13, 2);
    honest(&mut input, 1, 14, 0);
    honest(&mut input, 0, 15, 2);
    write(dir, "admission", "incidents-chain", &input.finish());
    let mut input = Writer::new();
    input.byte(0).byte(2).byte(3).byte(1);
    honest(&mut input, 4, 16, 2); // revoked
    input.byte(0).byte(3).byte(255).byte(0).u32(17).byte(3).byte(2); // observer
    input.byte(0).byte(5).byte(255).byte(0).u32(18).byte(3).byte(2); // stranger
    honest(&mut input, 0, 19, 6);
    write(dir, "admission", "revoked-observer-stranger", &input.finish());
    for (doc, authority) in [(0u8, 0u8), (1, 1), (3, 1)] {
        let mut input = Writer::new();
        input.byte(doc).byte(authority).byte(7).byte(2);
        for op in 0..8u8 {
            // Raw ops: one op, of kind `op`, on an existing record.
            input.byte(op % 2).byte(op % 3).byte(255).byte(1).byte(0).byte(op).byte(0).byte(0).byte(1).u64(9);
            input.byte(3).byte(2);
        }
        write(dir, "admission", &format!("raw-ops-{doc}-{authority}"), &input.finish());
    }
}

fn roster_seeds(dir: &Path) {
    let w = world();
    write(dir, "roster", "signed", &[&[0u8][..], &w.signed].concat());
    write(dir, "roster", "newer", &[&[0u8][..], &w.newer].concat());
    if let Ok(signed) = SignedRoster::decode(&w.signed) {
        write(dir, "roster", "content", &[&[1u8][..], &signed.body].concat());
    }
    let mut input = Writer::new();
    input.byte(2).byte(3).byte(3);
    for n in 0..3u8 {
        input.byte(n).byte(n).byte(n % 3).byte(n).byte(1).byte(0).byte(0).u32(0).byte(1);
    }
    input.byte(1).byte(0).byte(1).byte(2).byte(6).byte(1).byte(1);
    write(dir, "roster", "built", &input.finish());
    let mut input = Writer::new();
    input.byte(2).byte(2).byte(2).byte(0).byte(0).byte(0).byte(0).byte(1).byte(1).byte(1).byte(0).u32(5).byte(0);
    input.byte(0).byte(0).byte(0).byte(1).byte(6).byte(1).byte(0);
    write(dir, "roster", "built-chain", &input.finish());
    write(dir, "roster", "texts", b"\x03watchlist:KAZ-BS\nKAZ-BS\nKAZ");
    let key = w.fleet.anchor().to_hex();
    write(
        dir,
        "roster",
        "texts-key",
        format!("\x03incident-notes:*\n{key}\n{}", w.fleet.anchor().peer_id()).as_bytes(),
    );
}

fn control_seeds(dir: &Path) {
    let requests = [
        Request::Status,
        Request::WatchlistAdd {
            entry: Box::new(NewEntryInput {
                kind: "person".into(),
                category: "warning".into(),
                reason: "seed".into(),
                names: vec!["Мухаммад Алиев".into()],
                ..Default::default()
            }),
        },
        Request::WatchlistSearch(Box::new(SearchInput {
            query: "aliev".into(),
            purpose: "bus 214".into(),
            ..Default::default()
        })),
        Request::WatchlistList { status: Some("active".into()), kind: None, limit: Some(10), purpose: None },
        Request::IncidentList { since: Some("2026-11-01".into()), follow_up: None, limit: None },
        Request::Audit { since: None, limit: Some(5), post: Some("kz-post".into()) },
        Request::SyncNow { peer: None },
        Request::FleetPublish { roster: "00ff".into() },
    ];
    let mut stream = vec![0u8];
    for (n, request) in requests.into_iter().enumerate() {
        let envelope = RequestEnvelope { version: outpost_model::api::PROTOCOL_VERSION, request };
        let frame = encode_frame(&envelope).expect("a request encodes");
        write(dir, "control_request", &format!("request-{n}"), &[&[0u8][..], &frame].concat());
        stream.extend_from_slice(&frame);
    }
    write(dir, "control_request", "stream", &stream);
    let bad = br#"{"version":2,"request":{"op":"status"}}"#;
    let frame = [&(bad.len() as u32).to_be_bytes()[..], bad].concat();
    write(dir, "control_request", "bad-version", &[&[0u8][..], &frame].concat());
    write(dir, "control_request", "too-large", &[0u8, 0xff, 0xff, 0xff, 0xff]);
    write(dir, "control_request", "built", &[1, 3, 0, 2, 7, 1, 3, 4, 2, 2, 1, 0, 3]);
}

fn bundle_seeds(dir: &Path) {
    let w = world();
    // What B has that A lacks, as change bundles; whole documents as
    // snapshot bundles.
    for (n, (id, chunks, proofs)) in w.b_changes.iter().enumerate() {
        let doc = w.doc_ids.iter().position(|d| d == id).unwrap_or(0) as u8;
        let Some((_, saved)) = w.b_docs.iter().find(|(d, _)| d == id) else { continue };
        let Ok(mut loaded) = Document::load(id, Some(saved), std::iter::empty()) else { continue };
        let heads = loaded.heads();
        let changes = BundlePayload::new(&heads, chunks.clone(), proofs.clone());
        let raw = postcard::to_allocvec(&changes).expect("a payload encodes");
        let parts = changes.into_parts().expect("a payload bundles");
        write_both(dir, "bundle", &format!("changes-{n}"), &[&[doc, 0, 0, 0][..], &parts.concat()].concat(), 1);
        write(dir, "bundle", &format!("changes-raw-{n}"), &[&[doc, 0, 1, 1][..], &raw].concat());
        let snapshot = BundlePayload::new(&heads, vec![loaded.save()], proofs.clone());
        let parts = snapshot.into_parts().expect("a payload bundles");
        write(dir, "bundle", &format!("snapshot-{n}"), &[&[doc, 1, 0, 2][..], &parts.concat()].concat());
    }
    let mut input = Writer::new();
    input.byte(0).byte(0).byte(2).byte(0);
    input.byte(1).raw(&[7; 32]).byte(2).byte(0).byte(0).byte(0).byte(0).byte(2).byte(0).byte(0).byte(1).byte(0).byte(0);
    write(dir, "bundle", "built", &input.finish());
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    assert!(outpost_fuzz::roster::domain_holds(), "the roster signing domain restated in roster.rs is stale");
    frame_seeds(&dir);
    engine_seeds(&dir);
    admission_seeds(&dir);
    roster_seeds(&dir);
    control_seeds(&dir);
    bundle_seeds(&dir);
    let w = world();
    println!(
        "seeds written to {} (session: {} frames from A, {} from B)",
        dir.display(),
        w.session.from_a.len(),
        w.session.from_b.len()
    );
}
