//! Explicit romanisation tables, one per system a Central Asian name meets
//! on its way to a border post.
//!
//! The matcher never needs to know which system produced a spelling: it
//! folds every spelling to one skeleton (see [`super::fold`]). These tables
//! exist so that the evaluation set can render a Cyrillic name the way each
//! passport office, consulate or database would, and so that tests can pin
//! down that every system's output meets the Cyrillic original. The Russian
//! letters follow the published standards. The national letters are
//! simplified: BGN/PCGN has one table per language (Tajik Ҳ is h there, Ӣ
//! í, Ӯ ŭ), here one row serves Kazakh, Tajik and Uzbek; Kazakh 2021 writes
//! capital И as İ, here I. Matching folds all of these alike, so the
//! simplifications change spellings, not results.

/// A romanisation system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Romanization {
    /// ICAO Doc 9303 part 3 (machine-readable travel documents), 2015 table.
    Icao9303,
    /// GOST 7.79-2000 system B (Russian library and archive practice).
    Gost779B,
    /// BGN/PCGN 1947 for Russian, with the BGN/PCGN letters for the
    /// Kazakh, Tajik and Uzbek national letters.
    BgnPcgn,
    /// Uzbek official Latin alphabet (1995, as revised).
    UzbekLatin,
    /// Tajik Latin as used in Tajik passports and the 1920s–30s alphabet's
    /// modern readings (Ҳ→h, Х→x, Ҷ→j, Ғ→gh, Қ→q).
    TajikLatin,
    /// Kazakh Latin of February 2018 (acute accents; И/Й→ı, У→ý).
    Kazakh2018,
    /// Kazakh Latin of January 2021 (Ä Ğ Ñ Ö Ū Ü Ş Ç; І→ı).
    Kazakh2021,
    /// Turkmen Latin (1999): Ж→ž, Ч→ç, Й→ý, Ң→ň, В→w.
    TurkmenLatin,
}

/// Russian letters in alphabetical order; each table lists its output for
/// these 33 letters in the same order.
const RUSSIAN: [char; 33] = [
    'а', 'б', 'в', 'г', 'д', 'е', 'ё', 'ж', 'з', 'и', 'й', 'к', 'л', 'м', 'н', 'о', 'п', 'р', 'с', 'т', 'у', 'ф', 'х',
    'ц', 'ч', 'ш', 'щ', 'ъ', 'ы', 'ь', 'э', 'ю', 'я',
];

/// The national letters of Kazakh, Kyrgyz, Tajik, Uzbek and Turkmen
/// Cyrillic, in the order of each table's second half.
const NATIONAL: [char; 15] = ['ә', 'ғ', 'қ', 'ң', 'ө', 'ұ', 'ү', 'һ', 'і', 'ҳ', 'ҷ', 'ӣ', 'ӯ', 'ў', 'җ'];

struct Table {
    russian: [&'static str; 33],
    national: [&'static str; 15],
    /// Е is written "ye" (and Ё "yo"-like) at the start of a word and after
    /// a vowel, Ъ or Ь, as BGN/PCGN and the Turkic Latin alphabets do.
    iotated_e: &'static str,
}

#[rustfmt::skip]
const ICAO: Table = Table {
    russian: ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "i", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
        "f", "kh", "ts", "ch", "sh", "shch", "ie", "y", "", "e", "iu", "ia"],
    // Doc 9303 collapses the national letters onto the nearest Russian ones.
    national: ["a", "g", "k", "n", "o", "u", "u", "h", "i", "kh", "ch", "i", "u", "u", "zh"],
    iotated_e: "e",
};

#[rustfmt::skip]
const GOST_B: Table = Table {
    russian: ["a", "b", "v", "g", "d", "e", "yo", "zh", "z", "i", "j", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
        "f", "x", "cz", "ch", "sh", "shh", "``", "y`", "`", "e`", "yu", "ya"],
    // System B marks national letters with a backtick after the base letter.
    national: ["a`", "g`", "k`", "n`", "o`", "u`", "u``", "h", "i`", "x`", "ch`", "i`", "u`", "u`", "zh`"],
    iotated_e: "e",
};

#[rustfmt::skip]
const BGN: Table = Table {
    russian: ["a", "b", "v", "g", "d", "e", "ë", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
        "f", "kh", "ts", "ch", "sh", "shch", "\u{201d}", "y", "\u{2019}", "e", "yu", "ya"],
    national: ["ä", "gh", "q", "ng", "ö", "ū", "ü", "h", "i", "ḩ", "j", "ī", "ū", "ŭ", "zh"],
    iotated_e: "ye",
};

#[rustfmt::skip]
const UZBEK: Table = Table {
    russian: ["a", "b", "v", "g", "d", "e", "yo", "j", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
        "f", "x", "ts", "ch", "sh", "sh", "\u{2019}", "i", "", "e", "yu", "ya"],
    national: ["a", "g\u{2018}", "q", "ng", "o", "u", "u", "h", "i", "h", "j", "i", "u", "o\u{2018}", "j"],
    iotated_e: "ye",
};

#[rustfmt::skip]
const TAJIK: Table = Table {
    russian: ["a", "b", "v", "g", "d", "e", "yo", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
        "f", "x", "ts", "ch", "sh", "sh", "\u{2019}", "i", "", "e", "yu", "ya"],
    national: ["a", "gh", "q", "ng", "o", "u", "u", "h", "i", "h", "j", "ī", "ū", "u", "j"],
    iotated_e: "ye",
};

#[rustfmt::skip]
const KAZAKH_2018: Table = Table {
    russian: ["a", "b", "v", "g", "d", "e", "ıo", "j", "z", "ı", "ı", "k", "l", "m", "n", "o", "p", "r", "s", "t", "ý",
        "f", "h", "ts", "ch", "sh", "shch", "", "y", "", "e", "ıý", "ıa"],
    national: ["á", "ǵ", "q", "ń", "ó", "u", "ú", "h", "i", "h", "ch", "ı", "u", "u", "j"],
    iotated_e: "e",
};

#[rustfmt::skip]
const KAZAKH_2021: Table = Table {
    russian: ["a", "b", "v", "g", "d", "e", "io", "j", "z", "i", "i", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
        "f", "h", "ts", "ç", "ş", "şş", "", "y", "", "e", "iu", "ia"],
    national: ["ä", "ğ", "q", "ñ", "ö", "ū", "ü", "h", "ı", "h", "ç", "i", "ū", "u", "j"],
    iotated_e: "e",
};

#[rustfmt::skip]
const TURKMEN: Table = Table {
    russian: ["a", "b", "w", "g", "d", "e", "ýo", "ž", "z", "i", "ý", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
        "f", "h", "s", "ç", "ş", "şç", "", "y", "", "e", "ýu", "ýa"],
    national: ["ä", "g", "k", "ň", "ö", "u", "ü", "h", "i", "h", "j", "i", "u", "u", "j"],
    iotated_e: "ýe",
};

impl Romanization {
    pub const ALL: [Romanization; 8] = [
        Self::Icao9303,
        Self::Gost779B,
        Self::BgnPcgn,
        Self::UzbekLatin,
        Self::TajikLatin,
        Self::Kazakh2018,
        Self::Kazakh2021,
        Self::TurkmenLatin,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Icao9303 => "ICAO 9303",
            Self::Gost779B => "GOST 7.79-B",
            Self::BgnPcgn => "BGN/PCGN",
            Self::UzbekLatin => "Uzbek Latin",
            Self::TajikLatin => "Tajik Latin",
            Self::Kazakh2018 => "Kazakh Latin 2018",
            Self::Kazakh2021 => "Kazakh Latin 2021",
            Self::TurkmenLatin => "Turkmen Latin",
        }
    }

    fn table(self) -> &'static Table {
        match self {
            Self::Icao9303 => &ICAO,
            Self::Gost779B => &GOST_B,
            Self::BgnPcgn => &BGN,
            Self::UzbekLatin => &UZBEK,
            Self::TajikLatin => &TAJIK,
            Self::Kazakh2018 => &KAZAKH_2018,
            Self::Kazakh2021 => &KAZAKH_2021,
            Self::TurkmenLatin => &TURKMEN,
        }
    }

    /// Romanises a Cyrillic text; other characters pass through. Case
    /// follows the source: `МУХАММАД` gives `MUKHAMMAD`, `Мухаммад` gives
    /// `Mukhammad`.
    pub fn romanize(self, text: &str) -> String {
        let table = self.table();
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len() * 2);
        for (i, &c) in chars.iter().enumerate() {
            let lower = c.to_lowercase().next().unwrap_or(c);
            let prev = i.checked_sub(1).and_then(|p| chars.get(p)).map(|p| p.to_lowercase().next().unwrap_or(*p));
            let next = chars.get(i + 1).map(|n| n.to_lowercase().next().unwrap_or(*n));
            let Some(latin) = self.letter(table, lower, prev, next) else {
                out.push(c);
                continue;
            };
            if c == lower {
                out.push_str(latin);
                continue;
            }
            // An upper-case letter inside an upper-case word stays all capitals.
            let word_in_capitals = chars.get(i + 1).is_some_and(|n| n.is_uppercase())
                || (chars.get(i + 1).is_none_or(|n| !n.is_alphabetic())
                    && i.checked_sub(1).and_then(|p| chars.get(p)).is_some_and(|p| p.is_uppercase()));
            if word_in_capitals {
                out.extend(latin.chars().flat_map(char::to_uppercase));
            } else {
                let mut letters = latin.chars();
                if let Some(first) = letters.next() {
                    out.extend(first.to_uppercase());
                    out.push_str(letters.as_str());
                }
            }
        }
        out
    }

    fn letter(self, table: &Table, c: char, prev: Option<char>, next: Option<char>) -> Option<&'static str> {
        if let Some(i) = RUSSIAN.iter().position(|r| *r == c) {
            let iotated = prev.is_none_or(|p| !p.is_alphabetic() || is_vowel_or_sign(p));
            if c == 'е' && iotated {
                return Some(table.iotated_e);
            }
            if self == Self::BgnPcgn && c == 'ё' && iotated {
                return Some("yë");
            }
            // GOST 7.79-B writes Ц as "c" before the front vowels.
            if self == Self::Gost779B && c == 'ц' && next.is_some_and(|n| matches!(n, 'е' | 'и' | 'ы' | 'й' | 'э'))
            {
                return Some("c");
            }
            return Some(table.russian[i]);
        }
        NATIONAL.iter().position(|n| *n == c).map(|i| table.national[i])
    }
}

fn is_vowel_or_sign(c: char) -> bool {
    matches!(
        c,
        'а' | 'е'
            | 'ё'
            | 'и'
            | 'о'
            | 'у'
            | 'ы'
            | 'э'
            | 'ю'
            | 'я'
            | 'ъ'
            | 'ь'
            | 'ә'
            | 'ө'
            | 'ұ'
            | 'ү'
            | 'і'
            | 'ў'
    )
}

/// Longest name field of the machine-readable zone of a passport (TD3).
pub const MRZ_NAME_LENGTH: usize = 39;

/// The name field of a passport's machine-readable zone: ICAO letters in
/// capitals, `SURNAME<<GIVEN<NAMES`, truncated at 39 characters. A Cyrillic
/// name is romanised by ICAO 9303 first; Latin diacritics lose their marks
/// (Aliýew → ALIYEW), as Doc 9303 allows.
pub fn mrz_name(surname: &str, given: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let field = |text: &str| -> String {
        let latin = Romanization::Icao9303.romanize(text);
        let unmarked: String = latin
            .nfd()
            .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
            .map(|c| match c {
                'ı' => 'i',
                'ə' | 'Ə' => 'a',
                other => other,
            })
            .collect();
        let mut out = String::new();
        for c in unmarked.chars().flat_map(char::to_uppercase) {
            if c.is_ascii_uppercase() {
                out.push(c);
            } else if !out.ends_with('<') && !out.is_empty() {
                out.push('<');
            }
        }
        out.trim_end_matches('<').to_string()
    };
    let mut out = format!("{}<<{}", field(surname), field(given));
    out.truncate(MRZ_NAME_LENGTH);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_through_every_system() {
        let name = "Мухаммад Алиев";
        let got: Vec<String> = Romanization::ALL.iter().map(|s| s.romanize(name)).collect();
        assert_eq!(
            got,
            [
                "Mukhammad Aliev",
                "Muxammad Aliev",
                "Mukhammad Aliyev",
                "Muxammad Aliyev",
                "Muxammad Aliyev",
                "Mýhammad Alıev",
                "Muhammad Aliev",
                "Muhammad Aliýew",
            ]
        );
    }

    #[test]
    fn national_letters_follow_each_system() {
        assert_eq!(Romanization::UzbekLatin.romanize("Ғулом Ўткир"), "G\u{2018}ulom O\u{2018}tkir");
        assert_eq!(Romanization::Icao9303.romanize("Нұрсұлтан"), "Nursultan");
        assert_eq!(Romanization::Kazakh2021.romanize("Нұрсұлтан Жақсыбеков"), "Nūrsūltan Jaqsybekov");
        assert_eq!(Romanization::TajikLatin.romanize("Ҷамшед Раҳмонов"), "Jamshed Rahmonov");
        assert_eq!(Romanization::TurkmenLatin.romanize("Довлет Чарыев"), "Dowlet Çaryýew");
        assert_eq!(Romanization::Gost779B.romanize("Цыбиков"), "Cy`bikov");
    }

    #[test]
    fn capitals_stay_capitals() {
        assert_eq!(Romanization::Icao9303.romanize("ХАСАНОВ Жамшид"), "KHASANOV Zhamshid");
    }

    #[test]
    fn mrz_form_is_capitals_and_fillers_truncated() {
        assert_eq!(mrz_name("Алиев", "Мухаммад"), "ALIEV<<MUKHAMMAD");
        assert_eq!(
            mrz_name("Abdurakhmonov-Khudoiberdiev", "Muhammadali Sulaymon"),
            "ABDURAKHMONOV<KHUDOIBERDIEV<<MUHAMMADAL"
        );
        assert_eq!(mrz_name("Abdurakhmonov-Khudoiberdiev", "Muhammadali").len(), MRZ_NAME_LENGTH);
        assert_eq!(mrz_name("Aliýew", "Nūrsūltan"), "ALIYEW<<NURSULTAN");
    }
}
