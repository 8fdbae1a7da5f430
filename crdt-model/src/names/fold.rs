//! From any spelling of a name to one Latin skeleton per word.
//!
//! The steps follow the domain notes: NFC and case folding; national
//! Cyrillic letters folded to the Russian letter officers type in their
//! place; Cyrillic to Latin letter by letter; Latin diacritics of the
//! Turkic alphabets to ASCII; then the digraph families folded, so that every
//! system's spelling of one Cyrillic name lands on the same string. Each rule
//! that fires is remembered as a [`Fold`], so an officer can be told *why*
//! `Mukhammad` and `Муҳаммад` are the same word.

use unicode_normalization::UnicodeNormalization;

/// A transliteration difference the skeleton deliberately ignores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fold {
    /// Ҳ, Қ, Ғ, Ң, Ө, Ұ, Ү, Ә, І … read as their Russian neighbours.
    NationalLetter,
    Cyrillic,
    /// ž, ç, ş, ı, ä, ö, ü, ğ, ñ … and the apostrophes of o‘ and g‘.
    Diacritic,
    /// kh / x / h
    Kh,
    /// zh / j / dzh
    Zh,
    /// ts / c / cz
    Ts,
    /// shch / shh / sch / sh
    Shch,
    /// gh / g, q / k, w / v
    Consonant,
    /// y / i, and ye / ie / e, yu / iu, ya / ia
    IotatedVowel,
    /// yo / io / ë / ё
    Yo,
    /// mm / m
    DoubleLetter,
}

impl Fold {
    pub fn label(self) -> &'static str {
        match self {
            Self::NationalLetter => "national letter",
            Self::Cyrillic => "Cyrillic→Latin",
            Self::Diacritic => "diacritics",
            Self::Kh => "kh/x/h",
            Self::Zh => "zh/j/dzh",
            Self::Ts => "ts/c",
            Self::Shch => "shch/sh",
            Self::Consonant => "q/k, gh/g, w/v",
            Self::IotatedVowel => "y/i, ye/e",
            Self::Yo => "yo/ё",
            Self::DoubleLetter => "double letters",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Which folds fired while building a skeleton.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folds(u16);

impl Folds {
    fn add(&mut self, fold: Fold) {
        self.0 |= fold.bit();
    }

    pub fn union(self, other: Folds) -> Folds {
        Folds(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Fold> {
        const ALL: [Fold; 11] = [
            Fold::NationalLetter,
            Fold::Cyrillic,
            Fold::Diacritic,
            Fold::Kh,
            Fold::Zh,
            Fold::Ts,
            Fold::Shch,
            Fold::Consonant,
            Fold::IotatedVowel,
            Fold::Yo,
            Fold::DoubleLetter,
        ];
        ALL.into_iter().filter(move |f| self.0 & f.bit() != 0)
    }
}

/// A name written with Russian letters only, as a Russian-speaking clerk
/// writes a Kazakh or Tajik name (Нұрсұлтан → Нурсултан, Ҷамшед → Чамшед).
pub fn russian_letters(text: &str) -> String {
    text.chars()
        .map(|c| {
            let lower = c.to_lowercase().next().unwrap_or(c);
            match fold_national_cyrillic(lower) {
                Some(r) if c != lower => r.to_uppercase().next().unwrap_or(r),
                Some(r) => r,
                None => c,
            }
        })
        .collect()
}

/// Kazakh, Kyrgyz, Tajik, Uzbek and Turkmen Cyrillic letters as the Russian
/// letter officers type in their place (Нұрсұлтан → Нурсултан).
fn fold_national_cyrillic(c: char) -> Option<char> {
    Some(match c {
        'қ' => 'к',
        'ғ' => 'г',
        'ң' | 'ӊ' => 'н',
        'ө' => 'о',
        'ұ' | 'ү' | 'ў' | 'ӯ' => 'у',
        'ҳ' | 'һ' => 'х',
        // Tajik Ҷ and Turkmen Җ sound as Russian Дж; Russian clerks write
        // Джамшед, Tajik Latin Jamshed: both meet in the zh/j family.
        'ҷ' | 'ҹ' | 'җ' => 'ж',
        'ә' => 'а',
        'і' | 'ӣ' => 'и',
        _ => return None,
    })
}

/// Russian Cyrillic to Latin; close to ICAO 9303 except Ё, which most
/// Central Asian names spell "yo" (Бахтиёр → Bakhtiyor).
fn cyrillic_to_latin(c: char) -> Option<&'static str> {
    Some(match c {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' => "g",
        'д' => "d",
        'е' | 'э' => "e",
        'ё' => "yo",
        'ж' => "zh",
        'з' => "z",
        'и' => "i",
        'й' => "y",
        'к' => "k",
        'л' => "l",
        'м' => "m",
        'н' => "n",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'у' => "u",
        'ф' => "f",
        'х' => "kh",
        'ц' => "ts",
        'ч' => "ch",
        'ш' => "sh",
        'щ' => "shch",
        'ы' => "y",
        'ъ' | 'ь' => "",
        'ю' => "yu",
        'я' => "ya",
        _ => return None,
    })
}

/// Latin letters of the Central Asian alphabets and of GOST and BGN/PCGN
/// marks folded to ASCII.
fn latin_to_ascii(c: char) -> Option<&'static str> {
    Some(match c {
        'ž' => "zh",
        'ç' | 'č' => "ch",
        'ş' | 'š' => "sh",
        'ý' => "y",
        'ň' | 'ñ' | 'ń' | 'ŋ' => "n",
        'ä' | 'á' | 'à' | 'â' | 'ă' | 'ā' => "a",
        'ö' | 'ó' | 'ò' | 'ô' | 'ō' => "o",
        'ü' | 'ú' | 'ù' | 'û' | 'ū' | 'ŭ' => "u",
        'é' | 'è' | 'ê' | 'ə' | 'ē' => "e",
        'ë' => "yo",
        'í' | 'ì' | 'î' | 'ï' | 'ı' | 'ī' | 'İ' => "i",
        'ğ' | 'ǵ' | 'ƣ' => "g",
        'ḩ' | 'ḥ' => "h",
        // Uzbek o‘ and g‘, GOST's backticks and BGN's primes carry marks
        // that officers rarely type.
        '\'' | '‘' | '’' | 'ʻ' | 'ʼ' | '`' | '´' | '″' | '′' | '“' | '”' | '"' => "",
        _ => return None,
    })
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '‘' | '’' | 'ʻ' | 'ʼ' | '`' | '´' | '″' | '′')
}

/// One word of a name: as written, and as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameWord {
    pub text: String,
    pub skeleton: String,
}

/// The words of a name, in order. Any character that is not a letter, a
/// digit or an apostrophe separates words, so the MRZ form
/// `ALIEV<<MUKHAMMAD` and a hyphenated surname both split. Words whose
/// skeleton is empty (a lone soft sign) are dropped.
pub fn name_words(text: &str) -> Vec<NameWord> {
    let nfc: String = text.nfc().collect();
    nfc.split(|c: char| !(c.is_alphanumeric() || is_apostrophe(c)))
        .filter_map(|word| {
            let skeleton = skeleton(word).0;
            (!skeleton.is_empty()).then(|| NameWord { text: word.to_string(), skeleton })
        })
        .collect()
}

/// The skeletons of a name's words.
pub fn name_tokens(text: &str) -> Vec<String> {
    name_words(text).into_iter().map(|w| w.skeleton).collect()
}

/// The skeleton of one word, with the folds that fired on the way.
pub fn skeleton(word: &str) -> (String, Folds) {
    let mut folds = Folds::default();
    let mut latin = String::with_capacity(word.len() * 2);
    let mut chars = word.chars().flat_map(char::to_lowercase).peekable();
    while let Some(c) = chars.next() {
        // Uzbek Latin o‘ is Ў, which Russian writes as у: O‘tkir is Уткир,
        // and Yo‘ldoshev must not read as Ё. (GOST's backtick after o is
        // Kazakh Ө and stays o.)
        if c == 'o' && chars.peek().is_some_and(|n| matches!(n, '‘' | '’' | '\'' | 'ʻ' | 'ʼ')) {
            chars.next();
            folds.add(Fold::NationalLetter);
            latin.push('u');
            continue;
        }
        let c = match fold_national_cyrillic(c) {
            Some(russian) => {
                folds.add(Fold::NationalLetter);
                russian
            }
            None => c,
        };
        if let Some(l) = cyrillic_to_latin(c) {
            folds.add(Fold::Cyrillic);
            latin.push_str(l);
        } else if let Some(ascii) = latin_to_ascii(c) {
            folds.add(Fold::Diacritic);
            latin.push_str(ascii);
        } else if c.is_ascii_alphanumeric() {
            latin.push(c);
        }
    }
    (fold_digraphs(&latin, &mut folds), folds)
}

/// Digraph families, longest first, then y/i, then doubled letters.
const DIGRAPHS: &[(&str, &str, Fold)] = &[
    ("shch", "sh", Fold::Shch),
    ("shh", "sh", Fold::Shch),
    ("sch", "sh", Fold::Shch),
    ("dzh", "j", Fold::Zh),
    ("dj", "j", Fold::Zh),
    ("zh", "j", Fold::Zh),
    ("kh", "h", Fold::Kh),
    ("x", "h", Fold::Kh),
    ("gh", "g", Fold::Consonant),
    ("ts", "c", Fold::Ts),
    ("cz", "c", Fold::Ts),
    ("tz", "c", Fold::Ts),
    ("q", "k", Fold::Consonant),
    ("w", "v", Fold::Consonant),
    // ICAO writes Ё as E, Uzbek Latin as yo, Kazakh Latin as io:
    // Bakhtier, Baxtiyor and Бахтиёр are one name.
    ("yo", "e", Fold::Yo),
    ("io", "e", Fold::Yo),
    ("y", "i", Fold::IotatedVowel),
];

fn is_vowel(b: u8) -> bool {
    matches!(b, b'a' | b'e' | b'i' | b'o' | b'u')
}

fn fold_digraphs(latin: &str, folds: &mut Folds) -> String {
    let bytes = latin.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    'scan: while i < bytes.len() {
        for (from, to, fold) in DIGRAPHS {
            if bytes[i..].starts_with(from.as_bytes()) {
                out.extend_from_slice(to.as_bytes());
                folds.add(*fold);
                i += from.len();
                continue 'scan;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Doubled consonants are spelling (Muhammad, Mukhamad); a doubled i is
    // left by the y/i fold (Aliyev). Other doubled vowels are kept: they
    // are rare in names and mostly typos, which should cost one edit.
    out.dedup_by(|b, a| {
        let doubled = a == b && (!is_vowel(*a) || *a == b'i');
        if doubled {
            folds.add(Fold::DoubleLetter);
        }
        doubled
    });
    // "ye", "ie" and "e" are one sound after the y/i fold: Aliyev = Алиев.
    let mut folded = Vec::with_capacity(out.len());
    let mut j = 0;
    while j < out.len() {
        if out[j] == b'i' && out.get(j + 1) == Some(&b'e') {
            folds.add(Fold::IotatedVowel);
            j += 1;
            continue;
        }
        folded.push(out[j]);
        j += 1;
    }
    String::from_utf8(folded).unwrap_or_default()
}

/// A coarse sound key for blocking: consonant classes in order, vowels and
/// h dropped, adjacent repeats collapsed. Transliteration variants share it, and one
/// typo moves it by at most one symbol.
pub fn phonetic_key(skeleton: &str) -> String {
    let bytes = skeleton.as_bytes();
    let mut key = String::with_capacity(bytes.len());
    let mut last = None;
    let mut i = 0;
    while i < bytes.len() {
        let (class, width) = match (bytes[i], bytes.get(i + 1)) {
            (b's', Some(b'h')) => (Some('x'), 2),
            (b'c', Some(b'h')) => (Some('q'), 2),
            (b'a' | b'e' | b'i' | b'o' | b'u' | b'h', _) => (None, 1),
            (b'b' | b'p', _) => (Some('b'), 1),
            (b'v' | b'f', _) => (Some('v'), 1),
            (b'd' | b't', _) => (Some('d'), 1),
            (b'g' | b'k', _) => (Some('k'), 1),
            (b's' | b'z' | b'c', _) => (Some('s'), 1),
            (other, _) => (Some(char::from(other)), 1),
        };
        match class {
            // Adjacent consonants of one class are one sound ("dt" in
            // Akhmadtoji); the same class again after a vowel is not.
            Some(class) if last != Some(class) => key.push(class),
            _ => {}
        }
        last = class;
        i += width;
    }
    key
}

/// What part of a full name a word most likely is, judged by its ending.
/// Only used to weigh and explain a match, never to reject one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NameRole {
    Surname,
    Patronymic,
    /// Neither ending: a given name, or a surname without a suffix.
    Name,
    /// A `Name` beside a surname in the same name: explanations call it so;
    /// [`role_of`] never returns it, since one word alone cannot tell.
    GivenName,
}

impl NameRole {
    pub fn label(self) -> &'static str {
        match self {
            Self::Surname => "surname",
            Self::Patronymic => "patronymic",
            Self::Name => "name",
            Self::GivenName => "given name",
        }
    }
}

const PATRONYMIC_ENDINGS: &[&str] = &["ovich", "evich", "ovna", "evna", "ichna", "ogli", "ugli", "kizi", "ulu"];
const SURNAME_ENDINGS: &[&str] =
    &["ov", "ev", "ova", "eva", "zoda", "zode", "zade", "zada", "uli", "ian", "enko", "dze", "shvili"];

pub fn role_of(skeleton: &str) -> NameRole {
    if PATRONYMIC_ENDINGS.iter().any(|e| skeleton.len() > e.len() + 1 && skeleton.ends_with(e)) {
        NameRole::Patronymic
    } else if SURNAME_ENDINGS.iter().any(|e| skeleton.len() >= e.len() + 2 && skeleton.ends_with(e)) {
        NameRole::Surname
    } else {
        NameRole::Name
    }
}

/// Whether a surname is in its female form (Karimova) or its male form
/// (Karimov); `None` for endings without gender (-zoda, -uly, none).
pub fn surname_is_female(skeleton: &str) -> Option<bool> {
    let long_enough = |ending: &str| skeleton.len() >= ending.len() + 2 && skeleton.ends_with(ending);
    if long_enough("ova") || long_enough("eva") {
        Some(true)
    } else if long_enough("ov") || long_enough("ev") {
        Some(false)
    } else {
        None
    }
}

/// The stem of a surname built on a given name (Ibragimov → ibragim), so
/// that surnames inherit the given-name equivalents.
pub fn surname_stem(skeleton: &str) -> Option<(&str, &'static str)> {
    const ENDINGS: &[(&str, &str)] = &[
        ("ova", "ov"),
        ("eva", "ov"),
        ("ov", "ov"),
        ("ev", "ov"),
        ("zoda", "zoda"),
        ("zade", "zoda"),
        ("zada", "zoda"),
    ];
    ENDINGS.iter().find_map(|(ending, class)| {
        let stem = skeleton.strip_suffix(ending)?;
        (stem.len() >= 3).then_some((stem, *class))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::translit::{Romanization, mrz_name};

    fn skel(text: &str) -> Vec<String> {
        name_tokens(text)
    }

    #[test]
    fn every_system_meets_the_cyrillic_original() {
        // GOST's j for Й is left to the scorer (score::loose): j is Ж in
        // every Turkic Latin alphabet.
        for name in ["Мухаммад Алиев", "Жамшид Хасанов", "Бахтиёр Юсупов", "Нурлан Садыков", "Шерзод Рахимов"]
        {
            let original = skel(name);
            for system in Romanization::ALL {
                let spelt = system.romanize(name);
                let tokens = skel(&spelt);
                // Kazakh 2018 writes У as ý, which no fold can tell from Й:
                // the scorer, not the skeleton, bridges that.
                if system == Romanization::Kazakh2018 && name.contains('у') {
                    continue;
                }
                assert_eq!(tokens, original, "{name} in {} is {spelt}", system.label());
            }
        }
    }

    #[test]
    fn the_domain_notes_variants_meet() {
        let muhammad = skel("Мухаммад");
        for variant in ["Mukhammad", "Muhammad", "MUXAMMAD", "Муҳаммад", "muhammad"] {
            assert_eq!(skel(variant), muhammad, "{variant}");
        }
        assert_eq!(skel("Нұрсұлтан"), skel("Нурсултан"));
        assert_eq!(skel("Aliyev"), skel("Алиев"));
        assert_eq!(skel("Bakhtiyor"), skel("Бахтиёр"));
        assert_eq!(skel("Dzhamshid"), skel("Jamshid"));
        assert_eq!(skel("G‘ulomov"), skel("Гуломов"));
        assert_eq!(skel("O‘tkir"), skel("Ўткир"));
        assert_eq!(skel("Yo‘ldoshev"), skel("Йўлдошев"));
        assert_ne!(skel("Najmiddin"), skel("Наймиддин"));
    }

    #[test]
    fn mrz_names_split_into_words() {
        let words = name_words(&mrz_name("Алиев", "Мухаммад"));
        assert_eq!(words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(), ["ALIEV", "MUKHAMMAD"]);
        assert_eq!(name_tokens("Abdurakhmonov-Khudoiberdiev"), ["abdurahmonov", "hudoiberdev"]);
    }

    #[test]
    fn folds_name_what_differs() {
        let (_, folds) = skeleton("Mukhammad");
        let labels: Vec<_> = folds.iter().map(Fold::label).collect();
        assert_eq!(labels, ["kh/x/h", "double letters"]);
    }

    #[test]
    fn phonetic_keys_survive_transliteration_not_different_names() {
        assert_eq!(phonetic_key(&skel("Mukhammad")[0]), phonetic_key(&skel("Muxammad")[0]));
        assert_eq!(phonetic_key("muhamad"), "mmd");
        assert_ne!(phonetic_key(&skel("Karimov")[0]), phonetic_key(&skel("Rahimov")[0]));
    }

    #[test]
    fn roles_follow_endings() {
        assert_eq!(role_of("alev"), NameRole::Surname);
        assert_eq!(role_of("karimovich"), NameRole::Patronymic);
        assert_eq!(role_of("muhamad"), NameRole::Name);
        assert_eq!(role_of("rahmonzoda"), NameRole::Surname);
        assert_eq!(surname_stem("ibragimov"), Some(("ibragim", "ov")));
        assert_eq!(surname_is_female(&skel("Алиева")[0]), Some(true));
        assert_eq!(surname_is_female(&skel("Aliyev")[0]), Some(false));
        assert_eq!(surname_is_female(&skel("Rahmonzoda")[0]), None);
    }
}
