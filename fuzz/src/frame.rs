//! Target `frame`: the frame decoder (`replication::frame::Body`).
//!
//! First byte even: the rest is a frame as a peer sends it. Whatever
//! decodes must encode, and decode back to itself; whatever does not is
//! an error that names the problem.
//!
//! First byte odd: the rest builds a `Body` field by field, which is
//! encoded and decoded. The decoder must give it back exactly when it
//! keeps the rules `frame.rs` states (names, reasons, bundle parts,
//! proofs, reconcile ranges, document ids), and name the field otherwise.
//! The rules are restated here, from the module's documentation, as the
//! oracle.

use outpost_model::ids::DocId;
use outpost_model::replication::digest::{Part, RangeSummary, SPLIT_INTO};
use outpost_model::replication::frame::{
    Body, BundleKind, FrameError, MAX_FRAME_BYTES, MAX_NAME_CHARS, MAX_PARTS, MAX_PROOFS, MAX_REASON_CHARS,
    PROTOCOL_VERSION,
};
use outpost_model::trust::Signature;
use outpost_model::trust::proof::Proof;

use crate::input::Input;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    if input.byte() & 1 == 0 {
        raw(input.rest());
    } else {
        let (body, problem) = build(&mut input);
        round_trip(&body, problem);
    }
}

/// A frame as a peer sends it.
pub fn raw(bytes: &[u8]) {
    let decoded = Body::decode(bytes);
    assert_eq!(decoded, Body::decode(bytes), "decoding is not deterministic");
    match decoded {
        Ok(body) => match body.encode() {
            Ok(again) => {
                let back = Body::decode(&again);
                assert_eq!(back.as_ref(), Ok(&body), "a decoded body does not survive encode then decode");
            }
            // Bodies decoded from a compressed frame may not recompress as
            // well; nothing else may fail.
            Err(FrameError::TooLarge { .. }) if bytes.first().is_some_and(|b| b & 0x80 != 0) => {}
            Err(err) => panic!("a decoded body does not encode: {err}"),
        },
        Err(err) => {
            assert!(!err.to_string().trim().is_empty(), "an error that names nothing");
            match bytes {
                [] => assert_eq!(err, FrameError::Empty),
                _ if bytes.len() > MAX_FRAME_BYTES => assert!(matches!(err, FrameError::TooLarge { .. }), "{err}"),
                [first, ..] if first & 0x7f != PROTOCOL_VERSION => {
                    assert_eq!(err, FrameError::UnsupportedVersion { found: first & 0x7f })
                }
                _ => assert!(
                    !matches!(err, FrameError::Empty | FrameError::UnsupportedVersion { .. }),
                    "a frame of the right version refused as {err}"
                ),
            }
        }
    }
}

fn text(input: &mut Input<'_>, long: usize) -> String {
    match input.choose(6) {
        0 => "x".repeat(long + input.choose(3) - 1),
        1 => "ж".repeat(long + input.choose(3) - 1),
        2 => format!("bad\u{7}{}", input.string()),
        _ => input.string(),
    }
}

fn signature(input: &mut Input<'_>) -> Signature {
    let mut bytes = [0u8; 64];
    bytes[..8].copy_from_slice(&input.array::<8>());
    Signature::from_bytes(bytes)
}

fn part(input: &mut Input<'_>) -> Part {
    let first = u64::from(input.u16());
    let last = first.wrapping_add(u64::from(input.u16())) & 0xffff;
    match input.choose(3) {
        0 => Part::Range(RangeSummary { first, last, count: u32::from(input.byte()), xor: u64::from(input.u16()) }),
        1 => {
            let expected = (last.saturating_sub(first) + 1).min(SPLIT_INTO) as usize;
            let n = match input.choose(4) {
                0 => input.choose(20),
                _ => expected,
            };
            Part::Split { first, last, summaries: (0..n).map(|i| (i as u32, u64::from(input.byte()))).collect() }
        }
        _ => {
            let n = input.choose(6);
            let mut key = first;
            let mut items = Vec::new();
            for _ in 0..n {
                key = key.wrapping_add(u64::from(input.byte()));
                items.push((key, u64::from(input.byte())));
            }
            Part::Items { first, last, items, answer: input.flag() }
        }
    }
}

/// Why the decoder must refuse `parts`, if it must (`check_reconcile`).
fn reconcile_problem(parts: &[Part]) -> Option<&'static str> {
    if parts.len() > MAX_PARTS {
        return Some("reconcile");
    }
    let mut previous: Option<u64> = None;
    for part in parts {
        let (first, last) = match part {
            Part::Range(r) => (r.first, r.last),
            Part::Items { first, last, .. } | Part::Split { first, last, .. } => (*first, *last),
        };
        if first > last || previous.is_some_and(|p| first <= p) {
            return Some("reconcile");
        }
        previous = Some(last);
        match part {
            Part::Items { items, .. } => {
                if !items.windows(2).all(|w| w[0].0 < w[1].0) || !items.iter().all(|(k, _)| (first..=last).contains(k))
                {
                    return Some("reconcile");
                }
            }
            Part::Split { summaries, .. } => {
                if summaries.len() as u128 != (u128::from(last - first) + 1).min(u128::from(SPLIT_INTO)) {
                    return Some("reconcile");
                }
            }
            Part::Range(_) => {}
        }
    }
    None
}

const DOC_IDS: &[&str] = &["watchlist/KAZ-BS/00", "incidents/kz-post/2026-11", "a/b", "", "has space", "ünï"];

/// A body, and the field the decoder must name when it refuses it.
pub fn build(input: &mut Input<'_>) -> (Body, Option<&'static str>) {
    match input.choose(9) {
        0 => {
            let name = text(input, MAX_NAME_CHARS);
            let chars = name.chars().count();
            let bad = chars > MAX_NAME_CHARS || name.chars().any(char::is_control);
            let body = Body::Hello {
                node: input.array(),
                name,
                features: input.u32(),
                max_frame: input.u32(),
                roster: input.u64(),
            };
            (body, bad.then_some("node name"))
        }
        1 => {
            let n = match input.choose(8) {
                0 => outpost_model::trust::roster::MAX_ROSTER_BYTES + 1,
                _ => usize::from(input.u16()),
            };
            let roster = vec![input.byte(); n];
            let bad = roster.len() > outpost_model::trust::roster::MAX_ROSTER_BYTES;
            (Body::Roster { roster }, bad.then_some("roster"))
        }
        2 => {
            let n = match input.choose(16) {
                0 => MAX_PARTS + 1,
                _ => input.choose(8),
            };
            let parts: Vec<Part> = (0..n).map(|_| part(input)).collect();
            let problem = reconcile_problem(&parts);
            (Body::Reconcile { roster: input.u64(), parts }, problem)
        }
        3 => {
            let doc = match input.choose(DOC_IDS.len() + 1) {
                i if i < DOC_IDS.len() => DOC_IDS[i].to_string(),
                _ => input.string(),
            };
            let bad = DocId::parse(&doc).is_err();
            (Body::Open { slot: input.u32(), doc, priority: input.byte() }, bad.then_some("document id"))
        }
        4 | 5 => {
            let reason = text(input, MAX_REASON_CHARS);
            let bad = reason.chars().count() > MAX_REASON_CHARS;
            let slot = input.u32();
            let body = if input.flag() { Body::Refuse { slot, reason } } else { Body::Reset { slot, reason } };
            (body, bad.then_some("reason"))
        }
        6 => {
            let n = match input.choose(16) {
                0 => MAX_PROOFS + 1,
                _ => input.choose(4),
            };
            let proofs = (0..n)
                .map(|_| Proof {
                    actor: u16::from(input.byte()),
                    seq: u64::from(input.byte()),
                    attester: input.flag().then(|| input.array()),
                    signature: signature(input),
                })
                .collect::<Vec<_>>();
            let bad = proofs.len() > MAX_PROOFS;
            let message = input.bytes().to_vec();
            (Body::Sync { slot: input.u32(), message, proofs }, bad.then_some("proofs"))
        }
        7 => {
            let part = u16::from(input.byte());
            let of = u16::from(input.byte());
            let kind = if input.flag() { BundleKind::Snapshot } else { BundleKind::Changes };
            let data = match input.choose(8) {
                // Compressible and large: the frame is compressed.
                0 => vec![input.byte(); 4096],
                _ => input.bytes().to_vec(),
            };
            let bad = of == 0 || part >= of;
            (Body::Bundle { slot: input.u32(), kind, part, of, data }, bad.then_some("bundle part"))
        }
        _ => (Body::Done { slot: input.u32(), fingerprint: input.u64() }, None),
    }
}

/// Encodes `body` and decodes it: back whole, or refused naming `problem`.
pub fn round_trip(body: &Body, problem: Option<&'static str>) {
    let frame = match body.encode() {
        Ok(frame) => frame,
        Err(err) => panic!("a small body does not encode: {err}"),
    };
    assert!(frame.len() <= MAX_FRAME_BYTES);
    match (Body::decode(&frame), problem) {
        (Ok(back), None) => assert_eq!(&back, body, "a valid body does not come back whole"),
        (Ok(_), Some(field)) => panic!("the decoder took a body whose {field} breaks the frame rules"),
        (Err(FrameError::Invalid { field, problem: why }), Some(expected)) => {
            assert_eq!(field, expected, "refused for the wrong field: {why}");
            assert!(!why.trim().is_empty());
        }
        (Err(err), _) => panic!("a body the encoder made is refused as {err} (expected {problem:?})"),
    }
    raw(&frame);
}
