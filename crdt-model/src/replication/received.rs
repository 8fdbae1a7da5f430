//! What a peer sends, bounded before Automerge sees it.
//!
//! Automerge trusts the sizes its chunks claim. A compressed change is a
//! deflate stream (about 1000:1 at best), a whole-document chunk has
//! deflated columns, and every column is run-length encoded, so a few
//! bytes can claim billions of rows. Automerge would inflate, decode and
//! allocate all of it. Its chunk parser is private, so this module reads
//! the chunk and column headers itself (the format is Automerge's binary
//! format, documented at automerge.org), inflates with a limit and counts
//! rows from the run lengths, against one [`Budget`] per sync message or
//! bundle. Only chunks that fit are handed to Automerge.

use std::io::Read;

use automerge::{AutoCommit, Change, ChangeHash};
use thiserror::Error;

/// What one sync message or bundle may expand to, in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveLimits {
    /// Bytes of chunk data after inflating, summed over every chunk.
    pub max_expanded_bytes: u64,
    /// Rows (operations, changes, elements) the columns may claim, summed
    /// over every chunk.
    pub max_rows: u64,
}

impl ReceiveLimits {
    /// For chunks this node made itself, which it parses only to name
    /// their changes.
    pub fn own() -> Self {
        Self { max_expanded_bytes: u64::MAX, max_rows: u64::MAX }
    }
}

/// Whether `chunk` is a whole-document chunk.
pub fn is_document_chunk(chunk: &[u8]) -> bool {
    chunk.get(TYPE_AT) == Some(&DOCUMENT)
}

impl Default for ReceiveLimits {
    fn default() -> Self {
        // A 62,500-entry shard (1M entries per post) saves to ~4 MB, ~30 MB
        // of columns and ~2M operations.
        Self { max_expanded_bytes: 64 << 20, max_rows: 4 << 20 }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizeError {
    #[error("no chunk header at byte {at}")]
    NoHeader { at: usize },
    #[error("{what} is cut off")]
    CutOff { what: &'static str },
    #[error("chunk of type {0} is not a change or a document")]
    UnknownChunkType(u8),
    #[error("the chunks expand past {limit} bytes")]
    TooManyBytes { limit: u64 },
    #[error("the chunks claim more than {limit} rows")]
    TooManyRows { limit: u64 },
    #[error("a compressed part does not inflate: {0}")]
    Inflate(String),
    #[error("a change does not parse: {0}")]
    Change(String),
    #[error("a document does not load: {0}")]
    Document(String),
    #[error("a whole-document chunk is a copy of another document")]
    OtherDocument,
    #[error("an actor id of {0} bytes; at most {MAX_ACTOR_BYTES}")]
    LongActor(usize),
}

/// The longest actor id taken. Ours are 20 bytes; Automerge's own random
/// ones 16. Loading a document copies its actor into every change the
/// actor made, so a long one stored once could cost gigabytes.
pub const MAX_ACTOR_BYTES: usize = 32;

fn actor(reader: &mut Reader<'_>) -> Result<(), SizeError> {
    let bytes = reader.prefixed()?;
    if bytes.len() > MAX_ACTOR_BYTES {
        return Err(SizeError::LongActor(bytes.len()));
    }
    Ok(())
}

/// Running totals against the limits, for one message or bundle.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: ReceiveLimits,
    bytes: u64,
    rows: u64,
}

impl Budget {
    pub fn new(limits: ReceiveLimits) -> Self {
        Self { limits, bytes: 0, rows: 0 }
    }

    fn charge_bytes(&mut self, n: u64) -> Result<(), SizeError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_expanded_bytes {
            return Err(SizeError::TooManyBytes { limit: self.limits.max_expanded_bytes });
        }
        Ok(())
    }

    fn charge_rows(&mut self, n: u64) -> Result<(), SizeError> {
        self.rows = self.rows.saturating_add(n);
        if self.rows > self.limits.max_rows {
            return Err(SizeError::TooManyRows { limit: self.limits.max_rows });
        }
        Ok(())
    }

    /// Bytes that may still be inflated.
    fn bytes_left(&self) -> u64 {
        self.limits.max_expanded_bytes.saturating_sub(self.bytes)
    }

    fn rows_left(&self) -> u64 {
        self.limits.max_rows.saturating_sub(self.rows)
    }
}

/// Automerge's chunk header: 4 magic bytes, a 4-byte checksum, a type byte
/// and a LEB128 length.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const TYPE_AT: usize = 8;
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED_CHANGE: u8 = 2;
/// A column spec's deflate bit; its low three bits are the column type.
const DEFLATE_BIT: u32 = 0b1000;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, at: 0, what }
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn cut(&self) -> SizeError {
        SizeError::CutOff { what: self.what }
    }

    fn byte(&mut self) -> Result<u8, SizeError> {
        let byte = *self.bytes.get(self.at).ok_or_else(|| self.cut())?;
        self.at += 1;
        Ok(byte)
    }

    fn uleb(&mut self) -> Result<u64, SizeError> {
        let (mut value, mut shift) = (0u64, 0u32);
        loop {
            let byte = self.byte()?;
            if shift > 63 || (shift == 63 && byte > 1) {
                return Err(SizeError::CutOff { what: "a number that does not fit in 64 bits" });
            }
            value |= u64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
    }

    fn sleb(&mut self) -> Result<i64, SizeError> {
        let (mut value, mut shift) = (0i64, 0u32);
        loop {
            let byte = self.byte()?;
            if shift > 63 {
                return Err(SizeError::CutOff { what: "a number that does not fit in 64 bits" });
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], SizeError> {
        let n = usize::try_from(n).map_err(|_| self.cut())?;
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len()).ok_or_else(|| self.cut())?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    /// A LEB128 length followed by that many bytes.
    fn prefixed(&mut self) -> Result<&'a [u8], SizeError> {
        let len = self.uleb()?;
        self.take(len)
    }
}

/// One chunk: its type and its whole bytes, header included.
fn split(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>, SizeError> {
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() <= TYPE_AT || rest[..4] != MAGIC {
            return Err(SizeError::NoHeader { at });
        }
        let mut reader = Reader::new(rest, "a chunk");
        reader.at = TYPE_AT + 1;
        reader.prefixed()?;
        let end = reader.at;
        chunks.push((rest[TYPE_AT], &rest[..end]));
        at += end;
    }
    Ok(chunks)
}

/// Reads an unsigned LEB128 number at `*at`, moving `*at` past it.
pub(crate) fn leb128_u64(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut reader = Reader::new(bytes, "a number");
    reader.at = *at;
    let value = reader.uleb().ok()?;
    *at = reader.at;
    Some(value)
}

/// Inflates `data`, stopping as soon as it would not fit in the budget
/// (the caller charges what it keeps).
fn inflate(data: &[u8], budget: &Budget) -> Result<Vec<u8>, SizeError> {
    let allowed = budget.bytes_left();
    let mut out = Vec::new();
    flate2::bufread::DeflateDecoder::new(data)
        .take(allowed.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| SizeError::Inflate(e.to_string()))?;
    if out.len() as u64 > allowed {
        return Err(SizeError::TooManyBytes { limit: budget.limits.max_expanded_bytes });
    }
    Ok(out)
}

/// Column metadata: how many columns, then (spec, length) for each.
fn column_meta(reader: &mut Reader<'_>) -> Result<Vec<(u32, u64)>, SizeError> {
    let count = reader.uleb()?;
    let mut columns = Vec::new();
    for _ in 0..count {
        let spec = u32::try_from(reader.uleb()?).map_err(|_| SizeError::CutOff { what: "a column spec" })?;
        let len = reader.uleb()?;
        columns.push((spec, len));
        // Each takes at least two bytes of the chunk, so this loop ends
        // with the input.
        if reader.done() && columns.len() < count as usize {
            return Err(reader.cut());
        }
    }
    Ok(columns)
}

enum Values {
    Group,
    Unsigned,
    Signed,
    Bytes,
}

/// Rows a run-length encoded column holds: runs of `count > 0` repeat one
/// value, `count < 0` are that many literal values, `0` is followed by a
/// count of nulls. Also the sum of the values: for a group column, its rows
/// in the columns it groups (checked against the limit here); for a string
/// column, the bytes its values take once every run is expanded, which is
/// what loading the chunk allocates (one commit message repeated by a run
/// over many changes is stored once and built once per change).
fn rle_rows(data: &[u8], values: Values, limit: u64) -> Result<(u64, u64), SizeError> {
    let mut reader = Reader::new(data, "a column");
    let (mut rows, mut sum) = (0u64, 0u64);
    let too_many = SizeError::TooManyRows { limit };
    while !reader.done() {
        let count = reader.sleb()?;
        let read_value = |reader: &mut Reader<'_>| -> Result<u64, SizeError> {
            match &values {
                Values::Group | Values::Unsigned => reader.uleb(),
                Values::Signed => reader.sleb().map(|_| 0),
                Values::Bytes => reader.prefixed().map(|value| value.len() as u64),
            }
        };
        if count > 0 {
            let value = read_value(&mut reader)?;
            rows = rows.saturating_add(count as u64);
            sum = sum.saturating_add((count as u64).saturating_mul(value));
        } else if count < 0 {
            let n = count.unsigned_abs();
            if n > limit {
                return Err(too_many);
            }
            for _ in 0..n {
                sum = sum.saturating_add(read_value(&mut reader)?);
            }
            rows = rows.saturating_add(n);
        } else {
            rows = rows.saturating_add(reader.uleb()?);
        }
        if rows > limit || (matches!(values, Values::Group) && sum > limit) {
            return Err(too_many);
        }
    }
    Ok((rows, sum))
}

/// Rows of a boolean column: alternating run lengths, `false` first.
fn boolean_rows(data: &[u8], limit: u64) -> Result<u64, SizeError> {
    let mut reader = Reader::new(data, "a column");
    let mut rows = 0u64;
    while !reader.done() {
        rows = rows.saturating_add(reader.uleb()?);
        if rows > limit {
            return Err(SizeError::TooManyRows { limit });
        }
    }
    Ok(rows)
}

/// Inflates and counts the columns laid out by `meta` in `data`, charging
/// the budget: the inflated bytes of each deflated column (the caller
/// charges the chunk's own bytes), and rows for the longest column.
fn check_columns(meta: &[(u32, u64)], data: &mut Reader<'_>, budget: &mut Budget) -> Result<(), SizeError> {
    let mut longest = 0u64;
    for &(spec, len) in meta {
        let raw = data.take(len)?;
        let inflated;
        let bytes = if spec & DEFLATE_BIT != 0 {
            inflated = inflate(raw, budget)?;
            budget.charge_bytes(inflated.len() as u64)?;
            &inflated[..]
        } else {
            raw
        };
        let limit = budget.rows_left();
        let rows = match spec & 0b111 {
            // Group: the groups, and the rows of the columns they group.
            0 => {
                let (groups, grouped) = rle_rows(bytes, Values::Group, limit)?;
                groups.max(grouped)
            }
            // Actor, integer, value metadata.
            1 | 2 | 6 => rle_rows(bytes, Values::Unsigned, limit)?.0,
            3 => rle_rows(bytes, Values::Signed, limit)?.0,
            4 => boolean_rows(bytes, limit)?,
            5 => {
                let (rows, expanded) = rle_rows(bytes, Values::Bytes, limit)?;
                budget.charge_bytes(expanded)?;
                rows
            }
            // Raw values: their lengths are in the value metadata column.
            _ => 0,
        };
        longest = longest.max(rows);
    }
    budget.charge_rows(longest)
}

/// A change chunk's body (after the chunk header): its fixed fields, then
/// its operation columns.
fn check_change_body(body: &[u8], budget: &mut Budget) -> Result<(), SizeError> {
    budget.charge_bytes(body.len() as u64)?;
    let mut reader = Reader::new(body, "a change");
    let deps = reader.uleb()?;
    reader.take(deps.checked_mul(32).ok_or_else(|| reader.cut())?)?;
    actor(&mut reader)?;
    reader.uleb()?; // seq
    reader.uleb()?; // start op
    reader.sleb()?; // time
    reader.prefixed()?; // message
    let others = reader.uleb()?;
    for _ in 0..others {
        actor(&mut reader)?;
    }
    let meta = column_meta(&mut reader)?;
    check_columns(&meta, &mut reader, budget)
}

/// A document chunk's body: actors, heads, change and operation column
/// metadata, then their data.
fn check_document_body(body: &[u8], budget: &mut Budget) -> Result<(), SizeError> {
    budget.charge_bytes(body.len() as u64)?;
    let mut reader = Reader::new(body, "a document");
    let actors = reader.uleb()?;
    for _ in 0..actors {
        actor(&mut reader)?;
    }
    let heads = reader.uleb()?;
    reader.take(heads.checked_mul(32).ok_or_else(|| reader.cut())?)?;
    let change_meta = column_meta(&mut reader)?;
    let ops_meta = column_meta(&mut reader)?;
    check_columns(&change_meta, &mut reader, budget)?;
    check_columns(&ops_meta, &mut reader, budget)
}

fn body_of(chunk: &[u8]) -> Result<&[u8], SizeError> {
    let mut reader = Reader::new(chunk, "a chunk");
    reader.at = TYPE_AT + 1;
    reader.prefixed()
}

/// The changes in `parts` (sync message chunks or bundle chunks, each
/// holding one or more Automerge chunks back to back), parsed only once
/// each fits the budget. A whole-document chunk must hold `genesis`, the
/// document's deterministic first change, or it is a copy of another
/// document.
pub fn changes_within<'a>(
    parts: impl IntoIterator<Item = &'a [u8]>,
    genesis: &[ChangeHash],
    budget: &mut Budget,
) -> Result<Vec<Change>, SizeError> {
    let mut changes = Vec::new();
    for part in parts {
        for (kind, chunk) in split(part)? {
            let body = body_of(chunk)?;
            match kind {
                CHANGE => {
                    check_change_body(body, budget)?;
                    changes.push(parse_change(chunk)?);
                }
                COMPRESSED_CHANGE => {
                    let inflated = inflate(body, budget)?;
                    check_change_body(&inflated, budget)?;
                    changes.push(parse_change(chunk)?);
                }
                DOCUMENT => {
                    check_document_body(body, budget)?;
                    // Automerge unwraps on some malformed input: a panic
                    // is a refusal, never a crash.
                    let loaded = crate::error::guard(|| -> Result<Option<Vec<Change>>, SizeError> {
                        let mut copy = AutoCommit::load(chunk).map_err(|e| SizeError::Document(e.to_string()))?;
                        if !genesis.iter().all(|h| copy.get_change_by_hash(h).is_some()) {
                            return Ok(None);
                        }
                        Ok(Some(copy.get_changes(&[])))
                    })
                    .map_err(SizeError::Document)??;
                    changes.extend(loaded.ok_or(SizeError::OtherDocument)?);
                }
                other => return Err(SizeError::UnknownChunkType(other)),
            }
        }
    }
    Ok(changes)
}

/// A change chunk parsed by Automerge, whose panics are refusals.
fn parse_change(chunk: &[u8]) -> Result<Change, SizeError> {
    crate::error::guard(|| Change::from_bytes(chunk.to_vec()))
        .map_err(SizeError::Change)?
        .map_err(|e| SizeError::Change(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::schema::{DocKind, Document};

    fn uleb(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                return;
            }
        }
    }

    fn sleb(mut n: i64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            let done = (n == 0 && byte & 0x40 == 0) || (n == -1 && byte & 0x40 != 0);
            out.push(if done { byte } else { byte | 0x80 });
            if done {
                return;
            }
        }
    }

    /// A chunk of `kind` around `body` (the checksum is never read here).
    fn chunk(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[0, 0, 0, 0, kind]);
        uleb(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }

    fn deflate(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// A document chunk with one change column of `spec` holding `column`.
    fn document_with_column(spec: u32, column: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        uleb(0, &mut body); // actors
        uleb(0, &mut body); // heads
        uleb(1, &mut body); // change columns
        uleb(u64::from(spec), &mut body);
        uleb(column.len() as u64, &mut body);
        uleb(0, &mut body); // op columns
        body.extend_from_slice(column);
        chunk(DOCUMENT, &body)
    }

    fn budget() -> Budget {
        Budget::new(ReceiveLimits::default())
    }

    fn genesis() -> (Document, Vec<ChangeHash>) {
        let doc = Document::genesis(DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 1 }).unwrap();
        let heads = doc.genesis_heads().to_vec();
        (doc, heads)
    }

    #[test]
    fn honest_changes_and_documents_fit_and_parse() {
        let (mut doc, genesis) = genesis();
        doc.set_actor(automerge::ActorId::from([3u8; 20]));
        for n in 0..20 {
            crate::test_support::add_person(
                &mut doc,
                n,
                "Айгерим Нурланова",
                crate::date::Timestamp::from_millis(1_795_000_000_000),
            );
        }
        let whole = doc.save();
        let mut b = budget();
        let from_whole = changes_within([whole.as_slice()], &genesis, &mut b).unwrap();
        assert_eq!(from_whole.len(), 21, "the genesis and 20 entries");
        let singles: Vec<Vec<u8>> = doc.stored_changes_since(&genesis).into_iter().map(|c| c[32..].to_vec()).collect();
        let parsed = changes_within(singles.iter().map(Vec::as_slice), &genesis, &mut budget()).unwrap();
        assert_eq!(parsed.len(), 20);
    }

    #[test]
    fn a_deflate_bomb_in_a_change_is_refused_within_the_budget() {
        // 9 MiB of zeros in a few kilobytes, with a budget of 8 MiB.
        let bomb = chunk(COMPRESSED_CHANGE, &deflate(&vec![0u8; 9 << 20]));
        assert!(bomb.len() < 64 * 1024);
        let mut small = Budget::new(ReceiveLimits { max_expanded_bytes: 8 << 20, ..ReceiveLimits::default() });
        let err = changes_within([bomb.as_slice()], &[], &mut small).unwrap_err();
        assert_eq!(err, SizeError::TooManyBytes { limit: 8 << 20 });
    }

    #[test]
    fn many_small_bombs_are_bounded_in_total_not_one_by_one() {
        // A real change whose 1 MiB message Automerge compresses to a few
        // kilobytes: each copy fits alone, a hundred do not.
        let mut doc = automerge::AutoCommit::new();
        automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "x", 1).unwrap();
        let options = automerge::transaction::CommitOptions::default().with_message("a".repeat(1 << 20));
        let hash = doc.commit_with(options).unwrap();
        let mut change = doc.get_change_by_hash(&hash).unwrap();
        let bytes = change.bytes().to_vec();
        assert_eq!(bytes[TYPE_AT], COMPRESSED_CHANGE);
        assert!(bytes.len() < 16 * 1024, "{} B", bytes.len());
        assert_eq!(changes_within([bytes.as_slice()], &[], &mut budget()).unwrap().len(), 1);
        let message: Vec<u8> = bytes.repeat(100);
        let mut b = Budget::new(ReceiveLimits { max_expanded_bytes: 16 << 20, ..ReceiveLimits::default() });
        let err = changes_within([message.as_slice()], &[], &mut b).map(|c| c.len());
        assert_eq!(err, Err(SizeError::TooManyBytes { limit: 16 << 20 }));
    }

    #[test]
    fn a_commit_message_repeated_by_a_run_is_charged_for_every_change_it_makes() {
        // Forty changes with one 1 MiB message: a document chunk stores the
        // message once, loading it builds it forty times.
        let mut doc = automerge::AutoCommit::new();
        for n in 0..40 {
            automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "x", n).unwrap();
            doc.commit_with(automerge::transaction::CommitOptions::default().with_message("a".repeat(1 << 20)));
        }
        let whole = doc.save();
        assert!(whole.len() < 64 * 1024, "{} B", whole.len());
        let mut b = Budget::new(ReceiveLimits { max_expanded_bytes: 16 << 20, ..ReceiveLimits::default() });
        let err = changes_within([whole.as_slice()], &[], &mut b).map(|c| c.len());
        assert_eq!(err, Err(SizeError::TooManyBytes { limit: 16 << 20 }));
        // Within a budget that holds them all, they load.
        let mut roomy = Budget::new(ReceiveLimits { max_expanded_bytes: 64 << 20, ..ReceiveLimits::default() });
        assert_eq!(changes_within([whole.as_slice()], &[], &mut roomy).map(|c| c.len()), Ok(40));
    }

    #[test]
    fn a_long_actor_id_is_refused_before_loading() {
        // One 64 KB actor over a thousand commits: stored once in the
        // chunk, copied into every change when loaded.
        let mut doc = automerge::AutoCommit::new().with_actor(automerge::ActorId::from(vec![7u8; 64 * 1024]));
        for n in 0..1000 {
            automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "x", n).unwrap();
            doc.commit();
        }
        let whole = doc.save();
        let err = changes_within([whole.as_slice()], &[], &mut budget()).map(|c| c.len());
        assert_eq!(err, Err(SizeError::LongActor(64 * 1024)));
        let mut change = doc.get_last_local_change().unwrap().clone();
        let one = change.bytes().to_vec();
        assert_eq!(
            changes_within([one.as_slice()], &[], &mut budget()).map(|c| c.len()),
            Err(SizeError::LongActor(64 * 1024))
        );
    }

    #[test]
    fn a_deflated_document_column_is_inflated_with_a_limit() {
        let column = deflate(&vec![0u8; 9 << 20]);
        let document = document_with_column(0x10 | DEFLATE_BIT | 2, &column);
        let mut small = Budget::new(ReceiveLimits { max_expanded_bytes: 8 << 20, ..ReceiveLimits::default() });
        let err = changes_within([document.as_slice()], &[], &mut small).unwrap_err();
        assert_eq!(err, SizeError::TooManyBytes { limit: 8 << 20 });
    }

    #[test]
    fn run_lengths_claiming_billions_of_rows_are_refused() {
        // One run: 2^40 copies of the value 1.
        let mut column = Vec::new();
        sleb(1 << 40, &mut column);
        uleb(1, &mut column);
        let document = document_with_column(0x10 | 2, &column);
        let err = changes_within([document.as_slice()], &[], &mut budget()).unwrap_err();
        assert!(matches!(err, SizeError::TooManyRows { .. }), "{err}");
        // Null runs and boolean runs count too.
        let mut nulls = Vec::new();
        sleb(0, &mut nulls);
        uleb(u64::MAX, &mut nulls);
        let err = changes_within([document_with_column(0x20 | 1, &nulls).as_slice()], &[], &mut budget());
        assert!(matches!(err, Err(SizeError::TooManyRows { .. })), "{err:?}");
        let mut booleans = Vec::new();
        uleb(1 << 50, &mut booleans);
        let err = changes_within([document_with_column(0x30 | 4, &booleans).as_slice()], &[], &mut budget());
        assert!(matches!(err, Err(SizeError::TooManyRows { .. })), "{err:?}");
    }

    #[test]
    fn damaged_framing_is_named() {
        let err = changes_within([b"not a chunk".as_slice()], &[], &mut budget()).unwrap_err();
        assert_eq!(err, SizeError::NoHeader { at: 0 });
        let mut cut = chunk(CHANGE, &[1, 2, 3, 4]);
        cut.truncate(cut.len() - 2);
        let err = changes_within([cut.as_slice()], &[], &mut budget()).unwrap_err();
        assert!(matches!(err, SizeError::CutOff { .. }), "{err}");
        let bundle_chunk = chunk(3, &[0]);
        assert_eq!(changes_within([bundle_chunk.as_slice()], &[], &mut budget()), Err(SizeError::UnknownChunkType(3)));
    }

    #[test]
    fn a_snapshot_of_another_document_is_refused() {
        let (_, genesis) = genesis();
        let mut other = Document::genesis(DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 2 }).unwrap();
        let err = changes_within([other.save().as_slice()], &genesis, &mut budget()).unwrap_err();
        assert_eq!(err, SizeError::OtherDocument);
    }
}
