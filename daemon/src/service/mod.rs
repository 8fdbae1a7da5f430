//! Turns control-socket requests into reads, writes and audit records.
//! `fleet` answers the fleet requests.
//!
//! Reads go straight to the projection (redb) or the search index, never to
//! Automerge. Every read that shows personal data is audited durably before
//! its answer leaves the daemon; writes are audited inside their own commit.

mod backup;
mod fleet;
mod health_check;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use outpost_model::api::{
    ApiError, AuditCheck, AuditPage, EntryList, EntryView, ErrorKind, Imported, IncidentList, MAX_PAGE,
    PROTOCOL_VERSION, PeerDocument, PeerList, PeerView, ReplicationStatus, Request, Response, SearchResults,
    StatusInfo, StorageStatus, SyncStarted, created,
};
use outpost_model::date::{Day, Timestamp};
use outpost_model::replication::engine::PeerKey;
use outpost_model::search::SearchQuery;
use outpost_model::validate::{self, PostContext};
use outpost_model::vocab::{EntryStatus, FollowUp, SubjectKind};
use outpost_model::{EntryId, IncidentId};
use time::UtcOffset;

use crate::net::SharedNetState;
use crate::now;
use crate::roles::{RoleGroups, authorise};
use crate::store::{EntryFilter, IncidentFilter, Lookup, Store, StoreError};
use crate::writer::{
    AuditLog, Caller, PeerDocs, ReplicationInput, SharedIndex, SyncReport, WriteOp, WriterHandle, Written,
};

const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node_name: String,
    pub authority: String,
    pub offset: UtcOffset,
    pub data_dir: PathBuf,
    pub socket: PathBuf,
    pub started_at: Timestamp,
    pub started: Instant,
    /// What the network task reports; `None` when the post does not network.
    pub net: Option<SharedNetState>,
    /// The libp2p peer id of this node's key, which an admin enrols.
    pub peer_id: String,
    /// Which Unix groups grant which role on the control socket.
    pub roles: RoleGroups,
    /// When `outpost status --check` fails.
    pub health: crate::config::HealthThresholds,
}

#[derive(Debug, Clone)]
pub struct Service {
    store: Arc<Store>,
    index: SharedIndex,
    writer: WriterHandle,
    info: Arc<NodeInfo>,
    latencies: crate::metrics::Latencies,
}

fn internal(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, err.to_string())
}

fn bad_input(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::BadInput, message)
}

fn page(limit: Option<u32>) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        0 => Err(bad_input("limit must be at least 1")),
        n if n > MAX_PAGE => Err(bad_input(format!("limit {n} is above the maximum of {MAX_PAGE}"))),
        n => Ok(n as usize),
    }
}

fn optional_purpose(purpose: Option<String>) -> Result<Option<String>, ApiError> {
    purpose
        .filter(|p| !p.trim().is_empty())
        .map(|p| outpost_model::validate::purpose(&p))
        .transpose()
        .map_err(Into::into)
}

/// "list entries status=active", naming only the filters that were given.
fn describe(what: &str, filters: &[(&str, Option<String>)]) -> String {
    let mut text = what.to_string();
    for (name, value) in filters {
        if let Some(value) = value {
            text.push_str(&format!(" {name}={value}"));
        }
    }
    text
}

fn resolved<T>(what: (&str, &str), text: &str, lookup: Lookup<T>) -> Result<T, ApiError> {
    let (one, many) = what;
    match lookup {
        Lookup::Found(id) => Ok(id),
        Lookup::Missing => Err(ApiError::new(
            ErrorKind::NotFound,
            format!("no {one} with id {text:?} (give the full id, or at least its last 6 hex digits)"),
        )),
        Lookup::Ambiguous(ids) => {
            Err(bad_input(format!("id {text:?} matches several {many}: {}; type more of it", ids.join(", "))))
        }
    }
}

impl Service {
    pub fn new(
        store: Arc<Store>,
        index: SharedIndex,
        writer: WriterHandle,
        info: NodeInfo,
        latencies: crate::metrics::Latencies,
    ) -> Self {
        Self { store, index, writer, info: Arc::new(info), latencies }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || read(&store)).await.map_err(internal)?.map_err(internal)
    }

    fn today(&self) -> Day {
        PostContext {
            now: now(),
            offset: self.info.offset,
            authority: self.info.authority.clone(),
            post: self.info.node_name.clone(),
        }
        .today()
    }

    async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        purpose: Option<String>,
        detail: String,
        result_ids: Vec<String>,
    ) -> Result<(), ApiError> {
        let event = caller.audit_event(now(), action, purpose, detail, result_ids);
        self.writer.submit(WriteOp::Audit(event), caller).await.map(|_| ())
    }

    /// `post`'s audit log as this node holds it, checked by the writer.
    async fn post_audit_log(&self, post: &str, caller: &Caller) -> Result<AuditLog, ApiError> {
        validate::node_name(post)?;
        match self.writer.submit(WriteOp::AuditLog { post: post.to_string() }, caller).await? {
            Written::AuditLog(log) => Ok(*log),
            _ => Err(internal("unexpected writer reply")),
        }
    }

    /// A full id, or a fragment that picks out exactly one stored id.
    async fn resolve_id<T: Send + 'static>(
        &self,
        text: String,
        names: (&str, &str),
        parse: fn(&str) -> Result<T, outpost_model::ValidationError>,
        lookup: fn(&Store, &str) -> Result<Lookup<T>, StoreError>,
    ) -> Result<T, ApiError> {
        if let Ok(id) = parse(&text) {
            return Ok(id);
        }
        let key = text.clone();
        let found = self.blocking(move |s| lookup(s, &key)).await?;
        resolved(names, &text, found)
    }

    async fn entry_id(&self, text: String) -> Result<EntryId, ApiError> {
        self.resolve_id(text, ("entry", "entries"), EntryId::parse, Store::resolve_entry).await
    }

    async fn incident_id(&self, text: String) -> Result<IncidentId, ApiError> {
        self.resolve_id(text, ("incident", "incidents"), IncidentId::parse, Store::resolve_incident).await
    }

    /// The role groups callers are judged by.
    pub fn role_groups(&self) -> &RoleGroups {
        &self.info.roles
    }

    pub async fn handle(&self, request: Request, caller: &Caller) -> Result<Response, ApiError> {
        let caller = &authorise(caller, &request, &self.info.roles)?;
        match request {
            // A stream: the control connection answers it (begin_backup).
            Request::Backup => Err(internal("a backup is streamed by the control connection")),
            Request::Status => self.status().await,
            Request::HealthCheck => self.health_check().await.map(Response::Health),
            Request::Peers => self.peers().await,
            Request::SyncNow { peer } => self.sync_now(peer).await,
            Request::FleetRoster => self.fleet_roster().await,
            Request::FleetPublish { roster } => self.fleet_publish(roster, caller).await,
            Request::FleetCut { peer } => self.fleet_cut(peer, caller).await,
            Request::WatchlistAdd { entry } => {
                match self.writer.submit(WriteOp::AddEntries { inputs: vec![*entry] }, caller).await? {
                    Written::Entries(entries) => {
                        entries.first().map(|e| created(e.id)).ok_or_else(|| internal("nothing added"))
                    }
                    _ => Err(internal("unexpected writer reply")),
                }
            }
            Request::WatchlistImport { entries } => {
                if entries.is_empty() {
                    return Err(bad_input("the import holds no entries"));
                }
                match self.writer.submit(WriteOp::AddEntries { inputs: entries }, caller).await? {
                    Written::Entries(entries) => {
                        Ok(Response::Imported(Imported { ids: entries.iter().map(|e| e.id).collect() }))
                    }
                    _ => Err(internal("unexpected writer reply")),
                }
            }
            Request::WatchlistShow { id, purpose } => {
                let purpose = optional_purpose(purpose)?;
                let id = self.entry_id(id).await?;
                let entry = self
                    .blocking(move |s| s.entry(&id))
                    .await?
                    .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("entry {id} not found")))?;
                self.audit(caller, "watchlist.show", purpose, format!("show entry {id}"), vec![id.to_string()]).await?;
                Ok(Response::Entry(Box::new(EntryView::new(entry, self.today()))))
            }
            Request::WatchlistList { status, kind, limit, purpose } => {
                let purpose = optional_purpose(purpose)?;
                let filter = EntryFilter {
                    status: status.as_deref().map(EntryStatus::parse).transpose()?,
                    kind: kind.as_deref().map(SubjectKind::parse).transpose()?,
                    limit: page(limit)?,
                };
                let detail = describe(
                    "list entries",
                    &[("status", filter.status.map(|s| s.to_string())), ("kind", filter.kind.map(|k| k.to_string()))],
                );
                let (entries, total) = self.blocking(move |s| s.list_entries(&filter)).await?;
                let ids = entries.iter().map(|e| e.id.to_string()).collect();
                self.audit(caller, "watchlist.list", purpose, detail, ids).await?;
                let today = self.today();
                Ok(Response::Entries(EntryList { entries: entries.iter().map(|e| e.summary(today)).collect(), total }))
            }
            Request::WatchlistSearch(input) => {
                let started = std::time::Instant::now();
                let query = SearchQuery::parse(&input)?;
                let today = self.today();
                let index = self.index.clone();
                let q = query.clone();
                let matches = tokio::task::spawn_blocking(move || {
                    index.read().unwrap_or_else(std::sync::PoisonError::into_inner).search(&q, today)
                })
                .await
                .map_err(internal)?;
                let detail = format!(
                    "search {:?}{}{}",
                    query.text,
                    query.dob.map(|d| format!(" dob={d}")).unwrap_or_default(),
                    query.nationality.as_ref().map(|n| format!(" nationality={n}")).unwrap_or_default()
                );
                let ids = matches.iter().map(|m| m.id.to_string()).collect();
                self.audit(caller, "watchlist.search", Some(query.purpose), detail, ids).await?;
                self.latencies.observe_search(started.elapsed());
                Ok(Response::Matches(SearchResults { matches }))
            }
            Request::WatchlistAmend { id, amendment } => {
                let id = self.entry_id(id).await?;
                self.entry_reply(self.writer.submit(WriteOp::Amend { id, input: amendment }, caller).await?)
            }
            Request::WatchlistSetStatus { id, status, reason } => {
                let status = EntryStatus::parse(&status)?;
                let id = self.entry_id(id).await?;
                self.entry_reply(self.writer.submit(WriteOp::SetStatus { id, status, reason }, caller).await?)
            }
            Request::IncidentLog { incident } => {
                match self.writer.submit(WriteOp::LogIncident { input: incident }, caller).await? {
                    Written::Incident(incident) => Ok(created(incident.id)),
                    _ => Err(internal("unexpected writer reply")),
                }
            }
            Request::IncidentList { since, follow_up, limit } => {
                let filter = IncidentFilter {
                    since: since.as_deref().map(|s| Timestamp::parse("since", s)).transpose()?,
                    follow_up: follow_up.as_deref().map(FollowUp::parse).transpose()?,
                    limit: page(limit)?,
                };
                let detail = describe(
                    "list incidents",
                    &[("since", since.clone()), ("follow-up", filter.follow_up.map(|f| f.to_string()))],
                );
                let (incidents, total) = self.blocking(move |s| s.list_incidents(&filter)).await?;
                let ids = incidents.iter().map(|i| i.id.to_string()).collect();
                self.audit(caller, "incident.list", None, detail, ids).await?;
                Ok(Response::Incidents(IncidentList {
                    incidents: incidents.iter().map(|i| i.summary()).collect(),
                    total,
                }))
            }
            Request::IncidentShow { id } => {
                let id = self.incident_id(id).await?;
                let incident = self
                    .blocking(move |s| s.incident(&id))
                    .await?
                    .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("incident {id} not found")))?;
                self.audit(caller, "incident.show", None, format!("show incident {id}"), vec![id.to_string()]).await?;
                Ok(Response::Incident(Box::new(incident)))
            }
            Request::IncidentNote { id, text } => {
                let id = self.incident_id(id).await?;
                self.incident_reply(self.writer.submit(WriteOp::Note { id, text }, caller).await?)
            }
            Request::IncidentSetFollowUp { id, follow_up, note } => {
                let follow_up = FollowUp::parse(&follow_up)?;
                let id = self.incident_id(id).await?;
                self.incident_reply(self.writer.submit(WriteOp::FollowUp { id, follow_up, note }, caller).await?)
            }
            Request::Audit { since, limit, post: Some(post) } => {
                let since_ts = since.as_deref().map(|s| Timestamp::parse("since", s)).transpose()?;
                let limit = page(limit)?;
                let detail = describe(&format!("read the audit log of {post}"), &[("since", since.clone())]);
                self.audit(caller, "audit.read", None, detail, vec![]).await?;
                let log = self.post_audit_log(&post, caller).await?;
                let problems: Vec<String> = log.check.problems.iter().cloned().chain(alarm_lines(&log)).collect();
                let mut records: Vec<_> =
                    log.records.into_iter().map(|s| s.record).filter(|r| since_ts.is_none_or(|t| r.at >= t)).collect();
                let skip = records.len().saturating_sub(limit);
                records.drain(..skip);
                Ok(Response::Audit(AuditPage {
                    post: Some(post),
                    records,
                    chain_verified: problems.is_empty(),
                    chain_length: log.check.records,
                    chain_error: (!problems.is_empty()).then(|| problems.join("; ")),
                }))
            }
            Request::Audit { since, limit, post: None } => {
                let since_ts = since.as_deref().map(|s| Timestamp::parse("since", s)).transpose()?;
                let limit = page(limit)?;
                self.audit(caller, "audit.read", None, describe("read audit log", &[("since", since.clone())]), vec![])
                    .await?;
                let view = self.blocking(move |s| s.audit(since_ts, limit)).await?;
                Ok(Response::Audit(AuditPage {
                    post: None,
                    records: view.records,
                    chain_verified: view.chain_error.is_none(),
                    chain_length: view.chain_length,
                    chain_error: view.chain_error,
                }))
            }
            Request::AuditVerify { post } => {
                self.audit(caller, "audit.verify", None, format!("verify the audit log of {post}"), vec![]).await?;
                let log = self.post_audit_log(&post, caller).await?;
                let signatures_checked = log.signatures_checked;
                let mut problems = log.check.problems.clone();
                problems.extend(alarm_lines(&log));
                problems.sort();
                problems.dedup();
                Ok(Response::AuditCheck(AuditCheck {
                    post,
                    records: log.check.records,
                    first: log.check.first,
                    head_seq: log.check.head.as_ref().map(|h| h.0),
                    head_hash: log.check.head.map(|h| h.1),
                    signatures_checked,
                    problems,
                }))
            }
        }
    }

    fn entry_reply(&self, written: Written) -> Result<Response, ApiError> {
        match written {
            Written::Entries(mut entries) if entries.len() == 1 => {
                Ok(Response::Entry(Box::new(EntryView::new(entries.remove(0), self.today()))))
            }
            _ => Err(internal("unexpected writer reply")),
        }
    }

    fn incident_reply(&self, written: Written) -> Result<Response, ApiError> {
        match written {
            Written::Incident(incident) => Ok(Response::Incident(incident)),
            _ => Err(internal("unexpected writer reply")),
        }
    }

    async fn sync_report(&self) -> Result<SyncReport, ApiError> {
        match self.writer.submit(WriteOp::SyncReport, &Caller::daemon()).await? {
            Written::SyncReport(report) => Ok(*report),
            _ => Err(internal("unexpected writer reply")),
        }
    }

    fn net(&self) -> Result<&SharedNetState, ApiError> {
        self.info.net.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorKind::BadInput,
                "this post does not network: no pre-shared key is configured ([network] psk_file or --psk-file)",
            )
        })
    }

    async fn peers(&self) -> Result<Response, ApiError> {
        let net = self.net()?.clone();
        let report = self.sync_report().await?;
        let state = net.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut peers: Vec<PeerView> = state
            .peers
            .iter()
            .map(|(peer_id, stats)| {
                let docs = report.peers.iter().find(|p| p.peer.0 == *peer_id);
                let differing: Vec<PeerDocument> = docs
                    .map(|d| {
                        d.summary
                            .differing
                            .iter()
                            .map(|doc| PeerDocument {
                                doc: doc.to_string(),
                                changes_behind: d.behind.iter().find(|(b, _)| b == doc).map(|(_, n)| *n as u64),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                PeerView {
                    peer_id: peer_id.clone(),
                    name: docs.map(|d| d.summary.name.clone()).unwrap_or_default(),
                    addresses: stats.addresses.clone(),
                    connected: stats.connected,
                    last_seen: stats.last_seen,
                    bytes_sent: stats.bytes_sent,
                    bytes_received: stats.bytes_received,
                    last_reconciled: docs.and_then(|d| d.summary.last_reconciled),
                    in_sync_documents: docs
                        .map_or(0, |d| (d.summary.shared_documents as u64).saturating_sub(differing.len() as u64)),
                    differing,
                    syncing: docs.is_some_and(|d| d.summary.syncing),
                    roster_version: docs.map_or(0, |d| d.summary.roster),
                    refused: docs.map(|d| d.summary.refused.clone()).unwrap_or_default(),
                    document_bytes_received: docs.map(|d| d.summary.received_by_kind.clone()).unwrap_or_default(),
                }
            })
            .collect();
        peers.sort_by(|a, b| (!a.connected, &a.name, &a.peer_id).cmp(&(!b.connected, &b.name, &b.peer_id)));
        Ok(Response::Peers(PeerList { peers }))
    }

    async fn sync_now(&self, peer: Option<String>) -> Result<Response, ApiError> {
        self.net()?;
        let report = self.sync_report().await?;
        let targets: Vec<PeerKey> = match peer {
            None => report.peers.iter().map(|p| p.peer.clone()).collect(),
            Some(wanted) => {
                let found: Vec<&PeerDocs> =
                    report.peers.iter().filter(|p| p.peer.0.starts_with(&wanted) || p.summary.name == wanted).collect();
                match found.as_slice() {
                    [one] => vec![one.peer.clone()],
                    [] => {
                        return Err(ApiError::new(
                            ErrorKind::NotFound,
                            format!("no connected peer has the id or name {wanted:?}; see `outpost peers`"),
                        ));
                    }
                    _ => return Err(bad_input(format!("{wanted:?} names more than one peer; give more of the id"))),
                }
            }
        };
        if targets.is_empty() {
            return Err(ApiError::new(ErrorKind::NotFound, "no peer is connected; see `outpost peers`"));
        }
        let names: Vec<String> = targets.iter().map(|p| p.0.clone()).collect();
        for peer in targets {
            self.writer.notify(WriteOp::Replication(ReplicationInput::SyncNow(Some(peer)))).await;
        }
        Ok(Response::SyncStarted(SyncStarted { peers: names }))
    }

    async fn status(&self) -> Result<Response, ApiError> {
        let counts = self.blocking(|s| s.counts()).await?;
        let today = self.today();
        let legacy_actor = self.blocking(|s| s.legacy_actor()).await?.map(|(actor, _)| actor);
        let mut legacy_actor_bound = false;
        let (listen_addrs, replication) = match &self.info.net {
            Some(net) => {
                let report = self.sync_report().await?;
                let trust = &report.trust;
                legacy_actor_bound =
                    legacy_actor.is_some_and(|a| trust.member.as_ref().is_some_and(|m| m.legacy_actors.contains(&a)));
                let state = net.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let replication = ReplicationStatus {
                    psk_fingerprint: state.psk_fingerprint.clone(),
                    psk_next_fingerprint: state.psk_next_fingerprint.clone(),
                    membership: trust.mode.to_string(),
                    roster_version: trust.fleet.as_ref().map_or(0, |f| f.version()),
                    roster_role: trust
                        .member
                        .as_ref()
                        .map(|m| format!("{} {} of {}", m.role.as_str(), m.name, m.authority)),
                    roster_revoked: trust.member.as_ref().is_some_and(|m| !m.is_active()),
                    conflicts: trust.conflicts.clone(),
                    held_changes: trust.held,
                    connected_peers: state.connected_count() as u64,
                    stalest_document: report.stalest.as_ref().map(|(doc, _)| doc.to_string()),
                    stalest_agreed_at: report.stalest.and_then(|(_, at)| at),
                    audit_alarms: self
                        .store
                        .audit_alarms(None)
                        .map_err(internal)?
                        .into_iter()
                        .map(|(post, seq, text)| format!("{post} record {seq}: {text}"))
                        .collect(),
                };
                (state.listen_addrs.clone(), Some(replication))
            }
            None => (Vec::new(), None),
        };
        let peer_id = Some(self.info.peer_id.clone());
        let active_entries = {
            let index = self.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            index.alerts(today) as u64
        };
        Ok(Response::Status(Box::new(StatusInfo {
            node_id: self.store.node_id(),
            node_name: self.info.node_name.clone(),
            authority: self.info.authority.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol_version: PROTOCOL_VERSION,
            entries: counts.entries,
            active_entries,
            incidents: counts.incidents,
            documents: counts.documents,
            audit_records: counts.audit_records,
            started_at: self.info.started_at,
            uptime_secs: self.info.started.elapsed().as_secs(),
            data_dir: self.info.data_dir.display().to_string(),
            socket: self.info.socket.display().to_string(),
            storage: StorageStatus {
                file_bytes: self.store.file_bytes(),
                pending_changes: counts.pending_changes,
                repaired_on_open: self.store.repaired_on_open(),
                format_version: self.store.format_version(),
            },
            peer_id,
            legacy_actor: legacy_actor.map(hex::encode),
            legacy_actor_bound,
            listen_addrs,
            replication,
        })))
    }
}

/// The alarms raised as `log`'s records arrived, one line each.
fn alarm_lines(log: &AuditLog) -> impl Iterator<Item = String> + '_ {
    log.alarms.iter().map(|(_, text)| format!("on arrival: {text}"))
}
