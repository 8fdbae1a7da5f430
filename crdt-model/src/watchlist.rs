//! Watchlist entries as the rest of the system sees them: validated drafts
//! going into a document, and entries read back out of one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::date::{Day, PartialDate, Timestamp};
use crate::ids::{DocId, EntryId};
use crate::vocab::{
    Category, DocumentStatus, DocumentType, EntryStatus, Gender, NameKind, Script, SubjectKind, VehicleWanted, Warning,
};

/// One spelling of a person's name, kept in the script it was recorded in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameVariant {
    pub text: String,
    pub script: Script,
    pub kind: NameKind,
}

/// An identity document held by a person on the list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentityDocument {
    pub doc_type: DocumentType,
    pub issuer: String,
    /// Upper case, separators removed.
    pub number: String,
}

impl IdentityDocument {
    /// The element key inside the entry's document set.
    pub fn key(&self) -> String {
        format!("{}:{}:{}", self.doc_type, self.issuer, self.number)
    }
}

/// A registration plate, as written and as compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plate {
    pub raw: String,
    pub normalized: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub names: Vec<NameVariant>,
    pub dobs: Vec<PartialDate>,
    pub nationalities: Vec<String>,
    pub documents: Vec<IdentityDocument>,
    pub gender: Option<Gender>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vehicle {
    pub plates: Vec<Plate>,
    pub vin: Option<String>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub colour: Option<String>,
    /// Country of registration (ICAO alpha-3).
    pub country: Option<String>,
    pub wanted: VehicleWanted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TravelDocument {
    pub doc_type: DocumentType,
    pub number: String,
    pub issuing_state: String,
    pub doc_status: DocumentStatus,
    pub issued: Option<Day>,
    pub expires: Option<Day>,
    /// When the document was stolen, lost, revoked or found forged.
    pub event_date: Option<Day>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cargo {
    pub description: String,
    pub containers: Vec<String>,
    pub hs_code: Option<String>,
}

/// What an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Subject {
    Person(Person),
    Vehicle(Vehicle),
    Document(TravelDocument),
    Cargo(Cargo),
}

impl Subject {
    pub fn kind(&self) -> SubjectKind {
        match self {
            Subject::Person(_) => SubjectKind::Person,
            Subject::Vehicle(_) => SubjectKind::Vehicle,
            Subject::Document(_) => SubjectKind::Document,
            Subject::Cargo(_) => SubjectKind::Cargo,
        }
    }

    /// The line an officer recognises the entry by: the primary name in its
    /// original script, the first plate, the document number, or the cargo.
    pub fn headline(&self) -> String {
        match self {
            Subject::Person(p) => p
                .names
                .iter()
                .find(|n| n.kind == NameKind::Primary)
                .or_else(|| p.names.first())
                .map(|n| n.text.clone())
                .unwrap_or_default(),
            Subject::Vehicle(v) => {
                v.plates.first().map(|p| p.raw.clone()).or_else(|| v.vin.clone()).unwrap_or_default()
            }
            Subject::Document(d) => format!("{} {} {}", d.doc_type, d.issuing_state, d.number),
            Subject::Cargo(c) => c.description.clone(),
        }
    }
}

/// A validated new entry, ready to be written into a watchlist document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDraft {
    pub id: EntryId,
    pub authority: String,
    pub subject: Subject,
    pub category: Category,
    pub reason: String,
    pub action: String,
    pub warnings: BTreeSet<Warning>,
    pub valid_from: Day,
    pub expires: Option<Day>,
}

/// Two or more values of one field that were written concurrently at
/// different posts. The entry shows the first; an officer should resolve it
/// with `outpost watchlist amend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldConflict {
    pub field: String,
    pub values: Vec<String>,
}

/// An entry as read from its document: what the projection stores and the
/// CLI shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: EntryId,
    pub doc: DocId,
    pub authority: String,
    pub subject: Subject,
    pub category: Category,
    pub reason: String,
    pub action: String,
    pub warnings: Vec<Warning>,
    pub status: EntryStatus,
    pub valid_from: Day,
    pub expires: Option<Day>,
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    pub updated_by: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<FieldConflict>,
}

/// Whether an entry with these fields is in force today. The one rule, used
/// by the projection and by every search index.
pub fn in_force(status: EntryStatus, valid_from: Day, expires: Option<Day>, today: Day) -> bool {
    status == EntryStatus::Active && valid_from <= today && expires.is_none_or(|e| e >= today)
}

impl Entry {
    /// Expiry is enforced locally: an entry stops being an alert on the day
    /// after it expires, without waiting for anyone to close it.
    pub fn is_expired(&self, today: Day) -> bool {
        self.expires.is_some_and(|e| e < today)
    }

    /// Active, started and unexpired: a strong hit on it is an alert.
    pub fn is_in_force(&self, today: Day) -> bool {
        in_force(self.status, self.valid_from, self.expires, today)
    }

    pub fn summary(&self, today: Day) -> EntrySummary {
        EntrySummary {
            id: self.id,
            kind: self.subject.kind(),
            headline: self.subject.headline(),
            category: self.category,
            status: self.status,
            expired: self.is_expired(today),
            authority: self.authority.clone(),
            updated_at: self.updated_at,
            conflicted: !self.conflicts.is_empty(),
        }
    }
}

/// One line of `outpost watchlist list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntrySummary {
    pub id: EntryId,
    pub kind: SubjectKind,
    pub headline: String,
    pub category: Category,
    pub status: EntryStatus,
    pub expired: bool,
    pub authority: String,
    pub updated_at: Timestamp,
    pub conflicted: bool,
}

/// A validated change to an existing entry. `None` and empty sets leave the
/// field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Amendment {
    pub category: Option<Category>,
    pub reason: Option<String>,
    pub action: Option<String>,
    /// `Some(None)` removes the expiry.
    pub expires: Option<Option<Day>>,
    pub add_names: Vec<NameVariant>,
    pub remove_names: Vec<String>,
    pub add_dobs: Vec<PartialDate>,
    pub remove_dobs: Vec<PartialDate>,
    pub add_nationalities: Vec<String>,
    pub remove_nationalities: Vec<String>,
    pub add_documents: Vec<IdentityDocument>,
    pub remove_documents: Vec<IdentityDocument>,
    pub add_warnings: Vec<Warning>,
    pub remove_warnings: Vec<Warning>,
    pub add_plates: Vec<Plate>,
    pub remove_plates: Vec<String>,
    pub vin: Option<String>,
    pub description: Option<String>,
}

impl Amendment {
    pub fn is_empty(&self) -> bool {
        *self == Amendment::default()
    }
}
