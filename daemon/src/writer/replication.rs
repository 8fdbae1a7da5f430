//! The replication engine hosted on the writer thread: its inputs, and its
//! effects carried out in order (everything to store in one transaction
//! through `commit_and_index`, committed before any frame is sent).

use std::collections::{BTreeSet, HashMap};

use automerge::ChangeHash;
use outpost_model::audit::AuditEvent;
use outpost_model::replication::engine::{Effect, PeerKey};
use outpost_model::replication::session::shared_heads_of;
use outpost_model::schema::DocKind;
use outpost_model::schema::audit::read_audit_record;
use outpost_model::schema::incidents::read_incident;
use outpost_model::schema::watchlist::read_entry;
use outpost_model::watchlist::Entry;
use outpost_model::{DocId, EntryId, IncidentId, ModelError};

use super::{Caller, PeerDocs, ReplicationInput, SyncReport, Writer};
use crate::net::NetCommand;
use crate::store::Batch;

impl Writer {
    /// Gives the engine the heads of every stored document. Heads missing
    /// from `doc_heads` (a database from before replication, or a damaged
    /// row) are recomputed from the document and stored.
    pub(super) fn prime_inventory(&mut self) {
        if self.replication.is_none() {
            return;
        }
        let (known, damaged) = match self.store.all_heads() {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "cannot read document heads; they are recomputed");
                (Vec::new(), Vec::new())
            }
        };
        for err in damaged {
            tracing::warn!(error = %err, "damaged heads row; recomputing");
        }
        let known: HashMap<DocId, Vec<ChangeHash>> = known.into_iter().collect();
        let stored = self.store.doc_ids().unwrap_or_else(|err| {
            tracing::error!(error = %err, "cannot list stored documents; replication starts from the heads table");
            Vec::new()
        });
        let mut held = Vec::new();
        let mut recomputed = Vec::new();
        for doc in stored {
            let heads = match known.get(&doc) {
                Some(heads) => heads.clone(),
                None => match self.cache.get_mut(&doc) {
                    Ok(loaded) => {
                        let heads = loaded.doc.heads();
                        recomputed.push((doc.clone(), heads.clone()));
                        heads
                    }
                    Err(err) => {
                        tracing::error!(%doc, error = %err.message, "document cannot be loaded; it is not offered to peers");
                        continue;
                    }
                },
            };
            held.push((doc, heads));
        }
        if !recomputed.is_empty() {
            let count = recomputed.len();
            match self.store.commit(Batch { heads: recomputed, ..Default::default() }) {
                Ok(_) => tracing::info!(documents = count, "recorded document heads for replication"),
                Err(err) => tracing::warn!(error = %err, "cannot record document heads; recomputed at next start"),
            }
        }
        if let Some(replication) = self.replication.as_mut() {
            for (doc, heads) in &held {
                replication.engine.set_held(doc, heads);
            }
            tracing::info!(documents = replication.engine.inventory().len(), "replication inventory ready");
        }
    }

    pub(super) fn replicate(&mut self, input: ReplicationInput) {
        let Some(replication) = self.replication.as_mut() else { return };
        let engine = &mut replication.engine;
        self.cache.pinned = true;
        let now = self.settings.clock.monotonic();
        // Set before the engine runs, so that a panic in it knows whose
        // frame it was.
        self.received_from = match &input {
            ReplicationInput::Frame(peer, _) => Some(peer.clone()),
            _ => None,
        };
        let effects = match input {
            ReplicationInput::Connected(peer) => engine.handle_connected(now, &peer),
            ReplicationInput::Disconnected(peer) => engine.handle_disconnected(now, &peer),
            ReplicationInput::Frame(peer, bytes) => engine.handle_frame(now, &peer, &bytes, &mut self.cache),
            ReplicationInput::Timer => engine.handle_timer(now, &mut self.cache),
            ReplicationInput::SyncNow(peer) => engine.handle_sync_now(now, peer.as_ref()),
        };
        self.carry_out(effects, BTreeSet::new());
        self.received_from = None;
        self.cache.pinned = false;
        // Everything the engine applied is stored now.
        self.cache.evict_if_full();
    }

    /// An officer's change is stored: the engine pushes it to peers.
    pub(super) fn push_local(&mut self, doc: &DocId) {
        let Some(replication) = self.replication.as_mut() else { return };
        self.cache.pinned = true;
        let effects = replication.engine.handle_local_change(self.settings.clock.monotonic(), doc, &mut self.cache);
        self.carry_out(effects, BTreeSet::new());
        self.cache.pinned = false;
        // Everything the engine applied is stored now.
        self.cache.evict_if_full();
    }

    /// Carries out the engine's effects: everything to store goes into one
    /// transaction, committed before any frame is sent. `release`: the
    /// held changes handed back to the engine, which holds again, in these
    /// effects, what still waits.
    pub(super) fn carry_out(&mut self, effects: Vec<Effect>, release: BTreeSet<(DocId, ChangeHash)>) {
        let mut batch = Batch { release, ..Batch::default() };
        let mut entries = Vec::new();
        let mut outgoing = Vec::new();
        let mut roster = None;
        let mut revoked = Vec::new();
        let mut received = Vec::new();
        for effect in effects {
            match effect {
                Effect::StoreChanges { doc, since, proofs } => {
                    let count = self.stage_merge(&doc, &since, &mut batch, &mut entries);
                    received.push((doc.clone(), count));
                    batch.proofs.extend(proofs.into_iter().map(|(hash, proof)| (doc.clone(), hash, proof)));
                }
                Effect::PersistSyncState { peer, doc, state } => batch.sync_states.push((peer.0, doc, state)),
                Effect::Send { peer, lane, frame } => outgoing.push(NetCommand::Send { peer, lane, frame }),
                Effect::Disconnect { peer, reason } => {
                    tracing::warn!(%peer, %reason, "disconnecting a peer");
                    outgoing.push(NetCommand::Disconnect { peer });
                }
                Effect::SetTimer { at } => outgoing.push(NetCommand::Timer { at }),
                Effect::Problem { peer, doc, detail } => {
                    let doc = doc.map(|d| d.to_string()).unwrap_or_default();
                    tracing::warn!(%peer, %doc, problem = %detail, "replication");
                }
                Effect::RosterInstalled { version, roster: bytes, revoked: newly } => {
                    tracing::info!(version, revoked = newly.len(), "fleet roster installed");
                    batch.roster = Some(bytes);
                    roster = Some(version);
                    revoked.extend(newly);
                }
                Effect::Hold { doc, from, held } => self.hold_rows(&doc, from, held, &mut batch),
                Effect::Attested { member, changes } => {
                    tracing::info!(%member, changes, "admitted a revoked member's changes on an attestation");
                    batch.attested.push((member, changes));
                }
            }
        }
        if !revoked.is_empty() {
            self.stage_attestations(&revoked, &mut batch);
        }
        let merged: Vec<DocId> = batch.changes.iter().map(|(d, _)| d.clone()).collect();
        let audit = self.received_events(&received);
        if !(batch.is_empty() && audit.is_empty())
            && let Err(err) = self.commit_and_index(batch, entries, audit)
        {
            // Nothing was stored and the documents were dropped from
            // memory; what we were about to send may describe state that
            // is gone, so it is not sent, and the sessions on those
            // documents start over.
            tracing::error!(error = %err.message, "storing replicated changes failed");
            let mut retry = Vec::new();
            if let Some(replication) = self.replication.as_mut() {
                for doc in merged {
                    retry.extend(replication.engine.handle_store_failed(
                        self.settings.clock.monotonic(),
                        &doc,
                        &mut self.cache,
                    ));
                }
            }
            // Disconnects stand: the engine has already forgotten those
            // peers.
            outgoing.retain(|c| matches!(c, NetCommand::Timer { .. } | NetCommand::Disconnect { .. }));
            self.send_all(outgoing);
            return self.carry_out(retry, BTreeSet::new());
        }
        self.send_all(outgoing);
        if roster.is_some() {
            self.log_identity();
            // A newer roster may let in what waited.
            self.requeue_held(None);
        } else if !merged.is_empty() && self.quarantine.len() > 0 {
            // The change a revocation's cut names may have arrived.
            let mut merged = merged;
            merged.dedup();
            self.requeue_held(Some(&merged));
        }
    }

    fn send_all(&mut self, commands: Vec<NetCommand>) {
        let Some(replication) = &self.replication else { return };
        for command in commands {
            // The network task is gone only while shutting down.
            let _ = replication.net.send(command);
        }
    }

    /// The audit records of changes received from a peer: who sent how
    /// many changes to which document. Changes to audit logs are logged,
    /// not audited: auditing them would change this node's own audit log,
    /// which its centres would receive and audit in turn, for ever.
    fn received_events(&self, received: &[(DocId, usize)]) -> Vec<AuditEvent> {
        let Some(peer) = &self.received_from else { return Vec::new() };
        let name = self
            .replication
            .as_ref()
            .and_then(|r| r.engine.peer_summary(peer))
            .map(|s| s.name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "?".into());
        let mut events = Vec::new();
        for (doc, count) in received.iter().filter(|(_, n)| *n > 0) {
            if matches!(DocKind::parse(doc), Ok(DocKind::Audit { .. })) {
                tracing::info!(%doc, %peer, changes = count, "received audit log changes");
                continue;
            }
            let detail = format!("received {count} change(s) to {doc} from {name} ({peer})");
            events.push(Caller::daemon_as(self.settings.daemon_uid).audit_event(
                self.settings.clock.wall(),
                "replication.receive",
                None,
                detail,
                vec![doc.to_string()],
            ));
        }
        events
    }

    /// Adds the changes a peer brought to `doc` since `since`, and the
    /// records they touched, to the batch; returns how many changes.
    fn stage_merge(&mut self, doc: &DocId, since: &[ChangeHash], batch: &mut Batch, entries: &mut Vec<Entry>) -> usize {
        let Some(loaded) = self.cache.in_memory(doc) else {
            tracing::error!(%doc, "merged document left memory before it was stored");
            return 0;
        };
        let (changes, touched) = loaded.doc.merged_since(since);
        tracing::debug!(%doc, changes = changes.len(), records = touched.len(), "storing replicated changes");
        let count = changes.len();
        batch.changes.extend(changes.into_iter().map(|c| (doc.clone(), c)));
        let kind = DocKind::parse(doc);
        let mut arrived = Vec::new();
        for record in touched {
            let read = match kind {
                Ok(DocKind::Watchlist { .. }) => EntryId::parse(&record)
                    .map_err(ModelError::from)
                    .and_then(|id| read_entry(&loaded.doc, id))
                    .map(|e| e.map(|e| entries.push(e))),
                Ok(DocKind::Incidents { .. }) => IncidentId::parse(&record)
                    .map_err(ModelError::from)
                    .and_then(|id| read_incident(&loaded.doc, id))
                    .map(|i| i.map(|i| batch.incidents.push(i))),
                Ok(DocKind::Audit { .. }) => read_audit_record(&loaded.doc, &record).map(|r| {
                    arrived.push(r.record);
                    Some(())
                }),
                Err(ref e) => Err(ModelError::from(e.clone())),
            };
            if let Err(err) = read {
                // The change is stored all the same; only this record's
                // row waits for a change that makes it readable.
                tracing::error!(%doc, %record, error = %err, "a replicated record does not read; its row is not updated");
            }
        }
        if let Ok(DocKind::Audit { post, .. }) = kind {
            self.check_arrivals(&post, arrived, batch);
        }
        count
    }

    pub(super) fn health(&self) -> super::HealthSnapshot {
        let mut snapshot = super::HealthSnapshot {
            held: self.quarantine.len(),
            storage_failing: self.storage_broken.is_some(),
            ..Default::default()
        };
        if let Some(replication) = self.replication.as_ref() {
            let engine = &replication.engine;
            let mut differing = std::collections::BTreeSet::new();
            for (peer, summary) in engine.connected_peers().filter_map(|p| engine.peer_summary(p).map(|s| (p, s))) {
                snapshot.peers_ready += usize::from(summary.ready);
                differing.extend(summary.differing);
                snapshot.peers.push(super::PeerHealth {
                    peer: peer.0.clone(),
                    name: summary.name,
                    last_reconciled: summary.last_reconciled,
                });
            }
            snapshot.documents_differing = differing.len();
            snapshot.refused = engine.refused_totals().iter().map(|(k, v)| (k.to_string(), *v)).collect();
            snapshot.roster_expected = engine.trust().anchor().is_some();
            snapshot.roster_version = engine.fleet().map_or(0, |f| f.version());
            snapshot.roster_confirmed_at = engine.roster_confirmed_at();
        }
        snapshot
    }

    pub(super) fn sync_report(&mut self) -> SyncReport {
        let trust = self.trust_report();
        let Some(replication) = self.replication.as_ref() else { return SyncReport { trust, ..SyncReport::default() } };
        let engine = &replication.engine;
        let mut report =
            SyncReport { peers: Vec::new(), stalest: engine.stalest(), documents: engine.inventory().len(), trust };
        let summaries: Vec<(PeerKey, _)> =
            engine.connected_peers().filter_map(|p| engine.peer_summary(p).map(|s| (p.clone(), s))).collect();
        for (peer, summary) in summaries {
            let mut behind = Vec::new();
            // Counting loads documents (a copy for the count alone, which
            // pushes nothing out of memory); a long list is summarised by
            // its head.
            for doc in summary.differing.iter().take(32) {
                let shared = self
                    .store
                    .sync_state(&peer.0, doc)
                    .ok()
                    .flatten()
                    .and_then(|state| shared_heads_of(&state))
                    .unwrap_or_default();
                if let Ok(count) = self.cache.read(doc, |document| document.count_changes_since(&shared)) {
                    behind.push((doc.clone(), count));
                }
            }
            report.peers.push(PeerDocs { peer, summary, behind });
        }
        report
    }
}
