//! Text normalisation shared by validation, storage keys and search.
//!
//! Issue 2 keeps one simple transliteration: national Cyrillic letters fold
//! to Russian ones, Russian Cyrillic maps to Latin letter by letter, and Latin
//! diacritics of the Central Asian alphabets fold to plain ASCII. The full
//! cross-script matcher builds on these functions.

use unicode_normalization::UnicodeNormalization;

use crate::error::ValidationError;
use crate::vocab::Script;

/// NFC, lower case, whitespace collapsed. The identity of a name within an
/// entry's name set, so two posts adding the same name converge to one.
pub fn fold_text(text: &str) -> String {
    let nfc: String = text.nfc().collect();
    nfc.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Which script a name is written in, judged by its letters.
pub fn script_of(text: &str) -> Script {
    let (mut cyrillic, mut latin, mut other) = (0usize, 0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        if is_cyrillic(c) {
            cyrillic += 1;
        } else if c.is_ascii_alphabetic() || ('\u{00C0}'..='\u{024F}').contains(&c) {
            latin += 1;
        } else {
            other += 1;
        }
    }
    match (cyrillic > 0, latin > 0, other > 0) {
        (true, false, false) => Script::Cyrillic,
        (false, true, false) => Script::Latin,
        (false, false, _) if other > 0 => Script::Other,
        (false, false, false) => Script::Other,
        _ => Script::Mixed,
    }
}

fn is_cyrillic(c: char) -> bool {
    ('\u{0400}'..='\u{04FF}').contains(&c) || ('\u{0500}'..='\u{052F}').contains(&c)
}

/// Folds Kazakh, Kyrgyz, Tajik, Uzbek and Turkmen Cyrillic letters to the
/// Russian letter officers would type in their place (Нұрсұлтан → Нурсултан).
fn fold_national_cyrillic(c: char) -> char {
    match c {
        'қ' => 'к',
        'ғ' => 'г',
        'ң' => 'н',
        'ө' => 'о',
        'ұ' | 'ү' | 'ў' | 'ӯ' => 'у',
        'ҳ' | 'һ' => 'х',
        'ҷ' | 'ҹ' => 'ч',
        'ә' => 'а',
        'і' | 'ӣ' => 'и',
        'ё' => 'е',
        'ӊ' => 'н',
        other => other,
    }
}

/// Russian Cyrillic to Latin, after ICAO 9303 (Х→kh, Ж→zh, Ц→ts, Щ→shch).
fn cyrillic_to_latin(c: char) -> Option<&'static str> {
    Some(match c {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' => "g",
        'д' => "d",
        'е' | 'э' => "e",
        'ж' => "zh",
        'з' => "z",
        'и' | 'й' => "i",
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
        'ю' => "iu",
        'я' => "ia",
        _ => return None,
    })
}

/// Latin letters of the Central Asian alphabets folded to ASCII.
fn latin_to_ascii(c: char) -> Option<&'static str> {
    Some(match c {
        'ž' => "zh",
        'ç' | 'č' => "ch",
        'ş' | 'š' => "sh",
        'ý' => "y",
        'ň' | 'ñ' => "n",
        'ä' | 'á' | 'à' | 'â' | 'ă' => "a",
        'ö' | 'ó' | 'ò' | 'ô' => "o",
        'ü' | 'ú' | 'ù' | 'û' | 'ū' => "u",
        'é' | 'è' | 'ê' | 'ë' | 'ə' => "e",
        'í' | 'ì' | 'î' | 'ï' | 'ı' => "i",
        'ğ' | 'ǵ' => "g",
        'ḩ' => "h",
        // Uzbek o‘ and g‘ carry a turned comma that officers rarely type.
        '\'' | '‘' | '’' | 'ʻ' | 'ʼ' | '`' => "",
        _ => return None,
    })
}

/// The Latin skeleton of a name: folded, transliterated, ASCII only, with
/// every non-letter turned into a single space.
pub fn latin_skeleton(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in fold_text(text).chars() {
        let c = fold_national_cyrillic(c);
        if let Some(latin) = cyrillic_to_latin(c) {
            out.push_str(latin);
        } else if let Some(ascii) = latin_to_ascii(c) {
            out.push_str(ascii);
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.trim().to_string()
}

/// Tokens of a name's skeleton, e.g. `ALIEV<<MUKHAMMAD` → [aliev, mukhammad].
pub fn name_tokens(text: &str) -> Vec<String> {
    latin_skeleton(text)
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Canonical plate: upper case, Cyrillic look-alike letters as Latin, no
/// spaces, dashes or dots. `123 АВС 02` and `123ABC02` are the same plate.
pub fn normalize_plate(raw: &str) -> Result<String, ValidationError> {
    let mut out = String::new();
    for c in raw.nfc().flat_map(char::to_uppercase) {
        let mapped = match c {
            'А' => 'A',
            'В' => 'B',
            'Е' => 'E',
            'К' => 'K',
            'М' => 'M',
            'Н' => 'H',
            'О' => 'O',
            'Р' => 'P',
            'С' => 'C',
            'Т' => 'T',
            'У' => 'Y',
            'Х' => 'X',
            ' ' | '-' | '.' | '\u{00A0}' => continue,
            other => other,
        };
        out.push(mapped);
    }
    let ok = (2..=15).contains(&out.chars().count()) && out.chars().all(char::is_alphanumeric);
    if ok {
        Ok(out)
    } else {
        Err(ValidationError::Malformed {
            field: "plate",
            value: raw.to_string(),
            expected: "2 to 15 letters and digits (spaces and dashes are ignored)",
        })
    }
}

/// Canonical document number for display and storage: upper case, no spaces or dashes.
pub fn normalize_document_number(raw: &str) -> Result<String, ValidationError> {
    let out: String =
        raw.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '/' | '<')).flat_map(char::to_uppercase).collect();
    let ok = (3..=20).contains(&out.len()) && out.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(out)
    } else {
        Err(ValidationError::Malformed {
            field: "document number",
            value: raw.to_string(),
            expected: "3 to 20 Latin letters and digits",
        })
    }
}

/// Matching key of a document number: the letter O and the digit 0 are
/// confused so often on documents and keyboards that they compare equal.
pub fn document_number_key(normalized: &str) -> String {
    normalized.replace('O', "0")
}

/// A vehicle identification number: 17 characters, no I, O or Q.
pub fn normalize_vin(raw: &str) -> Result<String, ValidationError> {
    let out: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).map(|c| c.to_ascii_uppercase()).collect();
    let ok = out.len() == 17 && out.chars().all(|c| c.is_ascii_alphanumeric() && !matches!(c, 'I' | 'O' | 'Q'));
    if ok {
        Ok(out)
    } else {
        Err(ValidationError::Malformed {
            field: "VIN",
            value: raw.to_string(),
            expected: "17 letters and digits without I, O or Q",
        })
    }
}

/// An ISO 6346 container number: owner code, category, serial, check digit.
pub fn normalize_container(raw: &str) -> Result<String, ValidationError> {
    let out: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).map(|c| c.to_ascii_uppercase()).collect();
    let bytes = out.as_bytes();
    let ok =
        bytes.len() == 11 && bytes[..4].iter().all(u8::is_ascii_uppercase) && bytes[4..].iter().all(u8::is_ascii_digit);
    if ok {
        Ok(out)
    } else {
        Err(ValidationError::Malformed {
            field: "container number",
            value: raw.to_string(),
            expected: "ISO 6346: four letters and seven digits, e.g. MSCU1234565",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyrillic_and_latin_meet_in_one_skeleton() {
        assert_eq!(latin_skeleton("Мухаммад Алиев"), "mukhammad aliev");
        assert_eq!(latin_skeleton("MUKHAMMAD  ALIEV"), "mukhammad aliev");
        assert_eq!(latin_skeleton("Нұрсұлтан"), latin_skeleton("Нурсултан"));
        assert_eq!(latin_skeleton("Муҳаммад"), "mukhammad");
        assert_eq!(latin_skeleton("G‘ulomov"), "gulomov");
    }

    #[test]
    fn mrz_names_split_into_tokens() {
        assert_eq!(name_tokens("ALIEV<<MUKHAMMAD"), vec!["aliev", "mukhammad"]);
    }

    #[test]
    fn scripts_are_detected() {
        assert_eq!(script_of("Мухаммад"), Script::Cyrillic);
        assert_eq!(script_of("Muhammad"), Script::Latin);
        assert_eq!(script_of("Muhammad Алиев"), Script::Mixed);
        assert_eq!(script_of("محمد"), Script::Other);
    }

    #[test]
    fn plates_with_cyrillic_lookalikes_normalise_to_latin() {
        assert_eq!(normalize_plate("123 АВС-02").ok().as_deref(), Some("123ABC02"));
        assert_eq!(normalize_plate("123abc02").ok().as_deref(), Some("123ABC02"));
        assert_eq!(normalize_plate("Х 777 ОР"), normalize_plate("X777OP"));
        assert!(normalize_plate("1").is_err());
        assert!(normalize_plate("12#4").is_err());
    }

    #[test]
    fn document_numbers_ignore_separators_and_o_zero() {
        assert_eq!(normalize_document_number("n 12-34 567").ok().as_deref(), Some("N1234567"));
        assert_eq!(document_number_key("AO0123"), document_number_key("A00123"));
    }

    #[test]
    fn vins_and_containers_are_checked() {
        assert!(normalize_vin("1HGCM82633A004352").is_ok());
        assert!(normalize_vin("1HGCM82633A00435O").is_err());
        assert!(normalize_container("MSCU 123456-5").is_ok());
        assert!(normalize_container("MSC1234565").is_err());
    }
}
