//! Incident records: what happened at a post, who and what was involved.

use serde::{Deserialize, Serialize};

use crate::date::{LocalTime, Timestamp};
use crate::ids::{DocId, EntryId, IncidentId};
use crate::vocab::{FollowUp, IncidentType, Unit};
use crate::watchlist::FieldConflict;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeizedItem {
    pub substance: String,
    /// Decimal as the officer typed it, validated positive; never a float, so
    /// 1.10 kg stays 1.10 kg in every report.
    pub quantity: String,
    pub unit: Unit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvolvedPerson {
    /// The name as presented at the post.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvolvedVehicle {
    pub plate: String,
    pub normalized: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryId>,
}

/// One append-only paragraph of an incident's narrative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub at: Timestamp,
    pub by: String,
    pub text: String,
}

/// A validated new incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentDraft {
    pub id: IncidentId,
    pub post: String,
    pub incident_type: IncidentType,
    pub occurred_at: LocalTime,
    pub location: Option<String>,
    pub seized: Vec<SeizedItem>,
    pub persons: Vec<InvolvedPerson>,
    pub vehicles: Vec<InvolvedVehicle>,
    pub hits: Vec<EntryId>,
    pub narrative: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub doc: DocId,
    pub post: String,
    pub incident_type: IncidentType,
    pub occurred_at: LocalTime,
    pub recorded_at: Timestamp,
    pub recorded_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub seized: Vec<SeizedItem>,
    pub persons: Vec<InvolvedPerson>,
    pub vehicles: Vec<InvolvedVehicle>,
    pub hits: Vec<EntryId>,
    pub narrative: Vec<Note>,
    pub follow_up: FollowUp,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<FieldConflict>,
}

impl Incident {
    pub fn summary(&self) -> IncidentSummary {
        IncidentSummary {
            id: self.id,
            post: self.post.clone(),
            incident_type: self.incident_type,
            occurred_at: self.occurred_at,
            follow_up: self.follow_up,
            first_line: self
                .narrative
                .first()
                .map(|n| n.text.lines().next().unwrap_or_default().chars().take(60).collect())
                .unwrap_or_default(),
            notes: self.narrative.len(),
        }
    }
}

/// One line of `outpost incident list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSummary {
    pub id: IncidentId,
    pub post: String,
    pub incident_type: IncidentType,
    pub occurred_at: LocalTime,
    pub follow_up: FollowUp,
    pub first_line: String,
    pub notes: usize,
}

/// Links the persons and vehicles of a new incident to the watchlist entries
/// it is a hit on: a person whose name has the same tokens as one of a
/// person entry's names (in any order or script), a vehicle whose plate is
/// one of a vehicle entry's plates. A lone person and a lone person entry
/// are linked even when the names differ, since the officer named the hit.
pub fn link_hits(draft: &mut IncidentDraft, entries: &[crate::watchlist::Entry]) {
    use crate::names::name_tokens;
    use crate::watchlist::Subject;

    let sorted_tokens = |text: &str| {
        let mut tokens = name_tokens(text);
        tokens.sort();
        tokens
    };
    let person_entries: Vec<_> = entries
        .iter()
        .filter_map(|e| match &e.subject {
            Subject::Person(p) => Some((e.id, p)),
            _ => None,
        })
        .collect();
    for person in &mut draft.persons {
        let tokens = sorted_tokens(&person.name);
        person.entry = person_entries
            .iter()
            .find(|(_, p)| p.names.iter().any(|n| sorted_tokens(&n.text) == tokens))
            .map(|(id, _)| *id);
    }
    if let ([person], [(id, _)]) = (draft.persons.as_mut_slice(), person_entries.as_slice()) {
        person.entry = Some(*id);
    }
    for vehicle in &mut draft.vehicles {
        vehicle.entry = entries
            .iter()
            .find(|e| match &e.subject {
                Subject::Vehicle(v) => v.plates.iter().any(|p| p.normalized == vehicle.normalized),
                _ => false,
            })
            .map(|e| e.id);
    }
}
