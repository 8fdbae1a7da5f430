//! The backup file: `OUTPOSTB`, the format as a u32 (little-endian), then a
//! zstd stream of items, each a u32 length and a postcard [`Item`]:
//! `Begin`, then per table `Table` and its `Row`s, then `End` with the
//! number of rows and the SHA-256 of every item before it. The reader
//! checks every length and the trailer, and that nothing follows it.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BackupError, BackupInfo, BackupSummary};
use crate::store::StoreError;

const MAGIC: &[u8; 8] = b"OUTPOSTB";
/// The backup format this build writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
/// An item larger than this is refused: the largest row is a document's
/// snapshot, a few MiB at a million entries.
pub(super) const MAX_ITEM_BYTES: u32 = 256 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Item {
    Begin(BackupInfo),
    Table(String),
    Row(Vec<u8>),
    End { rows: u64, sha256: [u8; 32] },
}

pub(super) fn magic() -> &'static [u8; 8] {
    MAGIC
}

/// Items out: framed, hashed and compressed.
pub(super) struct ItemWriter<W: Write> {
    out: zstd::Encoder<'static, W>,
    hasher: Sha256,
    pub(super) tables: u32,
    pub(super) rows: u64,
}

impl<W: Write> ItemWriter<W> {
    pub(super) fn new(mut out: W) -> Result<Self, BackupError> {
        out.write_all(MAGIC)?;
        out.write_all(&BACKUP_FORMAT.to_le_bytes())?;
        let mut out = zstd::Encoder::new(out, 3)?;
        out.include_checksum(true)?;
        Ok(Self { out, hasher: Sha256::new(), tables: 0, rows: 0 })
    }

    pub(super) fn item(&mut self, item: &Item) -> Result<(), BackupError> {
        let body = postcard::to_stdvec(item).map_err(StoreError::from)?;
        let len = u32::try_from(body.len())
            .ok()
            .filter(|len| *len <= MAX_ITEM_BYTES)
            .ok_or(BackupError::RowTooLarge(body.len()))?;
        let len = len.to_le_bytes();
        self.out.write_all(&len)?;
        self.out.write_all(&body)?;
        self.hasher.update(len);
        self.hasher.update(&body);
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<BackupSummary, BackupError> {
        let sha256: [u8; 32] = self.hasher.clone().finalize().into();
        self.item(&Item::End { rows: self.rows, sha256 })?;
        self.out.finish()?.flush()?;
        Ok(BackupSummary { tables: self.tables, rows: self.rows, sha256: hex::encode(sha256) })
    }
}

/// Items in: unframed and hashed, with every length and the trailer
/// checked.
pub(super) struct ItemReader<R: Read> {
    input: zstd::Decoder<'static, std::io::BufReader<R>>,
    hasher: Sha256,
}

impl<R: Read> ItemReader<R> {
    pub(super) fn new(mut input: R) -> Result<Self, BackupError> {
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

    pub(super) fn next(&mut self) -> Result<Item, BackupError> {
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
    pub(super) fn end(mut self, rows: u64, sha256: [u8; 32], counted: u64) -> Result<[u8; 32], BackupError> {
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
