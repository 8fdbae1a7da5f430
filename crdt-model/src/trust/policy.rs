//! The write policy: which part of which document a member may change.

use super::roster::{Fleet, Member, Right};
use crate::schema::DocKind;

/// How much of one document a member may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Its records: create new ones and change anything inside them. Never
    /// the document's root fields, and never delete or replace a record.
    Records,
    /// Append notes to the incidents' narratives and mark them referred.
    NotesAndReferrals,
    /// Add records, each written whole by the change that creates it, and
    /// change none: a post's own audit log.
    Append,
    Nothing,
}

/// What `member`, holding `rights`, may write in `doc`. The rights are
/// passed in because a revoked member's changes inside its cut are judged
/// by the rights it had.
/// Whether any member of the roster (revoked ones with the rights they
/// had) may write in `doc`. A document nobody may write can hold nothing
/// but its genesis: only junk has such an id.
pub fn anyone_writes(fleet: &Fleet, doc: &DocKind) -> bool {
    fleet.roster.members.iter().any(|m| scope(fleet, m, &m.rights, doc) != Scope::Nothing)
}

pub fn scope(fleet: &Fleet, member: &Member, rights: &[Right], doc: &DocKind) -> Scope {
    match doc {
        DocKind::Watchlist { authority, .. } => {
            let writes = rights.iter().any(|r| matches!(r, Right::Watchlist { authority: a } if a == authority));
            if writes { Scope::Records } else { Scope::Nothing }
        }
        DocKind::Audit { post, .. } => {
            if *post == member.name {
                Scope::Append
            } else {
                Scope::Nothing
            }
        }
        DocKind::Incidents { post, .. } => {
            if *post == member.name && rights.contains(&Right::IncidentLog) {
                return Scope::Records;
            }
            let country = fleet.member_named(post).map(|p| p.country.clone());
            let annotates = rights.iter().any(|r| match (r, &country) {
                (Right::IncidentNotes { country: None }, Some(_)) => true,
                (Right::IncidentNotes { country: Some(c) }, Some(Some(post_country))) => c == post_country,
                _ => false,
            });
            if annotates { Scope::NotesAndReferrals } else { Scope::Nothing }
        }
    }
}
