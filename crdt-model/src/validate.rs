//! Turns raw officer input into validated drafts. The only place that knows
//! the rules; the daemon calls it for every request, the CLI never does.

use std::collections::BTreeSet;

use time::UtcOffset;

use crate::api::{AmendInput, NewEntryInput, NewIncidentInput};
use crate::country::parse_country;
use crate::date::{Day, LocalTime, PartialDate, Timestamp};
use crate::error::ValidationError;
use crate::ids::{EntryId, IncidentId};
use crate::incident::{IncidentDraft, InvolvedPerson, InvolvedVehicle, SeizedItem};
use crate::normalize::{
    fold_text, normalize_container, normalize_document_number, normalize_plate, normalize_vin, script_of,
};
use crate::vocab::{
    Category, DocumentStatus, DocumentType, Gender, IncidentType, NameKind, SubjectKind, Unit, VehicleWanted, Warning,
};
use crate::watchlist::{
    Amendment, Cargo, EntryDraft, IdentityDocument, NameVariant, Person, Plate, Subject, TravelDocument, Vehicle,
};

const MAX_NAME: usize = 200;
const MAX_SHORT_TEXT: usize = 200;
const MAX_LONG_TEXT: usize = 4000;
const MAX_SET: usize = 64;
/// 2000-01-01T00:00:00Z: an earlier incident time is a typo.
const EARLIEST_INCIDENT_MS: i64 = 946_684_800_000;

/// Where and when a write happens: the local post's identity and clock.
#[derive(Debug, Clone)]
pub struct PostContext {
    pub now: Timestamp,
    pub offset: UtcOffset,
    pub authority: String,
    pub post: String,
}

impl PostContext {
    /// The calendar day at the post.
    pub fn today(&self) -> Day {
        let local = self.now.to_offset_datetime().to_offset(self.offset);
        Day::parse("today", &format!("{:04}-{:02}-{:02}", local.year(), u8::from(local.month()), local.day()))
            .unwrap_or_else(|_| self.now.utc_date())
    }
}

/// Trims and bounds free text; empty is an error.
pub fn required_text(field: &'static str, text: &str, max: usize) -> Result<String, ValidationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::Empty { field });
    }
    let len = trimmed.chars().count();
    if len > max {
        return Err(ValidationError::TooLong { field, len, max });
    }
    Ok(trimmed.to_string())
}

fn optional_text(field: &'static str, text: &Option<String>, max: usize) -> Result<Option<String>, ValidationError> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => required_text(field, t, max).map(Some),
    }
}

fn bounded<T>(field: &'static str, items: &[T]) -> Result<(), ValidationError> {
    if items.len() > MAX_SET {
        return Err(ValidationError::TooMany { field, count: items.len(), max: MAX_SET });
    }
    Ok(())
}

/// `text` if it is `min..=max` bytes of the characters `allowed` admits,
/// not starting with `-`.
fn code(
    field: &'static str,
    text: &str,
    (min, max): (usize, usize),
    allowed: fn(char) -> bool,
    expected: &'static str,
) -> Result<String, ValidationError> {
    let ok = (min..=max).contains(&text.len()) && text.chars().all(allowed) && !text.starts_with('-');
    if ok { Ok(text.to_string()) } else { Err(ValidationError::Malformed { field, value: text.to_string(), expected }) }
}

/// A node's name: 1-63 lower-case letters, digits and `-`. It names the
/// post's incident log (`incidents/NAME/…`).
pub fn node_name(text: &str) -> Result<String, ValidationError> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    code("node name", text, (1, 63), allowed, "1-63 lower-case letters, digits and -")
}

/// An issuing authority's code: 2-32 upper-case letters, digits and `-`,
/// e.g. `KAZ-BS`.
pub fn authority_code(text: &str) -> Result<String, ValidationError> {
    let allowed = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-';
    code("authority", text, (2, 32), allowed, "2-32 upper-case letters, digits and -, e.g. KAZ-BS")
}

/// A purpose for consulting personal data, as the audit log records it.
pub fn purpose(text: &str) -> Result<String, ValidationError> {
    required_text("purpose", text, MAX_SHORT_TEXT)
}

pub fn name(text: &str, kind: NameKind) -> Result<NameVariant, ValidationError> {
    let text = required_text("name", text, MAX_NAME)?;
    if !text.chars().any(char::is_alphabetic) {
        return Err(ValidationError::Malformed { field: "name", value: text, expected: "at least one letter" });
    }
    Ok(NameVariant { script: script_of(&text), text, kind })
}

fn dob(text: &str, today: Day) -> Result<PartialDate, ValidationError> {
    let date = PartialDate::parse("date of birth", text)?;
    if date.earliest() > today.date() {
        return Err(ValidationError::InFuture { field: "date of birth", value: date.to_string() });
    }
    Ok(date)
}

/// Parses `TYPE:ISSUER:NUMBER`.
pub fn identity_document(text: &str) -> Result<IdentityDocument, ValidationError> {
    let mut parts = text.splitn(3, ':');
    let (Some(doc_type), Some(issuer), Some(number)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ValidationError::Malformed {
            field: "identity document",
            value: text.to_string(),
            expected: "TYPE:ISSUER:NUMBER, e.g. passport:TJK:A1234567",
        });
    };
    Ok(IdentityDocument {
        doc_type: DocumentType::parse(doc_type)?,
        issuer: parse_country("document issuer", issuer)?,
        number: normalize_document_number(number)?,
    })
}

pub fn plate(text: &str) -> Result<Plate, ValidationError> {
    Ok(Plate { normalized: normalize_plate(text)?, raw: required_text("plate", text, 32)? })
}

fn optional_day(field: &'static str, text: &Option<String>) -> Result<Option<Day>, ValidationError> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => Day::parse(field, t).map(Some),
    }
}

fn optional_country(field: &'static str, text: &Option<String>) -> Result<Option<String>, ValidationError> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => parse_country(field, t).map(Some),
    }
}

fn collect<T, F>(field: &'static str, items: &[String], parse: F) -> Result<Vec<T>, ValidationError>
where
    F: Fn(&str) -> Result<T, ValidationError>,
{
    bounded(field, items)?;
    items.iter().map(|i| parse(i)).collect()
}

/// Rejects every field that belongs to another kind of subject, so that a
/// `--plate` on a person entry is an error, not silently dropped.
fn reject_foreign_fields(input: &NewEntryInput, kind: SubjectKind) -> Result<(), ValidationError> {
    let present: [(&'static str, SubjectKind, bool); 22] = [
        ("name", SubjectKind::Person, !input.names.is_empty()),
        ("date of birth", SubjectKind::Person, !input.dobs.is_empty()),
        ("nationality", SubjectKind::Person, !input.nationalities.is_empty()),
        ("identity document", SubjectKind::Person, !input.documents.is_empty()),
        ("gender", SubjectKind::Person, input.gender.is_some()),
        ("plate", SubjectKind::Vehicle, !input.plates.is_empty()),
        ("VIN", SubjectKind::Vehicle, input.vin.is_some()),
        ("make", SubjectKind::Vehicle, input.make.is_some()),
        ("model", SubjectKind::Vehicle, input.model.is_some()),
        ("colour", SubjectKind::Vehicle, input.colour.is_some()),
        ("country", SubjectKind::Vehicle, input.country.is_some()),
        ("wanted", SubjectKind::Vehicle, input.wanted.is_some()),
        ("document type", SubjectKind::Document, input.doc_type.is_some()),
        ("document number", SubjectKind::Document, input.number.is_some()),
        ("issuing state", SubjectKind::Document, input.issuing_state.is_some()),
        ("document status", SubjectKind::Document, input.doc_status.is_some()),
        ("issue date", SubjectKind::Document, input.issued.is_some()),
        ("document expiry", SubjectKind::Document, input.doc_expires.is_some()),
        ("event date", SubjectKind::Document, input.event_date.is_some()),
        ("description", SubjectKind::Cargo, input.description.is_some()),
        ("container", SubjectKind::Cargo, !input.containers.is_empty()),
        ("HS code", SubjectKind::Cargo, input.hs_code.is_some()),
    ];
    match present.iter().find(|(_, owner, set)| *set && *owner != kind) {
        Some((field, _, _)) => Err(ValidationError::NotApplicable { field, kind: kind.as_str() }),
        None => Ok(()),
    }
}

fn person(input: &NewEntryInput, today: Day) -> Result<Person, ValidationError> {
    bounded("names", &input.names)?;
    let mut names = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, text) in input.names.iter().enumerate() {
        let kind = if i == 0 { NameKind::Primary } else { NameKind::Alias };
        let variant = name(text, kind)?;
        if seen.insert(fold_text(&variant.text)) {
            names.push(variant);
        }
    }
    if names.is_empty() {
        return Err(ValidationError::Incomplete { kind: "person", needs: "at least one --name" });
    }
    Ok(Person {
        names,
        dobs: dedup(collect("dates of birth", &input.dobs, |d| dob(d, today))?),
        nationalities: dedup(collect("nationalities", &input.nationalities, |c| parse_country("nationality", c))?),
        documents: dedup(collect("identity documents", &input.documents, identity_document)?),
        gender: input.gender.as_deref().map(Gender::parse).transpose()?,
    })
}

fn vehicle(input: &NewEntryInput) -> Result<Vehicle, ValidationError> {
    let mut plates: Vec<Plate> = collect("plates", &input.plates, plate)?;
    let mut seen = BTreeSet::new();
    plates.retain(|p| seen.insert(p.normalized.clone()));
    let vin = input.vin.as_deref().map(normalize_vin).transpose()?;
    if plates.is_empty() && vin.is_none() {
        return Err(ValidationError::Incomplete { kind: "vehicle", needs: "a --plate or a --vin" });
    }
    let wanted = match input.wanted.as_deref() {
        Some(w) => VehicleWanted::parse(w)?,
        None => VehicleWanted::Vehicle,
    };
    Ok(Vehicle {
        plates,
        vin,
        make: optional_text("make", &input.make, MAX_SHORT_TEXT)?,
        model: optional_text("model", &input.model, MAX_SHORT_TEXT)?,
        colour: optional_text("colour", &input.colour, MAX_SHORT_TEXT)?,
        country: optional_country("country of registration", &input.country)?,
        wanted,
    })
}

fn travel_document(input: &NewEntryInput) -> Result<TravelDocument, ValidationError> {
    let missing =
        ValidationError::Incomplete { kind: "document", needs: "--type, --number, --issuing-state and --doc-status" };
    let (Some(doc_type), Some(number), Some(state), Some(status)) = (
        input.doc_type.as_deref(),
        input.number.as_deref(),
        input.issuing_state.as_deref(),
        input.doc_status.as_deref(),
    ) else {
        return Err(missing);
    };
    let issued = optional_day("issue date", &input.issued)?;
    let expires = optional_day("document expiry", &input.doc_expires)?;
    if let (Some(i), Some(e)) = (issued, expires)
        && e < i
    {
        return Err(ValidationError::ExpiryBeforeStart { expires: e.to_string(), valid_from: i.to_string() });
    }
    Ok(TravelDocument {
        doc_type: DocumentType::parse(doc_type)?,
        number: normalize_document_number(number)?,
        issuing_state: parse_country("issuing state", state)?,
        doc_status: DocumentStatus::parse(status)?,
        issued,
        expires,
        event_date: optional_day("event date", &input.event_date)?,
    })
}

fn cargo(input: &NewEntryInput) -> Result<Cargo, ValidationError> {
    let description = input.description.as_deref().unwrap_or_default();
    let hs_code = match input.hs_code.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(code) => {
            let digits: String = code.chars().filter(|c| *c != '.').collect();
            if !(digits.len() >= 4 && digits.len() <= 10 && digits.bytes().all(|b| b.is_ascii_digit())) {
                return Err(ValidationError::Malformed {
                    field: "HS code",
                    value: code.to_string(),
                    expected: "4 to 10 digits, e.g. 1211.90",
                });
            }
            Some(code.to_string())
        }
    };
    Ok(Cargo {
        description: required_text("description", description, MAX_LONG_TEXT)?,
        containers: dedup(collect("containers", &input.containers, normalize_container)?),
        hs_code,
    })
}

fn dedup<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items.dedup();
    items
}

/// Validates a new entry. `id` comes from the caller, who owns randomness.
pub fn new_entry(input: &NewEntryInput, id: EntryId, ctx: &PostContext) -> Result<EntryDraft, ValidationError> {
    let kind = SubjectKind::parse(&input.kind)?;
    reject_foreign_fields(input, kind)?;
    let today = ctx.today();
    let subject = match kind {
        SubjectKind::Person => Subject::Person(person(input, today)?),
        SubjectKind::Vehicle => Subject::Vehicle(vehicle(input)?),
        SubjectKind::Document => Subject::Document(travel_document(input)?),
        SubjectKind::Cargo => Subject::Cargo(cargo(input)?),
    };
    let valid_from = optional_day("valid-from date", &input.valid_from)?.unwrap_or(today);
    let expires = optional_day("expiry date", &input.expires)?;
    if let Some(e) = expires
        && e < valid_from
    {
        return Err(ValidationError::ExpiryBeforeStart { expires: e.to_string(), valid_from: valid_from.to_string() });
    }
    let warnings = collect("warnings", &input.warnings, Warning::parse)?.into_iter().collect();
    Ok(EntryDraft {
        id,
        authority: ctx.authority.clone(),
        subject,
        category: Category::parse(&input.category)?,
        reason: required_text("reason", &input.reason, MAX_LONG_TEXT)?,
        action: optional_text("action", &input.action, MAX_LONG_TEXT)?.unwrap_or_default(),
        warnings,
        valid_from,
        expires,
    })
}

/// Validates an amendment against the entry's kind and current start date.
pub fn amendment(
    input: &AmendInput,
    kind: SubjectKind,
    valid_from: Day,
    ctx: &PostContext,
) -> Result<Amendment, ValidationError> {
    let person_only = [
        ("name", input.add_names.len() + input.remove_names.len()),
        ("date of birth", input.add_dobs.len() + input.remove_dobs.len()),
        ("nationality", input.add_nationalities.len() + input.remove_nationalities.len()),
        ("identity document", input.add_documents.len() + input.remove_documents.len()),
    ];
    let vehicle_only =
        [("plate", input.add_plates.len() + input.remove_plates.len()), ("VIN", usize::from(input.vin.is_some()))];
    let cargo_only = [("description", usize::from(input.description.is_some()))];
    for (owner, fields) in [
        (SubjectKind::Person, &person_only[..]),
        (SubjectKind::Vehicle, &vehicle_only[..]),
        (SubjectKind::Cargo, &cargo_only[..]),
    ] {
        if let Some((field, _)) = fields.iter().find(|(_, n)| *n > 0 && owner != kind) {
            return Err(ValidationError::NotApplicable { field, kind: kind.as_str() });
        }
    }
    let today = ctx.today();
    let expires = if input.clear_expires { Some(None) } else { optional_day("expiry date", &input.expires)?.map(Some) };
    if let Some(Some(e)) = expires
        && e < valid_from
    {
        return Err(ValidationError::ExpiryBeforeStart { expires: e.to_string(), valid_from: valid_from.to_string() });
    }
    let amendment = Amendment {
        category: input.category.as_deref().map(Category::parse).transpose()?,
        reason: input.reason.as_deref().map(|r| required_text("reason", r, MAX_LONG_TEXT)).transpose()?,
        action: input.action.as_deref().map(|a| required_text("action", a, MAX_LONG_TEXT)).transpose()?,
        expires,
        add_names: collect("names", &input.add_names, |n| name(n, NameKind::Alias))?,
        remove_names: collect("names", &input.remove_names, |n| required_text("name", n, MAX_NAME))?,
        add_dobs: collect("dates of birth", &input.add_dobs, |d| dob(d, today))?,
        remove_dobs: collect("dates of birth", &input.remove_dobs, |d| PartialDate::parse("date of birth", d))?,
        add_nationalities: collect("nationalities", &input.add_nationalities, |c| parse_country("nationality", c))?,
        remove_nationalities: collect("nationalities", &input.remove_nationalities, |c| {
            parse_country("nationality", c)
        })?,
        add_documents: collect("identity documents", &input.add_documents, identity_document)?,
        remove_documents: collect("identity documents", &input.remove_documents, identity_document)?,
        add_warnings: collect("warnings", &input.add_warnings, Warning::parse)?,
        remove_warnings: collect("warnings", &input.remove_warnings, Warning::parse)?,
        add_plates: collect("plates", &input.add_plates, plate)?,
        remove_plates: collect("plates", &input.remove_plates, normalize_plate)?,
        vin: input.vin.as_deref().map(normalize_vin).transpose()?,
        description: input
            .description
            .as_deref()
            .map(|d| required_text("description", d, MAX_LONG_TEXT))
            .transpose()?,
    };
    if amendment.is_empty() {
        return Err(ValidationError::NothingToChange);
    }
    Ok(amendment)
}

/// Parses `SUBSTANCE:QUANTITY:UNIT`.
pub fn seized_item(text: &str) -> Result<SeizedItem, ValidationError> {
    let parts: Vec<&str> = text.rsplitn(3, ':').collect();
    let (substance, quantity, unit) = match parts.as_slice() {
        [unit, quantity, substance] => (*substance, *quantity, *unit),
        [quantity, _] if quantity.trim().parse::<f64>().is_ok() => {
            return Err(ValidationError::QuantityWithoutUnit { value: text.to_string() });
        }
        _ => {
            return Err(ValidationError::Malformed {
                field: "seized item",
                value: text.to_string(),
                expected: "SUBSTANCE:QUANTITY:UNIT, e.g. heroin:1.5:kg",
            });
        }
    };
    if unit.trim().is_empty() {
        return Err(ValidationError::QuantityWithoutUnit { value: text.to_string() });
    }
    let quantity = quantity.trim();
    let well_formed = !quantity.is_empty()
        && quantity.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && quantity.bytes().filter(|b| *b == b'.').count() <= 1
        && quantity.parse::<f64>().is_ok_and(|q| q > 0.0 && q.is_finite());
    if !well_formed {
        return Err(ValidationError::BadQuantity { value: quantity.to_string() });
    }
    Ok(SeizedItem {
        substance: required_text("substance", substance, MAX_SHORT_TEXT)?,
        quantity: quantity.to_string(),
        unit: Unit::parse(unit)?,
    })
}

/// Validates a new incident. Links to watchlist entries are checked by the
/// caller, which knows which entries exist.
pub fn new_incident(
    input: &NewIncidentInput,
    id: IncidentId,
    ctx: &PostContext,
) -> Result<IncidentDraft, ValidationError> {
    let occurred_at = match input.at.as_deref().map(str::trim) {
        // Whole seconds: nobody records an incident to the millisecond.
        None | Some("") => LocalTime::at(Timestamp::from_millis(ctx.now.as_millis() / 1000 * 1000), ctx.offset),
        Some(text) => LocalTime::parse("incident time", text, ctx.offset)?,
    };
    if occurred_at.instant() < Timestamp::from_millis(EARLIEST_INCIDENT_MS) {
        return Err(ValidationError::ImpossibleDate {
            field: "incident time",
            value: occurred_at.to_string(),
            reason: "incidents before 2000 are not recorded here".into(),
        });
    }
    // A clock a few minutes fast at the post must not block a report; an hour is a typo.
    if occurred_at.instant().as_millis() > ctx.now.as_millis() + 3_600_000 {
        return Err(ValidationError::InFuture { field: "incident time", value: occurred_at.to_string() });
    }
    let persons = collect("persons", &input.persons, |p| {
        Ok(InvolvedPerson { name: name(p, NameKind::Primary)?.text, entry: None })
    })?;
    let vehicles = collect("plates", &input.plates, |p| {
        let plate = plate(p)?;
        Ok(InvolvedVehicle { plate: plate.raw, normalized: plate.normalized, entry: None })
    })?;
    let hits = dedup(collect("hits", &input.hits, EntryId::parse)?);
    Ok(IncidentDraft {
        id,
        post: ctx.post.clone(),
        incident_type: IncidentType::parse(&input.incident_type)?,
        occurred_at,
        location: optional_text("location", &input.location, MAX_SHORT_TEXT)?,
        seized: collect("seized items", &input.seized, seized_item)?,
        persons,
        vehicles,
        hits,
        narrative: required_text("narrative", &input.narrative, MAX_LONG_TEXT)?,
    })
}

/// A narrative note.
pub fn note(text: &str) -> Result<String, ValidationError> {
    required_text("note", text, MAX_LONG_TEXT)
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
