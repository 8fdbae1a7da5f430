//! Seeded sample data: Central Asian watchlist entries and incidents, for
//! the demo, the tests and the benchmarks. The same seed gives the same data.

use outpost_model::EntryId;
use outpost_model::api::{NewEntryInput, NewIncidentInput};
use outpost_model::schema::DocKind;
use outpost_model::validate::{PostContext, new_entry};
use outpost_model::vocab::EntryStatus;
use outpost_model::watchlist::Entry;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

const GIVEN_MALE: &[&str] = &[
    "Мухаммад",
    "Алишер",
    "Фаррух",
    "Бахтиёр",
    "Дильшод",
    "Нурсултан",
    "Ерлан",
    "Азамат",
    "Бекзат",
    "Тимур",
    "Рустам",
    "Шерзод",
    "Улугбек",
    "Жамшид",
    "Сардор",
    "Абдулла",
    "Иброхим",
    "Зафар",
    "Канат",
    "Айбек",
    "Максат",
    "Нурлан",
    "Парвиз",
    "Фирдавс",
    "Комрон",
    "Суннатулло",
    "Мерген",
    "Довлет",
    "Арслан",
    "Батыр",
    "Эркин",
    "Талант",
];
const GIVEN_FEMALE: &[&str] = &[
    "Гульнара",
    "Дилноза",
    "Зарина",
    "Малика",
    "Айгерим",
    "Мадина",
    "Нигора",
    "Шахноза",
    "Айжан",
    "Гулшан",
    "Махбуба",
    "Огулджан",
    "Жибек",
    "Асель",
    "Фарзона",
    "Мехрона",
];
const SURNAMES: &[&str] = &[
    "Алиев",
    "Каримов",
    "Рахимов",
    "Юсупов",
    "Абдуллаев",
    "Назаров",
    "Турсунов",
    "Исмаилов",
    "Ахмедов",
    "Султанов",
    "Нуриев",
    "Жумабаев",
    "Токтогулов",
    "Бекмуратов",
    "Рахмонов",
    "Худойбердиев",
    "Саидов",
    "Шарипов",
    "Мирзоев",
    "Сатыбалдиев",
    "Оразов",
    "Бердымухамедов",
    "Атаев",
    "Эргашев",
    "Хасанов",
    "Умаров",
    "Кадыров",
    "Сейткали",
    "Нурмагамбетов",
    "Байжанов",
    "Усенов",
    "Иманалиев",
    "Давлатов",
    "Холматов",
    "Гафуров",
    "Мамедов",
];
const NATIONALITIES: &[&str] = &["KAZ", "KGZ", "TJK", "TKM", "UZB", "AFG", "RUS"];
const CATEGORIES: &[&str] = &[
    "wanted-for-arrest",
    "locate-and-inform",
    "warning",
    "missing-person",
    "refusal-of-entry",
    "discreet-check",
    "specific-check",
    "sanctions",
];
const REASONS: &[&str] = &[
    "Suspected heroin trafficking on the Panj route",
    "Organiser of migrant smuggling network",
    "Escaped from pre-trial detention",
    "Reported missing by family",
    "Entry ban after document fraud",
    "Person of interest in precursor chemicals case",
];
const ACTIONS: &[&str] = &[
    "Detain and inform the national central bureau",
    "Do not alert the person; report the crossing to CARICC",
    "Refuse entry and record the attempt",
    "Check documents and baggage; report the result",
];
const PLATE_LETTERS: &[char] = &['A', 'B', 'C', 'E', 'K', 'M', 'H', 'O', 'P', 'T', 'X', 'Y'];
const VIN_CHARS: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
const MAKES: &[&str] =
    &["Toyota Camry", "Lada Priora", "Chevrolet Cobalt", "Kamaz 5320", "Mercedes Actros", "Daewoo Nexia"];
const SUBSTANCES: &[&str] = &["heroin", "opium", "hashish", "methamphetamine", "tramadol", "acetic anhydride"];

/// The Latin spelling a passport office might have produced (ICAO-style).
pub fn icao_latin(cyrillic: &str) -> String {
    outpost_model::names::Romanization::Icao9303.romanize(cyrillic)
}

/// The projection row a draft becomes, built without Automerge so the
/// in-process index can be measured and evaluated on exactly the daemon's
/// data. Mirrors `schema::watchlist::read_entry`.
pub fn entry_from(input: &NewEntryInput, id: EntryId, ctx: &PostContext) -> anyhow::Result<Entry> {
    let draft = new_entry(input, id, ctx).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Entry {
        id,
        doc: DocKind::watchlist_for(&draft.authority, &id).doc_id(),
        authority: draft.authority,
        subject: draft.subject,
        category: draft.category,
        reason: draft.reason,
        action: draft.action,
        warnings: draft.warnings.into_iter().collect(),
        status: EntryStatus::Active,
        valid_from: draft.valid_from,
        expires: draft.expires,
        created_at: ctx.now,
        created_by: "bench".into(),
        updated_at: ctx.now,
        updated_by: "bench".into(),
        conflicts: vec![],
    })
}

#[derive(Debug)]
pub struct Generator {
    rng: StdRng,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    fn pick<'a>(&mut self, list: &'a [&'a str]) -> &'a str {
        list.choose(&mut self.rng).copied().unwrap_or_default()
    }

    /// A Cyrillic full name, "Given Surname" with the surname's gender.
    pub fn cyrillic_name(&mut self) -> String {
        let female = self.rng.random_bool(0.25);
        let given = if female { self.pick(GIVEN_FEMALE) } else { self.pick(GIVEN_MALE) };
        let surname = self.pick(SURNAMES);
        let surname = if female && (surname.ends_with("ов") || surname.ends_with("ев")) {
            format!("{surname}а")
        } else {
            surname.to_string()
        };
        format!("{given} {surname}")
    }

    fn passport(&mut self) -> String {
        let letter = PLATE_LETTERS.choose(&mut self.rng).copied().unwrap_or('N');
        format!("{letter}{:08}", self.rng.random_range(0..100_000_000u32))
    }

    pub fn plate(&mut self) -> String {
        let l: String = (0..3).map(|_| PLATE_LETTERS.choose(&mut self.rng).copied().unwrap_or('A')).collect();
        format!("{:03} {l} {:02}", self.rng.random_range(0..1000), self.rng.random_range(1..20))
    }

    fn vin(&mut self) -> String {
        (0..17).map(|_| VIN_CHARS.choose(&mut self.rng).copied().map(char::from).unwrap_or('A')).collect()
    }

    fn common(&mut self, kind: &str) -> NewEntryInput {
        let expires = self.rng.random_bool(0.3).then(|| format!("{}-12-31", self.rng.random_range(2027..2031)));
        let warnings = if self.rng.random_bool(0.15) { vec!["armed".to_string()] } else { vec![] };
        NewEntryInput {
            kind: kind.into(),
            category: self.pick(CATEGORIES).into(),
            reason: self.pick(REASONS).into(),
            action: Some(self.pick(ACTIONS).into()),
            warnings,
            expires,
            ..Default::default()
        }
    }

    pub fn person(&mut self) -> NewEntryInput {
        let name = self.cyrillic_name();
        let mut names = vec![name.clone()];
        if self.rng.random_bool(0.5) {
            names.push(icao_latin(&name));
        }
        let year = self.rng.random_range(1955..2005);
        let dob = if self.rng.random_bool(0.7) {
            format!("{year}-{:02}-{:02}", self.rng.random_range(1..13), self.rng.random_range(1..29))
        } else {
            year.to_string()
        };
        let nationality = self.pick(NATIONALITIES).to_string();
        let documents = if self.rng.random_bool(0.6) {
            vec![format!("passport:{nationality}:{}", self.passport())]
        } else {
            vec![]
        };
        NewEntryInput { names, dobs: vec![dob], nationalities: vec![nationality], documents, ..self.common("person") }
    }

    pub fn vehicle(&mut self) -> NewEntryInput {
        let vin = self.rng.random_bool(0.5).then(|| self.vin());
        let make = self.pick(MAKES).to_string();
        NewEntryInput {
            plates: vec![self.plate()],
            vin,
            make: Some(make),
            category: "seize-object".into(),
            ..self.common("vehicle")
        }
    }

    pub fn document(&mut self) -> NewEntryInput {
        let state = self.pick(NATIONALITIES).to_string();
        NewEntryInput {
            doc_type: Some("passport".into()),
            number: Some(self.passport()),
            issuing_state: Some(state),
            doc_status: Some(["stolen", "lost", "revoked", "forged"][self.rng.random_range(0..4)].into()),
            category: "seize-object".into(),
            ..self.common("document")
        }
    }

    pub fn cargo(&mut self) -> NewEntryInput {
        NewEntryInput {
            description: Some(format!("Consignment declared as dried fruit, suspected {}", self.pick(SUBSTANCES))),
            containers: vec![format!("MSCU{:07}", self.rng.random_range(0..10_000_000u32))],
            category: "specific-check".into(),
            ..self.common("cargo")
        }
    }

    /// A mix close to a real list: mostly persons, some vehicles and documents.
    pub fn entry(&mut self) -> NewEntryInput {
        match self.rng.random_range(0..100) {
            0..80 => self.person(),
            80..90 => self.vehicle(),
            90..97 => self.document(),
            _ => self.cargo(),
        }
    }

    pub fn incident(&mut self) -> NewIncidentInput {
        let substance = self.pick(SUBSTANCES);
        let grams = self.rng.random_range(5..5000);
        NewIncidentInput {
            incident_type: "seizure".into(),
            narrative: format!("{substance} found during secondary inspection of a {}", self.pick(MAKES)),
            seized: vec![format!("{substance}:{}.{}:kg", grams / 1000, grams % 1000)],
            persons: vec![self.cyrillic_name()],
            plates: vec![self.plate()],
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_entries() {
        let a: Vec<String> = (0..20).map(|_| format!("{:?}", Generator::new(7).entry())).collect();
        let b: Vec<String> = (0..20).map(|_| format!("{:?}", Generator::new(7).entry())).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn generated_entries_pass_validation() {
        let ctx = outpost_model::validate::PostContext {
            now: outpost_model::date::Timestamp::parse("now", "2026-11-27T10:00:00Z").unwrap(),
            offset: time::UtcOffset::UTC,
            authority: "KAZ-BS".into(),
            post: "kz-test".into(),
        };
        let mut generator = Generator::new(1);
        for n in 0..2000u128 {
            let input = generator.entry();
            let id = outpost_model::EntryId::from_uuid(uuid::Uuid::from_u128(n));
            if let Err(e) = outpost_model::validate::new_entry(&input, id, &ctx) {
                panic!("generated entry {n} is invalid: {e}\n{input:?}");
            }
        }
        for _ in 0..200 {
            let input = generator.incident();
            let id = outpost_model::IncidentId::from_uuid(uuid::Uuid::from_u128(1));
            outpost_model::validate::new_incident(&input, id, &ctx).unwrap();
        }
    }

    #[test]
    fn icao_latin_capitalises_each_word() {
        assert_eq!(icao_latin("Мухаммад Алиев"), "Mukhammad Aliev");
    }
}
