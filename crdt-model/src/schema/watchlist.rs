//! Watchlist entries in Automerge.
//!
//! ```text
//! root.entries[<uuid>] = {
//!   kind, category, reason, action, status, status_reason, valid_from, expires?,
//!   created_at, created_by, updated_at, updated_by,
//!   warnings: {<warning>: true},
//!   person:   names: {<folded name>: {text, kind}}, dobs: {<date>: true},
//!             nationalities: {<ISO3>: true}, documents: {<TYPE:ISSUER:NUMBER>: true}, gender?
//!   vehicle:  plates: {<normalised>: <as written>}, vin?, make?, model?, colour?, country?, wanted
//!   document: doc_type, number, issuing_state, doc_status, issued?, doc_expires?, event_date?
//!   cargo:    description, containers: {<number>: true}, hs_code?
//! }
//! ```

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue, Value};

use super::{Document, FieldReader, Records};
use crate::country::parse_country;
use crate::date::{Day, PartialDate};
use crate::error::{ModelError, ValidationError};
use crate::ids::{DocId, EntryId};
use crate::normalize::{fold_text, normalize_container, script_of};
use crate::validate::identity_document;
use crate::vocab::{
    Category, DocumentStatus, DocumentType, EntryStatus, Gender, NameKind, SubjectKind, VehicleWanted, Warning,
};
use crate::watchlist::{
    Amendment, Cargo, Entry, EntryDraft, NameVariant, Person, Plate, Subject, TravelDocument, Vehicle,
};

impl Records<'_> {
    /// Writes a new entry. Fails if the id is already taken.
    pub fn add_entry(&mut self, draft: &EntryDraft) -> Result<(), ModelError> {
        let key = draft.id.to_string();
        if self.record(&key)?.is_some() {
            return Err(ModelError::Forbidden(format!("entry {key} already exists")));
        }
        let obj = self.doc.put_object(&self.records, key.as_str(), ObjType::Map)?;
        let d = &mut *self.doc;
        d.put(&obj, "kind", draft.subject.kind().as_str())?;
        d.put(&obj, "category", draft.category.as_str())?;
        d.put(&obj, "reason", draft.reason.as_str())?;
        d.put(&obj, "action", draft.action.as_str())?;
        d.put(&obj, "status", EntryStatus::Active.as_str())?;
        d.put(&obj, "valid_from", draft.valid_from.to_string())?;
        if let Some(expires) = draft.expires {
            d.put(&obj, "expires", expires.to_string())?;
        }
        d.put(&obj, "created_at", ScalarValue::Timestamp(self.meta.at.as_millis()))?;
        d.put(&obj, "created_by", self.meta.by.as_str())?;
        self.touch(&obj)?;
        let warnings = self.set_obj(&obj, "warnings")?;
        for w in &draft.warnings {
            self.doc.put(&warnings, w.as_str(), true)?;
        }
        match &draft.subject {
            Subject::Person(p) => self.write_person(&obj, p),
            Subject::Vehicle(v) => self.write_vehicle(&obj, v),
            Subject::Document(t) => self.write_travel_document(&obj, t),
            Subject::Cargo(c) => self.write_cargo(&obj, c),
        }
    }

    fn write_person(&mut self, obj: &ObjId, p: &Person) -> Result<(), ModelError> {
        let names = self.set_obj(obj, "names")?;
        for name in &p.names {
            self.add_name(&names, name)?;
        }
        self.add_to_set(obj, "dobs", p.dobs.iter().map(ToString::to_string))?;
        self.add_to_set(obj, "nationalities", p.nationalities.iter().cloned())?;
        self.add_to_set(obj, "documents", p.documents.iter().map(|d| d.key()))?;
        self.put_opt_str(obj, "gender", p.gender.map(Gender::as_str))
    }

    fn add_name(&mut self, names: &ObjId, name: &NameVariant) -> Result<(), ModelError> {
        let element = self.doc.put_object(names, fold_text(&name.text), ObjType::Map)?;
        self.doc.put(&element, "text", name.text.as_str())?;
        self.doc.put(&element, "kind", name.kind.as_str())?;
        Ok(())
    }

    fn write_vehicle(&mut self, obj: &ObjId, v: &Vehicle) -> Result<(), ModelError> {
        let plates = self.set_obj(obj, "plates")?;
        for plate in &v.plates {
            self.doc.put(&plates, plate.normalized.as_str(), plate.raw.as_str())?;
        }
        self.put_opt_str(obj, "vin", v.vin.as_deref())?;
        self.put_opt_str(obj, "make", v.make.as_deref())?;
        self.put_opt_str(obj, "model", v.model.as_deref())?;
        self.put_opt_str(obj, "colour", v.colour.as_deref())?;
        self.put_opt_str(obj, "country", v.country.as_deref())?;
        self.doc.put(obj, "wanted", v.wanted.as_str())?;
        Ok(())
    }

    fn write_travel_document(&mut self, obj: &ObjId, t: &TravelDocument) -> Result<(), ModelError> {
        self.doc.put(obj, "doc_type", t.doc_type.as_str())?;
        self.doc.put(obj, "number", t.number.as_str())?;
        self.doc.put(obj, "issuing_state", t.issuing_state.as_str())?;
        self.doc.put(obj, "doc_status", t.doc_status.as_str())?;
        self.put_opt_str(obj, "issued", t.issued.map(|d| d.to_string()).as_deref())?;
        self.put_opt_str(obj, "doc_expires", t.expires.map(|d| d.to_string()).as_deref())?;
        self.put_opt_str(obj, "event_date", t.event_date.map(|d| d.to_string()).as_deref())
    }

    fn write_cargo(&mut self, obj: &ObjId, c: &Cargo) -> Result<(), ModelError> {
        self.doc.put(obj, "description", c.description.as_str())?;
        self.add_to_set(obj, "containers", c.containers.iter().cloned())?;
        self.put_opt_str(obj, "hs_code", c.hs_code.as_deref())
    }

    fn add_to_set(&mut self, obj: &ObjId, key: &str, elements: impl Iterator<Item = String>) -> Result<(), ModelError> {
        let set = self.set_obj(obj, key)?;
        for element in elements {
            self.doc.put(&set, element.as_str(), true)?;
        }
        Ok(())
    }

    fn remove_from_set(&mut self, obj: &ObjId, key: &str, element: &str, what: &'static str) -> Result<(), ModelError> {
        let set = self.set_obj(obj, key)?;
        if self.doc.get(&set, element)?.is_none() {
            return Err(ModelError::NotFound { what, id: element.to_string() });
        }
        self.doc.delete(&set, element)?;
        Ok(())
    }

    fn entry_obj(&self, id: &EntryId) -> Result<ObjId, ModelError> {
        self.record(&id.to_string())?.ok_or_else(|| ModelError::NotFound { what: "entry", id: id.to_string() })
    }

    /// Applies a validated amendment. Fields not named are left as they are,
    /// so concurrent amendments of different fields both survive.
    pub fn amend_entry(&mut self, id: &EntryId, a: &Amendment) -> Result<(), ModelError> {
        let obj = self.entry_obj(id)?;
        if let Some(category) = a.category {
            self.doc.put(&obj, "category", category.as_str())?;
        }
        if let Some(reason) = &a.reason {
            self.doc.put(&obj, "reason", reason.as_str())?;
        }
        if let Some(action) = &a.action {
            self.doc.put(&obj, "action", action.as_str())?;
        }
        if let Some(expires) = a.expires {
            self.put_opt_str(&obj, "expires", expires.map(|d| d.to_string()).as_deref())?;
        }
        // Removals before additions: `--remove-name ALIEV --add-name Aliev`
        // fixes the spelling of one element instead of deleting it.
        for name in &a.remove_names {
            self.remove_from_set(&obj, "names", &fold_text(name), "name")?;
        }
        for dob in &a.remove_dobs {
            self.remove_from_set(&obj, "dobs", &dob.to_string(), "date of birth")?;
        }
        for n in &a.remove_nationalities {
            self.remove_from_set(&obj, "nationalities", n, "nationality")?;
        }
        for d in &a.remove_documents {
            self.remove_from_set(&obj, "documents", &d.key(), "identity document")?;
        }
        for w in &a.remove_warnings {
            self.remove_from_set(&obj, "warnings", w.as_str(), "warning")?;
        }
        for plate in &a.remove_plates {
            self.remove_from_set(&obj, "plates", plate, "plate")?;
        }
        if !a.add_names.is_empty() {
            let names = self.set_obj(&obj, "names")?;
            // Re-writing an element that is already present is deliberate:
            // it is a fresh add that a concurrent removal did not see, so
            // the element survives the merge (add-wins).
            for name in &a.add_names {
                self.add_name(&names, name)?;
            }
        }
        self.add_to_set(&obj, "dobs", a.add_dobs.iter().map(ToString::to_string))?;
        self.add_to_set(&obj, "nationalities", a.add_nationalities.iter().cloned())?;
        self.add_to_set(&obj, "documents", a.add_documents.iter().map(|d| d.key()))?;
        self.add_to_set(&obj, "warnings", a.add_warnings.iter().map(|w| w.as_str().to_string()))?;
        if !a.add_plates.is_empty() {
            let plates = self.set_obj(&obj, "plates")?;
            for plate in &a.add_plates {
                self.doc.put(&plates, plate.normalized.as_str(), plate.raw.as_str())?;
            }
        }
        if let Some(vin) = &a.vin {
            self.doc.put(&obj, "vin", vin.as_str())?;
        }
        if let Some(description) = &a.description {
            self.doc.put(&obj, "description", description.as_str())?;
        }
        self.check_findable(&obj)?;
        self.touch(&obj)
    }

    /// An amendment must not leave an entry that no search can find.
    fn check_findable(&self, obj: &ObjId) -> Result<(), ModelError> {
        let count = |key: &str| -> Result<usize, ModelError> {
            Ok(match self.doc.get(obj, key)? {
                Some((Value::Object(ObjType::Map), set)) => self.doc.length(&set),
                _ => 0,
            })
        };
        let kind = match self.doc.get(obj, "kind")? {
            Some((Value::Scalar(s), _)) => s.as_str().and_then(|k| SubjectKind::parse(k).ok()),
            _ => None,
        };
        let has_vin = self.doc.get(obj, "vin")?.is_some();
        match kind {
            Some(SubjectKind::Person) if count("names")? == 0 => Err(ValidationError::Incomplete {
                kind: "person",
                needs: "at least one name; add one before removing the last",
            }
            .into()),
            Some(SubjectKind::Vehicle) if count("plates")? == 0 && !has_vin => Err(ValidationError::Incomplete {
                kind: "vehicle",
                needs: "a plate or a VIN; add one before removing the last plate",
            }
            .into()),
            _ => Ok(()),
        }
    }

    /// Moves an entry through its lifecycle, refusing transitions the
    /// lifecycle does not allow (a closed entry stays closed).
    pub fn set_entry_status(&mut self, id: &EntryId, next: EntryStatus, reason: &str) -> Result<(), ModelError> {
        let obj = self.entry_obj(id)?;
        let entry = read_entry_at(self.doc, self.doc_id, *id, obj.clone())?;
        if !entry.status.may_become(next) {
            return Err(ValidationError::StatusChange { from: entry.status.to_string(), to: next.to_string() }.into());
        }
        self.doc.put(&obj, "status", next.as_str())?;
        self.doc.put(&obj, "status_reason", reason)?;
        self.touch(&obj)
    }
}

/// Reads one entry, or `None` if the document does not hold it.
pub fn read_entry(doc: &Document, id: EntryId) -> Result<Option<Entry>, ModelError> {
    let records = doc.records_obj()?;
    match doc.read().get(&records, id.to_string())? {
        Some((Value::Object(ObjType::Map), obj)) => read_entry_at(doc.read(), doc.id(), id, obj).map(Some),
        Some(_) => Err(ModelError::schema(doc.id(), id.to_string(), "entry is not a map")),
        None => Ok(None),
    }
}

/// Reads every entry in the document, in id order.
pub fn read_entries(doc: &Document) -> Result<Vec<Entry>, ModelError> {
    let records = doc.records_obj()?;
    let mut out = Vec::new();
    for key in doc.read().keys(&records) {
        let id = EntryId::parse(&key).map_err(|e| ModelError::schema(doc.id(), &key, e.to_string()))?;
        if let Some(entry) = read_entry(doc, id)? {
            out.push(entry);
        }
    }
    Ok(out)
}

fn read_entry_at(doc: &AutoCommit, doc_id: &DocId, id: EntryId, obj: ObjId) -> Result<Entry, ModelError> {
    let authority = match doc.get(automerge::ROOT, "authority")? {
        Some((Value::Scalar(s), _)) => s.as_str().unwrap_or_default().to_string(),
        _ => return Err(ModelError::schema(doc_id, "/authority", "missing")),
    };
    let mut r = FieldReader::new(doc, doc_id, obj, format!("entries/{id}"));
    let kind = r.required("kind", SubjectKind::parse)?;
    let subject = match kind {
        SubjectKind::Person => Subject::Person(read_person(&mut r)?),
        SubjectKind::Vehicle => Subject::Vehicle(read_vehicle(&mut r)?),
        SubjectKind::Document => Subject::Document(read_travel_document(&mut r)?),
        SubjectKind::Cargo => Subject::Cargo(read_cargo(&mut r)?),
    };
    let warnings = r
        .set_keys("warnings")?
        .iter()
        .map(|w| Warning::parse(w))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ModelError::schema(doc_id, format!("entries/{id}/warnings"), e.to_string()))?;
    let entry = Entry {
        id,
        doc: doc_id.clone(),
        authority,
        category: r.required("category", Category::parse)?,
        reason: r.str("reason")?,
        action: r.opt_str("action")?.unwrap_or_default(),
        warnings,
        status: r.resolved("status", EntryStatus::parse, |a, b| a.restrictiveness() > b.restrictiveness())?,
        valid_from: r.required("valid_from", |t| Day::parse("valid_from", t))?,
        expires: r.parsed("expires", |t| Day::parse("expires", t))?,
        created_at: r.latest_timestamp("created_at")?,
        created_by: r.str("created_by")?,
        updated_at: r.latest_timestamp("updated_at")?,
        updated_by: r.strings("updated_by")?.into_iter().next().unwrap_or_default(),
        subject,
        conflicts: Vec::new(),
    };
    Ok(Entry { conflicts: r.conflicts, ..entry })
}

fn parse_all<T>(
    r: &FieldReader<'_>,
    key: &str,
    parse: impl Fn(&str) -> Result<T, ValidationError>,
) -> Result<Vec<T>, ModelError> {
    r.set_keys(key)?
        .iter()
        .map(|k| parse(k).map_err(|e| ModelError::schema(r.doc_id, format!("{}/{key}/{k}", r.path), e.to_string())))
        .collect()
}

fn read_person(r: &mut FieldReader<'_>) -> Result<Person, ModelError> {
    let mut names = Vec::new();
    for (element, obj) in r.set_objects("names")? {
        let mut nr = r.nested(obj, &format!("names/{element}"));
        let text = nr.str("text")?;
        let kind = nr.required("kind", NameKind::parse)?;
        r.absorb(nr, &format!("names[{element}]"));
        names.push(NameVariant { script: script_of(&text), text, kind });
    }
    // Primary names first, then in the set's (sorted) order.
    names.sort_by_key(|n| n.kind != NameKind::Primary);
    Ok(Person {
        names,
        dobs: parse_all(r, "dobs", |d| PartialDate::parse("date of birth", d))?,
        nationalities: parse_all(r, "nationalities", |c| parse_country("nationality", c))?,
        documents: parse_all(r, "documents", identity_document)?,
        gender: r.parsed("gender", Gender::parse)?,
    })
}

fn read_vehicle(r: &mut FieldReader<'_>) -> Result<Vehicle, ModelError> {
    let mut plates = Vec::new();
    let set = match r.doc.get(&r.obj, "plates")? {
        Some((Value::Object(ObjType::Map), set)) => Some(set),
        _ => None,
    };
    if let Some(set) = set {
        for normalized in r.doc.keys(&set) {
            let raw = match r.doc.get(&set, normalized.as_str())? {
                Some((Value::Scalar(s), _)) => s.as_str().unwrap_or(&normalized).to_string(),
                _ => normalized.clone(),
            };
            plates.push(Plate { raw, normalized });
        }
    }
    Ok(Vehicle {
        plates,
        vin: r.opt_str("vin")?,
        make: r.opt_str("make")?,
        model: r.opt_str("model")?,
        colour: r.opt_str("colour")?,
        country: r.parsed("country", |c| parse_country("country", c))?,
        wanted: r.parsed("wanted", VehicleWanted::parse)?.unwrap_or(VehicleWanted::Vehicle),
    })
}

fn read_travel_document(r: &mut FieldReader<'_>) -> Result<TravelDocument, ModelError> {
    Ok(TravelDocument {
        doc_type: r.required("doc_type", DocumentType::parse)?,
        number: r.str("number")?,
        issuing_state: r.required("issuing_state", |c| parse_country("issuing state", c))?,
        doc_status: r.required("doc_status", DocumentStatus::parse)?,
        issued: r.parsed("issued", |t| Day::parse("issued", t))?,
        expires: r.parsed("doc_expires", |t| Day::parse("doc_expires", t))?,
        event_date: r.parsed("event_date", |t| Day::parse("event_date", t))?,
    })
}

fn read_cargo(r: &mut FieldReader<'_>) -> Result<Cargo, ModelError> {
    Ok(Cargo {
        description: r.str("description")?,
        containers: parse_all(r, "containers", normalize_container)?,
        hs_code: r.opt_str("hs_code")?,
    })
}
