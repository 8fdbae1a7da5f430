//! Text normalisation shared by validation, storage keys and search.
//!
//! Names are folded for matching in [`crate::names`]; this module keeps the
//! identity of a name within an entry and the identifier normalisers.

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
