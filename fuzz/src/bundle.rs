//! Target `bundle`: a USB-bundle-shaped input, received.
//!
//! A USB bundle will carry what a catch-up bundle carries
//! (`docs/replication.md`: "USB bundles carry the same payload (`chunks`
//! and `proofs`) and pass the same admission function"): a
//! zstd-compressed `BundlePayload` (heads, Automerge chunks, proofs). No
//! USB container exists yet, so the input is a 4-byte header, then the
//! blob:
//!
//! - byte 0: the document (one of the world's, or none known);
//! - byte 1: bit 0, snapshot or changes; bit 1, a `--psk-only` fleet;
//! - byte 2: what the blob is: 0 the compressed payload as a file would
//!   hold it, 1 the payload uncompressed (compressed here), 2 steps that
//!   build a payload from the world's real chunks and proofs;
//! - byte 3: how many parts the blob is split into (1 to 4).
//!
//! First the blob is reassembled on its own (`bundle::Reassembly`): a
//! whole bundle comes back only with its last part, a payload that
//! decodes survives `into_parts` and reassembly unchanged, parts out of
//! order are refused, and every error names its problem. Then node B of
//! the world greets node A and sends it the blob as a bundle for the
//! document; A's engine receives it with all the checks of
//! `engine_receive`.

use outpost_model::replication::bundle::{BundleError, BundlePayload, Reassembly};
use outpost_model::replication::frame::{Body, BundleKind};
use outpost_model::replication::pair::FrameFilter;

use crate::engine::to_a;
use crate::input::Input;
use crate::world::{check_node, world};

pub fn run(data: &[u8]) {
    let world = world();
    let mut input = Input::new(data);
    let doc = match input.choose(world.doc_ids.len() + 1) {
        i if i < world.doc_ids.len() => world.doc_ids[i].to_string(),
        _ => "watchlist/KAZ-BS/0f".to_string(),
    };
    let flags = input.byte();
    let kind = if flags & 1 != 0 { BundleKind::Snapshot } else { BundleKind::Changes };
    let psk = flags & 2 != 0;
    let mode = input.choose(3);
    let split = 1 + input.choose(4);
    let blob = match mode {
        0 => input.rest().to_vec(),
        1 => zstd::bulk::compress(input.rest(), 1).unwrap_or_default(),
        _ => crate::engine::bundle_parts(world, &mut input).concat(),
    };
    let size = blob.len().div_ceil(split).max(1);
    let mut parts: Vec<Vec<u8>> = blob.chunks(size).map(<[u8]>::to_vec).collect();
    if parts.is_empty() {
        parts.push(Vec::new());
    }
    reassemble(kind, &parts);

    let mut pair = world.pair_of(psk);
    pair.keep = Some(FrameFilter(Box::new(|n, _, frame| {
        if let Err(err) = Body::decode(frame) {
            panic!("an engine sent a frame its peer refuses: {err}");
        }
        n < 4_000
    })));
    crate::engine::greeted(&mut pair);
    let slot = 40;
    if let Ok(open) = (Body::Open { slot, doc, priority: 0 }).encode() {
        to_a(&mut pair, &open);
    }
    let of = parts.len() as u16;
    for (n, data) in parts.into_iter().enumerate() {
        if let Ok(frame) = (Body::Bundle { slot, kind, part: n as u16, of, data }).encode() {
            to_a(&mut pair, &frame);
        }
    }
    // What B's real engine makes of A's replies is `engine_receive`'s
    // ground; here A's side is checked.
    check_node(&mut pair.a, 1);
}

/// The blob's parts through `Reassembly` alone.
fn reassemble(kind: BundleKind, parts: &[Vec<u8>]) {
    let of = parts.len() as u16;
    let mut building = None;
    let mut done = None;
    for (n, part) in parts.iter().enumerate() {
        let last = n + 1 == parts.len();
        match Reassembly::add(&mut building, kind, n as u16, of, part) {
            Ok(Some(whole)) => {
                assert!(last, "a bundle came back before its last part");
                done = Some(whole);
            }
            Ok(None) => assert!(!last, "the last part brought no bundle and no error"),
            Err(err) => {
                assert!(last, "part {n} of {of} refused before the last: {err}");
                assert!(!err.to_string().trim().is_empty());
                assert!(matches!(err, BundleError::Compression(_) | BundleError::Malformed(_)), "{err}");
            }
        }
    }
    if let Some((back_kind, payload)) = done {
        assert_eq!(back_kind, kind);
        round_trip(kind, &payload);
    }
    // Out of order: part 1 first is refused, and names part 0 as due.
    if parts.len() > 1 {
        let mut building = None;
        let err = Reassembly::add(&mut building, kind, 1, of, &parts[1]);
        assert_eq!(err, Err(BundleError::OutOfOrder { part: 1, of, expected: 0 }));
    }
}

/// A payload that decoded survives being bundled again. (Payloads over
/// 1 MiB are left out: bundling them again costs seconds at the bundle's
/// compression level, and says nothing more.)
fn round_trip(kind: BundleKind, payload: &BundlePayload) {
    if postcard::to_allocvec(payload).map_or(true, |raw| raw.len() > 1 << 20) {
        return;
    }
    let parts = match payload.clone().into_parts() {
        Ok(parts) => parts,
        Err(err) => panic!("a payload that was received cannot be bundled again: {err}"),
    };
    let of = parts.len() as u16;
    let mut building = None;
    let mut done = None;
    for (n, part) in parts.iter().enumerate() {
        done = Reassembly::add(&mut building, kind, n as u16, of, part).expect("our own parts reassemble");
    }
    assert_eq!(done, Some((kind, payload.clone())), "a payload bundled again does not come back the same");
}
