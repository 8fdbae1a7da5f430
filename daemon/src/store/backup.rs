//! Backups: every table of the store as one read transaction saw it, and
//! their restore into an empty data directory.
//!
//! A read transaction is a snapshot (redb is MVCC), so the writer goes on
//! committing while a backup is written, and the backup holds exactly the
//! writes acknowledged before it began.
//!
//! The file: `OUTPOSTB`, the format as a u32 (little-endian), then a zstd
//! stream of items, each a u32 length and a postcard [`Item`]: `Begin`,
//! then per table `Table` and its `Row`s, then `End` with the number of
//! rows and the SHA-256 of every item before it. A backup that is cut short,
//! damaged or padded is refused whole, and nothing is restored from it.
//!
//! Rows are carried as their typed values (strings, numbers, bytes), not as
//! redb's encoding, so that a damaged or crafted backup fails to decode with
//! an error rather than reaching redb's decoders.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use redb::{Database, MultimapTableHandle, ReadableTable, TableDefinition, TableHandle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    ATTESTED, AUDIT, AUDIT_ALARMS, AUDIT_TRAIL, CHANGE_PROOFS, DB_FILE, DOC_CHANGES, DOC_HEADS, DOC_SEQ, DOC_SNAPSHOTS,
    ENTRIES, FORMAT, INCIDENTS, META, QUARANTINE, SEARCH_KEYS, SYNC_STATES, Store, StoreError, TABLE_VERSIONS,
    create_private, db,
};

const MAGIC: &[u8; 8] = b"OUTPOSTB";
/// The backup format this build writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
/// An item larger than this is refused: the largest row is a document's
/// snapshot, a few MiB at a million entries.
const MAX_ITEM_BYTES: u32 = 256 << 20;
/// Rows restored per write transaction, so that memory stays bounded.
const ROWS_PER_COMMIT: usize = 10_000;
const BYTES_PER_COMMIT: usize = 64 << 20;
/// Where a restore builds the store before it is complete and verified.
const RESTORING_FILE: &str = "outpost.redb.restoring";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("this is not an outpost backup (it does not begin with {MAGIC:?})")]
    NotABackup,
    #[error("backup format {0} is newer than this outpostd reads ({BACKUP_FORMAT}); restore it with a newer outpostd")]
    TooNewFormat(u32),
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error(
        "table {table} was written in format {found}, newer than this outpostd supports ({supported}); restore it with a newer outpostd"
    )]
    TooNewTable { table: String, found: u32, supported: u32 },
    #[error("{0} already holds a store; restore only into an empty data directory")]
    NotEmpty(PathBuf),
    #[error("the store holds table {0}, which backups do not cover; this is a bug, and nothing was written")]
    Uncovered(String),
}

impl From<redb::Error> for BackupError {
    fn from(err: redb::Error) -> Self {
        Self::Store(db(err))
    }
}

/// What a backup says about itself, before its tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupInfo {
    /// The store's node id, in hex.
    pub node_id: String,
    /// When the snapshot was taken (Unix milliseconds).
    pub taken_at_ms: i64,
    /// The outpostd that wrote it.
    pub outpostd: String,
    /// Each table's format version, as the store recorded it.
    pub formats: Vec<(String, u32)>,
}

/// What was written or restored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupSummary {
    pub tables: u32,
    pub rows: u64,
    /// SHA-256 of the items, as the `End` item carries it (hex).
    pub sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
enum Item {
    Begin(BackupInfo),
    Table(String),
    Row(Vec<u8>),
    End { rows: u64, sha256: [u8; 32] },
}

/// A key or value type of a table, carried in a backup as an owned value.
trait Portable: redb::Value + 'static {
    type Owned: Serialize + DeserializeOwned;
    fn own(value: Self::SelfType<'_>) -> Self::Owned;
    fn view(owned: &Self::Owned) -> Self::SelfType<'_>;
}

impl Portable for &'static str {
    type Owned = String;
    fn own(value: &str) -> String {
        value.to_string()
    }
    fn view(owned: &String) -> &str {
        owned
    }
}

impl Portable for &'static [u8] {
    type Owned = Vec<u8>;
    fn own(value: &[u8]) -> Vec<u8> {
        value.to_vec()
    }
    fn view(owned: &Vec<u8>) -> &[u8] {
        owned
    }
}

impl Portable for u64 {
    type Owned = u64;
    fn own(value: u64) -> u64 {
        value
    }
    fn view(owned: &u64) -> u64 {
        *owned
    }
}

impl Portable for u32 {
    type Owned = u32;
    fn own(value: u32) -> u32 {
        value
    }
    fn view(owned: &u32) -> u32 {
        *owned
    }
}

impl<A: Portable, B: Portable> Portable for (A, B) {
    type Owned = (A::Owned, B::Owned);
    fn own(value: Self::SelfType<'_>) -> Self::Owned {
        (A::own(value.0), B::own(value.1))
    }
    fn view(owned: &Self::Owned) -> Self::SelfType<'_> {
        (A::view(&owned.0), B::view(&owned.1))
    }
}

/// Calls `$each!(TABLE)` for every table of the store, in backup order.
/// A table added to the store and not here fails every backup
/// ([`BackupError::Uncovered`]), so it cannot be left out silently.
macro_rules! every_table {
    ($each:ident) => {
        $each!(META);
        $each!(TABLE_VERSIONS);
        $each!(DOC_SNAPSHOTS);
        $each!(DOC_CHANGES);
        $each!(DOC_SEQ);
        $each!(ENTRIES);
        $each!(INCIDENTS);
        $each!(AUDIT);
        $each!(SEARCH_KEYS);
        $each!(DOC_HEADS);
        $each!(SYNC_STATES);
        $each!(CHANGE_PROOFS);
        $each!(QUARANTINE);
        $each!(ATTESTED);
        $each!(AUDIT_TRAIL);
        $each!(AUDIT_ALARMS);
    };
}

fn covered_tables() -> Vec<&'static str> {
    let mut names = Vec::new();
    macro_rules! name {
        ($table:expr) => {
            names.push($table.name());
        };
    }
    every_table!(name);
    names
}

/// Items out: framed, hashed and compressed.
struct ItemWriter<W: Write> {
    out: zstd::Encoder<'static, W>,
    hasher: Sha256,
    tables: u32,
    rows: u64,
}

impl<W: Write> ItemWriter<W> {
    fn new(mut out: W) -> Result<Self, BackupError> {
        out.write_all(MAGIC)?;
        out.write_all(&BACKUP_FORMAT.to_le_bytes())?;
        let mut out = zstd::Encoder::new(out, 3)?;
        out.include_checksum(true)?;
        Ok(Self { out, hasher: Sha256::new(), tables: 0, rows: 0 })
    }

    fn item(&mut self, item: &Item) -> Result<(), BackupError> {
        let body = postcard::to_stdvec(item).map_err(StoreError::from)?;
        let len = u32::try_from(body.len()).ok().filter(|len| *len <= MAX_ITEM_BYTES).ok_or_else(|| {
            BackupError::Damaged(format!("a row of {} bytes is larger than a backup carries", body.len()))
        })?;
        let len = len.to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&body)?;
        self.hasher.update(len);
        self.hasher.update(&body);
        Ok(())
    }

    fn table<K: redb::Key + Portable, V: Portable>(
        &mut self,
        txn: &redb::ReadTransaction,
        def: TableDefinition<K, V>,
    ) -> Result<(), BackupError> {
        let table = match txn.open_table(def) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(err) => return Err(db(err).into()),
        };
        self.item(&Item::Table(def.name().to_string()))?;
        self.tables += 1;
        for row in table.iter().map_err(db)? {
            let (key, value) = row.map_err(db)?;
            let row = postcard::to_stdvec(&(K::own(key.value()), V::own(value.value()))).map_err(StoreError::from)?;
            self.item(&Item::Row(row))?;
            self.rows += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<BackupSummary, BackupError> {
        let sha256: [u8; 32] = self.hasher.clone().finalize().into();
        self.item(&Item::End { rows: self.rows, sha256 })?;
        self.out.finish()?.flush()?;
        Ok(BackupSummary { tables: self.tables, rows: self.rows, sha256: hex::encode(sha256) })
    }
}

/// A store as one read transaction sees it, to be written out.
pub struct Snapshot {
    txn: redb::ReadTransaction,
    info: BackupInfo,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("info", &self.info).finish()
    }
}

impl Store {
    /// Takes the snapshot a backup is written from; `taken_at_ms` is the
    /// wall-clock time to record. Writes go on meanwhile.
    pub fn backup_snapshot(&self, taken_at_ms: i64) -> Result<Snapshot, BackupError> {
        let txn = self.read_txn()?;
        let covered = covered_tables();
        for table in txn.list_tables().map_err(db)? {
            if !covered.contains(&table.name()) {
                return Err(BackupError::Uncovered(table.name().to_string()));
            }
        }
        if let Some(table) = txn.list_multimap_tables().map_err(db)?.next() {
            return Err(BackupError::Uncovered(table.name().to_string()));
        }
        let mut formats = Vec::new();
        if let Ok(versions) = txn.open_table(TABLE_VERSIONS) {
            for row in versions.iter().map_err(db)? {
                let (table, version) = row.map_err(db)?;
                formats.push((table.value().to_string(), version.value()));
            }
        }
        let info = BackupInfo {
            node_id: self.node_id().to_string(),
            taken_at_ms,
            outpostd: env!("CARGO_PKG_VERSION").to_string(),
            formats,
        };
        Ok(Snapshot { txn, info })
    }
}

impl Snapshot {
    pub fn info(&self) -> &BackupInfo {
        &self.info
    }

    /// Writes the backup to `out`; a failed write (the reader went away)
    /// ends it with that error.
    pub fn write_to<W: Write>(self, out: W) -> Result<BackupSummary, BackupError> {
        let mut writer = ItemWriter::new(out)?;
        writer.item(&Item::Begin(self.info.clone()))?;
        macro_rules! dump {
            ($table:expr) => {
                writer.table(&self.txn, $table)?;
            };
        }
        every_table!(dump);
        writer.finish()
    }
}

/// Items in: unframed and hashed, with every length and the trailer
/// checked.
struct ItemReader<R: Read> {
    input: zstd::Decoder<'static, std::io::BufReader<R>>,
    hasher: Sha256,
}

impl<R: Read> ItemReader<R> {
    fn new(mut input: R) -> Result<Self, BackupError> {
        let mut head = [0u8; 12];
        input.read_exact(&mut head).map_err(|_| BackupError::NotABackup)?;
        if &head[..8] != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let format = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if format > BACKUP_FORMAT {
            return Err(BackupError::TooNewFormat(format));
        }
        if format == 0 {
            return Err(BackupError::Damaged("format 0".into()));
        }
        Ok(Self { input: zstd::Decoder::new(input)?, hasher: Sha256::new() })
    }

    fn next(&mut self) -> Result<Item, BackupError> {
        let cut_short = |err: std::io::Error| match err.kind() {
            std::io::ErrorKind::UnexpectedEof => BackupError::Damaged("it ends before its last item".into()),
            _ => BackupError::Damaged(err.to_string()),
        };
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(cut_short)?;
        let announced = u32::from_le_bytes(len);
        if announced > MAX_ITEM_BYTES {
            return Err(BackupError::Damaged(format!("an item claims {announced} bytes")));
        }
        // Read as the bytes arrive: a false length costs no allocation.
        let mut body = Vec::new();
        (&mut self.input).take(u64::from(announced)).read_to_end(&mut body).map_err(cut_short)?;
        if body.len() != announced as usize {
            return Err(BackupError::Damaged("it ends before its last item".into()));
        }
        let item: Item =
            postcard::from_bytes(&body).map_err(|e| BackupError::Damaged(format!("an item does not decode: {e}")))?;
        if !matches!(item, Item::End { .. }) {
            self.hasher.update(len);
            self.hasher.update(&body);
        }
        Ok(item)
    }

    /// Checks the trailer against what was read, and that nothing follows.
    fn end(mut self, rows: u64, sha256: [u8; 32], counted: u64) -> Result<[u8; 32], BackupError> {
        let computed: [u8; 32] = self.hasher.finalize().into();
        if computed != sha256 {
            return Err(BackupError::Damaged("its checksum does not match its contents".into()));
        }
        if rows != counted {
            return Err(BackupError::Damaged(format!("it says {rows} rows but holds {counted}")));
        }
        let mut rest = [0u8; 1];
        match self.input.read(&mut rest) {
            Ok(0) => Ok(sha256),
            Ok(_) => Err(BackupError::Damaged("there is data after its last item".into())),
            Err(err) => Err(BackupError::Damaged(err.to_string())),
        }
    }
}

/// Rows of one table waiting to be written.
struct Pending {
    table: String,
    rows: Vec<Vec<u8>>,
    bytes: usize,
}

fn insert_rows<K: redb::Key + Portable, V: Portable>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
    rows: &[Vec<u8>],
) -> Result<(), BackupError> {
    let mut table = txn.open_table(def).map_err(db)?;
    for row in rows {
        let (key, value): (K::Owned, V::Owned) = postcard::from_bytes(row)
            .map_err(|e| BackupError::Damaged(format!("a row of table {} does not decode: {e}", def.name())))?;
        table.insert(K::view(&key), V::view(&value)).map_err(db)?;
    }
    Ok(())
}

fn write_pending(database: &Database, pending: &mut Pending) -> Result<(), BackupError> {
    let txn = database.begin_write().map_err(db)?;
    let mut known = false;
    macro_rules! load {
        ($table:expr) => {
            if !known && pending.table == $table.name() {
                insert_rows(&txn, $table, &pending.rows)?;
                known = true;
            }
        };
    }
    every_table!(load);
    if !known {
        return Err(BackupError::Damaged(format!(
            "it holds table {:?}, which this outpostd does not know",
            pending.table
        )));
    }
    txn.commit().map_err(db)?;
    pending.rows.clear();
    pending.bytes = 0;
    Ok(())
}

/// Restores a backup into `dir`, which must hold no store. The store is
/// built beside, and takes the store's name only once the whole backup has
/// been read and verified; on any error nothing is left behind.
pub fn restore(input: impl Read, dir: &Path) -> Result<(BackupInfo, BackupSummary), BackupError> {
    let target = dir.join(DB_FILE);
    if target.exists() {
        return Err(BackupError::NotEmpty(dir.to_path_buf()));
    }
    let building = dir.join(RESTORING_FILE);
    // A restore that failed before left nothing; one that was killed may
    // have left this, which no daemon ever opens.
    match std::fs::remove_file(&building) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
        _ => {}
    }
    let outcome = restore_into(input, &building);
    match outcome {
        Ok(restored) => {
            std::fs::rename(&building, &target)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(restored)
        }
        Err(err) => {
            let _ = std::fs::remove_file(&building);
            Err(err)
        }
    }
}

/// Gives the restored store to the owner of `dir`, when run as root: a
/// restore runs as root, and the daemon as the service user.
pub fn hand_to_directory_owner(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let owner = std::fs::metadata(dir)?;
    std::os::unix::fs::chown(dir.join(DB_FILE), Some(owner.uid()), Some(owner.gid()))?;
    Ok(())
}

fn restore_into(input: impl Read, path: &Path) -> Result<(BackupInfo, BackupSummary), BackupError> {
    let mut reader = ItemReader::new(input)?;
    let info = match reader.next()? {
        Item::Begin(info) => info,
        _ => return Err(BackupError::Damaged("it does not begin with its description".into())),
    };
    for (table, found) in &info.formats {
        if let Some((_, supported)) = FORMAT.iter().find(|(name, _)| name == table)
            && found > supported
        {
            return Err(BackupError::TooNewTable { table: table.clone(), found: *found, supported: *supported });
        }
    }
    create_private(path)?;
    let database = Database::create(path).map_err(|e| db(redb::Error::from(e)))?;
    let mut pending: Option<Pending> = None;
    let (mut tables, mut rows) = (0u32, 0u64);
    loop {
        match reader.next()? {
            Item::Begin(_) => return Err(BackupError::Damaged("it describes itself twice".into())),
            Item::Table(name) => {
                if let Some(mut done) = pending.take() {
                    write_pending(&database, &mut done)?;
                }
                tables += 1;
                pending = Some(Pending { table: name, rows: Vec::new(), bytes: 0 });
            }
            Item::Row(row) => {
                let Some(current) = pending.as_mut() else {
                    return Err(BackupError::Damaged("a row comes before any table".into()));
                };
                current.bytes += row.len();
                current.rows.push(row);
                rows += 1;
                if current.rows.len() >= ROWS_PER_COMMIT || current.bytes >= BYTES_PER_COMMIT {
                    write_pending(&database, current)?;
                }
            }
            Item::End { rows: said, sha256 } => {
                let sha256 = reader.end(said, sha256, rows)?;
                if let Some(mut done) = pending.take() {
                    write_pending(&database, &mut done)?;
                }
                return Ok((info, BackupSummary { tables, rows, sha256: hex::encode(sha256) }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn store(dir: &Path) -> Store {
        Store::open(dir, [7; 16]).unwrap()
    }

    /// Rows in tables of every key shape.
    fn fill(store: &Store, from: u64, to: u64) {
        let txn = store.begin_write().unwrap();
        {
            let mut changes = txn.open_table(DOC_CHANGES).unwrap();
            let mut audit = txn.open_table(AUDIT).unwrap();
            let mut entries = txn.open_table(ENTRIES).unwrap();
            let mut proofs = txn.open_table(CHANGE_PROOFS).unwrap();
            let mut alarms = txn.open_table(AUDIT_ALARMS).unwrap();
            for n in from..to {
                changes.insert(("wl/KAZ-BS/00", n), format!("change {n}").as_bytes()).unwrap();
                audit.insert(n, format!("{{\"seq\":{n}}}").as_bytes()).unwrap();
                entries.insert(format!("entry-{n:05}").as_str(), [n as u8; 40].as_slice()).unwrap();
                proofs.insert(("wl/KAZ-BS/00", n.to_be_bytes().as_slice()), [1u8; 64].as_slice()).unwrap();
                alarms.insert(("kz-post", n), "record out of step").unwrap();
            }
        }
        txn.commit().unwrap();
    }

    fn backup(store: &Store) -> (Vec<u8>, BackupSummary) {
        let mut out = Vec::new();
        let summary = store.backup_snapshot(1_700_000_000_000).unwrap().write_to(&mut out).unwrap();
        (out, summary)
    }

    fn nothing_restored(dir: &Path) -> bool {
        !dir.join(DB_FILE).exists() && !dir.join(RESTORING_FILE).exists()
    }

    #[test]
    fn a_restored_store_backs_up_to_the_same_bytes() {
        let from = tempfile::tempdir().unwrap();
        let original = store(from.path());
        fill(&original, 0, 25_000);
        let (bytes, summary) = backup(&original);
        assert!(summary.rows >= 5 * 25_000, "{summary:?}");

        let to = tempfile::tempdir().unwrap();
        let (info, restored) = restore(bytes.as_slice(), to.path()).unwrap();
        assert_eq!(restored, summary);
        assert_eq!(info.node_id, original.node_id().to_string());
        assert!(!to.path().join(RESTORING_FILE).exists());
        let reopened = store(to.path());
        assert_eq!(reopened.node_id(), original.node_id(), "the restored store keeps its node id");
        let (again, _) = backup(&reopened);
        assert_eq!(again, bytes, "every table and row came back as it was");
    }

    #[test]
    fn a_backup_holds_what_was_committed_when_it_began_and_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        fill(&s, 0, 10);
        let snapshot = s.backup_snapshot(0).unwrap();
        fill(&s, 10, 20);
        let mut out = Vec::new();
        let summary = snapshot.write_to(&mut out).unwrap();
        let (_, later) = backup(&s);
        assert_eq!(later.rows - summary.rows, 5 * 10, "only the later backup holds the ten later writes");
    }

    #[test]
    fn a_cut_short_damaged_or_padded_backup_is_refused_and_leaves_nothing() {
        let from = tempfile::tempdir().unwrap();
        let s = store(from.path());
        fill(&s, 0, 200);
        let (bytes, _) = backup(&s);
        let to = tempfile::tempdir().unwrap();
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        for cut in [0, 5, 12, 13, 100, bytes.len() / 2, bytes.len() - 1] {
            cases.push((format!("cut at {cut}"), bytes[..cut].to_vec()));
        }
        for at in [0, 9, 12, 40, bytes.len() / 3, bytes.len() - 2] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            cases.push((format!("byte {at} flipped"), damaged));
        }
        let mut padded = bytes.clone();
        padded.extend_from_slice(&bytes[12..]);
        cases.push(("a second stream appended".into(), padded));
        for (case, input) in cases {
            let err = restore(input.as_slice(), to.path()).unwrap_err();
            assert!(
                matches!(err, BackupError::Damaged(_) | BackupError::NotABackup | BackupError::TooNewFormat(_)),
                "{case}: {err}"
            );
            assert!(nothing_restored(to.path()), "{case}: a refused backup left a store behind");
        }
        restore(bytes.as_slice(), to.path()).unwrap();
    }

    #[test]
    fn a_restore_never_replaces_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        fill(&s, 0, 3);
        let (bytes, _) = backup(&s);
        drop(s);
        let before = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        let err = restore(bytes.as_slice(), dir.path()).unwrap_err();
        assert!(matches!(err, BackupError::NotEmpty(_)), "{err}");
        assert!(err.to_string().contains("empty data directory"), "{err}");
        assert_eq!(std::fs::read(dir.path().join(DB_FILE)).unwrap(), before);
    }

    #[test]
    fn a_table_from_a_newer_release_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let txn = s.begin_write().unwrap();
        txn.open_table(TABLE_VERSIONS).unwrap().insert("audit", 99).unwrap();
        txn.commit().unwrap();
        let (bytes, _) = backup(&s);
        let to = tempfile::tempdir().unwrap();
        let err = restore(bytes.as_slice(), to.path()).unwrap_err();
        assert!(err.to_string().contains("table audit was written in format 99"), "{err}");
        assert!(nothing_restored(to.path()));
    }

    #[test]
    fn a_table_backups_do_not_cover_fails_the_backup() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let txn = s.begin_write().unwrap();
        let extra: TableDefinition<&str, &str> = TableDefinition::new("added_later");
        txn.open_table(extra).unwrap().insert("k", "v").unwrap();
        txn.commit().unwrap();
        let err = s.backup_snapshot(0).unwrap_err();
        assert!(matches!(&err, BackupError::Uncovered(name) if name == "added_later"), "{err}");
    }
}
