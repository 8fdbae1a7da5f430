//! Catch-up bundles: many changes, or a whole document, compressed once and
//! split into frames.
//!
//! Automerge's sync sends what a peer lacks as uncompressed change chunks,
//! in one message (`measurements.md`: 2.7× `save()` for a peer missing 10%
//! of a document). A bundle carries the same chunks zstd-compressed
//! together, which finds the redundancy between changes, and splits the
//! result into parts that fit a frame. The receiver checks every chunk
//! before applying any (`Document::apply_received`).

use automerge::ChangeHash;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::frame::{BundleKind, MAX_FRAME_BYTES};
use crate::trust::proof::Proof;

/// Bytes of compressed payload per part, leaving room for the frame.
pub const PART_BYTES: usize = MAX_FRAME_BYTES - 4096;
/// The most one bundle may hold, compressed or expanded: the memory one
/// peer can make a node spend on a bundle at a time.
pub const MAX_BUNDLE_BYTES: usize = 64 << 20;
/// Bundles are compressed harder than frames: they are large and rare.
const BUNDLE_ZSTD_LEVEL: i32 = 15;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("bundle part {part} of {of} arrived while part {expected} was due")]
    OutOfOrder { part: u16, of: u16, expected: u16 },
    #[error("bundle is over the {MAX_BUNDLE_BYTES}-byte limit")]
    TooLarge,
    #[error("bundle does not expand: {0}")]
    Compression(String),
    #[error("bundle does not decode: {0}")]
    Malformed(String),
}

/// Proofs one bundle may carry: one per actor of each document it holds,
/// with attestations, is what honest senders send.
pub const MAX_BUNDLE_PROOFS: usize = 16 * 1024;

/// What a bundle carries once expanded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundlePayload {
    /// The sender's heads when it made the bundle; a receiver that then
    /// holds exactly these confirms with `Done`.
    pub heads: Vec<[u8; 32]>,
    /// Automerge chunks: changes, or one whole document.
    #[serde(with = "byte_chunks")]
    pub chunks: Vec<Vec<u8>>,
    /// Proofs over the newest change of each actor the chunks hold.
    pub proofs: Vec<Proof>,
}

impl BundlePayload {
    pub fn new(heads: &[ChangeHash], chunks: Vec<Vec<u8>>, proofs: Vec<Proof>) -> Self {
        Self { heads: heads.iter().map(|h| h.0).collect(), chunks, proofs }
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        self.heads.iter().map(|h| ChangeHash(*h)).collect()
    }

    /// The compressed payload split into parts of at most [`PART_BYTES`].
    pub fn into_parts(self) -> Result<Vec<Vec<u8>>, BundleError> {
        let raw = postcard::to_allocvec(&self).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if raw.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge);
        }
        let compressed =
            zstd::bulk::compress(&raw, BUNDLE_ZSTD_LEVEL).map_err(|e| BundleError::Compression(e.to_string()))?;
        if compressed.len() / PART_BYTES >= usize::from(u16::MAX) {
            return Err(BundleError::TooLarge);
        }
        Ok(compressed.chunks(PART_BYTES).map(<[u8]>::to_vec).collect())
    }
}

/// A bundle being received, part by part, in order.
#[derive(Debug)]
pub struct Reassembly {
    kind: BundleKind,
    of: u16,
    next: u16,
    data: Vec<u8>,
}

impl Reassembly {
    /// Bytes held so far.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Adds a part. Returns the bundle once its last part is in. Part 0
    /// always starts a new bundle, so a sender that starts over is followed.
    pub fn add(
        slot: &mut Option<Reassembly>,
        kind: BundleKind,
        part: u16,
        of: u16,
        data: &[u8],
    ) -> Result<Option<(BundleKind, BundlePayload)>, BundleError> {
        if part == 0 {
            *slot = Some(Reassembly { kind, of, next: 0, data: Vec::new() });
        }
        let Some(building) = slot.as_mut() else {
            return Err(BundleError::OutOfOrder { part, of, expected: 0 });
        };
        if part != building.next || of != building.of || kind != building.kind {
            let expected = building.next;
            *slot = None;
            return Err(BundleError::OutOfOrder { part, of, expected });
        }
        if building.data.len() + data.len() > MAX_BUNDLE_BYTES {
            *slot = None;
            return Err(BundleError::TooLarge);
        }
        building.data.extend_from_slice(data);
        building.next += 1;
        if building.next < building.of {
            return Ok(None);
        }
        let Some(done) = slot.take() else { return Ok(None) };
        let raw = zstd::bulk::decompress(&done.data, MAX_BUNDLE_BYTES)
            .map_err(|e| BundleError::Compression(e.to_string()))?;
        let payload: BundlePayload = postcard::from_bytes(&raw).map_err(|e| BundleError::Malformed(e.to_string()))?;
        // Every proof may cost a signature check on the writer thread.
        if payload.proofs.len() > MAX_BUNDLE_PROOFS {
            return Err(BundleError::Malformed(format!(
                "{} proofs, at most {MAX_BUNDLE_PROOFS}",
                payload.proofs.len()
            )));
        }
        Ok(Some((done.kind, payload)))
    }
}

/// Chunks as byte strings: decoded as one copy each, not byte by byte
/// (a bundle of a large document holds megabytes). The encoding is the
/// same as a list of byte lists.
mod byte_chunks {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub(super) fn serialize<S: Serializer>(chunks: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(chunks.iter().map(|c| Bytes::new(c)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Ok(Vec::<ByteBuf>::deserialize(deserializer)?.into_iter().map(ByteBuf::into_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_the_wire_encoding_of_lists_of_bytes() {
        let payload = BundlePayload::new(&[ChangeHash([4; 32])], vec![vec![1, 2], vec![3]], Vec::new());
        let plain =
            postcard::to_allocvec(&(vec![[4u8; 32]], vec![vec![1u8, 2], vec![3u8]], Vec::<Proof>::new())).unwrap();
        let encoded = postcard::to_allocvec(&payload).unwrap();
        assert_eq!(encoded, plain);
        assert_eq!(postcard::from_bytes::<BundlePayload>(&encoded).unwrap(), payload);
    }

    #[test]
    fn a_bundle_split_into_parts_comes_back_whole() {
        // Incompressible, so that it needs several parts.
        let noise = crate::replication::frame::tests::noise(3 * PART_BYTES);
        let payload = BundlePayload { heads: vec![[7; 32]], chunks: vec![noise, vec![1, 2, 3]], proofs: vec![] };
        let parts = payload.clone().into_parts().unwrap();
        assert!(parts.len() >= 3, "{} parts", parts.len());
        let of = parts.len() as u16;
        let mut building = None;
        let mut done = None;
        for (n, part) in parts.iter().enumerate() {
            done = Reassembly::add(&mut building, BundleKind::Changes, n as u16, of, part).unwrap();
        }
        assert_eq!(done, Some((BundleKind::Changes, payload)));
    }

    #[test]
    fn a_missing_part_is_named_and_a_new_start_is_followed() {
        let payload = BundlePayload { heads: vec![], chunks: vec![vec![5; 10]], proofs: vec![] };
        let parts = payload.clone().into_parts().unwrap();
        let mut building = None;
        let err = Reassembly::add(&mut building, BundleKind::Snapshot, 1, 2, &parts[0]).unwrap_err();
        assert_eq!(err, BundleError::OutOfOrder { part: 1, of: 2, expected: 0 });
        let done = Reassembly::add(&mut building, BundleKind::Snapshot, 0, 1, &parts[0]).unwrap();
        assert_eq!(done, Some((BundleKind::Snapshot, payload)));
        let garbage = Reassembly::add(&mut building, BundleKind::Snapshot, 0, 1, b"not zstd").unwrap_err();
        assert!(matches!(garbage, BundleError::Compression(_)));
    }
}
