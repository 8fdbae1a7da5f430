//! `outpost-bench sync`: replication bytes on an in-memory engine pair,
//! unsigned (`--psk-only`) and signed (a fleet roster) side by side, beside
//! plain Automerge sync on the same documents, and what checking a
//! signed change costs.

use outpost_model::date::Timestamp;
use outpost_model::replication::frame::Body;
use outpost_model::replication::session::DocSession;
use outpost_model::schema::DocKind;
use outpost_model::validate::{PostContext, new_entry};
use outpost_model::{DocId, EntryId};
use outpost_tests::sample::Generator;
use std::collections::BTreeMap;

#[derive(Debug, clap::Args)]
pub(crate) struct SyncArgs {
    /// Documents both peers hold in the reconnect figure.
    #[arg(long, default_value_t = 1000)]
    docs: usize,
    /// Watchlist entries in each of those documents.
    #[arg(long, default_value_t = 5)]
    entries: usize,
    /// Entries on the list an empty peer bootstraps.
    #[arg(long, default_value_t = 6_400)]
    bootstrap_entries: usize,
    /// Edits per day while a peer is away for 30 days.
    #[arg(long, default_value_t = 40)]
    edits_per_day: usize,
}

/// Runs one document's sync between two copies until both fall quiet;
/// returns the bytes of the messages (framed when `slot` is given).
pub(crate) fn settle(
    docs: (&mut outpost_model::schema::Document, &mut outpost_model::schema::Document),
    sessions: (&mut DocSession, &mut DocSession),
    slot: Option<u32>,
) -> anyhow::Result<usize> {
    let now = Timestamp::from_millis(1_795_000_000_000);
    let (a, b) = docs;
    let (sa, sb) = sessions;
    let mut total = 0;
    for _round in 0..40 {
        let mut spoke = false;
        if let Some(m) = sa.next_message(now, a) {
            total += wire_len(slot, &m)?;
            sb.receive(now, b, &m)?;
            spoke = true;
        }
        if let Some(m) = sb.next_message(now, b) {
            total += wire_len(slot, &m)?;
            sa.receive(now, a, &m)?;
            spoke = true;
        }
        if !spoke {
            return Ok(total);
        }
    }
    anyhow::bail!("sync did not settle in 40 rounds")
}

pub(crate) fn wire_len(slot: Option<u32>, message: &[u8]) -> anyhow::Result<usize> {
    Ok(match slot {
        Some(slot) => Body::Sync { slot, message: message.to_vec(), proofs: Vec::new() }.encode()?.len(),
        None => message.len(),
    })
}

/// A whole digest exchange between two inventories, in frames.
/// Watchlist documents built one change per entry, as posts build them.
pub(crate) struct Builder {
    generator: Generator,
    n: u128,
    ctx: PostContext,
}

impl Builder {
    fn new(seed: u64) -> Self {
        let now = Timestamp::from_millis(1_795_000_000_000);
        let ctx = PostContext { now, offset: time::UtcOffset::UTC, authority: "KAZ-BS".into(), post: "bench".into() };
        Self { generator: Generator::new(seed), n: 0, ctx }
    }

    fn meta(&self, op: &'static str) -> outpost_model::schema::ChangeMeta {
        outpost_model::schema::ChangeMeta { at: self.ctx.now, by: "1000@bench".into(), op }
    }

    /// Adds an entry; returns the raw change's size.
    fn add(&mut self, doc: &mut outpost_model::schema::Document) -> anyhow::Result<(EntryId, usize)> {
        self.n += 1;
        let id = EntryId::from_uuid(uuid::Uuid::from_u128(self.n));
        let draft = new_entry(&self.generator.person(), id, &self.ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (_, change) =
            doc.transact(&self.meta("watchlist.add"), |r| r.add_entry(&draft)).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok((id, change.map_or(0, |c| c.len().saturating_sub(32))))
    }

    fn amend(&mut self, doc: &mut outpost_model::schema::Document, id: EntryId, n: usize) -> anyhow::Result<()> {
        let input = outpost_model::api::AmendInput {
            reason: Some(format!("updated intelligence, report {n}")),
            ..Default::default()
        };
        let amendment = outpost_model::validate::amendment(
            &input,
            outpost_model::vocab::SubjectKind::Person,
            self.ctx.now.utc_date(),
            &self.ctx,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        doc.transact(&self.meta("watchlist.amend"), |r| r.amend_entry(&id, &amendment))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    fn docs(
        &mut self,
        count: usize,
        entries: usize,
    ) -> anyhow::Result<Vec<(outpost_model::schema::Document, Vec<EntryId>)>> {
        let mut docs = Vec::new();
        for i in 0..count {
            let kind = DocKind::Watchlist { authority: format!("A{:03}", i / 16), shard: (i % 16) as u8 };
            let mut doc = outpost_model::schema::Document::genesis(kind).map_err(|e| anyhow::anyhow!("{e}"))?;
            doc.set_actor(automerge::ActorId::from([9u8; 16]));
            let mut ids = Vec::new();
            for _ in 0..entries {
                ids.push(self.add(&mut doc)?.0);
            }
            docs.push((doc, ids));
        }
        Ok(docs)
    }
}

/// Persisted sync states of both sides, per document.
pub(crate) type SyncStates = Vec<(Vec<u8>, Vec<u8>)>;

/// Plain Automerge sync of copies, one session per document, from the
/// given persisted states (or none); returns the bytes and the new states.
pub(crate) fn plain_sync(
    pairs: &mut [(outpost_model::schema::Document, outpost_model::schema::Document)],
    states: Option<&[(Vec<u8>, Vec<u8>)]>,
) -> anyhow::Result<(usize, SyncStates)> {
    let now = Timestamp::from_millis(1_795_000_000_000);
    let mut total = 0;
    let mut saved = Vec::new();
    for (n, (a, b)) in pairs.iter_mut().enumerate() {
        let persisted = states.map(|s| &s[n]);
        let (mut sa, _) = DocSession::resume(persisted.map(|p| p.0.as_slice()), now);
        let (mut sb, _) = DocSession::resume(persisted.map(|p| p.1.as_slice()), now);
        total += settle((a, b), (&mut sa, &mut sb), None)?;
        anyhow::ensure!(a.heads().iter().all(|h| b.heads().contains(h)), "plain sync did not converge");
        saved.push((sa.persisted(), sb.persisted()));
    }
    Ok((total, saved))
}

pub(crate) fn forks(
    docs: &mut [(outpost_model::schema::Document, Vec<EntryId>)],
) -> Vec<outpost_model::schema::Document> {
    docs.iter_mut().map(|(d, _)| d.fork(automerge::ActorId::from([9u8; 16]))).collect()
}

pub(crate) fn ratio(ours: usize, theirs: usize) -> String {
    format!("{:.3}", ours as f64 / theirs.max(1) as f64)
}

pub(crate) fn sync(args: &SyncArgs) -> anyhow::Result<()> {
    use outpost_model::replication::pair::{Node, Pair};
    let mut builder = Builder::new(7);
    println!("| figure | ours (engine frames) | baseline in the same run | ratio | target |");
    println!("|---|---|---|---|---|");

    // Bootstrap an empty peer.
    let mut list = builder.docs(16, args.bootstrap_entries / 16)?;
    let saved: usize = list.iter_mut().map(|(d, _)| d.save().len()).sum();
    let mut plain_pairs = Vec::new();
    for (a, (d, _)) in forks(&mut list).into_iter().zip(list.iter()) {
        let empty = outpost_model::schema::Document::load(d.id(), None, std::iter::empty())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        plain_pairs.push((a, empty));
    }
    let (plain_bootstrap, _) = plain_sync(&mut plain_pairs, None)?;
    let mut pair = Pair::new(Node::new(1, forks(&mut list)), Node::new(2, Vec::new()));
    let bootstrap = pair.connect();
    anyhow::ensure!(pair.in_sync(), "bootstrap did not converge");
    println!(
        "| bootstrap an empty peer ({} entries in 16 documents) | {} B in {} frames | `save()` {saved} B; plain sync {plain_bootstrap} B | {} of `save()` | ≤ 1.05 × `save()` |",
        args.bootstrap_entries,
        bootstrap.bytes,
        bootstrap.frames,
        ratio(bootstrap.bytes, saved)
    );

    // One new change between connected, in-sync peers.
    let doc_id = pair.a.host.docs.keys().next().cloned().ok_or_else(|| anyhow::anyhow!("no documents"))?;
    let mut plain_a = pair.a.host.docs[&doc_id].read().clone();
    let mut plain_b = plain_a.fork();
    let (change_bytes, one) = {
        let doc = pair.a.host.docs.get_mut(&doc_id).ok_or_else(|| anyhow::anyhow!("document vanished"))?;
        let before = doc.heads();
        let (_, change_bytes) = builder.add(doc)?;
        let change = doc.stored_changes_since(&before);
        // The same change, applied to plain copies that are in sync with
        // their sync state in memory.
        let mut sa = automerge::sync::State::new();
        let mut sb = automerge::sync::State::new();
        plain_session(&mut plain_a, &mut sa, &mut plain_b, &mut sb)?;
        let raw: Vec<automerge::Change> =
            change.iter().map(|c| automerge::Change::from_bytes(c[32..].to_vec())).collect::<Result<_, _>>()?;
        plain_a.apply_changes(raw)?;
        let plain_one = plain_session(&mut plain_a, &mut sa, &mut plain_b, &mut sb)?;
        let ours = pair.push_from_a(&doc_id);
        anyhow::ensure!(pair.in_sync(), "the change did not arrive");
        (change_bytes, (ours, plain_one))
    };
    let (ours_one, plain_one) = one;
    println!(
        "| one new change ({change_bytes} B) between connected, in-sync peers | {} B in {} frames ({} B beyond the change) | plain sync, state in memory: {plain_one} B | {} of plain | ≤ 1.5 × change + a fixed session cost |",
        ours_one.bytes,
        ours_one.frames,
        ours_one.bytes.saturating_sub(change_bytes),
        ratio(ours_one.bytes, plain_one)
    );

    // Catch up after 30 days away.
    pair.disconnect();
    let mut missed = Vec::new();
    let mut edits = 0;
    let ids: Vec<DocId> = pair.a.host.docs.keys().cloned().collect();
    let heads_at_b: BTreeMap<DocId, Vec<automerge::ChangeHash>> = ids
        .iter()
        .map(|id| (id.clone(), pair.b.host.docs.get_mut(id).map(|d| d.heads()).unwrap_or_default()))
        .collect();
    let mut plain_copies: Vec<_> = ids
        .iter()
        .map(|id| {
            (
                pair.a.host.docs.get_mut(id).map(|d| d.fork(automerge::ActorId::from([5u8; 16]))),
                pair.b.host.docs.get_mut(id).map(|d| d.fork(automerge::ActorId::from([6u8; 16]))),
            )
        })
        .collect();
    // The same documents for plain sync, with the sync states of a first
    // contact before the edits.
    let (_, plain_states) = {
        let mut pairs: Vec<_> = plain_copies.iter_mut().filter_map(|(a, b)| Some((a.take()?, b.take()?))).collect();
        let result = plain_sync(&mut pairs, None)?;
        for ((a, b), slot) in pairs.into_iter().zip(plain_copies.iter_mut()) {
            *slot = (Some(a), Some(b));
        }
        result
    };
    let existing: BTreeMap<DocId, Vec<EntryId>> = list.iter().map(|(d, ids)| (d.id().clone(), ids.clone())).collect();
    for day in 0..30 {
        for k in 0..args.edits_per_day {
            let doc =
                pair.a.host.docs.get_mut(&ids[(day * 7 + k) % ids.len()]).ok_or_else(|| anyhow::anyhow!("doc"))?;
            if k % 3 == 0 {
                // Amend an entry of this document.
                let target = existing.get(doc.id()).and_then(|ids| ids.get((day + k) % ids.len().max(1)));
                match target {
                    Some(id) => builder.amend(doc, *id, day * 100 + k)?,
                    None => {
                        builder.add(doc)?;
                    }
                }
            } else {
                builder.add(doc)?;
            }
            edits += 1;
        }
    }
    for (id, (a, _)) in ids.iter().zip(plain_copies.iter_mut()) {
        let doc = pair.a.host.docs.get_mut(id).ok_or_else(|| anyhow::anyhow!("doc"))?;
        let changes = doc.stored_changes_since(&heads_at_b[id]);
        missed.extend(changes.iter().flat_map(|c| c[32..].to_vec()));
        if let Some(a) = a {
            let parsed = changes.iter().map(|c| automerge::Change::from_bytes(c[32..].to_vec()));
            a.apply_changes(parsed.collect::<Result<Vec<_>, _>>()?)?;
        }
    }
    // The edits were made while disconnected; the engine learns of them as
    // the daemon's writer would tell it.
    for id in &ids {
        pair.push_from_a(id);
    }
    let zstd3 = zstd::bulk::compress(&missed, 3)?.len();
    let zstd19 = zstd::bulk::compress(&missed, 19)?.len();
    let mut plain_pairs: Vec<_> = plain_copies.into_iter().filter_map(|(a, b)| Some((a?, b?))).collect();
    let (plain_catch_up, _) = plain_sync(&mut plain_pairs, Some(&plain_states))?;
    let catch_up = pair.connect();
    anyhow::ensure!(pair.in_sync(), "catch-up did not converge: {:?}", pair.problems);
    anyhow::ensure!(pair.disconnects.is_empty(), "an engine cut its peer off: {:?}", pair.disconnects);
    println!(
        "| catch up after 30 days away ({edits} edits, {} B of raw changes) | {} B in {} frames | zstd -3 of what it lacks {zstd3} B (zstd -19 {zstd19} B); plain sync, persisted states: {plain_catch_up} B | {} of zstd -3 | ≤ 1.1 × compressed size of what it lacks |",
        missed.len(),
        catch_up.bytes,
        catch_up.frames,
        ratio(catch_up.bytes, zstd3)
    );

    // Reconnect many in-sync documents.
    let mut many = builder.docs(args.docs, args.entries)?;
    let mut plain_pairs: Vec<_> = forks(&mut many).into_iter().zip(forks(&mut many)).collect();
    let (_, plain_states) = plain_sync(&mut plain_pairs, None)?;
    let (plain_idle, _) = plain_sync(&mut plain_pairs, Some(&plain_states))?;
    let mut pair = Pair::new(Node::new(1, forks(&mut many)), Node::new(2, forks(&mut many)));
    pair.connect();
    pair.disconnect();
    let idle = pair.connect();
    println!(
        "| reconnect, {} documents in sync | {} B in {} frames | plain sync, persisted states: {plain_idle} B | {} | ≤ 200 B + 4 B per document = {} B |",
        args.docs,
        idle.bytes,
        idle.frames,
        ratio(idle.bytes, plain_idle),
        200 + 4 * args.docs
    );
    Ok(())
}

/// Plain Automerge sync of two documents with in-memory states until quiet.
pub(crate) fn plain_session(
    a: &mut automerge::AutoCommit,
    sa: &mut automerge::sync::State,
    b: &mut automerge::AutoCommit,
    sb: &mut automerge::sync::State,
) -> anyhow::Result<usize> {
    use automerge::sync::SyncDoc;
    let mut total = 0;
    for _ in 0..40 {
        let mut spoke = false;
        if let Some(m) = a.sync().generate_sync_message(sa) {
            let bytes = m.encode();
            total += bytes.len();
            b.sync().receive_sync_message(sb, automerge::sync::Message::decode(&bytes)?)?;
            spoke = true;
        }
        if let Some(m) = b.sync().generate_sync_message(sb) {
            let bytes = m.encode();
            total += bytes.len();
            a.sync().receive_sync_message(sa, automerge::sync::Message::decode(&bytes)?)?;
            spoke = true;
        }
        if !spoke {
            return Ok(total);
        }
    }
    anyhow::bail!("plain sync did not settle")
}
