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
