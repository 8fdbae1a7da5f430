//! Helpers the model's own tests share.

use crate::date::Timestamp;
use crate::ids::{EntryId, IncidentId};
use crate::schema::{ChangeMeta, Document};
use crate::validate::{PostContext, new_entry};

/// Adds a person entry named `name`, with id `n`, to a KAZ-BS watchlist
/// document at time `at`, as one change.
pub(crate) fn add_person(doc: &mut Document, n: u128, name: &str, at: Timestamp) {
    let ctx = PostContext { now: at, offset: time::UtcOffset::UTC, authority: "KAZ-BS".into(), post: "kz-test".into() };
    let id = doc.kind().entry_id_from(n).unwrap_or_else(|| EntryId::owned_by("KAZ-BS", uuid::Uuid::from_u128(n)));
    let draft = new_entry(&person(name), id, &ctx).unwrap();
    let meta = ChangeMeta { at, by: "1000@kz-test".into(), op: "watchlist.add" };
    doc.transact(&meta, |r| r.add_entry(&draft)).unwrap();
}

/// A warning on a person named `name`, as an officer types it.
pub(crate) fn person(name: &str) -> crate::api::NewEntryInput {
    crate::api::NewEntryInput {
        kind: "person".into(),
        category: "warning".into(),
        reason: "test".into(),
        names: vec![name.into()],
        ..Default::default()
    }
}

/// An incident of `post` as an officer logs it at `at`.
pub(crate) fn incident_draft(
    post: &str,
    id: IncidentId,
    narrative: &str,
    at: Timestamp,
) -> crate::incident::IncidentDraft {
    let ctx = PostContext { now: at, offset: time::UtcOffset::UTC, authority: "KAZ-BS".into(), post: post.into() };
    let input = crate::api::NewIncidentInput {
        incident_type: "seizure".into(),
        narrative: narrative.into(),
        ..Default::default()
    };
    crate::validate::new_incident(&input, id, &ctx).unwrap()
}

/// An officer's search at `at`, as the audit log records it.
pub(crate) fn search_event(at: Timestamp, detail: &str) -> crate::audit::AuditEvent {
    crate::audit::AuditEvent {
        at,
        uid: 1000,
        pid: None,
        user: "aigerim".into(),
        role: "officer".into(),
        action: "watchlist.search".into(),
        purpose: Some("bus 214".into()),
        detail: detail.into(),
        result_ids: Vec::new(),
    }
}
