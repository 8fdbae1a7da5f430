//! Target `engine_receive`: the replication engine's receive path, with a
//! real document host (`replication::pair::MemoryHost`).
//!
//! Node A (a KAZ-BS centre) is connected to node B (a KAZ-BS post) of the
//! world's fleet (`world.rs`), or of a `--psk-only` fleet. The input is a list of steps: frames "from
//! B" to A (raw bytes, or bodies built from the input, or frames B really
//! sent in a recorded session, re-slotted), A's timer, reconnects, and
//! steps where B's real engine answers what A sent (and the two talk until
//! they have nothing more to say). After every step each frame A sends
//! must decode, and every problem and disconnect must say
//! why; at the end both nodes' documents must hold only changes by roster
//! members, every record must read, and what each stored must load.

use outpost_model::date::Timestamp;
use outpost_model::replication::bundle::BundlePayload;
use outpost_model::replication::digest::{Part, RangeSummary};
use outpost_model::replication::frame::{Body, BundleKind};
use outpost_model::replication::pair::{FrameFilter, Pair, Side};
use outpost_model::trust::Signature;
use outpost_model::trust::proof::Proof;

use crate::input::Input;
use crate::world::{World, check_effects, check_node, world};

/// Steps one input may take.
const MAX_STEPS: usize = 48;
/// Frames the two engines may exchange in one input before the wire drops
/// the rest (bounds a run; the engines' own caps are what is tested).
const MAX_DELIVERED: usize = 4_000;

pub fn run(data: &[u8]) {
    let world = world();
    let mut input = Input::new(data);
    // The first byte: bit 1, a `--psk-only` fleet instead of the roster's;
    // bit 0, start with B's Hello taken (A syncs with B), or with only the
    // connection open (Hellos in flight). A whole session between the two
    // real engines is the `settle` step's.
    let first = input.byte();
    let mut pair = world.pair_of(first & 2 != 0);
    pair.keep = Some(FrameFilter(Box::new(|n, _, frame| {
        if let Err(err) = Body::decode(frame) {
            panic!("an engine sent a frame its peer refuses: {err}");
        }
        n < MAX_DELIVERED
    })));
    if first & 1 != 0 {
        greeted(&mut pair);
    } else {
        let (ka, kb) = (pair.a.key.clone(), pair.b.key.clone());
        let ea = pair.a.engine.handle_connected(pair.now, &kb);
        pair.carry(Side::A, ea);
        let eb = pair.b.engine.handle_connected(pair.now, &ka);
        pair.carry(Side::B, eb);
    }
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        step(world, &mut pair, &mut input);
    }
    check_node(&mut pair.a, 1);
    check_node(&mut pair.b, 2);
}

/// A and B connected, and B's Hello (announcing the roster A holds)
/// delivered to A: A now syncs with B. Cheaper than `Pair::connect`.
pub fn greeted(pair: &mut Pair) {
    let (ka, kb) = (pair.a.key.clone(), pair.b.key.clone());
    let ea = pair.a.engine.handle_connected(pair.now, &kb);
    pair.carry(Side::A, ea);
    let eb = pair.b.engine.handle_connected(pair.now, &ka);
    pair.carry(Side::B, eb);
    let roster = pair.a.engine.fleet().map_or(0, |f| f.version());
    let node = pair.b.signer.public().actor_prefix();
    send(pair, &Body::Hello { node, name: "node-2".into(), features: 0, max_frame: 1 << 20, roster });
}

/// Hands `frame` to A as from B, and carries out what A does.
pub fn to_a(pair: &mut Pair, frame: &[u8]) {
    let now = pair.now;
    let from = pair.b.key.clone();
    let effects = pair.a.engine.handle_frame(now, &from, frame, &mut pair.a.host);
    check_effects(&effects);
    pair.carry(Side::A, effects);
}

fn send(pair: &mut Pair, body: &Body) {
    if let Ok(frame) = body.encode() {
        to_a(pair, &frame);
    }
}

fn doc_name(world: &World, input: &mut Input<'_>) -> String {
    match input.choose(world.doc_ids.len() + 2) {
        i if i < world.doc_ids.len() => world.doc_ids[i].to_string(),
        i if i == world.doc_ids.len() => "watchlist/KAZ-BS/zz".into(),
        _ => input.string(),
    }
}

fn signature(world: &World, input: &mut Input<'_>) -> Signature {
    let real: Vec<Signature> = world.b_changes.iter().flat_map(|(_, _, p)| p.iter().map(|p| p.signature)).collect();
    match input.choose(3) {
        0 if !real.is_empty() => real[input.choose(real.len())],
        _ => {
            let mut bytes = [0u8; 64];
            bytes[..16].copy_from_slice(&input.array::<16>());
            Signature::from_bytes(bytes)
        }
    }
}

fn proofs(world: &World, input: &mut Input<'_>) -> Vec<Proof> {
    let all: Vec<Proof> = world.b_changes.iter().flat_map(|(_, _, p)| p.iter().copied()).collect();
    (0..input.choose(4))
        .map(|_| match input.choose(3) {
            0 if !all.is_empty() => all[input.choose(all.len())],
            _ => Proof {
                actor: u16::from(input.byte() % 4),
                seq: u64::from(input.byte() % 8),
                attester: input.flag().then(|| input.array()),
                signature: signature(world, input),
            },
        })
        .collect()
}

/// Chunks of B's changes, a snapshot, or bytes from the input.
pub fn chunks(world: &World, input: &mut Input<'_>) -> Vec<Vec<u8>> {
    (0..input.choose(4))
        .map(|_| {
            let mut chunk = match input.choose(4) {
                0 => {
                    let (_, chunks, _) = &world.b_changes[input.choose(world.b_changes.len())];
                    chunks.get(input.choose(chunks.len().max(1))).cloned().unwrap_or_default()
                }
                1 => world.b_snapshots[input.choose(world.b_snapshots.len())].1.clone(),
                2 => {
                    // All the changes of one document, back to back.
                    let (_, chunks, _) = &world.b_changes[input.choose(world.b_changes.len())];
                    chunks.concat()
                }
                _ => input.bytes().to_vec(),
            };
            // A flipped byte, perhaps, with the checksum made right again.
            if input.flag() && !chunk.is_empty() {
                let at = usize::from(input.u16()) % chunk.len();
                chunk[at] ^= input.byte() | 1;
                if input.flag() && chunk.len() > 8 {
                    let digest = <sha2::Sha256 as sha2::Digest>::digest(&chunk[8..]);
                    chunk[4..8].copy_from_slice(&digest[..4]);
                }
            }
            chunk
        })
        .collect()
}

/// A bundle's parts: a payload from the input, compressed and split.
pub fn bundle_parts(world: &World, input: &mut Input<'_>) -> Vec<Vec<u8>> {
    let heads = (0..input.choose(3)).map(|_| input.array::<32>()).collect();
    let payload = BundlePayload { heads, chunks: chunks(world, input), proofs: proofs(world, input) };
    let raw = postcard::to_allocvec(&payload).unwrap_or_default();
    let compressed = zstd::bulk::compress(&raw, 1).unwrap_or_default();
    let pieces = 1 + input.choose(4);
    let size = compressed.len().div_ceil(pieces).max(1);
    compressed.chunks(size).map(<[u8]>::to_vec).collect()
}

fn step(world: &World, pair: &mut Pair, input: &mut Input<'_>) {
    let slot = u32::from(input.byte() % 8);
    match input.choose(16) {
        // A raw frame.
        0 | 1 => {
            let frame = input.bytes().to_vec();
            to_a(pair, &frame);
        }
        // A frame B really sent, perhaps on another slot.
        2 | 3 => {
            let recorded = &world.session.from_b;
            if recorded.is_empty() {
                return;
            }
            let frame = &recorded[input.choose(recorded.len())];
            match (Body::decode(frame), input.flag()) {
                (Ok(body), true) => send(pair, &reslot(body, slot)),
                _ => to_a(pair, frame),
            }
        }
        4 => {
            let node = if input.flag() { pair.b.signer.public().actor_prefix() } else { input.array() };
            let name = if input.flag() { "node-2".to_string() } else { input.string() };
            let current = pair.a.engine.fleet().map_or(0, |f| f.version());
            let roster = match input.choose(4) {
                0 => 0,
                1 => current,
                2 => current + 1,
                _ => input.u64(),
            };
            send(pair, &Body::Hello { node, name, features: input.u32(), max_frame: input.u32(), roster });
        }
        5 => {
            let doc = doc_name(world, input);
            send(pair, &Body::Open { slot, doc, priority: input.byte() });
        }
        6 => {
            let message = match input.choose(3) {
                0 => {
                    // A real sync message's bytes, from the session.
                    let syncs: Vec<Vec<u8>> = crate::world::bodies(&world.session.from_b)
                        .into_iter()
                        .filter_map(|b| if let Body::Sync { message, .. } = b { Some(message) } else { None })
                        .collect();
                    syncs.get(input.choose(syncs.len().max(1))).cloned().unwrap_or_default()
                }
                _ => input.bytes().to_vec(),
            };
            let proofs = proofs(world, input);
            send(pair, &Body::Sync { slot, message, proofs });
        }
        7 => {
            let parts = bundle_parts(world, input);
            let kind = if input.flag() { BundleKind::Snapshot } else { BundleKind::Changes };
            let of = parts.len() as u16;
            // One part lost, now and then.
            let skip = (input.choose(8) == 0).then(|| input.choose(parts.len()));
            for (n, data) in parts.into_iter().enumerate() {
                if Some(n) != skip {
                    send(pair, &Body::Bundle { slot, kind, part: n as u16, of, data });
                }
            }
        }
        8 => send(pair, &Body::Done { slot, fingerprint: input.u64() }),
        9 => {
            let reason = input.string();
            let body = if input.flag() { Body::Reset { slot, reason } } else { Body::Refuse { slot, reason } };
            send(pair, &body);
        }
        10 => {
            let mut first = u64::from(input.byte()) << 56;
            let parts = (0..input.choose(5))
                .map(|_| {
                    let last = first.saturating_add(u64::from(input.u32()) << 24);
                    let part = match input.choose(2) {
                        0 => Part::Range(RangeSummary {
                            first,
                            last,
                            count: u32::from(input.byte() % 4),
                            xor: input.u64(),
                        }),
                        _ => Part::Items { first, last, items: Vec::new(), answer: input.flag() },
                    };
                    first = last.saturating_add(1);
                    part
                })
                .collect();
            let current = pair.a.engine.fleet().map_or(0, |f| f.version());
            send(pair, &Body::Reconcile { roster: current + u64::from(input.byte() % 2), parts });
        }
        11 => {
            let roster = match input.choose(3) {
                0 => world.signed.clone(),
                1 => world.newer.clone(),
                _ => input.bytes().to_vec(),
            };
            send(pair, &Body::Roster { roster });
        }
        // A's timer, after up to 18 hours.
        12 => {
            let ms = i64::from(input.u16()) * 1000;
            pair.now = Timestamp::from_millis(pair.now.as_millis() + ms);
            let now = pair.now;
            let effects = pair.a.engine.handle_timer(now, &mut pair.a.host);
            check_effects(&effects);
            pair.carry(Side::A, effects);
        }
        // B's real engine answers what A sent.
        13 => pair.settle(),
        14 => {
            let kb = pair.b.key.clone();
            let now = pair.now;
            pair.a.engine.handle_disconnected(now, &kb);
            let effects = pair.a.engine.handle_connected(now, &kb);
            check_effects(&effects);
            pair.carry(Side::A, effects);
        }
        _ => {
            // A roster handed in by an administrator, at A.
            let roster = if input.flag() { world.newer.clone() } else { input.bytes().to_vec() };
            let now = pair.now;
            if let Ok(effects) = pair.a.engine.handle_roster(now, &roster, &mut pair.a.host) {
                check_effects(&effects);
                pair.carry(Side::A, effects);
            }
        }
    }
}

/// `body` moved to `slot`, if it names one.
fn reslot(body: Body, slot: u32) -> Body {
    match body {
        Body::Open { doc, priority, .. } => Body::Open { slot, doc, priority },
        Body::Sync { message, proofs, .. } => Body::Sync { slot, message, proofs },
        Body::Bundle { kind, part, of, data, .. } => Body::Bundle { slot, kind, part, of, data },
        Body::Done { fingerprint, .. } => Body::Done { slot, fingerprint },
        Body::Reset { reason, .. } => Body::Reset { slot, reason },
        Body::Refuse { reason, .. } => Body::Refuse { slot, reason },
        other => other,
    }
}
