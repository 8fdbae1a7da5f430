//! Incident records in Automerge.
//!
//! ```text
//! root.incidents[<uuid>] = {
//!   type, occurred_at (RFC 3339 with the post's offset), post, location?,
//!   recorded_at, recorded_by, updated_at, updated_by, follow_up,
//!   seized:   [{substance, quantity, unit}],
//!   persons:  [{name, entry?}],
//!   vehicles: [{plate, normalized, entry?}],
//!   hits:     {<entry uuid>: true},
//!   narrative: [{at, by, text}]      // append-only
//! }
//! ```
//! Lists are only ever appended to, so notes written concurrently at two
//! posts both survive, in the same order everywhere.

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};
use time::UtcOffset;

use super::{Document, FieldReader, Records};
use crate::date::LocalTime;
use crate::error::ModelError;
use crate::ids::{EntryId, IncidentId};
use crate::incident::{Incident, IncidentDraft, InvolvedPerson, InvolvedVehicle, Note, SeizedItem};
use crate::vocab::{FollowUp, IncidentType, Unit};

impl Records<'_> {
    pub fn add_incident(&mut self, draft: &IncidentDraft) -> Result<(), ModelError> {
        let key = draft.id.to_string();
        if self.record(&key)?.is_some() {
            return Err(ModelError::Forbidden(format!("incident {key} already exists")));
        }
        let obj = self.doc.put_object(&self.records, key.as_str(), ObjType::Map)?;
        let d = &mut *self.doc;
        d.put(&obj, "type", draft.incident_type.as_str())?;
        d.put(&obj, "occurred_at", draft.occurred_at.to_string())?;
        d.put(&obj, "post", draft.post.as_str())?;
        d.put(&obj, "recorded_at", ScalarValue::Timestamp(self.meta.at.as_millis()))?;
        d.put(&obj, "recorded_by", self.meta.by.as_str())?;
        d.put(&obj, "follow_up", FollowUp::Open.as_str())?;
        self.put_opt_str(&obj, "location", draft.location.as_deref())?;
        self.touch(&obj)?;

        let seized = self.doc.put_object(&obj, "seized", ObjType::List)?;
        for (i, item) in draft.seized.iter().enumerate() {
            let m = self.doc.insert_object(&seized, i, ObjType::Map)?;
            self.doc.put(&m, "substance", item.substance.as_str())?;
            self.doc.put(&m, "quantity", item.quantity.as_str())?;
            self.doc.put(&m, "unit", item.unit.as_str())?;
        }
        let persons = self.doc.put_object(&obj, "persons", ObjType::List)?;
        for (i, person) in draft.persons.iter().enumerate() {
            let m = self.doc.insert_object(&persons, i, ObjType::Map)?;
            self.doc.put(&m, "name", person.name.as_str())?;
            self.put_opt_str(&m, "entry", person.entry.map(|e| e.to_string()).as_deref())?;
        }
        let vehicles = self.doc.put_object(&obj, "vehicles", ObjType::List)?;
        for (i, vehicle) in draft.vehicles.iter().enumerate() {
            let m = self.doc.insert_object(&vehicles, i, ObjType::Map)?;
            self.doc.put(&m, "plate", vehicle.plate.as_str())?;
            self.doc.put(&m, "normalized", vehicle.normalized.as_str())?;
            self.put_opt_str(&m, "entry", vehicle.entry.map(|e| e.to_string()).as_deref())?;
        }
        let hits = self.set_obj(&obj, "hits")?;
        for hit in &draft.hits {
            self.doc.put(&hits, hit.to_string(), true)?;
        }
        self.doc.put_object(&obj, "narrative", ObjType::List)?;
        self.append_note(&draft.id, &draft.narrative)
    }

    fn incident_obj(&self, id: &IncidentId) -> Result<ObjId, ModelError> {
        self.record(&id.to_string())?.ok_or_else(|| ModelError::NotFound { what: "incident", id: id.to_string() })
    }

    /// Appends a paragraph to the narrative; earlier ones are never changed.
    pub fn append_note(&mut self, id: &IncidentId, text: &str) -> Result<(), ModelError> {
        let obj = self.incident_obj(id)?;
        let list = match self.doc.get(&obj, "narrative")? {
            Some((Value::Object(ObjType::List), list)) => list,
            _ => self.doc.put_object(&obj, "narrative", ObjType::List)?,
        };
        let at = self.doc.length(&list);
        let note = self.doc.insert_object(&list, at, ObjType::Map)?;
        self.doc.put(&note, "at", ScalarValue::Timestamp(self.meta.at.as_millis()))?;
        self.doc.put(&note, "by", self.meta.by.as_str())?;
        self.doc.put(&note, "text", text)?;
        self.touch(&obj)
    }

    pub fn set_follow_up(&mut self, id: &IncidentId, follow_up: FollowUp) -> Result<(), ModelError> {
        let obj = self.incident_obj(id)?;
        self.doc.put(&obj, "follow_up", follow_up.as_str())?;
        self.touch(&obj)
    }
}

pub fn read_incident(doc: &Document, id: IncidentId) -> Result<Option<Incident>, ModelError> {
    let records = doc.records_obj()?;
    match doc.read().get(&records, id.to_string())? {
        Some((Value::Object(ObjType::Map), obj)) => read_incident_at(doc, id, obj).map(Some),
        Some(_) => Err(ModelError::schema(doc.id(), id.to_string(), "incident is not a map")),
        None => Ok(None),
    }
}

pub fn read_incidents(doc: &Document) -> Result<Vec<Incident>, ModelError> {
    let records = doc.records_obj()?;
    let mut out = Vec::new();
    for key in doc.read().keys(&records) {
        let id = IncidentId::parse(&key).map_err(|e| ModelError::schema(doc.id(), &key, e.to_string()))?;
        if let Some(incident) = read_incident(doc, id)? {
            out.push(incident);
        }
    }
    Ok(out)
}

fn optional_entry(r: &mut FieldReader<'_>) -> Result<Option<EntryId>, ModelError> {
    r.parsed("entry", EntryId::parse)
}

fn read_incident_at(doc: &Document, id: IncidentId, obj: ObjId) -> Result<Incident, ModelError> {
    let mut r = FieldReader::new(doc.read(), doc.id(), obj, format!("incidents/{id}"));
    let mut seized = Vec::new();
    for (i, item) in r.list_objects("seized")?.into_iter().enumerate() {
        let mut ir = r.nested(item, &format!("seized/{i}"));
        seized.push(SeizedItem {
            substance: ir.str("substance")?,
            quantity: ir.str("quantity")?,
            unit: ir.required("unit", Unit::parse)?,
        });
        r.absorb(ir, &format!("seized[{i}]"));
    }
    let mut persons = Vec::new();
    for (i, item) in r.list_objects("persons")?.into_iter().enumerate() {
        let mut pr = r.nested(item, &format!("persons/{i}"));
        persons.push(InvolvedPerson { name: pr.str("name")?, entry: optional_entry(&mut pr)? });
        r.absorb(pr, &format!("persons[{i}]"));
    }
    let mut vehicles = Vec::new();
    for (i, item) in r.list_objects("vehicles")?.into_iter().enumerate() {
        let mut vr = r.nested(item, &format!("vehicles/{i}"));
        vehicles.push(InvolvedVehicle {
            plate: vr.str("plate")?,
            normalized: vr.str("normalized")?,
            entry: optional_entry(&mut vr)?,
        });
        r.absorb(vr, &format!("vehicles[{i}]"));
    }
    let mut narrative = Vec::new();
    for (i, item) in r.list_objects("narrative")?.into_iter().enumerate() {
        let mut nr = r.nested(item, &format!("narrative/{i}"));
        narrative.push(Note { at: nr.latest_timestamp("at")?, by: nr.str("by")?, text: nr.str("text")? });
        r.absorb(nr, &format!("narrative[{i}]"));
    }
    let hits = r
        .set_keys("hits")?
        .iter()
        .map(|h| EntryId::parse(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ModelError::schema(doc.id(), format!("incidents/{id}/hits"), e.to_string()))?;
    let incident = Incident {
        id,
        doc: doc.id().clone(),
        // The log's owner, from the document: a record's own `post` field
        // is whatever its writer put there.
        post: match doc.kind() {
            crate::schema::DocKind::Incidents { post, .. } => post.clone(),
            crate::schema::DocKind::Watchlist { .. } | crate::schema::DocKind::Audit { .. } => r.str("post")?,
        },
        incident_type: r.required("type", IncidentType::parse)?,
        occurred_at: r.required("occurred_at", |t| LocalTime::parse("occurred_at", t, UtcOffset::UTC))?,
        recorded_at: r.latest_timestamp("recorded_at")?,
        recorded_by: r.str("recorded_by")?,
        location: r.opt_str("location")?,
        follow_up: r.resolved("follow_up", FollowUp::parse, |a, b| a.progress() > b.progress())?,
        seized,
        persons,
        vehicles,
        hits,
        narrative,
        conflicts: Vec::new(),
    };
    Ok(Incident { conflicts: r.conflicts, ..incident })
}
