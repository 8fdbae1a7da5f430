//! Watchlist search behind one seam: [`WatchlistIndex`].
//!
//! The daemon builds an index from the projection at start and feeds it
//! every entry that changes; queries never touch Automerge or storage. The
//! [`SimpleIndex`] of issue 2 matches whole name tokens after one shared
//! transliteration, and document numbers, plates, VINs and container
//! numbers exactly after normalisation. The cross-script matcher replaces it
//! by implementing the same trait.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api::SearchInput;
use crate::country::parse_country;
use crate::date::{DateAgreement, Day, PartialDate};
use crate::error::ValidationError;
use crate::ids::EntryId;
use crate::normalize::{
    document_number_key, name_tokens, normalize_container, normalize_document_number, normalize_plate, normalize_vin,
};
use crate::validate::purpose;
use crate::vocab::{Category, EntryStatus, SubjectKind, Warning};
use crate::watchlist::{Entry, Subject, in_force};

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 200;
/// Longer queries are not names; refusing them bounds the work per search.
pub const MAX_QUERY_CHARS: usize = 200;
pub const MAX_QUERY_TOKENS: usize = 12;
/// Scores below this are noise, not candidates.
pub const MIN_SCORE: f64 = 0.4;
/// A live entry matched at least this well is an alert the officer must act on.
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
    /// Each name as stored, with its matching tokens.
    pub names: Vec<(String, Vec<String>)>,
    pub dobs: Vec<PartialDate>,
    pub nationalities: Vec<String>,
    /// Normalised identifier keys with what they identify ("plate", …).
    pub identifiers: Vec<(String, String)>,
}

pub const INDEX_RECORD_VERSION: u32 = 1;

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

type Slot = u32;
type TokenId = u32;

#[derive(Debug)]
struct IndexedName {
    text: Box<str>,
    tokens: Vec<TokenId>,
}

#[derive(Debug)]
struct Indexed {
    id: EntryId,
    names: Vec<IndexedName>,
    identifiers: Vec<(Box<str>, Arc<str>)>,
    dobs: Vec<PartialDate>,
    nationalities: Vec<Box<str>>,
    kind: SubjectKind,
    category: Category,
    status: EntryStatus,
    valid_from: Day,
    expires: Option<Day>,
    action: Arc<str>,
    warnings: Vec<Warning>,
    authority: Arc<str>,
}

impl Indexed {
    fn is_live(&self, today: Day) -> bool {
        in_force(self.status, self.valid_from, self.expires, today)
    }
}

/// Token matching over one transliteration, with exact identifier lookups.
///
/// Entries live in slots; posting lists hold slot numbers and names hold
/// interned token numbers, so a query compares integers, not strings.
#[derive(Debug, Default)]
pub struct SimpleIndex {
    slots: Vec<Option<Indexed>>,
    free: Vec<Slot>,
    by_id: HashMap<EntryId, Slot>,
    token_ids: HashMap<Box<str>, TokenId>,
    postings: Vec<Vec<Slot>>,
    by_identifier: HashMap<Box<str>, Vec<Slot>>,
    /// Authorities, actions and identifier kinds repeat across entries; one copy each.
    strings: HashMap<Box<str>, Arc<str>>,
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

/// A candidate before it becomes a hit: cheap to make for thousands.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    slot: Slot,
    score: f64,
    name: usize,
    matched: usize,
    live: bool,
}

impl SimpleIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.strings.insert(text.into(), shared.clone());
        shared
    }

    fn token_id(&mut self, token: &str) -> TokenId {
        if let Some(id) = self.token_ids.get(token) {
            return *id;
        }
        let id = self.postings.len() as TokenId;
        self.postings.push(Vec::new());
        self.token_ids.insert(token.into(), id);
        id
    }

    fn unlink(&mut self, id: &EntryId) {
        let Some(slot) = self.by_id.remove(id) else { return };
        let Some(old) = self.slots.get_mut(slot as usize).and_then(Option::take) else { return };
        let tokens: BTreeSet<TokenId> = old.names.iter().flat_map(|n| n.tokens.iter().copied()).collect();
        for token in tokens {
            if let Some(list) = self.postings.get_mut(token as usize) {
                list.retain(|s| *s != slot);
            }
        }
        for (key, _) in &old.identifiers {
            if let Some(list) = self.by_identifier.get_mut(key) {
                list.retain(|s| *s != slot);
                if list.is_empty() {
                    self.by_identifier.remove(key);
                }
            }
        }
        self.free.push(slot);
    }

    fn entry(&self, slot: Slot) -> Option<&Indexed> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn hit(entry: &Indexed, score: f64, name: String, reason: String, today: Day) -> SearchHit {
        let expired = entry.expires.is_some_and(|e| e < today);
        SearchHit {
            id: entry.id,
            score,
            name,
            reason,
            kind: entry.kind,
            category: entry.category,
            status: entry.status,
            expired,
            alert: score >= STRONG_MATCH && entry.is_live(today),
            action: entry.action.to_string(),
            warnings: entry.warnings.clone(),
            authority: entry.authority.to_string(),
        }
    }
}

/// Adjusts a name score by date of birth and nationality, after the domain
/// notes: a clash lowers the score, agreement is named in the reason.
fn qualify(entry: &Indexed, query: &SearchQuery, score: &mut f64, reasons: Option<&mut Vec<String>>) {
    let mut notes = Vec::new();
    if let Some(dob) = query.dob
        && !entry.dobs.is_empty()
    {
        let best = entry
            .dobs
            .iter()
            .map(|d| d.agreement(dob))
            .min_by_key(|a| match a {
                DateAgreement::Same => 0,
                DateAgreement::Compatible => 1,
                DateAgreement::SameYearOnly => 2,
                DateAgreement::Clash => 3,
            })
            .unwrap_or(DateAgreement::Clash);
        let both_full = dob.day.is_some() && entry.dobs.iter().any(|d| d.day.is_some());
        match best {
            DateAgreement::Same => notes.push("DOB matches".to_string()),
            DateAgreement::Compatible => notes.push("DOB year matches".to_string()),
            DateAgreement::SameYearOnly => {
                *score -= 0.1;
                notes.push("DOB same year, different day".to_string());
            }
            DateAgreement::Clash => {
                *score -= if both_full { 0.25 } else { 0.15 };
                notes.push("DOB clashes".to_string());
            }
        }
    }
    if let Some(nationality) = &query.nationality
        && !entry.nationalities.is_empty()
    {
        if entry.nationalities.iter().any(|n| **n == **nationality) {
            notes.push(format!("nationality {nationality} matches"));
        } else {
            *score -= 0.2;
            let known: Vec<&str> = entry.nationalities.iter().map(|n| &**n).collect();
            notes.push(format!("nationality differs ({})", known.join(", ")));
        }
    }
    if let Some(reasons) = reasons {
        reasons.extend(notes);
    }
}

impl WatchlistIndex for SimpleIndex {
    fn prepare(&self, entry: &Entry) -> IndexRecord {
        let (names, dobs, nationalities) = match &entry.subject {
            Subject::Person(p) => (
                p.names.iter().map(|n| (n.text.clone(), name_tokens(&n.text))).collect(),
                p.dobs.clone(),
                p.nationalities.clone(),
            ),
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        IndexRecord {
            id: entry.id,
            kind: entry.subject.kind(),
            category: entry.category,
            status: entry.status,
            valid_from: entry.valid_from,
            expires: entry.expires,
            authority: entry.authority.clone(),
            action: entry.action.clone(),
            warnings: entry.warnings.clone(),
            names,
            dobs,
            nationalities,
            identifiers: identifiers(&entry.subject),
        }
    }

    fn insert(&mut self, record: &IndexRecord) {
        self.unlink(&record.id);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as Slot
            }
        };
        let mut names = Vec::with_capacity(record.names.len());
        let mut all_tokens = BTreeSet::new();
        for (text, tokens) in &record.names {
            let ids: Vec<TokenId> = tokens.iter().map(|t| self.token_id(t)).collect();
            all_tokens.extend(ids.iter().copied());
            names.push(IndexedName { text: text.as_str().into(), tokens: ids });
        }
        for token in all_tokens {
            self.postings[token as usize].push(slot);
        }
        let mut identifiers = Vec::with_capacity(record.identifiers.len());
        for (key, what) in &record.identifiers {
            let list = self.by_identifier.entry(key.as_str().into()).or_default();
            if !list.contains(&slot) {
                list.push(slot);
            }
            identifiers.push((key.as_str().into(), self.intern(what)));
        }
        let indexed = Indexed {
            id: record.id,
            names,
            identifiers,
            dobs: record.dobs.clone(),
            nationalities: record.nationalities.iter().map(|n| n.as_str().into()).collect(),
            kind: record.kind,
            category: record.category,
            status: record.status,
            valid_from: record.valid_from,
            expires: record.expires,
            action: self.intern(&record.action),
            warnings: record.warnings.clone(),
            authority: self.intern(&record.authority),
        };
        self.slots[slot as usize] = Some(indexed);
        self.by_id.insert(record.id, slot);
    }

    fn remove(&mut self, id: &EntryId) {
        self.unlink(id);
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn alerts(&self, today: Day) -> usize {
        self.slots.iter().flatten().filter(|e| e.is_live(today)).count()
    }

    fn search(&self, query: &SearchQuery, today: Day) -> Vec<SearchHit> {
        let mut hits: Vec<SearchHit> = Vec::new();
        let mut exact: BTreeSet<Slot> = BTreeSet::new();
        for key in query_identifier_keys(&query.text) {
            for &slot in self.by_identifier.get(key.as_str()).into_iter().flatten() {
                let Some(entry) = self.entry(slot) else { continue };
                if !exact.insert(slot) {
                    continue;
                }
                let what = entry.identifiers.iter().find(|(k, _)| **k == *key).map_or("identifier", |(_, w)| &**w);
                hits.push(Self::hit(entry, 1.0, query.text.clone(), format!("{what} exact"), today));
            }
        }

        // Each distinct word counts once: "Karimov Karimov" must not score
        // as a full match on "Karimov Ali".
        let mut query_tokens = name_tokens(&query.text);
        let mut seen = BTreeSet::new();
        query_tokens.retain(|t| seen.insert(t.clone()));
        let query_ids: Vec<Option<TokenId>> =
            query_tokens.iter().map(|t| self.token_ids.get(t.as_str()).copied()).collect();
        let mut slots: Vec<Slot> =
            query_ids.iter().flatten().flat_map(|t| self.postings[*t as usize].iter().copied()).collect();
        slots.sort_unstable();
        slots.dedup();
        let mut candidates: Vec<Candidate> = Vec::new();
        for slot in slots {
            if exact.contains(&slot) {
                continue;
            }
            let Some(entry) = self.entry(slot) else { continue };
            let mut best: Option<Candidate> = None;
            for (i, name) in entry.names.iter().enumerate() {
                let matched = query_ids.iter().flatten().filter(|t| name.tokens.contains(t)).count();
                let score = 2.0 * matched as f64 / (query_tokens.len() + name.tokens.len()) as f64;
                if best.is_none_or(|b| score > b.score) {
                    best = Some(Candidate { slot, score, name: i, matched, live: entry.is_live(today) });
                }
            }
            let Some(mut candidate) = best else { continue };
            qualify(entry, query, &mut candidate.score, None);
            if candidate.score >= MIN_SCORE {
                candidates.push(candidate);
            }
        }
        let wanted = query.limit.saturating_sub(hits.len());
        let rank = |a: &Candidate, b: &Candidate| {
            b.score.total_cmp(&a.score).then(b.live.cmp(&a.live)).then(a.slot.cmp(&b.slot))
        };
        if candidates.len() > wanted && wanted > 0 {
            candidates.select_nth_unstable_by(wanted - 1, rank);
            candidates.truncate(wanted);
        }
        candidates.sort_unstable_by(rank);
        for c in candidates.into_iter().take(wanted) {
            let Some(entry) = self.entry(c.slot) else { continue };
            let name = &entry.names[c.name];
            let mut reasons = vec![if c.matched == query_tokens.len() && c.matched == name.tokens.len() {
                "all name tokens match".to_string()
            } else {
                format!("{} of {} name tokens match", c.matched, name.tokens.len().max(query_tokens.len()))
            }];
            let mut score = 2.0 * c.matched as f64 / (query_tokens.len() + name.tokens.len()) as f64;
            qualify(entry, query, &mut score, Some(&mut reasons));
            let score = (score.clamp(0.0, 1.0) * 1000.0).round() / 1000.0;
            hits.push(Self::hit(entry, score, name.text.to_string(), reasons.join(", "), today));
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.alert.cmp(&a.alert)).then(a.id.cmp(&b.id)));
        hits.truncate(query.limit);
        hits
    }
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
