//! Which tables a backup carries, and how their rows travel: as typed,
//! owned values (strings, numbers, bytes), not as redb's encoding, so that
//! a damaged or crafted backup fails to decode with an error rather than
//! reaching redb's decoders.

use std::io::Write;

use redb::{ReadableTable, TableDefinition, TableHandle};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::BackupError;
use super::format::{Item, ItemWriter};
use crate::store::{StoreError, db};

/// A key or value type of a table, carried in a backup as an owned value.
pub(super) trait Portable: redb::Value + 'static {
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
/// The tables are named by their paths in `crate::store`.
/// A table added to the store and not here fails every backup
/// ([`BackupError::Uncovered`]), so it cannot be left out silently.
macro_rules! every_table {
    ($each:ident) => {
        $each!($crate::store::META);
        $each!($crate::store::TABLE_VERSIONS);
        $each!($crate::store::DOC_SNAPSHOTS);
        $each!($crate::store::DOC_CHANGES);
        $each!($crate::store::DOC_SEQ);
        $each!($crate::store::ENTRIES);
        $each!($crate::store::INCIDENTS);
        $each!($crate::store::AUDIT);
        $each!($crate::store::SEARCH_KEYS);
        $each!($crate::store::DOC_HEADS);
        $each!($crate::store::SYNC_STATES);
        $each!($crate::store::CHANGE_PROOFS);
        $each!($crate::store::QUARANTINE);
        $each!($crate::store::ATTESTED);
        $each!($crate::store::AUDIT_TRAIL);
        $each!($crate::store::AUDIT_ALARMS);
    };
}

pub(super) fn covered_tables() -> Vec<&'static str> {
    let mut names = Vec::new();
    macro_rules! name {
        ($table:expr) => {
            names.push($table.name());
        };
    }
    every_table!(name);
    names
}

pub(super) fn dump_table<K: redb::Key + Portable, V: Portable, W: Write>(
    out: &mut ItemWriter<W>,
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<(), BackupError> {
    let table = match txn.open_table(def) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(err) => return Err(db(err).into()),
    };
    out.item(&Item::Table(def.name().to_string()))?;
    out.tables += 1;
    for row in table.iter().map_err(db)? {
        let (key, value) = row.map_err(db)?;
        let row = postcard::to_stdvec(&(K::own(key.value()), V::own(value.value()))).map_err(StoreError::from)?;
        out.item(&Item::Row(row))?;
        out.rows += 1;
    }
    Ok(())
}

pub(super) fn insert_rows<K: redb::Key + Portable, V: Portable>(
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
