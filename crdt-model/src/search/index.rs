//! The cross-script name index.
//!
//! Every distinct word skeleton is interned once in a vocabulary. A query
//! word first finds the vocabulary words that could be it, through blocking
//! keys (its phonetic key and that key's one-symbol deletions, or the
//! skeleton's own deletions for very short keys, plus its equivalence
//! group), and keeps those whose similarity clears the spelling floor. The
//! entries holding those words are the candidates; each of their names is
//! aligned with the query word by word, with every word similarity
//! computed at most once per query. The work per query follows the number
//! of similar words and the entries holding them, not the size of the list.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{
    IndexRecord, MIN_SCORE, QUALIFIER_BOOST, STRONG_MATCH, SearchHit, SearchQuery, WatchlistIndex, WordMatch,
    identifiers, qualify, query_identifier_keys,
};
use crate::date::{Day, PartialDate};
use crate::ids::EntryId;
use crate::names::equivalents::{group_name, group_of};
use crate::names::fold::{surname_is_female, surname_stem};
use crate::names::score::{
    GENDER_FORM_PENALTY, OTHER_KNOWN_NAME_SIMILARITY, align_into, vowels_only_apart, word_weight,
};
use crate::names::{MatchHow, NameRole, TokenSim, name_words, phonetic_key, role_of, skeleton, token_similarity};
use crate::vocab::{Category, EntryStatus, SubjectKind, Warning};
use crate::watchlist::{Entry, Subject, in_force};

type Slot = u32;
type TokenId = u32;

/// Bounds on what one entry puts in the index. Entries merged from other
/// posts arrive without this post's validation, and a record read back from
/// a damaged disk may hold anything: neither may make a rebuild slow or a
/// start panic. No person has more names or longer words than this; an
/// excess is not indexed (the entry itself keeps it).
const MAX_NAMES_INDEXED: usize = 32;
const MAX_WORDS_INDEXED: usize = 16;
const MAX_WORD_BYTES: usize = 40;

/// A stored skeleton as the index takes it: ASCII letters and digits only
/// (anything else came from a damaged record), at most `MAX_WORD_BYTES`.
fn indexable(token: &str) -> Option<&str> {
    let clean = !token.is_empty() && token.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    clean.then(|| &token[..token.len().min(MAX_WORD_BYTES)])
}

// Which query words an entry holds is a u16 bit mask.
const _: () = assert!(super::MAX_QUERY_TOKENS <= 16);

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
    /// Free text, so not shared: interning it would keep every superseded
    /// wording alive.
    action: Box<str>,
    warnings: Vec<Warning>,
    authority: Arc<str>,
}

impl Indexed {
    fn is_live(&self, today: Day) -> bool {
        in_force(self.status, self.valid_from, self.expires, today)
    }
}

/// Distinct word skeletons, with what blocking and scoring need of each.
#[derive(Debug, Default)]
struct Vocabulary {
    ids: HashMap<Box<str>, TokenId>,
    skeletons: Vec<Box<str>>,
    roles: Vec<NameRole>,
    /// Female or male surname form, per word.
    female: Vec<Option<bool>>,
    /// Entries holding each word.
    postings: Vec<Vec<Slot>>,
    blocks: HashMap<u64, Vec<TokenId>>,
}

/// Phonetic keys shorter than this are not used for blocking: deleting a
/// symbol from a one- or two-symbol key would match half the vocabulary.
const SHORT_KEY: usize = 3;

fn block_hash(tag: u8, text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    tag.hash(&mut hasher);
    text.hash(&mut hasher);
    hasher.finish()
}

/// Every string with one character of `text` removed (ASCII only).
fn deletions(text: &str) -> impl Iterator<Item = String> + '_ {
    (0..text.len()).map(move |i| {
        let mut s = String::with_capacity(text.len());
        s.push_str(&text[..i]);
        s.push_str(&text[i + 1..]);
        s
    })
}

/// The blocking keys of a skeleton. Two words one typo apart share a key:
/// deleting the differing symbol from both gives the same string. Keys come
/// from the skeleton itself (a typo is one edit there) and from its
/// phonetic key (a typo plus a vowel difference left by a romanisation is
/// one edit there).
fn block_keys(skeleton: &str) -> Vec<u64> {
    let mut keys = vec![block_hash(b's', skeleton)];
    keys.extend(deletions(skeleton).map(|d| block_hash(b's', &d)));
    let key = phonetic_key(skeleton);
    if key.len() >= SHORT_KEY {
        keys.push(block_hash(b'k', &key));
        keys.extend(deletions(&key).map(|d| block_hash(b'k', &d)));
    }
    if let Some(group) = group_of(skeleton) {
        keys.push(block_hash(b'g', &group.to_string()));
    } else if let Some((stem, _)) = surname_stem(skeleton) {
        // Any ending on one stem (Rahmonov, Rahmonzoda), and stems that
        // are equivalent given names (Ibragimov, Ibrohimzoda).
        keys.push(block_hash(b't', stem));
        if let Some(group) = group_of(stem) {
            keys.push(block_hash(b'G', &group.to_string()));
        }
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

impl Vocabulary {
    fn intern(&mut self, skeleton: &str) -> TokenId {
        if let Some(id) = self.ids.get(skeleton) {
            return *id;
        }
        let id = self.skeletons.len() as TokenId;
        self.skeletons.push(skeleton.into());
        self.roles.push(role_of(skeleton));
        self.female.push(surname_is_female(skeleton));
        self.postings.push(Vec::new());
        self.ids.insert(skeleton.into(), id);
        for key in block_keys(skeleton) {
            self.blocks.entry(key).or_default().push(id);
        }
        id
    }

    fn is_listed(&self, skeleton: &str) -> bool {
        self.ids.get(skeleton).is_some_and(|id| !self.postings[*id as usize].is_empty())
    }

    /// The words that may be `skeleton`, with their similarity to it.
    ///
    /// When the query word is itself `known` on the list, a close spelling
    /// of it is discounted: the officer more likely typed another person's
    /// name than a typo. Only these words can pair with the query word, so
    /// what blocking finds is exactly what scoring may use.
    fn similar(&self, skeleton: &str, known: bool) -> FxHashMap<TokenId, TokenSim> {
        let mut out = FxHashMap::default();
        for key in block_keys(skeleton) {
            for &id in self.blocks.get(&key).into_iter().flatten() {
                if out.contains_key(&id) || self.postings[id as usize].is_empty() {
                    continue;
                }
                let stored = &self.skeletons[id as usize];
                let Some(mut sim) = token_similarity(skeleton, stored) else { continue };
                if known && sim.how == MatchHow::Spelling && !vowels_only_apart(skeleton, stored) {
                    sim = TokenSim { similarity: OTHER_KNOWN_NAME_SIMILARITY, how: MatchHow::OtherKnownName };
                }
                out.insert(id, sim);
            }
        }
        out
    }
}

/// Cross-script name matching with exact identifier lookups.
///
/// Entries live in slots; postings hold slot numbers and names hold
/// vocabulary numbers, so scoring compares integers, not strings. Words
/// stay in the vocabulary after the last entry holding them goes (their
/// posting list is then empty and they are skipped): a list churns by
/// thousands of entries, not millions of new words.
#[derive(Debug, Default)]
pub struct NameIndex {
    slots: Vec<Option<Indexed>>,
    free: Vec<Slot>,
    by_id: HashMap<EntryId, Slot>,
    vocabulary: Vocabulary,
    by_identifier: HashMap<Box<str>, Vec<Slot>>,
    /// Authorities and identifier kinds repeat across entries; one copy each.
    strings: HashMap<Box<str>, Arc<str>>,
}

/// One query word, prepared once per search.
#[derive(Debug)]
struct QueryWord {
    text: String,
    skeleton: String,
    role: NameRole,
    female: Option<bool>,
    similar: FxHashMap<TokenId, TokenSim>,
}

/// The scoring state of one search, with scratch space reused across
/// candidates, so scoring thousands of candidates allocates nothing per
/// candidate.
struct Scorer<'a> {
    index: &'a NameIndex,
    words: &'a [QueryWord],
    query_roles: &'a [NameRole],
    pairs: Vec<(usize, usize, TokenSim)>,
}

impl<'a> Scorer<'a> {
    fn new(index: &'a NameIndex, words: &'a [QueryWord], query_roles: &'a [NameRole]) -> Self {
        Self { index, words, query_roles, pairs: Vec::new() }
    }

    /// Aligns the query with `name`; the pairs stay in `self.pairs`.
    fn name_score(&mut self, name: &IndexedName) -> f64 {
        let vocabulary = &self.index.vocabulary;
        let words = self.words;
        let mut score = align_into(
            self.query_roles,
            name.tokens.len(),
            |n| vocabulary.roles[name.tokens[n] as usize],
            |q, n| words[q].similar.get(&name.tokens[n]).copied(),
            &mut self.pairs,
        );
        if self.gender_clash(name) {
            score -= GENDER_FORM_PENALTY;
        }
        score
    }

    /// Whether the last alignment paired a surname with its other gender's
    /// form (Karimov with Karimova).
    fn gender_clash(&self, name: &IndexedName) -> bool {
        self.pairs.iter().any(|(q, n, _)| {
            let stored = self.index.vocabulary.female[name.tokens[*n] as usize];
            matches!((self.words[*q].female, stored), (Some(a), Some(b)) if a != b)
        })
    }
}

/// A candidate before it becomes a hit: cheap to make for thousands.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    slot: Slot,
    id: EntryId,
    /// Rounded as shown, so that ranking here and in the final hit list
    /// agree (score, then alert, then id).
    score: f64,
    name: usize,
    alert: bool,
}

/// Scores as shown to officers: three decimals.
fn shown_score(score: f64) -> f64 {
    (score.clamp(0.0, 1.0) * 1000.0).round() / 1000.0
}

impl NameIndex {
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

    fn unlink(&mut self, id: &EntryId) {
        let Some(slot) = self.by_id.remove(id) else { return };
        let Some(old) = self.slots.get_mut(slot as usize).and_then(Option::take) else { return };
        let tokens: BTreeSet<TokenId> = old.names.iter().flat_map(|n| n.tokens.iter().copied()).collect();
        for token in tokens {
            if let Some(list) = self.vocabulary.postings.get_mut(token as usize) {
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
            explanation: Vec::new(),
        }
    }

    /// Explains the best name of a hit word by word.
    fn explain(&self, scorer: &mut Scorer<'_>, name: &IndexedName) -> (Vec<WordMatch>, Vec<String>) {
        scorer.name_score(name);
        let pairs = scorer.pairs.clone();
        let words = scorer.words;
        let stored_words = name_words(&name.text);
        let roles: Vec<NameRole> = name.tokens.iter().map(|t| self.vocabulary.roles[*t as usize]).collect();
        let has_surname = roles.contains(&NameRole::Surname);
        let shown = |role: NameRole| match role {
            NameRole::Name if has_surname => NameRole::GivenName,
            other => other,
        };
        let role_label = |role: NameRole| shown(role).label();
        let mut lines = Vec::new();
        // Reasons follow the stored name's order, so one entry reads the
        // same whatever order the officer typed the words in.
        let mut by_stored: Vec<(usize, String)> = Vec::new();
        for (q, n, sim) in &pairs {
            let typed = &words[*q].text;
            let stored = stored_words.get(*n).map(|w| w.text.clone()).unwrap_or_default();
            let how = if sim.how == MatchHow::Transliteration
                && crate::normalize::fold_text(typed) == crate::normalize::fold_text(&stored)
            {
                MatchHow::Exact
            } else {
                sim.how
            };
            let detail = match how {
                MatchHow::Exact => String::new(),
                MatchHow::Transliteration => {
                    let folds = skeleton(typed).1.union(skeleton(&stored).1);
                    folds.iter().map(|f| f.label()).collect::<Vec<_>>().join(", ")
                }
                MatchHow::Equivalent => {
                    let skeleton = &words[*q].skeleton;
                    let group = group_of(skeleton).or_else(|| surname_stem(skeleton).and_then(|(s, _)| group_of(s)));
                    match group {
                        Some(group) => format!("forms of {}", group_name(group)),
                        None => "one surname with -ov and -zoda endings".to_string(),
                    }
                }
                MatchHow::Spelling => format!("Jaro-Winkler {:.2} on the skeletons", sim.similarity),
                MatchHow::OtherKnownName => format!("\"{typed}\" is itself a name on the list"),
            };
            by_stored.push((*n, format!("{} {}", role_label(roles[*n]), how.label())));
            lines.push(WordMatch {
                query: Some(typed.clone()),
                stored: Some(stored),
                role: shown(roles[*n]),
                how: Some(how),
                similarity: (f64::from(sim.similarity) * 1000.0).round() / 1000.0,
                detail,
            });
        }
        lines.sort_by_key(|line| words.iter().position(|w| Some(&w.text) == line.query.as_ref()));
        if scorer.gender_clash(name) {
            by_stored.push((usize::MAX, "surname in the other gender's form".to_string()));
        }
        for (n, role) in roles.iter().enumerate() {
            if !pairs.iter().any(|(_, pn, _)| *pn == n) {
                by_stored.push((n, format!("{} not given", role_label(*role))));
            }
        }
        by_stored.sort_by_key(|(n, _)| *n);
        let mut reasons: Vec<String> = by_stored.into_iter().map(|(_, r)| r).collect();
        for (q, word) in words.iter().enumerate() {
            if !pairs.iter().any(|(pq, _, _)| *pq == q) {
                reasons.push(format!("\"{}\" not in this name", word.text));
                lines.push(WordMatch {
                    query: Some(word.text.clone()),
                    stored: None,
                    role: word.role,
                    how: None,
                    similarity: 0.0,
                    detail: "no stored word is close".into(),
                });
            }
        }
        for (n, role) in roles.iter().enumerate() {
            if !pairs.iter().any(|(_, pn, _)| *pn == n) {
                let stored = stored_words.get(n).map(|w| w.text.clone()).unwrap_or_default();
                lines.push(WordMatch {
                    query: None,
                    stored: Some(stored),
                    role: shown(*role),
                    how: None,
                    similarity: 0.0,
                    detail: "not in the query".into(),
                });
            }
        }
        (lines, reasons)
    }
}

impl WatchlistIndex for NameIndex {
    fn prepare(&self, entry: &Entry) -> IndexRecord {
        let (names, dobs, nationalities) = match &entry.subject {
            Subject::Person(p) => (
                p.names
                    .iter()
                    .take(MAX_NAMES_INDEXED)
                    .map(|n| (n.text.clone(), name_words(&n.text).into_iter().map(|w| w.skeleton).collect()))
                    .collect(),
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
        for (text, tokens) in record.names.iter().take(MAX_NAMES_INDEXED) {
            let ids: Vec<TokenId> = tokens
                .iter()
                .filter_map(|t| indexable(t))
                .take(MAX_WORDS_INDEXED)
                .map(|t| self.vocabulary.intern(t))
                .collect();
            all_tokens.extend(ids.iter().copied());
            names.push(IndexedName { text: text.as_str().into(), tokens: ids });
        }
        for token in all_tokens {
            self.vocabulary.postings[token as usize].push(slot);
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
            action: record.action.as_str().into(),
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
        let mut seen = BTreeSet::new();
        let words: Vec<QueryWord> = name_words(&query.text)
            .into_iter()
            .map(|mut w| {
                // Stored words are indexed at most this long; so are queries.
                w.skeleton.truncate(MAX_WORD_BYTES);
                w
            })
            .filter(|w| seen.insert(w.skeleton.clone()))
            .map(|w| {
                let known = self.vocabulary.is_listed(&w.skeleton);
                QueryWord {
                    role: role_of(&w.skeleton),
                    female: surname_is_female(&w.skeleton),
                    similar: self.vocabulary.similar(&w.skeleton, known),
                    skeleton: w.skeleton,
                    text: w.text,
                }
            })
            .collect();
        let query_roles: Vec<NameRole> = words.iter().map(|w| w.role).collect();
        let wanted = query.limit.saturating_sub(hits.len());

        // Which query words each entry holds a similar word for bounds its
        // score from above: every similarity is at most 1, and qualifiers
        // add at most QUALIFIER_BOOST. Entries are scored best bound first,
        // and scoring stops once no bound can reach the results kept, so a
        // surname shared by thousands of entries costs little when the
        // full name is on the list.
        let mut held: FxHashMap<Slot, u16> = FxHashMap::default();
        for (q, word) in words.iter().enumerate() {
            for token in word.similar.keys() {
                for &slot in &self.vocabulary.postings[*token as usize] {
                    *held.entry(slot).or_default() |= 1 << q;
                }
            }
        }
        let total: f64 = query_roles.iter().map(|r| word_weight(*r)).sum();
        let boost = if query.dob.is_some() || query.nationality.is_some() { QUALIFIER_BOOST } else { 0.0 };
        let bound = |mask: u16| {
            let covered: f64 = query_roles
                .iter()
                .enumerate()
                .filter(|(q, _)| mask & (1 << q) != 0)
                .map(|(_, r)| word_weight(*r))
                .sum();
            covered / total + boost
        };
        let mut order: Vec<(f64, Slot)> = held
            .into_iter()
            .filter(|(slot, _)| !exact.contains(slot))
            .map(|(slot, mask)| (bound(mask), slot))
            .collect();
        order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

        let mut scorer = Scorer::new(self, &words, &query_roles);
        let mut candidates: Vec<Candidate> = Vec::new();
        // The best `wanted` scores so far, lowest first.
        let mut kept: Vec<f64> = Vec::with_capacity(wanted + 1);
        for (bound, slot) in order {
            let floor = if kept.len() >= wanted { kept.first().copied().unwrap_or(f64::INFINITY) } else { MIN_SCORE };
            // A raw score just under the floor can round up to tie it.
            if wanted == 0 || bound + 0.0005 < floor {
                break;
            }
            let Some(entry) = self.entry(slot) else { continue };
            let mut best: Option<(f64, usize)> = None;
            for (i, name) in entry.names.iter().enumerate() {
                let score = scorer.name_score(name);
                if best.is_none_or(|(b, _)| score > b) {
                    best = Some((score, i));
                }
            }
            let Some((raw, name)) = best else { continue };
            let score = shown_score(raw + qualify(&entry.dobs, &entry.nationalities, query, false).0);
            let alert = score >= STRONG_MATCH && entry.is_live(today);
            let candidate = Candidate { slot, id: entry.id, score, name, alert };
            if candidate.score >= MIN_SCORE {
                let at = kept.partition_point(|s| *s < candidate.score);
                kept.insert(at, candidate.score);
                if kept.len() > wanted {
                    kept.remove(0);
                }
                candidates.push(candidate);
            }
        }
        let rank = |a: &Candidate, b: &Candidate| {
            b.score.total_cmp(&a.score).then(b.alert.cmp(&a.alert)).then(a.id.cmp(&b.id))
        };
        if candidates.len() > wanted && wanted > 0 {
            candidates.select_nth_unstable_by(wanted - 1, rank);
            candidates.truncate(wanted);
        }
        candidates.sort_unstable_by(rank);
        for c in candidates.into_iter().take(wanted) {
            let Some(entry) = self.entry(c.slot) else { continue };
            let name = &entry.names[c.name];
            let (explanation, mut reasons) = self.explain(&mut scorer, name);
            let (_, notes) = qualify(&entry.dobs, &entry.nationalities, query, true);
            reasons.extend(notes);
            let mut hit = Self::hit(entry, c.score, name.text.to_string(), reasons.join(", "), today);
            hit.explanation = explanation;
            hits.push(hit);
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.alert.cmp(&a.alert)).then(a.id.cmp(&b.id)));
        hits.truncate(query.limit);
        hits
    }
}
