//! How alike two words are, and how well a query lines up with a name.

use serde::{Deserialize, Serialize};

use super::equivalents::group_of;
use super::fold::{NameRole, phonetic_key, surname_stem};

/// Why two words were taken to be the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchHow {
    /// The same letters (ignoring case).
    Exact,
    /// Different letters, the same skeleton: another script or system.
    Transliteration,
    /// One name in two languages (Magomed, Muhammad).
    Equivalent,
    /// Close in spelling: a typo or an unusual romanisation.
    Spelling,
    /// Close in spelling, but the officer typed a word that is itself a
    /// name on the list (Erlan for Erzhan): more likely another person.
    OtherKnownName,
}

impl MatchHow {
    pub fn label(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Transliteration => "transliteration variant",
            Self::Equivalent => "equivalent name",
            Self::Spelling => "close spelling",
            Self::OtherKnownName => "close spelling of another listed name",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenSim {
    pub similarity: f32,
    pub how: MatchHow,
}

/// Similarity left to a close spelling when the query word is itself a
/// word on the list: low enough that it never makes an alert on its own.
pub const OTHER_KNOWN_NAME_SIMILARITY: f32 = 0.4;

/// What a surname in the other gender's form (Karimov for Karimova) takes
/// off a name score, after the domain notes' gender mismatch.
pub const GENDER_FORM_PENALTY: f64 = 0.2;

/// Similarity given to names the equivalence list joins.
pub const EQUIVALENT_SIMILARITY: f32 = 0.9;
/// Below this Jaro-Winkler similarity, two spellings are different words
/// however few edits apart.
pub const SPELLING_FLOOR: f64 = 0.8;

/// Compares two skeletons. `None` means unrelated. Same skeletons compare as
/// a transliteration variant; the caller tells an exact match by the words
/// as written.
pub fn token_similarity(query: &str, stored: &str) -> Option<TokenSim> {
    if query == stored {
        return Some(TokenSim { similarity: 1.0, how: MatchHow::Transliteration });
    }
    if let Some(sim) = equivalent(query, stored) {
        return Some(sim);
    }
    if loose(query) == loose(stored) {
        return Some(TokenSim { similarity: LOOSE_SIMILARITY, how: MatchHow::Transliteration });
    }
    spelling_similarity(query, stored).map(|similarity| TokenSim { similarity, how: MatchHow::Spelling })
}

/// Tajik surnames moved from -ov to -zoda (Rahmonov → Rahmonzoda): perhaps
/// the same family under two endings, perhaps another one. Low enough that
/// an otherwise exact name scores 0.72, below the 0.75 alert threshold,
/// unless a date of birth or nationality agrees.
pub const SUFFIX_SIMILARITY: f32 = 0.6;

fn equivalent(a: &str, b: &str) -> Option<TokenSim> {
    if let (Some(x), Some(y)) = (group_of(a), group_of(b)) {
        return (x == y).then_some(TokenSim { similarity: EQUIVALENT_SIMILARITY, how: MatchHow::Equivalent });
    }
    let ((stem_a, class_a), (stem_b, class_b)) = (surname_stem(a)?, surname_stem(b)?);
    if class_a == class_b {
        let same = group_of(stem_a).is_some_and(|g| group_of(stem_b) == Some(g));
        same.then_some(TokenSim { similarity: EQUIVALENT_SIMILARITY, how: MatchHow::Equivalent })
    } else {
        let same = stem_a == stem_b || group_of(stem_a).is_some_and(|g| group_of(stem_b) == Some(g));
        same.then_some(TokenSim { similarity: SUFFIX_SIMILARITY, how: MatchHow::Equivalent })
    }
}

/// How many letter edits (insert, delete, substitute, swap) two spellings
/// of one word may differ by and still be taken for a typo or a leftover
/// romanisation difference: none for one or two letters, one up to six,
/// two beyond. Generous on purpose: a near spelling that is itself a name
/// on the list is discounted by the index, not here. The index only meets
/// words one deletion apart on the skeleton or the phonetic key, so two
/// edits count only where the phonetic key absorbs one of them (a vowel).
fn allowed_edits(shorter: usize) -> usize {
    match shorter {
        0..=2 => 0,
        3..=6 => 1,
        _ => 2,
    }
}

/// A skeleton with the letters that mean different sounds in different
/// systems made one: Tajik Ҷ is CH in ICAO and GOST but J in Tajik Latin
/// (ch → j), and GOST writes Й as j where every Turkic Latin alphabet
/// writes Ж (j after a vowel and before a consonant or the end → i).
/// Kept out of the skeleton so that Najmiddin (Нажмиддин) stays itself.
pub fn loose(skeleton: &str) -> String {
    let folded = skeleton.replace("ch", "j");
    let bytes = folded.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        let after_vowel = i > 0 && matches!(bytes[i - 1], b'a' | b'e' | b'i' | b'o' | b'u');
        let before_vowel = bytes.get(i + 1).is_some_and(|n| matches!(n, b'a' | b'e' | b'i' | b'o' | b'u'));
        let c = if b == b'j' && after_vowel && !before_vowel { 'i' } else { char::from(b) };
        // Evgenij: the i that j became merges with the i before it.
        if !(c == 'i' && out.ends_with('i')) {
            out.push(c);
        }
    }
    out
}

/// Similarity of two spellings that differ only by [`loose`] letters.
pub const LOOSE_SIMILARITY: f32 = 0.95;

/// Close spellings: few enough edits for the word's length, compared on
/// the stems when both words carry a surname ending (so that the shared
/// "-ov" of Ataev and Annaev does not make them alike), then scored by
/// Jaro-Winkler on the whole skeletons, as the domain notes recommend.
///
/// A word and the same word with a surname ending are two words: Rustam
/// is not Rustamov, though Jaro-Winkler puts them at 0.95.
fn spelling_similarity(a: &str, b: &str) -> Option<f32> {
    let (stem_a, stem_b) = match (surname_stem(a), surname_stem(b)) {
        (Some((sa, ca)), Some((sb, cb))) if ca == cb => (sa, sb),
        (Some(_), None) | (None, Some(_)) if a.len().abs_diff(b.len()) >= 2 => return None,
        _ => (a, b),
    };
    let (stem_a, stem_b) = (loose(stem_a), loose(stem_b));
    let edits = strsim::damerau_levenshtein(&stem_a, &stem_b);
    if edits > allowed_edits(stem_a.len().min(stem_b.len())) {
        return None;
    }
    let jw = strsim::jaro_winkler(&loose(a), &loose(b));
    (jw >= SPELLING_FLOOR).then_some(jw as f32)
}

/// Whether two close spellings differ only in their vowels, as
/// transliterations of one word do (Kazakh 2018 writes У as ý: Ýmed for
/// Умед), and not as a man's and a woman's name do (Nodir, Nodira).
pub fn vowels_only_apart(a: &str, b: &str) -> bool {
    let gendered = |x: &str, y: &str| x.strip_suffix('a') == Some(y);
    phonetic_key(&loose(a)) == phonetic_key(&loose(b)) && !gendered(a, b) && !gendered(b, a)
}

/// Weight of a word in a name: a patronymic is often left out by whoever
/// wrote the name down, so its absence costs little.
pub fn word_weight(role: NameRole) -> f64 {
    match role {
        NameRole::Patronymic => 0.3,
        NameRole::Surname | NameRole::Name | NameRole::GivenName => 1.0,
    }
}

/// Aligns query words with a name's words in any order and scores the
/// result in 0..1.
///
/// The score is the weighted share of the query that found a partner,
/// times the square root of the weighted share of the name that did. What
/// the officer typed must be explained; a stored name with a word the
/// officer did not type (a second given name, a patronymic) costs less,
/// because passports and lists disagree on how much of a name they carry.
/// A lone surname against a two-word name scores 0.71: listed, never an
/// alert.
///
/// The chosen pairs, best first, are left in `pairs`, which the caller
/// reuses across candidates so that scoring allocates nothing.
pub fn align_into(
    query_roles: &[NameRole],
    name_len: usize,
    name_role: impl Fn(usize) -> NameRole,
    mut similarity: impl FnMut(usize, usize) -> Option<TokenSim>,
    pairs: &mut Vec<(usize, usize, TokenSim)>,
) -> f64 {
    pairs.clear();
    for q in 0..query_roles.len() {
        for n in 0..name_len {
            if let Some(sim) = similarity(q, n) {
                pairs.push((q, n, sim));
            }
        }
    }
    pairs.sort_unstable_by(|a, b| b.2.similarity.total_cmp(&a.2.similarity).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    let (mut used_query, mut used_name, mut kept) = (0u64, 0u64, 0);
    for i in 0..pairs.len() {
        let (q, n, _) = pairs[i];
        let (qb, nb) = (1u64 << q.min(63), 1u64 << n.min(63));
        if used_query & qb != 0 || used_name & nb != 0 {
            continue;
        }
        used_query |= qb;
        used_name |= nb;
        pairs[kept] = pairs[i];
        kept += 1;
    }
    pairs.truncate(kept);
    let query_total: f64 = query_roles.iter().map(|r| word_weight(*r)).sum();
    let name_total: f64 = (0..name_len).map(|n| word_weight(name_role(n))).sum();
    let query_covered: f64 = pairs.iter().map(|(q, _, s)| f64::from(s.similarity) * word_weight(query_roles[*q])).sum();
    let name_covered: f64 = pairs.iter().map(|(_, n, s)| f64::from(s.similarity) * word_weight(name_role(*n))).sum();
    if query_total > 0.0 && name_total > 0.0 {
        (query_covered / query_total) * (name_covered / name_total).sqrt()
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::fold::{name_tokens, role_of};

    fn sim(a: &str, b: &str) -> Option<TokenSim> {
        token_similarity(&name_tokens(a)[0], &name_tokens(b)[0])
    }

    fn score(query: &str, name: &str) -> f64 {
        let q = name_tokens(query);
        let n = name_tokens(name);
        let qr: Vec<_> = q.iter().map(|t| role_of(t)).collect();
        let nr: Vec<_> = n.iter().map(|t| role_of(t)).collect();
        align_into(&qr, nr.len(), |j| nr[j], |i, j| token_similarity(&q[i], &n[j]), &mut Vec::new())
    }

    #[test]
    fn variants_typos_and_equivalents_are_close_different_names_are_not() {
        assert_eq!(sim("Mukhammad", "Муҳаммад").map(|s| s.how), Some(MatchHow::Transliteration));
        assert_eq!(sim("Magomed", "Muhammad").map(|s| s.how), Some(MatchHow::Equivalent));
        assert_eq!(sim("Ibragimov", "Ibrohimov").map(|s| s.how), Some(MatchHow::Equivalent));
        assert_eq!(sim("Mukhamamd", "Mukhammad").map(|s| s.how), Some(MatchHow::Spelling));
        assert_eq!(sim("Aliev", "Alimov"), None);
        assert_eq!(sim("Ataev", "Amanov"), None);
        // One letter apart: a typo or another family. The index discounts it
        // when the officer typed a name that is itself on the list.
        assert_eq!(sim("Ataev", "Annaev").map(|s| s.how), Some(MatchHow::Spelling));
        assert!(sim("CHAMSHED", "Ҷамшед").is_some());
        assert!(vowels_only_apart("umed", "imed"));
        assert_eq!(sim("Evgenij", "Yevgeniy").map(|s| s.how), Some(MatchHow::Transliteration));
        assert_eq!(sim("Sejtkali", "Сейткали").map(|s| s.how), Some(MatchHow::Transliteration));
        assert_eq!(sim("Najmiddin", "Нажмиддин").map(|s| s.how), Some(MatchHow::Transliteration));
        assert_eq!(sim("Najmiddin", "Наймиддин").map(|s| s.how), Some(MatchHow::Transliteration));
        assert!(!vowels_only_apart("nodir", "nodira"));
        assert_eq!(sim("Rahmonzoda", "Рахмонов").map(|s| s.similarity), Some(SUFFIX_SIMILARITY));
        assert_eq!(sim("Karimov", "Rahimov"), None);
        assert_eq!(sim("Rustam", "Rustamov"), None);
        assert!(sim("Karimv", "Karimov").is_some());
    }

    #[test]
    fn order_does_not_matter_and_partial_names_score_lower() {
        let full = score("Mukhammad Aliev", "Мухаммад Алиев");
        assert!((full - 1.0).abs() < 1e-9);
        assert!((score("ALIEV<<MUKHAMMAD", "Мухаммад Алиев") - 1.0).abs() < 1e-9);
        assert!(score("Aliev", "Мухаммад Алиев") < 0.75);
        assert!(score("Mukhammad Aliev", "Мухаммад Алиев Каримович") > 0.9);
        assert!(score("Rustam Aliev", "Мухаммад Алиев") < 0.4);
    }
}
