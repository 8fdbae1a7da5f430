//! Backups: every table of the store as one read transaction saw it, and
//! their restore into an empty data directory.
//!
//! A read transaction is a snapshot (redb is MVCC), so the writer goes on
//! committing while a backup is written, and the backup holds exactly the
//! writes acknowledged before it began. `format.rs` is the file (framing,
//! compression, the checksum trailer); `tables.rs` which tables it carries
//! and how their rows travel. A backup that is cut short, damaged or
//! padded is refused whole, and nothing is restored from it.

#[macro_use]
mod tables;
mod format;

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use redb::{Database, MultimapTableHandle, ReadableTable, TableHandle};
use serde::{Deserialize, Serialize};

pub use self::format::BACKUP_FORMAT;
use self::format::{Item, ItemReader, ItemWriter, MAX_ITEM_BYTES};
use self::tables::{covered_tables, dump_table, insert_rows};
use super::{DB_FILE, FORMAT, Store, StoreError, TABLE_VERSIONS, db};

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
    #[error("this is not an outpost backup (it does not begin with {:?})", format::magic())]
    NotABackup,
    #[error("backup format {0} is newer than this outpostd reads ({BACKUP_FORMAT}); restore it with a newer outpostd")]
    TooNewFormat(u32),
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error(
        "table {table} was written in format {found}, newer than this outpostd supports ({supported}); restore it with a newer outpostd"
    )]
    TooNewTable { table: String, found: u32, supported: u32 },
    #[error(
        "the backup holds table {0}, which this outpostd does not know: a newer release wrote it; restore it with that release"
    )]
    UnknownTable(String),
    #[error("{0} already holds a store; restore only into an empty data directory")]
    NotEmpty(PathBuf),
    #[error("the store holds table {0}, which backups do not cover; this is a bug, and nothing was written")]
    Uncovered(String),
    #[error("a row of {0} bytes is larger than a backup carries ({MAX_ITEM_BYTES} bytes)")]
    RowTooLarge(usize),
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

/// Refuses a store holding a table the backup does not carry.
fn check_coverage(txn: &redb::ReadTransaction) -> Result<(), BackupError> {
    let covered = covered_tables();
    for table in txn.list_tables().map_err(db)? {
        if !covered.contains(&table.name()) {
            return Err(BackupError::Uncovered(table.name().to_string()));
        }
    }
    if let Some(table) = txn.list_multimap_tables().map_err(db)?.next() {
        return Err(BackupError::Uncovered(table.name().to_string()));
    }
    Ok(())
}

impl Store {
    /// Whether a backup of this store can be taken: asked before the
    /// backup is recorded in the audit log.
    pub fn backup_possible(&self) -> Result<(), BackupError> {
        check_coverage(&self.read_txn()?)
    }

    /// Takes the snapshot a backup is written from; `taken_at_ms` is the
    /// wall-clock time to record. Writes go on meanwhile.
    pub fn backup_snapshot(&self, taken_at_ms: i64) -> Result<Snapshot, BackupError> {
        let txn = self.read_txn()?;
        check_coverage(&txn)?;
        let mut formats = Vec::new();
        match txn.open_table(TABLE_VERSIONS) {
            Ok(versions) => {
                for row in versions.iter().map_err(db)? {
                    let (table, version) = row.map_err(db)?;
                    formats.push((table.value().to_string(), version.value()));
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(err) => return Err(db(err).into()),
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
                dump_table(&mut writer, &self.txn, $table)?;
            };
        }
        every_table!(dump);
        writer.finish()
    }
}

/// Rows of one table waiting to be written.
struct Pending {
    table: String,
    rows: Vec<Vec<u8>>,
    bytes: usize,
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

/// Restores a backup into `dir`, which must hold no store, and gives the
/// store to `owner` (uid, gid) when one is named. The store is built
/// beside, under a name no daemon opens, and takes the store's name only
/// once the whole backup has been read and verified, never over a store
/// that appeared meanwhile; on any error nothing is left behind. The file
/// is created here, refusing a link, and handed to redb and to the change
/// of owner as that one open file: the directory belongs to the service
/// user, and a restore runs as root.
pub fn restore(
    input: impl Read,
    dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(BackupInfo, BackupSummary), BackupError> {
    let target = dir.join(DB_FILE);
    if target.exists() {
        return Err(BackupError::NotEmpty(dir.to_path_buf()));
    }
    let building = dir.join(RESTORING_FILE);
    // One a killed restore left behind; no daemon ever opens it.
    match std::fs::remove_file(&building) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
        _ => {}
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&building)?;
    let outcome = file.try_clone().map_err(BackupError::from).and_then(|handle| {
        let restored = restore_into(input, handle)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.sync_all()?;
        Ok(restored)
    });
    let placed = outcome.and_then(|restored| match std::fs::hard_link(&building, &target) {
        Ok(()) => Ok(restored),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(BackupError::NotEmpty(dir.to_path_buf())),
        Err(err) => Err(err.into()),
    });
    let _ = std::fs::remove_file(&building);
    let restored = placed?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(restored)
}

fn restore_into(input: impl Read, file: std::fs::File) -> Result<(BackupInfo, BackupSummary), BackupError> {
    let mut reader = ItemReader::new(input)?;
    let info = match reader.next()? {
        Item::Begin(info) => info,
        _ => return Err(BackupError::Damaged("it does not begin with its description".into())),
    };
    let covered = covered_tables();
    for (table, found) in &info.formats {
        match FORMAT.iter().find(|(name, _)| name == table) {
            Some((_, supported)) if found > supported => {
                return Err(BackupError::TooNewTable { table: table.clone(), found: *found, supported: *supported });
            }
            // Versions are recorded for tables backups carry (and for the
            // derived search_keys); any other was made by a newer release.
            None if !covered.contains(&table.as_str()) => return Err(BackupError::UnknownTable(table.clone())),
            _ => {}
        }
    }
    let backend = redb::backends::FileBackend::new(file).map_err(|e| db(redb::Error::from(e)))?;
    let database = Database::builder().create_with_backend(backend).map_err(|e| db(redb::Error::from(e)))?;
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

    use redb::TableDefinition;

    use super::*;
    use crate::store::{AUDIT, AUDIT_ALARMS, CHANGE_PROOFS, DOC_CHANGES, ENTRIES};

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
        let (info, restored) = restore(bytes.as_slice(), to.path(), None).unwrap();
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
            let err = restore(input.as_slice(), to.path(), None).unwrap_err();
            assert!(
                matches!(err, BackupError::Damaged(_) | BackupError::NotABackup | BackupError::TooNewFormat(_)),
                "{case}: {err}"
            );
            assert!(nothing_restored(to.path()), "{case}: a refused backup left a store behind");
        }
        restore(bytes.as_slice(), to.path(), None).unwrap();
    }

    #[test]
    fn a_restore_never_replaces_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        fill(&s, 0, 3);
        let (bytes, _) = backup(&s);
        drop(s);
        let before = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        let err = restore(bytes.as_slice(), dir.path(), None).unwrap_err();
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
        let err = restore(bytes.as_slice(), to.path(), None).unwrap_err();
        assert!(err.to_string().contains("table audit was written in format 99"), "{err}");
        assert!(nothing_restored(to.path()));

        // A table this build has never heard of: a newer release's.
        let txn = s.begin_write().unwrap();
        let mut versions = txn.open_table(TABLE_VERSIONS).unwrap();
        versions.insert("audit", 1).unwrap();
        versions.insert("retention", 1).unwrap();
        drop(versions);
        txn.commit().unwrap();
        let (bytes, _) = backup(&s);
        let err = restore(bytes.as_slice(), to.path(), None).unwrap_err();
        assert!(matches!(&err, BackupError::UnknownTable(table) if table == "retention"), "{err}");
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
