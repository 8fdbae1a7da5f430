//! Watchlist search behind one seam: [`WatchlistIndex`].
//!
//! The daemon builds an index from the projection at start and feeds it
//! every entry that changes, whether written here or merged from another
//! post; queries never touch Automerge or storage. [`NameIndex`] matches
//! names across scripts (see [`crate::names`]) and document numbers, plates,
//! VINs and container numbers exactly after normalisation.

mod index;

pub use index::NameIndex;

use serde::{Deserialize, Serialize};

use crate::api::SearchInput;
use crate::country::parse_country;
use crate::date::{DateAgreement, Day, PartialDate};
use crate::error::ValidationError;
use crate::ids::EntryId;
use crate::names::{MatchHow, NameRole, name_tokens};
use crate::normalize::{
    document_number_key, normalize_container, normalize_document_number, normalize_plate, normalize_vin,
};
use crate::validate::purpose;
use crate::vocab::{Category, EntryStatus, SubjectKind, Warning};
use crate::watchlist::{Entry, Subject};

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 200;
/// Longer queries are not names; refusing them bounds the work per search.
pub const MAX_QUERY_CHARS: usize = 200;
pub const MAX_QUERY_TOKENS: usize = 12;
/// Scores below this are noise, not candidates.
pub const MIN_SCORE: f64 = 0.4;
/// The match threshold: a live entry matched at least this well is an
/// alert the officer must act on. Chosen on the labelled evaluation set
/// (BENCHMARKS.md): a lone surname (0.71) stays below it, a full name with
/// a typo or a missing patronymic stays above it.
pub const STRONG_MATCH: f64 = 0.75;

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub text: String,
    pub dob: Option<PartialDate>,
    pub nationality: Option<String>,
    pub limit: usize,
    pub purpose: String,
}

impl SearchQuery {
    pub fn parse(input: &SearchInput) -> Result<Self, ValidationError> {
        let text = input.query.trim().to_string();
        let tokens = name_tokens(&text);
        if tokens.is_empty() {
            return Err(ValidationError::Empty { field: "search query (letters or digits)" });
        }
        let chars = text.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(ValidationError::TooLong { field: "search query", len: chars, max: MAX_QUERY_CHARS });
        }
        if tokens.len() > MAX_QUERY_TOKENS {
            return Err(ValidationError::TooMany {
                field: "words in a search query",
                count: tokens.len(),
                max: MAX_QUERY_TOKENS,
            });
        }
        let limit = input.limit.map_or(DEFAULT_LIMIT, |l| l as usize);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ValidationError::Malformed { field: "limit", value: limit.to_string(), expected: "1 to 200" });
        }
        Ok(Self {
            text,
            dob: input.dob.as_deref().map(|d| PartialDate::parse("date of birth", d)).transpose()?,
            nationality: input.nationality.as_deref().map(|n| parse_country("nationality", n)).transpose()?,
            limit,
            purpose: purpose(&input.purpose)?,
        })
    }
}

/// One result, with enough to act on it: an officer must see the name as
/// stored, why it matched, and whether it is a live alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub id: EntryId,
    /// 0..1; 1 is an exact identifier match.
    pub score: f64,
    /// The matched name (or identifier) in its original script.
    pub name: String,
    pub reason: String,
    pub kind: SubjectKind,
    pub category: Category,
    pub status: EntryStatus,
    pub expired: bool,
    /// A strong match on an entry that is active, in force and not
    /// expired: the officer must act. Weak matches are shown, never alerts.
    pub alert: bool,
    pub action: String,
    pub warnings: Vec<Warning>,
    pub authority: String,
    /// Which query words aligned with which stored words, and why; empty
    /// for identifier hits.
    #[serde(default)]
    pub explanation: Vec<WordMatch>,
}

/// One line of a hit's explanation: a query word, the stored word it was
/// paired with, and why they were taken to be the same. A word on either
/// side with no partner appears alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordMatch {
    /// The word as the officer typed it.
    pub query: Option<String>,
    /// The stored word, in its original script.
    pub stored: Option<String>,
    /// What the stored word (or, alone, the query word) most likely is.
    pub role: NameRole,
    pub how: Option<MatchHow>,
    pub similarity: f64,
    /// The folds that made two spellings one ("kh/x/h, double letters"),
    /// the equivalence ("forms of Muhammad") or the spelling distance.
    pub detail: String,
}

/// What an index keeps of one entry, prepared by the index from the
/// projection row. The daemon stores it beside the row so that a restart
/// reloads the index without re-reading whole entries or re-normalising
/// names. Its shape belongs to the matcher: bump [`INDEX_RECORD_VERSION`]
/// when it changes, and the daemon rebuilds the records from the projection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRecord {
    pub id: EntryId,
    pub kind: SubjectKind,
    pub category: Category,
    pub status: EntryStatus,
    pub valid_from: Day,
    pub expires: Option<Day>,
    pub authority: String,
    pub action: String,
    pub warnings: Vec<Warning>,
    /// Each name as stored, with the skeleton of each of its words
    /// ([`crate::names::name_words`] order).
    pub names: Vec<(String, Vec<String>)>,
    pub dobs: Vec<PartialDate>,
    pub nationalities: Vec<String>,
    /// Normalised identifier keys with what they identify ("plate", …).
    pub identifiers: Vec<(String, String)>,
}

/// 2: names carry per-word skeletons of the cross-script matcher. Bump it
/// whenever a fold rule changes a skeleton (a test pins them).
pub const INDEX_RECORD_VERSION: u32 = 2;

/// The seam between the projection and whichever matcher is in use.
pub trait WatchlistIndex: Send + Sync + std::fmt::Debug {
    /// What this matcher keeps of `entry`; pure, and persisted by the caller.
    fn prepare(&self, entry: &Entry) -> IndexRecord;
    /// Adds or replaces an entry.
    fn insert(&mut self, record: &IndexRecord);
    fn remove(&mut self, id: &EntryId);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Best matches first, at most `query.limit`.
    fn search(&self, query: &SearchQuery, today: Day) -> Vec<SearchHit>;
    /// How many entries are live alerts today.
    fn alerts(&self, today: Day) -> usize;
}

/// Prepares and inserts in one step.
pub fn upsert(index: &mut dyn WatchlistIndex, entry: &Entry) -> IndexRecord {
    let record = index.prepare(entry);
    index.insert(&record);
    record
}

/// Normalised identifiers of an entry with what they are, for exact lookup.
fn identifiers(subject: &Subject) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match subject {
        Subject::Person(p) => {
            for d in &p.documents {
                out.push((document_number_key(&d.number), "document number".into()));
            }
        }
        Subject::Vehicle(v) => {
            for p in &v.plates {
                out.push((format!("plate:{}", p.normalized), "plate".into()));
            }
            if let Some(vin) = &v.vin {
                out.push((format!("vin:{vin}"), "VIN".into()));
            }
        }
        Subject::Document(d) => out.push((document_number_key(&d.number), "document number".into())),
        Subject::Cargo(c) => {
            for container in &c.containers {
                out.push((format!("container:{container}"), "container number".into()));
            }
        }
    }
    out
}

/// The keys a query may match exactly, one per identifier kind it parses as.
fn query_identifier_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    if let Ok(n) = normalize_document_number(text) {
        keys.push(document_number_key(&n));
    }
    if let Ok(p) = normalize_plate(text) {
        keys.push(format!("plate:{p}"));
    }
    if let Ok(v) = normalize_vin(text) {
        keys.push(format!("vin:{v}"));
    }
    if let Ok(c) = normalize_container(text) {
        keys.push(format!("container:{c}"));
    }
    keys
}

const SAME_DOB_BOOST: f64 = 0.05;
const SAME_BIRTH_YEAR_BOOST: f64 = 0.02;
const SAME_NATIONALITY_BOOST: f64 = 0.03;
/// The most [`qualify`] can add to a name score.
pub const QUALIFIER_BOOST: f64 = SAME_DOB_BOOST + SAME_NATIONALITY_BOOST;

/// Score changes for what is known besides the name, after the domain
/// notes: a birth-date clash −0.25 (both dates full) or a birth-year clash
/// −0.15, a birth date in the same year but a different day −0.1, a
/// nationality mismatch −0.2. Agreement raises the score a little (+0.05
/// for the same full date, +0.02 for the same year, +0.03 for a shared
/// nationality): it is evidence, but a common name shares a birth year with
/// many people. Unknown on either side changes nothing. With `explain`,
/// also says what moved the score.
fn qualify(dobs: &[PartialDate], nationalities: &[Box<str>], query: &SearchQuery, explain: bool) -> (f64, Vec<String>) {
    let mut delta = 0.0;
    let mut notes = Vec::new();
    if let Some(dob) = query.dob
        && !dobs.is_empty()
    {
        let best = dobs
            .iter()
            .map(|d| d.agreement(dob))
            .min_by_key(|a| match a {
                DateAgreement::Same => 0,
                DateAgreement::Compatible => 1,
                DateAgreement::SameYearOnly => 2,
                DateAgreement::Clash => 3,
            })
            .unwrap_or(DateAgreement::Clash);
        let both_full = dob.day.is_some() && dobs.iter().any(|d| d.day.is_some());
        let (change, note) = match best {
            DateAgreement::Same => (SAME_DOB_BOOST, "DOB matches"),
            DateAgreement::Compatible => (SAME_BIRTH_YEAR_BOOST, "DOB year matches"),
            DateAgreement::SameYearOnly => (-0.1, "DOB same year, different day"),
            DateAgreement::Clash if both_full => (-0.25, "DOB clashes"),
            DateAgreement::Clash => (-0.15, "birth year clashes"),
        };
        delta += change;
        if explain {
            notes.push(note.to_string());
        }
    }
    if let Some(nationality) = &query.nationality
        && !nationalities.is_empty()
    {
        if nationalities.iter().any(|n| **n == **nationality) {
            delta += SAME_NATIONALITY_BOOST;
            if explain {
                notes.push(format!("nationality {nationality} matches"));
            }
        } else {
            delta -= 0.2;
            if explain {
                let known: Vec<&str> = nationalities.iter().map(|n| &**n).collect();
                notes.push(format!("nationality differs ({})", known.join(", ")));
            }
        }
    }
    (delta, notes)
}

#[cfg(test)]
mod tests;
