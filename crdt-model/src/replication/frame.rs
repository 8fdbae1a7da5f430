//! Frames between two nodes: one version byte, then a `postcard` body.
//!
//! Everything a peer sends is checked here before the engine sees it: the
//! frame size, the version, that the body decodes completely, document ids,
//! reconcile ranges (ordered, disjoint, at most 1,024 parts), bundle parts,
//! signature and reason lengths. A bad frame is an error that names the
//! problem and never panics. Decoding may allocate some ten times the
//! frame's size for small parts. Still unchecked, for the engine to decide:
//! `Hello` fields, priorities, empty sync messages and bundle reassembly
//! limits. See `docs/replication.md`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::digest::{Fingerprint, Part};
use crate::ids::DocId;
use crate::trust::proof::Proof;

/// 2: signed changes and the fleet roster (issue 9).
pub const PROTOCOL_VERSION: u8 = 2;
/// Set in the version byte when the body that follows is zstd-compressed.
const COMPRESSED: u8 = 0x80;
/// Bodies shorter than this are sent as they are: compressing a small
/// frame rarely saves a byte.
const COMPRESS_OVER: usize = 512;
/// zstd level for frames. On a 64 kbit/s link a byte saved is worth far
/// more than the CPU time of a higher level (`outpost-bench sync`).
const ZSTD_LEVEL: i32 = 9;
/// The most a frame may take on the wire. Larger bundles are split into
/// parts.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// The most a compressed frame may expand to, which bounds what one frame
/// can make a node allocate.
pub const MAX_BODY_BYTES: usize = 8 << 20;
/// Node names are short labels.
pub const MAX_NAME_CHARS: usize = 64;
/// Reasons are for logs, not essays.
pub const MAX_REASON_CHARS: usize = 200;
/// Proofs one sync message may carry: one per actor of its changes is
/// what honest senders send.
pub const MAX_PROOFS: usize = 4096;

/// A per-session number standing for a document, so that ids cross the
/// link once per session.
pub type Slot = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BundleKind {
    /// The whole document (`save()`), for a peer that has none of it.
    Snapshot,
    /// The changes the peer lacks.
    Changes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Hello {
        /// The prefix of the node's actors, derived from its key.
        node: [u8; 16],
        /// The node's name; must match its roster entry.
        name: String,
        features: u32,
        max_frame: u32,
        /// The version of the roster the node holds (0: none).
        roster: u64,
    },
    /// The sender's signed roster, newer than the one the receiver
    /// announced.
    Roster {
        #[serde(with = "serde_bytes")]
        roster: Vec<u8>,
    },
    /// The digest exchange; between nodes that do not exchange documents,
    /// only the roster version, with no parts.
    Reconcile {
        /// The version of the roster the sender holds: a peer that lost
        /// the newer one is sent it again.
        roster: u64,
        parts: Vec<Part>,
    },
    /// `doc` is checked as a [`DocId`] on decode; it travels as text so
    /// that a bad one can be named.
    Open {
        slot: Slot,
        doc: String,
        priority: u8,
    },
    Refuse {
        slot: Slot,
        reason: String,
    },
    Sync {
        slot: Slot,
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
        /// Proofs over the newest change of each actor the message carries.
        proofs: Vec<Proof>,
    },
    /// A part of a bundle; its proofs travel inside the payload.
    Bundle {
        slot: Slot,
        kind: BundleKind,
        part: u16,
        of: u16,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    Done {
        slot: Slot,
        fingerprint: Fingerprint,
    },
    Reset {
        slot: Slot,
        reason: String,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame is empty")]
    Empty,
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("peer speaks sync protocol version {found}; this node speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion { found: u8 },
    #[error("frame body does not decode: {0}")]
    Malformed(String),
    #[error("frame body is followed by {0} unread bytes")]
    TrailingBytes(usize),
    #[error("invalid frame field {field}: {problem}")]
    Invalid { field: &'static str, problem: String },
}

impl Body {
    /// The frame, compressed when that saves bytes.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let body = postcard::to_allocvec(self).map_err(|e| FrameError::Malformed(e.to_string()))?;
        if body.len() > MAX_BODY_BYTES {
            return Err(FrameError::TooLarge { len: body.len(), max: MAX_BODY_BYTES });
        }
        let compressed = (body.len() > COMPRESS_OVER)
            .then(|| zstd::bulk::compress(&body, ZSTD_LEVEL).ok())
            .flatten()
            .filter(|c| c.len() < body.len());
        let out = match compressed {
            Some(compressed) => [&[PROTOCOL_VERSION | COMPRESSED][..], &compressed].concat(),
            None => [&[PROTOCOL_VERSION][..], &body].concat(),
        };
        if out.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge { len: out.len(), max: MAX_FRAME_BYTES });
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge { len: bytes.len(), max: MAX_FRAME_BYTES });
        }
        let (&first, rest) = bytes.split_first().ok_or(FrameError::Empty)?;
        let version = first & !COMPRESSED;
        if version != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion { found: version });
        }
        let expanded;
        let rest = if first & COMPRESSED == 0 {
            rest
        } else {
            expanded = zstd::bulk::decompress(rest, MAX_BODY_BYTES).map_err(|e| {
                FrameError::Malformed(format!("compressed body does not expand within {MAX_BODY_BYTES} bytes: {e}"))
            })?;
            &expanded
        };
        let (body, unread) =
            postcard::take_from_bytes::<Body>(rest).map_err(|e| FrameError::Malformed(e.to_string()))?;
        if !unread.is_empty() {
            return Err(FrameError::TrailingBytes(unread.len()));
        }
        body.check()?;
        Ok(body)
    }

    /// What the types cannot say.
    fn check(&self) -> Result<(), FrameError> {
        match self {
            Self::Hello { name, .. } => {
                let chars = name.chars().count();
                if chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
                    return Err(FrameError::Invalid {
                        field: "node name",
                        problem: format!("{chars} characters or control characters; at most {MAX_NAME_CHARS}"),
                    });
                }
            }
            Self::Refuse { reason, .. } | Self::Reset { reason, .. } => {
                let chars = reason.chars().count();
                if chars > MAX_REASON_CHARS {
                    return Err(FrameError::Invalid {
                        field: "reason",
                        problem: format!("{chars} characters, at most {MAX_REASON_CHARS}"),
                    });
                }
            }
            Self::Bundle { part, of, .. } => {
                if *of == 0 || part >= of {
                    return Err(FrameError::Invalid { field: "bundle part", problem: format!("part {part} of {of}") });
                }
            }
            Self::Sync { proofs, .. } => {
                if proofs.len() > MAX_PROOFS {
                    return Err(FrameError::Invalid {
                        field: "proofs",
                        problem: format!("{} proofs, at most {MAX_PROOFS}", proofs.len()),
                    });
                }
            }
            Self::Roster { roster } => {
                if roster.len() > crate::trust::roster::MAX_ROSTER_BYTES {
                    return Err(FrameError::Invalid { field: "roster", problem: format!("{} bytes", roster.len()) });
                }
            }
            Self::Reconcile { parts, .. } => check_reconcile(parts)?,
            Self::Open { doc, .. } => {
                DocId::parse(doc).map_err(|e| FrameError::Invalid { field: "document id", problem: e.to_string() })?;
            }
            Self::Done { .. } => {}
        }
        Ok(())
    }
}

/// Most parts one reconcile frame may carry.
pub const MAX_PARTS: usize = 1024;

/// A reconcile message's ranges must be in order and must not overlap, and
/// listed keys must be in order and inside their range. Otherwise one small
/// frame could ask for the whole inventory thousands of times over.
fn check_reconcile(parts: &[Part]) -> Result<(), FrameError> {
    let invalid = |problem: String| Err(FrameError::Invalid { field: "reconcile", problem });
    if parts.len() > MAX_PARTS {
        return invalid(format!("{} parts, at most {MAX_PARTS}", parts.len()));
    }
    let mut previous_last: Option<u64> = None;
    for part in parts {
        let (first, last) = match part {
            Part::Range(r) => (r.first, r.last),
            Part::Items { first, last, .. } | Part::Split { first, last, .. } => (*first, *last),
        };
        if first > last {
            return invalid(format!("range starts at {first} after it ends at {last}"));
        }
        if previous_last.is_some_and(|p| first <= p) {
            return invalid(format!("range starting at {first} overlaps or precedes the one before"));
        }
        previous_last = Some(last);
        match part {
            Part::Items { items, .. } => {
                let ordered = items.windows(2).all(|w| w[0].0 < w[1].0);
                let inside = items.iter().all(|(k, _)| (first..=last).contains(k));
                if !ordered || !inside {
                    return invalid(format!("listed keys of range {first}..={last} are out of order or outside it"));
                }
            }
            Part::Split { summaries, .. } => {
                let expected = (u128::from(last - first) + 1).min(u128::from(super::digest::SPLIT_INTO));
                if summaries.len() as u128 != expected {
                    return invalid(format!("split into {} ranges, expected {expected}", summaries.len()));
                }
            }
            Part::Range(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::replication::digest::RangeSummary;

    /// Bytes that do not compress (xorshift64*).
    pub(crate) fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    fn samples() -> Vec<Body> {
        let doc = DocId::parse("watchlist/KAZ-BS/0f").unwrap();
        vec![
            Body::Hello {
                node: [7; 16],
                name: "kz-khorgos".into(),
                features: 1,
                max_frame: MAX_FRAME_BYTES as u32,
                roster: 3,
            },
            Body::Roster { roster: vec![1, 2, 3] },
            Body::Reconcile {
                roster: 7,
                parts: vec![
                    Part::Range(RangeSummary { first: 0, last: 4, count: 3, xor: 99 }),
                    Part::Items { first: 5, last: 9, items: vec![(6, 1), (8, 2)], answer: true },
                ],
            },
            Body::Open { slot: 3, doc: doc.to_string(), priority: 0 },
            Body::Refuse { slot: 3, reason: "not releasable to this post".into() },
            Body::Sync {
                slot: 3,
                message: vec![1, 2, 3],
                proofs: vec![Proof {
                    actor: 1,
                    seq: 2,
                    attester: None,
                    signature: crate::trust::Signature::from_bytes([3; 64]),
                }],
            },
            Body::Bundle { slot: 3, kind: BundleKind::Snapshot, part: 0, of: 1, data: vec![9; 100] },
            Body::Done { slot: 3, fingerprint: 42 },
            Body::Reset { slot: 3, reason: "no progress for 30 s".into() },
        ]
    }

    /// Byte fields decode as byte strings (one copy, not byte by byte);
    /// on the wire they are what a list of bytes was, so older nodes read
    /// them unchanged.
    #[test]
    fn byte_fields_keep_the_wire_encoding_of_a_list_of_bytes() {
        let body = Body::Bundle { slot: 3, kind: BundleKind::Changes, part: 1, of: 2, data: vec![7, 8, 9] };
        // Variant 6, slot 3, kind 1, part 1, of 2, then length 3 and the bytes.
        assert_eq!(body.encode().unwrap(), [PROTOCOL_VERSION, 6, 3, 1, 1, 2, 3, 7, 8, 9]);
        let plain = postcard::to_allocvec(&(5u8, 3u32, vec![1u8, 2, 3], Vec::<Proof>::new())).unwrap();
        let sync = Body::Sync { slot: 3, message: vec![1, 2, 3], proofs: Vec::new() };
        assert_eq!(sync.encode().unwrap()[1..], plain[..]);
    }

    #[test]
    fn every_body_round_trips() {
        for body in samples() {
            assert_eq!(Body::decode(&body.encode().unwrap()).unwrap(), body);
        }
    }

    #[test]
    fn large_frames_are_compressed_when_that_saves_bytes() {
        let repetitive =
            Body::Sync { slot: 1, message: b"Mukhammad Aliev, warning, armed; ".repeat(200), proofs: vec![] };
        let frame = repetitive.encode().unwrap();
        assert_eq!(frame[0], PROTOCOL_VERSION | COMPRESSED);
        assert!(frame.len() < 1_000, "{} B", frame.len());
        assert_eq!(Body::decode(&frame).unwrap(), repetitive);
        let incompressible = Body::Sync { slot: 1, message: noise(4_000), proofs: vec![] };
        assert_eq!(incompressible.encode().unwrap()[0], PROTOCOL_VERSION);
        // A bomb: a small frame that would expand past the limit.
        let bomb = zstd::bulk::compress(&vec![0u8; MAX_BODY_BYTES + 1], 3).unwrap();
        let frame = [&[PROTOCOL_VERSION | COMPRESSED][..], &bomb].concat();
        assert!(Body::decode(&frame).unwrap_err().to_string().contains("does not expand"));
    }

    #[test]
    fn bad_frames_are_named_not_panics() {
        assert_eq!(Body::decode(&[]), Err(FrameError::Empty));
        assert_eq!(Body::decode(&[9, 0]), Err(FrameError::UnsupportedVersion { found: 9 }));
        let mut frame = Body::Done { slot: 1, fingerprint: 2 }.encode().unwrap();
        frame.push(0);
        assert_eq!(Body::decode(&frame), Err(FrameError::TrailingBytes(1)));
        let open = Body::Open { slot: 1, doc: "a/b".into(), priority: 0 }.encode().unwrap();
        let evil: Vec<u8> = open.iter().map(|b| if *b == b'/' { b' ' } else { *b }).collect();
        let err = Body::decode(&evil).unwrap_err().to_string();
        assert!(err.contains("document id"), "{err}");
        let bundle = Body::Bundle { slot: 1, kind: BundleKind::Changes, part: 2, of: 2, data: vec![] };
        assert!(Body::decode(&bundle.encode().unwrap()).unwrap_err().to_string().contains("part 2 of 2"));
        let greedy = Body::Reconcile {
            roster: 0,
            parts: vec![
                Part::Items { first: 0, last: u64::MAX, items: vec![], answer: false },
                Part::Items { first: 0, last: u64::MAX, items: vec![], answer: false },
            ],
        };
        assert!(Body::decode(&greedy.encode().unwrap()).unwrap_err().to_string().contains("overlaps"));
        let lopsided =
            Body::Reconcile { roster: 0, parts: vec![Part::Split { first: 0, last: 99, summaries: vec![(0, 0); 3] }] };
        assert!(Body::decode(&lopsided.encode().unwrap()).unwrap_err().to_string().contains("expected 16"));
        let too_big = vec![PROTOCOL_VERSION; MAX_FRAME_BYTES + 1];
        assert!(matches!(Body::decode(&too_big), Err(FrameError::TooLarge { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Body::decode(&bytes);
            let mut versioned = vec![PROTOCOL_VERSION];
            versioned.extend(bytes);
            let _ = Body::decode(&versioned);
        }

        #[test]
        fn corrupting_a_valid_frame_never_panics(index in 0usize..200, value in any::<u8>()) {
            for body in samples() {
                let mut frame = body.encode().unwrap();
                let at = index % frame.len();
                frame[at] = value;
                let _ = Body::decode(&frame);
            }
        }
    }
}
