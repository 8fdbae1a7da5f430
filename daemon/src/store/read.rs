//! Queries against the projection and the stored documents.

use outpost_model::audit::{AuditRecord, ChainVerifier};
use outpost_model::date::Timestamp;
use outpost_model::incident::Incident;
use outpost_model::search::IndexRecord;
use outpost_model::vocab::{EntryStatus, FollowUp, SubjectKind};
use outpost_model::watchlist::Entry;
use outpost_model::{DocId, EntryId, IncidentId};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;

/// A document and its heads.
pub type DocHeads = (DocId, Vec<automerge::ChangeHash>);

use super::{
    AUDIT, DOC_CHANGES, DOC_HEADS, DOC_SNAPSHOTS, ENTRIES, INCIDENTS, SEARCH_KEYS, SYNC_STATES, Store, StoreError, db,
};

/// A document as stored: the last snapshot and the changes after it.
#[derive(Debug, Default)]
pub struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    pub changes: Vec<(u64, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub entries: u64,
    pub incidents: u64,
    pub audit_records: u64,
    pub pending_changes: u64,
    pub documents: u64,
}

fn record_counts_in(txn: &redb::ReadTransaction) -> Result<RecordCounts, StoreError> {
    Ok(RecordCounts {
        entries: txn.open_table(ENTRIES).map_err(db)?.len().map_err(db)?,
        incidents: txn.open_table(INCIDENTS).map_err(db)?.len().map_err(db)?,
        audit_records: txn.open_table(AUDIT).map_err(db)?.len().map_err(db)?,
    })
}

/// Watchlist entries, incidents and audit records held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCounts {
    pub entries: u64,
    pub incidents: u64,
    pub audit_records: u64,
}

/// Result of resolving an id or an id prefix.
#[derive(Debug)]
pub enum Lookup<T> {
    Found(T),
    Missing,
    Ambiguous(Vec<String>),
}

#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub status: Option<EntryStatus>,
    pub kind: Option<SubjectKind>,
    pub limit: usize,
}

#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub since: Option<Timestamp>,
    pub follow_up: Option<FollowUp>,
    pub limit: usize,
}

/// The audit log records asked for, and whether the chain holds.
#[derive(Debug)]
pub struct AuditView {
    pub records: Vec<AuditRecord>,
    pub chain_length: u64,
    pub chain_error: Option<String>,
}

/// How far the audit chain has been verified, so each check only hashes
/// records added since the last one.
#[derive(Debug, Default)]
pub(crate) struct VerifiedPrefix {
    verifier: ChainVerifier,
    broken: Option<String>,
}

/// Shortest id fragment an officer may type.
const MIN_FRAGMENT: usize = 6;

fn decode<T: DeserializeOwned>(table: &'static str, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Damaged {
        table,
        key: key.to_string(),
        detail: e.to_string(),
    })
}

impl Store {
    fn get_row<T: DeserializeOwned>(
        &self,
        def: TableDefinition<&str, &[u8]>,
        name: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(def).map_err(db)?;
        let row = table.get(key).map_err(db)?;
        row.map(|v| decode(name, key, v.value())).transpose()
    }

    /// Resolves a full id, or a fragment of at least 6 hex digits that
    /// starts or ends the id. UUIDv7 ids made in the same minute share their
    /// first digits, so officers are shown, and may type, the random tail.
    fn resolve<T>(
        &self,
        def: TableDefinition<&str, &[u8]>,
        name: &'static str,
        text: &str,
        parse: fn(&str) -> Result<T, outpost_model::ValidationError>,
    ) -> Result<Lookup<T>, StoreError> {
        let fragment: String = text.trim().to_ascii_lowercase().chars().filter(|c| *c != '-').collect();
        if fragment.len() < MIN_FRAGMENT || !fragment.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Lookup::Missing);
        }
        let txn = self.read_txn()?;
        let table = txn.open_table(def).map_err(db)?;
        let mut found = Vec::new();
        for row in table.iter().map_err(db)? {
            let (key, _) = row.map_err(db)?;
            let compact: String = key.value().chars().filter(|c| *c != '-').collect();
            if compact.starts_with(&fragment) || compact.ends_with(&fragment) {
                found.push(key.value().to_string());
                if found.len() > 5 {
                    break;
                }
            }
        }
        Ok(match found.len() {
            0 => Lookup::Missing,
            1 => {
                let key = found.remove(0);
                let id = parse(&key).map_err(|e| StoreError::Damaged { table: name, key, detail: e.to_string() })?;
                Lookup::Found(id)
            }
            _ => Lookup::Ambiguous(found),
        })
    }

    pub fn resolve_entry(&self, text: &str) -> Result<Lookup<EntryId>, StoreError> {
        self.resolve(ENTRIES, "entries", text, EntryId::parse)
    }

    pub fn resolve_incident(&self, text: &str) -> Result<Lookup<IncidentId>, StoreError> {
        self.resolve(INCIDENTS, "incidents", text, IncidentId::parse)
    }

    pub fn entry(&self, id: &EntryId) -> Result<Option<Entry>, StoreError> {
        self.get_row(ENTRIES, "entries", &id.to_string())
    }

    pub fn incident(&self, id: &IncidentId) -> Result<Option<Incident>, StoreError> {
        self.get_row(INCIDENTS, "incidents", &id.to_string())
    }

    /// Calls `visit` with every readable entry; returns the rows that could
    /// not be read, each named, so a damaged row costs that row, not the start.
    pub fn for_each_entry(&self, mut visit: impl FnMut(Entry)) -> Result<Vec<StoreError>, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(ENTRIES).map_err(db)?;
        let mut damaged = Vec::new();
        for row in table.iter().map_err(db)? {
            let (key, value) = row.map_err(db)?;
            match decode::<Entry>("entries", key.value(), value.value()) {
                Ok(entry) => visit(entry),
                Err(err) => damaged.push(err),
            }
        }
        Ok(damaged)
    }

    /// Calls `visit` with every stored index record. Fails on the first
    /// unreadable one: the caller then rebuilds them all from the projection.
    pub fn for_each_index_record(&self, mut visit: impl FnMut(IndexRecord)) -> Result<u64, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(SEARCH_KEYS).map_err(db)?;
        let mut count = 0;
        for row in table.iter().map_err(db)? {
            let (key, value) = row.map_err(db)?;
            let record = postcard::from_bytes(value.value()).map_err(|e| StoreError::Damaged {
                table: "search_keys",
                key: key.value().to_string(),
                detail: e.to_string(),
            })?;
            visit(record);
            count += 1;
        }
        Ok(count)
    }

    /// Newest first.
    pub fn list_entries(&self, filter: &EntryFilter) -> Result<(Vec<Entry>, u64), StoreError> {
        self.list_newest(ENTRIES, "entries", filter.limit, |entry: &Entry| {
            filter.status.is_none_or(|s| s == entry.status) && filter.kind.is_none_or(|k| k == entry.subject.kind())
        })
    }

    /// Most recently recorded first.
    pub fn list_incidents(&self, filter: &IncidentFilter) -> Result<(Vec<Incident>, u64), StoreError> {
        self.list_newest(INCIDENTS, "incidents", filter.limit, |incident: &Incident| {
            filter.since.is_none_or(|s| incident.occurred_at.instant() >= s)
                && filter.follow_up.is_none_or(|f| f == incident.follow_up)
        })
    }

    /// Rows that pass `keep`, newest id first (ids are UUIDv7), at most
    /// `limit` of them, and how many passed in all. Damaged rows are logged
    /// and skipped.
    fn list_newest<T: DeserializeOwned>(
        &self,
        def: TableDefinition<&str, &[u8]>,
        name: &'static str,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(Vec<T>, u64), StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(def).map_err(db)?;
        let mut out = Vec::new();
        let mut total = 0;
        for row in table.iter().map_err(db)?.rev() {
            let (key, value) = row.map_err(db)?;
            let record: T = match decode(name, key.value(), value.value()) {
                Ok(record) => record,
                Err(err) => {
                    tracing::error!(error = %err, "skipped an unreadable projection row");
                    continue;
                }
            };
            if keep(&record) {
                total += 1;
                if out.len() < limit {
                    out.push(record);
                }
            }
        }
        Ok((out, total))
    }

    pub fn load_doc(&self, doc: &DocId) -> Result<StoredDoc, StoreError> {
        let txn = self.read_txn()?;
        let snapshots = txn.open_table(DOC_SNAPSHOTS).map_err(db)?;
        let snapshot = snapshots.get(doc.as_str()).map_err(db)?.map(|v| v.value().to_vec());
        let changes_table = txn.open_table(DOC_CHANGES).map_err(db)?;
        let mut changes = Vec::new();
        for row in changes_table.range((doc.as_str(), 0)..=(doc.as_str(), u64::MAX)).map_err(db)? {
            let (key, value) = row.map_err(db)?;
            changes.push((key.value().1, value.value().to_vec()));
        }
        Ok(StoredDoc { snapshot, changes })
    }

    /// Every document's stored heads. A row that is not whole hashes is
    /// named; the caller recomputes it from the document.
    pub fn all_heads(&self) -> Result<(Vec<DocHeads>, Vec<StoreError>), StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(DOC_HEADS).map_err(db)?;
        let (mut heads, mut damaged) = (Vec::new(), Vec::new());
        for row in table.iter().map_err(db)? {
            let (key, value) = row.map_err(db)?;
            let key = key.value().to_string();
            let bytes = value.value();
            let doc = DocId::parse(&key);
            match doc {
                Ok(doc) if bytes.len() % 32 == 0 => {
                    let hashes = bytes
                        .chunks_exact(32)
                        .map(|c| {
                            let mut h = [0u8; 32];
                            h.copy_from_slice(c);
                            automerge::ChangeHash(h)
                        })
                        .collect();
                    heads.push((doc, hashes));
                }
                _ => damaged.push(StoreError::Damaged {
                    table: "doc_heads",
                    key,
                    detail: format!("{} bytes is not a list of hashes", bytes.len()),
                }),
            }
        }
        Ok((heads, damaged))
    }

    /// The sync state last kept for (peer, doc).
    pub fn sync_state(&self, peer: &str, doc: &DocId) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(SYNC_STATES).map_err(db)?;
        Ok(table.get((peer, doc.as_str())).map_err(db)?.map(|v| v.value().to_vec()))
    }

    /// Every document that has a snapshot or changes.
    pub fn doc_ids(&self) -> Result<Vec<DocId>, StoreError> {
        let txn = self.read_txn()?;
        let mut ids = std::collections::BTreeSet::new();
        for row in txn.open_table(DOC_SNAPSHOTS).map_err(db)?.iter().map_err(db)? {
            ids.insert(row.map_err(db)?.0.value().to_string());
        }
        for row in txn.open_table(DOC_CHANGES).map_err(db)?.iter().map_err(db)? {
            ids.insert(row.map_err(db)?.0.value().0.to_string());
        }
        ids.into_iter()
            .map(|id| {
                DocId::parse(&id).map_err(|e| StoreError::Damaged {
                    table: "doc_changes",
                    key: id,
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// How many incremental changes each document has after its snapshot.
    pub fn changes_per_doc(&self) -> Result<Vec<(DocId, u64)>, StoreError> {
        let txn = self.read_txn()?;
        let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
        for row in txn.open_table(DOC_CHANGES).map_err(db)?.iter().map_err(db)? {
            *counts.entry(row.map_err(db)?.0.value().0.to_string()).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(id, n)| {
                DocId::parse(&id).map(|d| (d, n)).map_err(|e| StoreError::Damaged {
                    table: "doc_changes",
                    key: id,
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    pub fn entry_count(&self) -> Result<u64, StoreError> {
        self.read_txn()?.open_table(ENTRIES).map_err(db)?.len().map_err(db)
    }

    /// The records held, from the tables' lengths alone (cheap enough for
    /// every metrics scrape, unlike `counts`, which lists the documents).
    pub fn record_counts(&self) -> Result<RecordCounts, StoreError> {
        record_counts_in(&self.read_txn()?)
    }

    pub fn counts(&self) -> Result<Counts, StoreError> {
        let txn = self.read_txn()?;
        let records = record_counts_in(&txn)?;
        Ok(Counts {
            entries: records.entries,
            incidents: records.incidents,
            audit_records: records.audit_records,
            pending_changes: txn.open_table(DOC_CHANGES).map_err(db)?.len().map_err(db)?,
            documents: self.doc_ids()?.len() as u64,
        })
    }

    /// The last `limit` audit records at or after `since`, oldest first, and
    /// the state of the whole chain.
    pub fn audit(&self, since: Option<Timestamp>, limit: usize) -> Result<AuditView, StoreError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(AUDIT).map_err(db)?;
        let mut records = Vec::new();
        for row in table.iter().map_err(db)?.rev() {
            let (key, value) = row.map_err(db)?;
            let record: AuditRecord = decode("audit", &key.value().to_string(), value.value())?;
            if records.len() >= limit {
                break;
            }
            // Skip rather than stop: the wall clock may have stepped back.
            if since.is_none_or(|s| record.at >= s) {
                records.push(record);
            }
        }
        records.reverse();

        let mut check = self.audit_check.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if check.broken.is_none() {
            for row in table.range(check.verifier.checked() + 1..).map_err(db)? {
                let (key, value) = row.map_err(db)?;
                let outcome = decode::<AuditRecord>("audit", &key.value().to_string(), value.value())
                    .map_err(|e| e.to_string())
                    .and_then(|record| check.verifier.check(&record).map_err(|e| e.to_string()));
                if let Err(reason) = outcome {
                    check.broken = Some(reason);
                    break;
                }
            }
        }
        Ok(AuditView { records, chain_length: table.len().map_err(db)?, chain_error: check.broken.clone() })
    }
}
