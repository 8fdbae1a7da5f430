//! `outpost-bench sync`: replication bytes on an in-memory engine pair,
//! unsigned (`--psk-only`) and signed (a fleet roster) side by side, beside
//! plain Automerge sync on the same documents, and what checking a
//! signed change costs.

use outpost_model::date::Timestamp;
use outpost_model::replication::frame::Body;
use outpost_model::replication::pair::{Node, Pair, TestFleet, Traffic, node_actor};
use outpost_model::replication::session::DocSession;
use outpost_model::schema::DocKind;
use outpost_model::validate::{PostContext, new_entry};
use outpost_model::{DocId, EntryId};
use outpost_tests::sample::Generator;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
        let id = doc.kind().entry_id_from(self.n).ok_or_else(|| anyhow::anyhow!("{} is not a watchlist", doc.id()))?;
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

    /// `count` documents of `entries` entries each, written by node 1 (a
    /// centre of KAZ-BS in the signed runs): KAZ-BS shards when there are
    /// at most 16, else shards of made-up authorities.
    fn docs(
        &mut self,
        count: usize,
        entries: usize,
    ) -> anyhow::Result<Vec<(outpost_model::schema::Document, Vec<EntryId>)>> {
        let mut docs = Vec::new();
        for i in 0..count {
            let authority = if count <= 16 { "KAZ-BS".to_string() } else { format!("A{:03}", i / 16) };
            let kind = DocKind::Watchlist { authority, shard: (i % 16) as u8 };
            let mut doc = outpost_model::schema::Document::genesis(kind).map_err(|e| anyhow::anyhow!("{e}"))?;
            doc.set_actor(node_actor(1));
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

/// What one run of the scenarios sent.
struct Figures {
    bootstrap: Traffic,
    one: Traffic,
    catch_up: Traffic,
    idle: Traffic,
    /// What checking the 30-day catch-up's changes costs (signed runs).
    check: Option<CheckCost>,
}

/// The same scenarios' baselines: plain Automerge, `save()`, zstd.
#[derive(Default)]
struct Baselines {
    saved: usize,
    plain_bootstrap: usize,
    change_bytes: usize,
    plain_one: usize,
    edits: usize,
    missed: usize,
    zstd3: usize,
    zstd19: usize,
    plain_catch_up: usize,
    plain_idle: usize,
}

/// Admission of the catch-up's changes, timed with and without a roster.
struct CheckCost {
    changes: usize,
    signatures: usize,
    signed: Duration,
    unsigned: Duration,
    /// One ed25519 verification, alone.
    verify: Duration,
}

pub(crate) fn sync(args: &SyncArgs) -> anyhow::Result<()> {
    let (unsigned, base) = scenarios(args, false)?;
    let (signed, _) = scenarios(args, true)?;
    println!(
        "| figure | unsigned (`--psk-only`) | signed (roster) | signed − unsigned | baseline in the same run | signed ÷ baseline | target |"
    );
    println!("|---|---|---|---|---|---|---|");
    let row = |figure: String, u: Traffic, s: Traffic, baseline: String, over: usize, target: String| {
        println!(
            "| {figure} | {} B in {} frames | {} B in {} frames | {:+} B ({:+.2}%) | {baseline} | {} | {target} |",
            u.bytes,
            u.frames,
            s.bytes,
            s.frames,
            s.bytes as i64 - u.bytes as i64,
            100.0 * (s.bytes as f64 - u.bytes as f64) / u.bytes.max(1) as f64,
            ratio(s.bytes, over),
        );
    };
    row(
        format!("bootstrap an empty peer ({} entries in 16 documents)", args.bootstrap_entries),
        unsigned.bootstrap,
        signed.bootstrap,
        format!("`save()` {} B; plain sync {} B", base.saved, base.plain_bootstrap),
        base.saved,
        "≤ 1.05 × `save()`; signed ≤ 2% over unsigned".into(),
    );
    row(
        format!("one new change ({} B) between connected, in-sync peers", base.change_bytes),
        unsigned.one,
        signed.one,
        format!("plain sync, state in memory: {} B", base.plain_one),
        base.plain_one,
        "≤ 1.5 × change + a fixed session cost; signed ≤ 100 B over unsigned".into(),
    );
    row(
        format!("catch up after 30 days away ({} edits, {} B of raw changes)", base.edits, base.missed),
        unsigned.catch_up,
        signed.catch_up,
        format!(
            "zstd -3 of what it lacks {} B (zstd -19 {} B); plain sync, persisted states: {} B",
            base.zstd3, base.zstd19, base.plain_catch_up
        ),
        base.zstd3,
        "≤ 1.1 × zstd -3 of what it lacks; signed ≤ 5% over unsigned".into(),
    );
    row(
        format!("reconnect, {} documents in sync", args.docs),
        unsigned.idle,
        signed.idle,
        format!("plain sync, persisted states: {} B", base.plain_idle),
        base.plain_idle,
        format!("≤ 200 B + 4 B per document = {} B", 200 + 4 * args.docs),
    );
    if let Some(check) = signed.check {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / check.changes.max(1) as f64;
        println!();
        println!(
            "| checking the catch-up's {} changes ({} signatures) | µs per change |",
            check.changes, check.signatures
        );
        println!("|---|---|");
        println!("| admission without a roster (`--psk-only`: schema and field rules) | {:.1} |", per(check.unsigned));
        println!("| admission with the roster (signatures, signers, rights too) | {:.1} |", per(check.signed));
        println!("| … of which signatures and the roster | {:.1} |", per(check.signed.saturating_sub(check.unsigned)));
        println!("| one ed25519 verification, alone | {:.1} |", check.verify.as_secs_f64() * 1e6);
    }
    Ok(())
}

/// A node of the run: signed runs are members of `fleet`, whose roster
/// they hold, and sign what they write; unsigned runs are `--psk-only`.
fn node(n: u8, docs: Vec<outpost_model::schema::Document>, fleet: Option<&TestFleet>) -> Node {
    match fleet {
        Some(fleet) => Node::in_fleet(n, docs, fleet),
        None => Node::new(n, docs),
    }
}

/// Bootstrap, one live change, a 30-day catch-up and an idle reconnect on
/// an in-memory engine pair; the baselines on the same documents.
fn scenarios(args: &SyncArgs, signed: bool) -> anyhow::Result<(Figures, Baselines)> {
    let fleet = signed.then(|| TestFleet::centres(2));
    let fleet = fleet.as_ref();
    let mut base = Baselines::default();
    let mut builder = Builder::new(7);

    // Bootstrap an empty peer.
    let mut list = builder.docs(16, args.bootstrap_entries / 16)?;
    base.saved = list.iter_mut().map(|(d, _)| d.save().len()).sum();
    let mut plain_pairs = Vec::new();
    for (a, (d, _)) in forks(&mut list).into_iter().zip(list.iter()) {
        let empty = outpost_model::schema::Document::load(d.id(), None, std::iter::empty())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        plain_pairs.push((a, empty));
    }
    base.plain_bootstrap = plain_sync(&mut plain_pairs, None)?.0;
    let mut pair = Pair::new(node(1, forks(&mut list), fleet), node(2, Vec::new(), fleet));
    let bootstrap = pair.connect();
    anyhow::ensure!(pair.in_sync(), "bootstrap did not converge: {:?}", pair.problems);

    // One new change between connected, in-sync peers.
    let doc_id = pair.a.host.docs.keys().next().cloned().ok_or_else(|| anyhow::anyhow!("no documents"))?;
    let mut plain_a = pair.a.host.docs[&doc_id].read().clone();
    let mut plain_b = plain_a.fork();
    let one = {
        let doc = pair.a.host.docs.get_mut(&doc_id).ok_or_else(|| anyhow::anyhow!("document vanished"))?;
        let before = doc.heads();
        base.change_bytes = builder.add(doc)?.1;
        let change = doc.stored_changes_since(&before);
        // The same change, applied to plain copies that are in sync with
        // their sync state in memory.
        let mut sa = automerge::sync::State::new();
        let mut sb = automerge::sync::State::new();
        plain_session(&mut plain_a, &mut sa, &mut plain_b, &mut sb)?;
        let raw: Vec<automerge::Change> =
            change.iter().map(|c| automerge::Change::from_bytes(c[32..].to_vec())).collect::<Result<_, _>>()?;
        plain_a.apply_changes(raw)?;
        base.plain_one = plain_session(&mut plain_a, &mut sa, &mut plain_b, &mut sb)?;
        let ours = pair.push_from_a(&doc_id);
        anyhow::ensure!(pair.in_sync(), "the change did not arrive: {:?}", pair.problems);
        ours
    };

    // Catch up after 30 days away.
    pair.disconnect();
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
            base.edits += 1;
        }
    }
    let mut missed = Vec::new();
    for (id, (a, _)) in ids.iter().zip(plain_copies.iter_mut()) {
        let doc = pair.a.host.docs.get_mut(id).ok_or_else(|| anyhow::anyhow!("doc"))?;
        let changes = doc.stored_changes_since(&heads_at_b[id]);
        missed.extend(changes.iter().flat_map(|c| c[32..].to_vec()));
        if let Some(a) = a {
            let parsed = changes.iter().map(|c| automerge::Change::from_bytes(c[32..].to_vec()));
            a.apply_changes(parsed.collect::<Result<Vec<_>, _>>()?)?;
        }
    }
    base.missed = missed.len();
    // The edits were made while disconnected; the engine learns of them as
    // the daemon's writer would tell it.
    for id in &ids {
        pair.push_from_a(id);
    }
    base.zstd3 = zstd::bulk::compress(&missed, 3)?.len();
    base.zstd19 = zstd::bulk::compress(&missed, 19)?.len();
    let mut plain_pairs: Vec<_> = plain_copies.into_iter().filter_map(|(a, b)| Some((a?, b?))).collect();
    base.plain_catch_up = plain_sync(&mut plain_pairs, Some(&plain_states))?.0;
    let check = if signed { Some(check_cost(&mut pair, &ids, &heads_at_b)?) } else { None };
    let catch_up = pair.connect();
    anyhow::ensure!(pair.in_sync(), "catch-up did not converge: {:?}", pair.problems);
    anyhow::ensure!(pair.disconnects.is_empty(), "an engine cut its peer off: {:?}", pair.disconnects);

    // Reconnect many in-sync documents.
    let mut many = builder.docs(args.docs, args.entries)?;
    let mut plain_pairs: Vec<_> = forks(&mut many).into_iter().zip(forks(&mut many)).collect();
    let (_, plain_states) = plain_sync(&mut plain_pairs, None)?;
    base.plain_idle = plain_sync(&mut plain_pairs, Some(&plain_states))?.0;
    let mut pair = Pair::new(node(1, forks(&mut many), fleet), node(2, forks(&mut many), fleet));
    pair.connect();
    pair.disconnect();
    let idle = pair.connect();
    Ok((Figures { bootstrap, one, catch_up, idle, check }, base))
}

/// Times admission of what B lacks of A's documents, as B would judge it
/// with its roster and without one, each over fresh copies of B's
/// documents; and one signature verification alone.
fn check_cost(
    pair: &mut Pair,
    ids: &[DocId],
    heads_at_b: &BTreeMap<DocId, Vec<automerge::ChangeHash>>,
) -> anyhow::Result<CheckCost> {
    use outpost_model::admission::{Authority, Incoming, admit};
    use outpost_model::replication::engine::DocHost;
    use outpost_model::trust::proof::wire_proofs;
    const ROUNDS: u32 = 5;
    let mut work = Vec::new();
    for id in ids {
        let doc = pair.a.host.doc(id).map_err(|e| anyhow::anyhow!("{e}"))?;
        let changes = doc.changes_since(&heads_at_b[id]);
        let proofs = wire_proofs(&changes, |h| pair.a.host.proofs.get(&(id.clone(), *h)).cloned().unwrap_or_default());
        let at_b = pair.b.host.doc(id).map_err(|e| anyhow::anyhow!("{e}"))?.fork(automerge::ActorId::from([7u8; 16]));
        work.push((at_b, changes, proofs));
    }
    let fleet = pair.b.engine.fleet().cloned().ok_or_else(|| anyhow::anyhow!("node 2 holds no roster"))?;
    let mut time = |authority: &Authority<'_>| -> anyhow::Result<Duration> {
        let started = Instant::now();
        for _ in 0..ROUNDS {
            for (at_b, changes, proofs) in &mut work {
                let mut copy = at_b.fork(automerge::ActorId::from([8u8; 16]));
                let verdict =
                    admit(&mut copy, Incoming { changes: changes.clone(), proofs }, authority, &BTreeMap::new());
                anyhow::ensure!(
                    verdict.rejected.is_empty() && verdict.held.is_empty(),
                    "refused: {:?}",
                    verdict.rejected
                );
            }
        }
        Ok(started.elapsed() / ROUNDS)
    };
    let unsigned = time(&Authority::Open)?;
    let signed = time(&Authority::Fleet { fleet: &fleet, newer_known: false })?;
    let changes = work.iter().map(|(_, c, _)| c.len()).sum();
    let signatures = work.iter().map(|(_, _, p)| p.len()).sum();
    let signer = outpost_model::trust::Signer::from_secret([3; 32]);
    let message = [0u8; 70];
    let signature = signer.sign(&message);
    let started = Instant::now();
    for _ in 0..1000 {
        anyhow::ensure!(signer.public().verifies(&message, &signature), "a signature did not verify");
    }
    let verify = started.elapsed() / 1000;
    Ok(CheckCost { changes, signatures, signed, unsigned, verify })
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
