//! The fleet requests: the roster this node holds, a roster an
//! administrator signed (installed and spread through the writer), and the
//! cut a revocation records.

use outpost_model::api::{ApiError, CutList, ErrorKind, FleetView, MemberView, Response, RosterPublished};

use super::{Service, internal};
use crate::writer::{Caller, TrustReport, WriteOp, Written};

/// The members of a roster as the CLI shows them.
pub(super) fn fleet_view(report: &TrustReport, this_node: &str) -> FleetView {
    let members = report
        .fleet
        .iter()
        .flat_map(|f| f.roster.members.iter())
        .map(|m| MemberView {
            peer_id: m.key.peer_id(),
            name: m.name.clone(),
            role: m.role.as_str().to_string(),
            authority: m.authority.clone(),
            country: m.country.clone(),
            rights: m.rights.iter().map(ToString::to_string).collect(),
            legacy_actors: m.legacy_actors.iter().map(hex::encode).collect(),
            revoked: m.revoked.is_some(),
            revoked_in: m.revoked.as_ref().map(|r| r.in_version),
            attested_changes: report.attested.get(&m.name).copied().unwrap_or(0),
        })
        .collect();
    let signing_key = match (&report.fleet, &report.anchor) {
        (Some(fleet), Some(anchor)) => fleet.signed.signing_key(anchor).ok().map(|k| k.to_hex()),
        _ => None,
    };
    FleetView {
        mode: report.mode.to_string(),
        fleet_admin: report.anchor.map(|k| k.to_hex()),
        signing_key,
        version: report.fleet.as_ref().map_or(0, |f| f.version()),
        roster: report.fleet.as_ref().map(|f| hex::encode(f.encoded())),
        members,
        this_node: this_node.to_string(),
        conflicts: report.conflicts.clone(),
        held_changes: report.held,
        reads: report.fleet.as_ref().map(|f| f.roster.reads.describe()),
    }
}

impl Service {
    pub(super) async fn fleet_roster(&self) -> Result<Response, ApiError> {
        // The roster needs no per-peer counts, which load documents.
        let trust = match self.writer.submit(WriteOp::TrustReport, &Caller::daemon()).await? {
            Written::TrustReport(trust) => trust,
            _ => return Err(internal("unexpected writer reply")),
        };
        Ok(Response::Fleet(Box::new(fleet_view(&trust, &self.info.peer_id))))
    }

    pub(super) async fn fleet_publish(&self, roster: String, caller: &Caller) -> Result<Response, ApiError> {
        let bytes = hex::decode(roster.trim()).map_err(|_| {
            ApiError::new(ErrorKind::BadInput, "the roster is not hex; publish it with `outpost fleet`")
        })?;
        match self.writer.submit(WriteOp::PublishRoster(bytes), caller).await? {
            Written::RosterPublished(version) => Ok(Response::RosterPublished(RosterPublished { version })),
            _ => Err(internal("unexpected writer reply")),
        }
    }

    pub(super) async fn fleet_cut(&self, peer: String, caller: &Caller) -> Result<Response, ApiError> {
        match self.writer.submit(WriteOp::RevocationCut { peer }, caller).await? {
            Written::Cut(cut) => {
                let bytes = postcard::to_stdvec(&cut).map_err(internal)?;
                Ok(Response::Cut(CutList { cut: hex::encode(bytes), entries: cut.len() as u64 }))
            }
            _ => Err(internal("unexpected writer reply")),
        }
    }
}
