//! Watchlist search behind one seam: [`WatchlistIndex`].
//!
//! The daemon builds an index from the projection at start and feeds it
//! every entry that changes; queries never touch Automerge or storage. The
//! [`SimpleIndex`] of issue 2 matches whole name tokens after one shared
//! transliteration, and document numbers, plates, VINs and container
//! numbers exactly after normalisation. The cross-script matcher replaces it
//! by implementing the same trait.

use std::collections::{BTreeSet, HashMap};

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
use crate::watchlist::{Entry, Subject};

pub const DEFAULT_LIMIT: usize = 10;
pub const MAX_LIMIT: usize = 200;
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
        if name_tokens(&text).is_empty() {
            return Err(ValidationError::Empty { field: "search query (letters or digits)" });
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

/// The seam between the projection and whichever matcher is in use.
pub trait WatchlistIndex: Send + Sync + std::fmt::Debug {
    /// Adds or replaces an entry.
    fn upsert(&mut self, entry: &Entry);
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

#[derive(Debug, Clone)]
struct IndexedName {
    text: String,
    tokens: Vec<String>,
}

#[derive(Debug, Clone)]
struct Indexed {
    names: Vec<IndexedName>,
    identifiers: Vec<(String, &'static str)>,
    dobs: Vec<PartialDate>,
    nationalities: Vec<String>,
    kind: SubjectKind,
    category: Category,
    status: EntryStatus,
    valid_from: Day,
    expires: Option<Day>,
    action: String,
    warnings: Vec<Warning>,
    authority: String,
}

/// Token matching over one transliteration, with exact identifier lookups.
#[derive(Debug, Default)]
pub struct SimpleIndex {
    entries: HashMap<EntryId, Indexed>,
    by_token: HashMap<String, Vec<EntryId>>,
    by_identifier: HashMap<String, Vec<EntryId>>,
}

/// Normalised identifiers of an entry with what they are, for exact lookup.
fn identifiers(subject: &Subject) -> Vec<(String, String, &'static str)> {
    let mut out = Vec::new();
    match subject {
        Subject::Person(p) => {
            for d in &p.documents {
                out.push((document_number_key(&d.number), d.number.clone(), "document number"));
            }
        }
        Subject::Vehicle(v) => {
            for p in &v.plates {
                out.push((format!("plate:{}", p.normalized), p.raw.clone(), "plate"));
            }
            if let Some(vin) = &v.vin {
                out.push((format!("vin:{vin}"), vin.clone(), "VIN"));
            }
        }
        Subject::Document(d) => out.push((document_number_key(&d.number), d.number.clone(), "document number")),
        Subject::Cargo(c) => {
            for container in &c.containers {
                out.push((format!("container:{container}"), container.clone(), "container number"));
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

impl SimpleIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn unlink(&mut self, id: &EntryId) {
        let Some(old) = self.entries.remove(id) else {
            return;
        };
        let tokens: BTreeSet<&String> = old.names.iter().flat_map(|n| n.tokens.iter()).collect();
        for token in tokens {
            if let Some(list) = self.by_token.get_mut(token) {
                list.retain(|e| e != id);
                if list.is_empty() {
                    self.by_token.remove(token);
                }
            }
        }
        for (key, _) in &old.identifiers {
            if let Some(list) = self.by_identifier.get_mut(key) {
                list.retain(|e| e != id);
                if list.is_empty() {
                    self.by_identifier.remove(key);
                }
            }
        }
    }

    fn hit(&self, id: EntryId, entry: &Indexed, score: f64, name: String, reason: String, today: Day) -> SearchHit {
        let expired = entry.expires.is_some_and(|e| e < today);
        SearchHit {
            id,
            score,
            name,
            reason,
            kind: entry.kind,
            category: entry.category,
            status: entry.status,
            expired,
            alert: score >= STRONG_MATCH && entry.status == EntryStatus::Active && !expired && entry.valid_from <= today,
            action: entry.action.clone(),
            warnings: entry.warnings.clone(),
            authority: entry.authority.clone(),
        }
    }
}

/// Adjusts a name score by date of birth and nationality, after the domain
/// notes: a clash lowers the score, agreement is named in the reason.
fn qualify(entry: &Indexed, query: &SearchQuery, score: &mut f64, reasons: &mut Vec<String>) {
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
            DateAgreement::Same => reasons.push("DOB matches".into()),
            DateAgreement::Compatible => reasons.push("DOB year matches".into()),
            DateAgreement::SameYearOnly => {
                *score -= 0.1;
                reasons.push("DOB same year, different day".into());
            }
            DateAgreement::Clash => {
                *score -= if both_full { 0.25 } else { 0.15 };
                reasons.push("DOB clashes".into());
            }
        }
    }
    if let Some(nationality) = &query.nationality
        && !entry.nationalities.is_empty()
    {
        if entry.nationalities.contains(nationality) {
            reasons.push(format!("nationality {nationality} matches"));
        } else {
            *score -= 0.2;
            reasons.push(format!("nationality differs ({})", entry.nationalities.join(", ")));
        }
    }
}

impl WatchlistIndex for SimpleIndex {
    fn upsert(&mut self, entry: &Entry) {
        self.unlink(&entry.id);
        let (names, dobs, nationalities) = match &entry.subject {
            Subject::Person(p) => (
                p.names.iter().map(|n| IndexedName { text: n.text.clone(), tokens: name_tokens(&n.text) }).collect(),
                p.dobs.clone(),
                p.nationalities.clone(),
            ),
            _ => (Vec::new(), Vec::new(), Vec::new()),
        };
        let ids = identifiers(&entry.subject);
        let indexed = Indexed {
            names,
            identifiers: ids.iter().map(|(k, _, what)| (k.clone(), *what)).collect(),
            dobs,
            nationalities,
            kind: entry.subject.kind(),
            category: entry.category,
            status: entry.status,
            valid_from: entry.valid_from,
            expires: entry.expires,
            action: entry.action.clone(),
            warnings: entry.warnings.clone(),
            authority: entry.authority.clone(),
        };
        let tokens: BTreeSet<&String> = indexed.names.iter().flat_map(|n| n.tokens.iter()).collect();
        for token in tokens {
            self.by_token.entry(token.clone()).or_default().push(entry.id);
        }
        for (key, _, _) in ids {
            let list = self.by_identifier.entry(key).or_default();
            if !list.contains(&entry.id) {
                list.push(entry.id);
            }
        }
        self.entries.insert(entry.id, indexed);
    }

    fn remove(&mut self, id: &EntryId) {
        self.unlink(id);
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn alerts(&self, today: Day) -> usize {
        self.entries
            .values()
            .filter(|e| {
                e.status == EntryStatus::Active && e.valid_from <= today && e.expires.is_none_or(|x| x >= today)
            })
            .count()
    }

    fn search(&self, query: &SearchQuery, today: Day) -> Vec<SearchHit> {
        let mut hits: HashMap<EntryId, SearchHit> = HashMap::new();
        for key in query_identifier_keys(&query.text) {
            for id in self.by_identifier.get(&key).into_iter().flatten() {
                let Some(entry) = self.entries.get(id) else {
                    continue;
                };
                let what = entry.identifiers.iter().find(|(k, _)| *k == key).map_or("identifier", |(_, w)| *w);
                hits.insert(
                    *id,
                    self.hit(*id, entry, 1.0, query.text.trim().to_string(), format!("{what} exact"), today),
                );
            }
        }

        let query_tokens: Vec<String> = name_tokens(&query.text);
        let mut candidates: BTreeSet<EntryId> = BTreeSet::new();
        for token in &query_tokens {
            candidates.extend(self.by_token.get(token).into_iter().flatten());
        }
        for id in candidates {
            if hits.contains_key(&id) {
                continue;
            }
            let Some(entry) = self.entries.get(&id) else {
                continue;
            };
            let best = entry
                .names
                .iter()
                .map(|name| {
                    let matched = query_tokens.iter().filter(|t| name.tokens.contains(t)).count();
                    let score = 2.0 * matched as f64 / (query_tokens.len() + name.tokens.len()) as f64;
                    (score, matched, name)
                })
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let Some((mut score, matched, name)) = best else {
                continue;
            };
            let mut reasons = vec![if matched == query_tokens.len() && matched == name.tokens.len() {
                "all name tokens match".to_string()
            } else {
                format!("{matched} of {} name tokens match", name.tokens.len().max(query_tokens.len()))
            }];
            qualify(entry, query, &mut score, &mut reasons);
            if score >= MIN_SCORE {
                let score = (score.clamp(0.0, 1.0) * 1000.0).round() / 1000.0;
                hits.insert(id, self.hit(id, entry, score, name.text.clone(), reasons.join(", "), today));
            }
        }

        let mut ranked: Vec<SearchHit> = hits.into_values().collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.alert.cmp(&a.alert)).then(a.id.cmp(&b.id)));
        ranked.truncate(query.limit);
        ranked
    }
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
