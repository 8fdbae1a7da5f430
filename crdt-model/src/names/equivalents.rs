//! Given names that are one name in different languages: no transliteration
//! table turns Magomed into Muhammad, but an officer knows they are the same.
//!
//! Each group lists common spellings; they are compared as skeletons, so
//! one spelling per digraph family is enough. Surnames built on a listed
//! name (Ibragimov, Ibrohimov) share the equivalence through
//! [`super::fold::surname_stem`].

use std::collections::HashMap;
use std::sync::LazyLock;

use super::fold::skeleton;

/// Spellings per name. Keep each group to forms of one name: a group that
/// joins two different names would turn distinct people into matches.
const GROUPS: &[&[&str]] = &[
    &["Muhammad", "Mohammed", "Mohammad", "Magomed", "Mehmet", "Mukhamed", "Mahammad", "Mukhammed", "Muhammed"],
    &["Ahmad", "Ahmed", "Akhmet", "Ahmet", "Ahmat"],
    &["Ibrahim", "Ibragim", "Ibrohim", "Ybraýym"],
    &["Ismail", "Ismoil", "Ismayil", "Ysmaýyl"],
    &["Yusuf", "Yusup", "Yusif", "Jusup", "Ýusup", "Iosif"],
    &["Hasan", "Gasan", "Khasan", "Asan"],
    &["Husein", "Guseyn", "Huseyn", "Husayn", "Usein", "Khusein", "Gusein"],
    &["Abdullah", "Abdulla", "Abdullo"],
    &["Rahim", "Ragim", "Rakhim"],
    &["Hamid", "Gamid", "Khamid"],
    &["Yakub", "Yakup", "Yoqub", "Jakyp", "Yakov"],
    &["Suleiman", "Sulaymon", "Suleyman", "Sulaiman", "Suleimen"],
    &["Usman", "Osman", "Usmon"],
    &["Umar", "Omar", "Umor"],
    &["Mustafa", "Mustapha", "Mustafo"],
    &["Rustam", "Rustem", "Rostam"],
    &["Timur", "Temur", "Temir", "Teymur"],
    &["Davlat", "Dovlet", "Daulet", "Dowlet"],
    &["Murad", "Murat", "Murod"],
    &["Islam", "Islom", "Yslam"],
    &["Mahmud", "Mahmut", "Makhmud", "Mahmood"],
    &["Bahodir", "Bakhadyr", "Bahadur", "Bakhadur", "Bahadyr"],
    &["Kurban", "Gurban", "Qurbon", "Kurbon"],
    &["Jamshid", "Jamshed", "Dzhamshed"],
    &["Sherzod", "Sherzad"],
    &["Gulnara", "Gulnora"],
    &["Nurlan", "Nurlon"],
    &["Yerlan", "Erlan"],
    &["Abdurahman", "Abdurakhmon", "Abdurrahman", "Abdurahmon"],
    &["Abdurashid", "Abdurrashid", "Abdurashit"],
    &["Nasriddin", "Nasreddin", "Nasritdin", "Nasruddin"],
    &["Nuriddin", "Nureddin", "Nuritdin", "Nurudin"],
    &["Zayniddin", "Zainiddin", "Zaynutdin", "Zainutdin"],
    &["Sayfiddin", "Saifuddin", "Sayfutdin"],
    &["Khadija", "Hadicha", "Khadicha", "Hatice"],
    &["Fatima", "Fotima", "Patima", "Fatma"],
    &["Zainab", "Zaynab", "Zeynep", "Zeinab"],
    &["Aisha", "Oysha", "Aishe", "Ayse"],
    &["Mariam", "Maryam", "Mariyam", "Meryem"],
];

/// An equivalence group's number.
pub type Group = u16;

static BY_SKELETON: LazyLock<HashMap<String, Group>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for (group, spellings) in GROUPS.iter().enumerate() {
        for spelling in *spellings {
            map.insert(skeleton(spelling).0, group as Group);
        }
    }
    map
});

/// The group of a given name's skeleton, if it is in one.
pub fn group_of(skeleton: &str) -> Option<Group> {
    BY_SKELETON.get(skeleton).copied()
}

/// Every listed spelling of a group.
pub fn spellings(group: Group) -> &'static [&'static str] {
    GROUPS.get(group as usize).copied().unwrap_or(&[])
}

/// A spelling of the group, for explanations ("Magomed ≈ Muhammad").
pub fn group_name(group: Group) -> &'static str {
    GROUPS.get(group as usize).and_then(|g| g.first()).copied().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn muhammad_and_magomed_share_a_group() {
        let muhammad = group_of(&skeleton("Мухаммад").0);
        assert!(muhammad.is_some());
        assert_eq!(group_of(&skeleton("MAGOMED").0), muhammad);
        assert_eq!(group_of(&skeleton("Mehmet").0), muhammad);
        assert_ne!(group_of(&skeleton("Ibragim").0), muhammad);
        assert_eq!(group_of(&skeleton("Aliev").0), None);
    }

    #[test]
    fn no_spelling_is_in_two_groups() {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (g, spellings) in GROUPS.iter().enumerate() {
            for s in *spellings {
                if let Some(other) = seen.insert(skeleton(s).0, g) {
                    assert_eq!(other, g, "{s} is in two groups");
                }
            }
        }
    }
}
