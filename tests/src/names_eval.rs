//! The labelled evaluation set for name matching.
//!
//! Persons are drawn from Central Asian name pools written the way each
//! country writes them in Cyrillic (Tajik Ҳ and Ҷ, Kazakh Ұ and Қ, Uzbek Ў
//! and Ғ). Each listed person becomes a watchlist entry; officers' queries
//! for them are rendered through every romanisation system, the MRZ form,
//! surname-first order, Russian-only Cyrillic, one typo, an equivalent given
//! name, or a patronymic the list lacks. Distractors are persons built from
//! the same pools whose given name and surname pair is not on the list. The
//! same seed always gives the same set.

use std::collections::{BTreeMap, HashSet};

use outpost_model::EntryId;
use outpost_model::api::{NewEntryInput, SearchInput};
use outpost_model::names::equivalents::{group_of, spellings};
use outpost_model::names::fold::russian_letters;
use outpost_model::names::{Romanization, mrz_name, name_tokens};
use outpost_model::search::{STRONG_MATCH, SearchQuery, WatchlistIndex};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// Name pools per country: male given names, female given names, surnames
/// (male form), each as that country writes them in Cyrillic.
struct Pool {
    nationality: &'static str,
    male: &'static [&'static str],
    female: &'static [&'static str],
    surnames: &'static [&'static str],
    /// The Latin system this country's passports use.
    passport: Romanization,
    /// Systems besides ICAO, GOST and BGN/PCGN that write this country's names.
    national: &'static [Romanization],
}

/// Every country's names meet these.
const INTERNATIONAL: [Romanization; 3] = [Romanization::Icao9303, Romanization::Gost779B, Romanization::BgnPcgn];

const POOLS: &[Pool] = &[
    Pool {
        nationality: "UZB",
        male: &[
            "Алишер",
            "Бахтиёр",
            "Дилшод",
            "Жамшид",
            "Улуғбек",
            "Шерзод",
            "Сардор",
            "Фаррух",
            "Ўткир",
            "Азиз",
            "Бобур",
            "Ғайрат",
            "Иброҳим",
            "Одил",
            "Равшан",
            "Санжар",
            "Тоҳир",
            "Хуршид",
            "Элёр",
            "Акмал",
            "Бекзод",
            "Зафар",
            "Анвар",
            "Муҳаммад",
            "Абдулла",
            "Ислом",
            "Нодир",
            "Отабек",
            "Комил",
            "Жасур",
        ],
        female: &[
            "Дилноза",
            "Нигора",
            "Шаҳноза",
            "Гулнора",
            "Мадина",
            "Малика",
            "Феруза",
            "Зулфия",
            "Моҳира",
            "Нодира",
            "Юлдуз",
            "Ситора",
        ],
        surnames: &[
            "Каримов",
            "Юсупов",
            "Раҳимов",
            "Тошматов",
            "Эргашев",
            "Холматов",
            "Худойбердиев",
            "Абдуллаев",
            "Усмонов",
            "Қодиров",
            "Мирзаев",
            "Турсунов",
            "Назаров",
            "Исмоилов",
            "Ғуломов",
            "Ўринов",
            "Жўраев",
            "Норматов",
            "Саидов",
            "Ахмедов",
            "Хасанов",
            "Умаров",
            "Шарипов",
            "Султонов",
            "Бобоев",
            "Рустамов",
            "Алиев",
        ],
        passport: Romanization::UzbekLatin,
        national: &[Romanization::UzbekLatin],
    },
    Pool {
        nationality: "TJK",
        male: &[
            "Муҳаммад",
            "Фирдавс",
            "Парвиз",
            "Комрон",
            "Суннатулло",
            "Бахтовар",
            "Далер",
            "Ҷамшед",
            "Фарҳод",
            "Шоҳрух",
            "Изатулло",
            "Абдуллоҳ",
            "Манучеҳр",
            "Сиёвуш",
            "Рустам",
            "Исмоил",
            "Нуриддин",
            "Зайниддин",
            "Ҳасан",
            "Ҳусейн",
            "Файзулло",
            "Қурбон",
            "Умед",
            "Сайфиддин",
        ],
        female: &["Фарзона", "Меҳрона", "Зарина", "Гулбаҳор", "Нилуфар", "Таҳмина", "Мавзуна", "Садбарг"],
        surnames: &[
            "Раҳмонов",
            "Раҳмонзода",
            "Саидзода",
            "Давлатов",
            "Назарзода",
            "Мирзоев",
            "Шарипов",
            "Қурбонов",
            "Ҳакимов",
            "Сафаров",
            "Бобоҷонов",
            "Исмоилзода",
            "Маҳмудов",
            "Каримзода",
            "Холов",
            "Ғафуров",
            "Юсуфзода",
            "Ализода",
            "Файзуллоев",
            "Амонов",
        ],
        passport: Romanization::TajikLatin,
        national: &[Romanization::TajikLatin],
    },
    Pool {
        nationality: "KAZ",
        male: &[
            "Нұрсұлтан",
            "Ерлан",
            "Азамат",
            "Бекзат",
            "Қанат",
            "Айбек",
            "Нұрлан",
            "Дәурен",
            "Ержан",
            "Асқар",
            "Бауыржан",
            "Серік",
            "Мұрат",
            "Арман",
            "Ербол",
            "Жандос",
            "Ғалымжан",
            "Талғат",
            "Әділет",
            "Дамир",
            "Нұржан",
            "Мақсат",
            "Тимур",
        ],
        female: &["Айгерім", "Айжан", "Әсел", "Гүлнара", "Динара", "Жанар", "Әсем", "Мөлдір", "Ақмарал", "Салтанат"],
        surnames: &[
            "Жұмабаев",
            "Сейтқали",
            "Нұрмағамбетов",
            "Байжанов",
            "Омаров",
            "Сәрсенбаев",
            "Қасымов",
            "Тоқаев",
            "Әбішев",
            "Мұхамедов",
            "Есенов",
            "Ахметов",
            "Жақсыбеков",
            "Құрманғалиев",
            "Исабаев",
            "Оспанов",
            "Абдрахманов",
            "Серікбаев",
            "Төлегенов",
            "Жолдасбеков",
        ],
        passport: Romanization::Icao9303,
        national: &[Romanization::Kazakh2018, Romanization::Kazakh2021],
    },
    Pool {
        nationality: "KGZ",
        male: &[
            "Талант",
            "Эркин",
            "Бакыт",
            "Нурбек",
            "Улан",
            "Канатбек",
            "Мирлан",
            "Алмазбек",
            "Бектур",
            "Эрмек",
            "Темир",
            "Чынгыз",
            "Сапар",
            "Курманбек",
            "Жусуп",
            "Азамат",
            "Медер",
        ],
        female: &["Жибек", "Айпери", "Нургүл", "Чолпон", "Айзада", "Бурул", "Гүлзат"],
        surnames: &[
            "Токтогулов",
            "Бекмуратов",
            "Усенов",
            "Иманалиев",
            "Сатыбалдиев",
            "Жээнбеков",
            "Атамбаев",
            "Осмонов",
            "Мамытов",
            "Абдылдаев",
            "Ташиев",
            "Жапаров",
            "Кадыров",
            "Момунов",
            "Турдубаев",
            "Шаршеев",
        ],
        passport: Romanization::Icao9303,
        national: &[],
    },
    Pool {
        nationality: "TKM",
        male: &[
            "Мерген",
            "Довлет",
            "Арслан",
            "Батыр",
            "Гурбангулы",
            "Сердар",
            "Мекан",
            "Мырат",
            "Ыхлас",
            "Аннагелди",
            "Бегенч",
            "Ровшен",
            "Довран",
            "Язгулы",
            "Чарыяр",
            "Гуйч",
        ],
        female: &["Огулджан", "Джемал", "Айна", "Огулгерек", "Бахар", "Майса", "Гулшат"],
        surnames: &[
            "Бердымухамедов",
            "Оразов",
            "Атаев",
            "Чарыев",
            "Аннаев",
            "Мередов",
            "Ниязов",
            "Курбанов",
            "Аманов",
            "Гелдиев",
            "Овезов",
            "Реджепов",
            "Сапармурадов",
            "Хаджиев",
            "Байрамов",
            "Ходжамурадов",
        ],
        passport: Romanization::TurkmenLatin,
        national: &[Romanization::TurkmenLatin],
    },
];

/// Central Asian surnames are mostly a forefather's given name with an
/// ending; the pools grow by that rule, which also puts realistic
/// near-neighbours on the list (Рустам Каримов beside Карим Рустамов).
fn derived_surname(given: &str, nationality: &str) -> String {
    let stem = given.trim_end_matches(['а', 'о', 'я', 'и', 'у', 'ҳ']);
    match nationality {
        "TJK" if given.chars().count().is_multiple_of(2) => format!("{stem}зода"),
        _ if stem.len() < given.len() => format!("{stem}аев"),
        _ => format!("{stem}ов"),
    }
}

/// Which words of the pools a person may be drawn from. Every sixth given
/// name and every fourth surname are held out of the list, so that some
/// travellers carry words the list has never seen, as real ones do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Words {
    /// Only words that may be on the list.
    Listable,
    /// At least one held-out word.
    HeldOut,
}

fn held_out_given(i: usize) -> bool {
    i % 6 == 5
}

fn held_out_surname(i: usize) -> bool {
    i % 4 == 3
}

/// Picks from `list` the entries whose position `held_out` says, or the
/// others.
fn pick_from<T: Clone>(rng: &mut StdRng, list: &[T], held_out: fn(usize) -> bool, want_held_out: bool) -> Option<T> {
    let choices: Vec<&T> =
        list.iter().enumerate().filter(|(i, _)| held_out(*i) == want_held_out).map(|(_, x)| x).collect();
    choices.choose(rng).map(|x| (*x).clone())
}

impl Pool {
    fn surnames(&self) -> Vec<String> {
        let mut all: Vec<String> = self.surnames.iter().map(|s| s.to_string()).collect();
        for given in self.male {
            let derived = derived_surname(given, self.nationality);
            if !all.contains(&derived) {
                all.push(derived);
            }
        }
        all
    }
}

/// Gives a surname its female form (Алиев → Алиева); -zoda and -i stay.
fn female_surname(surname: &str) -> String {
    if surname.ends_with("ов") || surname.ends_with("ев") || surname.ends_with("ин") {
        format!("{surname}а")
    } else {
        surname.to_string()
    }
}

/// A Russian-style patronymic from the father's given name.
fn patronymic(father: &str, female: bool) -> String {
    let vowel_end = father.ends_with(['а', 'о', 'я', 'и', 'у']);
    let stem = if vowel_end { father.trim_end_matches(['а', 'о', 'я', 'и', 'у']) } else { father };
    match (vowel_end, female) {
        (false, false) => format!("{stem}ович"),
        (false, true) => format!("{stem}овна"),
        (true, false) => format!("{stem}аевич"),
        (true, true) => format!("{stem}аевна"),
    }
}

/// One person of the set, in Cyrillic as their country writes it.
#[derive(Debug, Clone)]
pub struct Person {
    pub given: String,
    pub surname: String,
    pub female: bool,
    pub patronymic: Option<String>,
    pub nationality: &'static str,
    pub dob: String,
    passport: Romanization,
    national: &'static [Romanization],
    /// The list writes the name Фамилия Имя Отчество, as Russian documents do.
    listed_surname_first: bool,
    /// The list also holds the passport's Latin spelling.
    listed_with_passport_spelling: bool,
}

impl Person {
    pub fn full_name(&self) -> String {
        match &self.patronymic {
            Some(p) => format!("{} {} {}", self.given, p, self.surname),
            None => format!("{} {}", self.given, self.surname),
        }
    }

    /// Identity by name, as the set labels it: two persons with the same
    /// given name and surname (in any script) are the same name.
    fn name_key(&self) -> (Vec<String>, Vec<String>) {
        (name_tokens(&self.given), name_tokens(&self.surname))
    }

    fn entry(&self) -> NewEntryInput {
        let cyrillic = if self.patronymic.is_some() && self.listed_surname_first {
            // Russian documents put the surname first: Фамилия Имя Отчество.
            format!("{} {} {}", self.surname, self.given, self.patronymic.as_deref().unwrap_or_default())
        } else {
            self.full_name()
        };
        let mut names = vec![cyrillic];
        if self.listed_with_passport_spelling {
            names.push(self.passport.romanize(&format!("{} {}", self.given, self.surname)));
        }
        NewEntryInput {
            kind: "person".into(),
            category: "wanted-for-arrest".into(),
            reason: "evaluation".into(),
            names,
            dobs: vec![self.dob.clone()],
            nationalities: vec![self.nationality.into()],
            ..Default::default()
        }
    }
}

/// How a query was made from the listed name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rendering {
    /// The list's own Cyrillic.
    Original,
    /// National letters replaced by Russian ones (Нұрсұлтан → Нурсултан).
    RussianCyrillic,
    Latin(Romanization),
    Mrz,
    SurnameFirst,
    Typo,
    /// A form of the given name in another language (Magomed for Muhammad).
    EquivalentGiven,
    /// The patronymic written out although the list lacks it, or left out.
    Patronymic,
}

impl Rendering {
    pub fn label(self) -> String {
        match self {
            Self::Original => "list's own Cyrillic".into(),
            Self::RussianCyrillic => "Russian-letter Cyrillic".into(),
            Self::Latin(system) => system.label().into(),
            Self::Mrz => "MRZ (SURNAME<<GIVEN)".into(),
            Self::SurnameFirst => "surname first".into(),
            Self::Typo => "one typo".into(),
            Self::EquivalentGiven => "equivalent given name".into(),
            Self::Patronymic => "patronymic added or dropped".into(),
        }
    }
}

/// A query with its label: which listed person it must find, if any.
#[derive(Debug, Clone)]
pub struct LabelledQuery {
    pub text: String,
    pub rendering: Rendering,
    /// Index into [`EvalSet::listed`]; `None` for a distractor.
    pub expected: Option<usize>,
    /// A distractor with a given name or surname that no listed person has.
    pub unlisted_words: bool,
    pub dob: String,
    pub nationality: &'static str,
}

#[derive(Debug)]
pub struct EvalSet {
    pub listed: Vec<Person>,
    pub variants: Vec<LabelledQuery>,
    pub distractors: Vec<LabelledQuery>,
}

struct Drawer {
    rng: StdRng,
}

impl Drawer {
    fn person(&mut self, words: Words) -> Person {
        let pool = POOLS.choose(&mut self.rng).unwrap_or(&POOLS[0]);
        let female = self.rng.random_bool(0.25);
        let (given_held_out, surname_held_out) = match words {
            Words::Listable => (false, false),
            Words::HeldOut => match self.rng.random_range(0..4) {
                0 => (true, false),
                1 => (true, true),
                _ => (false, true),
            },
        };
        let given_pool = if female { pool.female } else { pool.male };
        let given =
            pick_from(&mut self.rng, given_pool, held_out_given, given_held_out).unwrap_or_default().to_string();
        let surname =
            pick_from(&mut self.rng, &pool.surnames(), held_out_surname, surname_held_out).unwrap_or_default();
        let surname = if female { female_surname(&surname) } else { surname };
        let patronymic = self.rng.random_bool(0.3).then(|| {
            let father = pool.male.choose(&mut self.rng).copied().unwrap_or_default();
            patronymic(father, female)
        });
        let year = self.rng.random_range(1960..2006);
        let dob = format!("{year}-{:02}-{:02}", self.rng.random_range(1..13), self.rng.random_range(1..29));
        Person {
            given,
            surname,
            female,
            patronymic,
            nationality: pool.nationality,
            dob,
            passport: pool.passport,
            national: pool.national,
            listed_surname_first: self.rng.random_bool(0.5),
            listed_with_passport_spelling: self.rng.random_bool(0.3),
        }
    }

    /// A system that plausibly wrote this person's name: an international
    /// one or their own country's (no Kazakh Latin for a Tajik name).
    fn system(&mut self, person: &Person) -> Romanization {
        let systems: Vec<Romanization> = INTERNATIONAL.iter().chain(person.national).copied().collect();
        systems.choose(&mut self.rng).copied().unwrap_or(Romanization::Icao9303)
    }

    /// One slip of the hand in one word of at least four letters: a letter
    /// swapped for another, dropped, doubled, or two letters transposed.
    /// The first letter is hit one time in ten, as officers check it best.
    fn typo(&mut self, text: &str) -> String {
        let mut words: Vec<Vec<char>> = text.split(' ').map(|w| w.chars().collect()).collect();
        let long: Vec<usize> = (0..words.len()).filter(|i| words[*i].len() >= 4).collect();
        let Some(&w) = long.choose(&mut self.rng) else { return text.to_string() };
        let word = &mut words[w];
        let at = if self.rng.random_bool(0.1) { 0 } else { self.rng.random_range(1..word.len()) };
        let alphabet: Vec<char> = if word.iter().any(|c| ('\u{0400}'..='\u{04FF}').contains(c)) {
            "абвгдежзиклмнопрстуфхчшыэюя".chars().collect()
        } else {
            "abcdefghijklmnopqrstuvwxyz".chars().collect()
        };
        match self.rng.random_range(0..4) {
            0 => {
                let other: Vec<char> =
                    alphabet.iter().copied().filter(|c| *c != word[at].to_lowercase().next().unwrap_or(*c)).collect();
                word[at] = other.choose(&mut self.rng).copied().unwrap_or('a');
            }
            1 => {
                word.remove(at);
            }
            2 => word.insert(at, word[at]),
            _ => {
                let next = (at + 1).min(word.len() - 1);
                word.swap(at.min(next.saturating_sub(1)), next);
            }
        }
        words.into_iter().map(|w| w.into_iter().collect::<String>()).collect::<Vec<_>>().join(" ")
    }

    fn variant(&mut self, person: &Person) -> (String, Rendering) {
        let given_surname = format!("{} {}", person.given, person.surname);
        match self.rng.random_range(0..12) {
            0 => (person.full_name(), Rendering::Original),
            1 => (russian_letters(&given_surname), Rendering::RussianCyrillic),
            2..=4 => {
                let system = self.system(person);
                (system.romanize(&given_surname), Rendering::Latin(system))
            }
            5 => (mrz_name(&person.surname, &person.given), Rendering::Mrz),
            6 => {
                let system = self.system(person);
                (system.romanize(&format!("{} {}", person.surname, person.given)), Rendering::SurnameFirst)
            }
            7 | 8 => {
                let base = if self.rng.random_bool(0.3) {
                    russian_letters(&given_surname)
                } else {
                    let system = self.system(person);
                    system.romanize(&given_surname)
                };
                (self.typo(&base), Rendering::Typo)
            }
            9 => {
                let given = name_tokens(&person.given);
                let group = given.first().and_then(|g| group_of(g));
                match group {
                    Some(group) => {
                        let other = spellings(group).choose(&mut self.rng).copied().unwrap_or_default();
                        let system = self.system(person);
                        (format!("{other} {}", system.romanize(&person.surname)), Rendering::EquivalentGiven)
                    }
                    None => (person.passport.romanize(&given_surname), Rendering::Latin(person.passport)),
                }
            }
            _ => {
                let text = match &person.patronymic {
                    Some(_) => given_surname,
                    None => {
                        let father = self.person(Words::Listable).given;
                        format!("{} {} {}", person.surname, person.given, patronymic(&father, person.female))
                    }
                };
                let system = self.system(person);
                (system.romanize(&text), Rendering::Patronymic)
            }
        }
    }
}

impl EvalSet {
    pub fn generate(seed: u64, listed: usize, variants: usize, distractors: usize) -> Self {
        let mut drawer = Drawer { rng: StdRng::seed_from_u64(seed) };
        let mut people = Vec::with_capacity(listed);
        let mut keys = HashSet::new();
        let mut attempts = 0usize;
        while people.len() < listed {
            attempts += 1;
            assert!(attempts < 100 * listed + 1000, "the name pools hold fewer than {listed} distinct names");
            let person = drawer.person(Words::Listable);
            // One entry per name: a second listed person with the same name
            // would make "which one" unanswerable by name.
            if keys.insert(person.name_key()) {
                people.push(person);
            }
        }
        let mut variant_queries = Vec::with_capacity(variants);
        for _ in 0..variants {
            let expected = drawer.rng.random_range(0..people.len());
            let (text, rendering) = drawer.variant(&people[expected]);
            let person = &people[expected];
            variant_queries.push(LabelledQuery {
                text,
                rendering,
                expected: Some(expected),
                unlisted_words: false,
                dob: person.dob.clone(),
                nationality: person.nationality,
            });
        }
        let mut distractor_queries = Vec::with_capacity(distractors);
        while distractor_queries.len() < distractors {
            attempts += 1;
            assert!(attempts < 100 * (listed + distractors) + 1000, "every name in the pools is listed");
            // Half the distractors carry a word the list has never seen.
            let words = if distractor_queries.len() % 2 == 0 { Words::Listable } else { Words::HeldOut };
            let person = drawer.person(words);
            if keys.contains(&person.name_key()) {
                continue;
            }
            let (text, rendering) = drawer.variant(&person);
            distractor_queries.push(LabelledQuery {
                text,
                rendering,
                expected: None,
                unlisted_words: words == Words::HeldOut,
                dob: person.dob.clone(),
                nationality: person.nationality,
            });
        }
        Self { listed: people, variants: variant_queries, distractors: distractor_queries }
    }

    /// The watchlist entries for the listed persons, in order; entry `i`
    /// gets id [`EvalSet::entry_id`]`(i)`.
    pub fn entries(&self) -> Vec<NewEntryInput> {
        self.listed.iter().map(Person::entry).collect()
    }

    pub fn entry_id(i: usize) -> EntryId {
        EntryId::from_uuid(uuid::Uuid::from_u128(0xe7a1_0000_0000 + i as u128))
    }
}

/// Found / asked, per rendering and in total.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub by_rendering: BTreeMap<String, (usize, usize)>,
    pub hits: usize,
    pub total: usize,
}

impl Tally {
    fn add(&mut self, rendering: Rendering, hit: bool) {
        let row = self.by_rendering.entry(rendering.label()).or_default();
        row.0 += usize::from(hit);
        row.1 += 1;
        self.hits += usize::from(hit);
        self.total += 1;
    }

    pub fn rate(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.hits as f64 / self.total as f64 }
    }
}

/// What the set measures of a matcher.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Variants whose person is among the first five results.
    pub recall_at_5: Tally,
    /// Variants whose person is the first result and an alert.
    pub found_as_alert: Tally,
    /// Distractors whose first result scores at or above the match
    /// threshold: all of them, then those whose words are all on the list,
    /// then those with a word the list has never seen.
    pub false_top1: Tally,
    pub false_top1_listed_words: Tally,
    pub false_top1_unlisted_words: Tally,
    /// Examples of misses and false hits, for a human to read.
    pub misses: Vec<String>,
    pub false_hits: Vec<String>,
}

fn query(q: &LabelledQuery, limit: u32, qualifiers: bool) -> Option<SearchQuery> {
    SearchQuery::parse(&SearchInput {
        query: q.text.clone(),
        limit: Some(limit),
        purpose: "evaluation".into(),
        dob: qualifiers.then(|| q.dob.clone()),
        nationality: qualifiers.then(|| q.nationality.to_string()),
    })
    .ok()
}

/// Runs every labelled query against `index`, which must hold
/// [`EvalSet::entries`] under [`EvalSet::entry_id`]. With `qualifiers`, each
/// query carries the person's date of birth and nationality.
pub fn evaluate(
    set: &EvalSet,
    index: &dyn WatchlistIndex,
    today: outpost_model::date::Day,
    qualifiers: bool,
) -> Report {
    let mut report = Report::default();
    for q in &set.variants {
        let Some(expected) = q.expected else { continue };
        let want = EvalSet::entry_id(expected);
        let hits = query(q, 5, qualifiers).map(|sq| index.search(&sq, today)).unwrap_or_default();
        let found = hits.iter().any(|h| h.id == want);
        report.recall_at_5.add(q.rendering, found);
        report.found_as_alert.add(q.rendering, hits.first().is_some_and(|h| h.id == want && h.score >= STRONG_MATCH));
        if !found && report.misses.len() < 40 {
            let got: Vec<String> = hits.iter().map(|h| format!("{} {:.2}", h.name, h.score)).collect();
            report.misses.push(format!(
                "[{}] {:?} for {} → {}",
                q.rendering.label(),
                q.text,
                set.listed[expected].full_name(),
                if got.is_empty() { "nothing".into() } else { got.join("; ") }
            ));
        }
    }
    for q in &set.distractors {
        let hits = query(q, 1, qualifiers).map(|sq| index.search(&sq, today)).unwrap_or_default();
        let false_hit = hits.first().is_some_and(|h| h.score >= STRONG_MATCH);
        report.false_top1.add(q.rendering, false_hit);
        if q.unlisted_words {
            report.false_top1_unlisted_words.add(q.rendering, false_hit);
        } else {
            report.false_top1_listed_words.add(q.rendering, false_hit);
        }
        if false_hit && report.false_hits.len() < 40 {
            let h = &hits[0];
            report.false_hits.push(format!(
                "[{}] {:?} → {} {:.2} ({})",
                q.rendering.label(),
                q.text,
                h.name,
                h.score,
                h.reason
            ));
        }
    }
    report
}

/// The post the set's entries are recorded at, and its day.
pub fn eval_context() -> outpost_model::validate::PostContext {
    outpost_model::validate::PostContext {
        now: outpost_model::date::Timestamp::from_millis(1_795_000_000_000),
        offset: time::UtcOffset::UTC,
        authority: "CARICC".into(),
        post: "eval".into(),
    }
}

/// An index holding the set's listed persons.
pub fn index_for(set: &EvalSet) -> anyhow::Result<outpost_model::search::NameIndex> {
    let ctx = eval_context();
    let mut index = outpost_model::search::NameIndex::new();
    for (i, input) in set.entries().iter().enumerate() {
        let entry = crate::sample::entry_from(input, EvalSet::entry_id(i), &ctx)?;
        outpost_model::search::upsert(&mut index, &entry);
    }
    Ok(index)
}
