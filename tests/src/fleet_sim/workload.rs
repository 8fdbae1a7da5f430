//! What happens to the fleet: officers' edits and the byzantine node's,
//! its attacks, the administrator's rosters, and failing disks.

use super::*;

impl Fleet {
    /// An officer at `node` adds an entry, closes one of its authority's,
    /// or logs an incident, through the writer as `outpost` does.
    pub(super) fn edit(&mut self, node: usize) {
        if !self.alive(node) {
            return;
        }
        if self.nodes[node].kind == Kind::Byzantine {
            return self.byzantine_edit(node);
        }
        let roll = self.rng.random_range(0..10);
        let op = if roll < 6 {
            WriteOp::AddEntries { inputs: vec![self.sample.entry()] }
        } else if roll < 8 {
            // Close an acknowledged entry, perhaps while another node
            // closes or amends it elsewhere; the node may not hold it yet.
            let authority = self.nodes[node].authority.clone();
            let own: Vec<EntryId> = self
                .acked_entries
                .iter()
                .filter(|(doc, _)| matches!(DocKind::parse(doc), Ok(DocKind::Watchlist { authority: a, .. }) if a == authority))
                .map(|(_, id)| *id)
                .collect();
            if own.is_empty() {
                return;
            }
            let id = own[self.rng.random_range(0..own.len())];
            WriteOp::SetStatus { id, status: EntryStatus::Closed, reason: "sim".into() }
        } else {
            WriteOp::LogIncident { input: Box::new(self.sample.incident()) }
        };
        let Some(answer) = self.writer_job(node, op) else { return };
        match answer {
            Ok(Written::Entries(entries)) => {
                self.report.edits += 1;
                for entry in entries {
                    let doc = DocKind::watchlist_for(&entry.authority, &entry.id).doc_id();
                    self.acked_entries.push((doc, entry.id));
                    self.acked_at.push((node, Acked::Entry(entry.id)));
                }
            }
            Ok(Written::Incident(incident)) => {
                self.report.edits += 1;
                self.acked_incidents.insert(incident.id);
                self.acked_at.push((node, Acked::Incident(incident.id)));
            }
            Ok(other) => self.unexplained.push(format!("{}: an edit answered {other:?}", self.nodes[node].post)),
            // Not acknowledged, and said so: the disk failed.
            Err(err) if err.kind == ErrorKind::Unavailable && self.nodes[node].disk_failing => {
                self.report.refused_by_disk += 1;
            }
            // The rules: the entry is not here yet or already closed, or
            // the node may not write it (a post writes no watchlist).
            Err(err) if matches!(err.kind, ErrorKind::NotFound | ErrorKind::BadInput | ErrorKind::Forbidden) => {}
            Err(err) => {
                let failing = self.nodes[node].disk_failing;
                // Right after a disk healed, the writer may still be
                // reopening the database; that too is the disk's fault.
                if !(failing || err.kind == ErrorKind::Unavailable) {
                    let post = &self.nodes[node].post;
                    self.unexplained.push(format!(
                        "{post}'s officer was refused at {} ms for no reason a rule or a disk gives: {err:?}",
                        self.now
                    ));
                }
            }
        }
    }

    /// The byzantine node's officer writes what it likes, through the
    /// model, signed.
    pub(super) fn byzantine_edit(&mut self, node: usize) {
        let now = ts(self.now);
        let n = &self.nodes[node];
        let ctx =
            PostContext { now, offset: time::UtcOffset::UTC, authority: n.authority.clone(), post: n.post.clone() };
        let meta = |op| ChangeMeta { at: now, by: format!("1000@{}", ctx.post), op };
        let (doc_id, draft) = if self.rng.random_range(0..10) < 6 {
            let id = EntryId::owned_by(&ctx.authority, uuid::Uuid::from_u128(self.rng.random()));
            let Ok(draft) = new_entry(&self.sample.entry(), id, &ctx) else { return };
            (DocKind::watchlist_for(&ctx.authority, &id).doc_id(), Ok(draft))
        } else {
            let id = IncidentId::owned_by(&ctx.post, uuid::Uuid::from_u128(self.rng.random()));
            let Ok(draft) = new_incident(&self.sample.incident(), id, &ctx) else { return };
            (DocKind::Incidents { post: ctx.post.clone(), month: draft.occurred_at.utc_month() }.doc_id(), Err(draft))
        };
        let signer = self.nodes[node].signer.clone();
        let Runtime::Model { engine: Some(engine), host } = &mut self.nodes[node].runtime else { return };
        let Ok(document) = outpost_model::replication::engine::DocHost::doc(host, &doc_id) else { return };
        let result = match &draft {
            Ok(entry) => document.transact(&meta("watchlist.add"), |r| r.add_entry(entry)),
            Err(incident) => document.transact(&meta("incident.log"), |r| r.add_incident(incident)),
        };
        let Ok((_, Some(change))) = result else { return };
        let Ok(hash) = change[..32].try_into().map(automerge::ChangeHash) else { return };
        let proof = sign_change(&signer, &doc_id, &hash);
        host.stored.changes.entry(doc_id.clone()).or_default().push(change);
        host.stored.proofs.entry((doc_id.clone(), hash)).or_default().push(proof);
        let effects = engine.handle_local_change(now, &doc_id, host);
        self.apply(node, effects);
    }

    pub(super) fn attack(&mut self, attack: Attack) {
        let Some(node) = self.node_of(Kind::Byzantine) else { return };
        if !self.alive(node) {
            return;
        }
        let victims: Vec<(PublicKey, String)> = self
            .nodes
            .iter()
            .filter(|n| n.kind != Kind::Byzantine)
            .map(|n| (n.signer.public(), n.post.clone()))
            .collect();
        let entries: Vec<(DocId, EntryId)> = self
            .acked_entries
            .iter()
            .filter(|(doc, _)| doc.as_str().starts_with("watchlist/KAZ-BS/"))
            .cloned()
            .collect();
        let now = ts(self.now);
        let signer = self.nodes[node].signer.clone();
        let Runtime::Model { engine: Some(engine), host } = &mut self.nodes[node].runtime else { return };
        let target = byzantine::Target { now, signer: &signer, victims: &victims, entries: &entries };
        let Some(made) = byzantine::make(attack, &target, host, &mut self.sample, &mut self.rng) else {
            return;
        };
        self.report.attacks += 1;
        self.report.bad_changes += made.proofs.len();
        self.bad.extend(made.hashes().map(|h| (h, attack)));
        let doc = made.doc.clone();
        host.stored.changes.entry(doc.clone()).or_default().extend(made.stored);
        for (hash, proof) in made.proofs {
            host.stored.proofs.entry((doc.clone(), hash)).or_default().push(proof);
        }
        let effects = engine.handle_local_change(now, &doc, host);
        self.apply(node, effects);
    }

    /// The administrator hands a roster to a node that is up, as `outpost
    /// fleet` run there does; a revocation's cut is asked of a node that
    /// holds a roster, so not of a node not yet enrolled.
    pub(super) fn publish(&mut self, change: RosterChange) {
        let may_publish = |n: &Node| match change {
            RosterChange::RevokeByzantine => n.kind == Kind::Honest,
            RosterChange::EnrolLate | RosterChange::Stale => n.kind != Kind::Byzantine,
        };
        let candidates: Vec<usize> =
            (0..self.nodes.len()).filter(|i| may_publish(&self.nodes[*i]) && self.alive(*i)).collect();
        if candidates.is_empty() {
            self.schedule(self.now + 60_000, Event::Publish { change });
            return;
        }
        let at = candidates[self.rng.random_range(0..candidates.len())];
        let bytes = match change {
            RosterChange::EnrolLate => {
                let Some(late) = self.node_of(Kind::Late) else { return };
                let n = &self.nodes[late];
                let country = Member::default_country(&n.authority);
                self.admin.enroll(Member::new(n.signer.public(), &n.post, Role::Post, &n.authority, country))
            }
            RosterChange::RevokeByzantine => {
                let Some(byzantine) = self.node_of(Kind::Byzantine) else { return };
                let key = self.nodes[byzantine].signer.public();
                if self.admin.member(&key).is_none() {
                    return;
                }
                // The cut, asked of the node the roster is handed to, as
                // `outpost fleet revoke` does.
                let cut = match self.writer_job(at, WriteOp::RevocationCut { peer: key.peer_id() }) {
                    Some(Ok(Written::Cut(cut))) => cut,
                    other => {
                        assert!(self.nodes[at].disk_failing, "{} gave no cut: {other:?}", self.nodes[at].post);
                        self.schedule(self.now + 60_000, Event::Publish { change });
                        return;
                    }
                };
                self.admin.revoke(&key, cut)
            }
            RosterChange::Stale => match self.admin.stale(&mut self.rng) {
                Some(bytes) => bytes,
                None => return,
            },
        };
        self.report.rosters_published += 1;
        match self.writer_job(at, WriteOp::PublishRoster(bytes)) {
            Some(Ok(_)) | None => {}
            // The node holds this version or a newer one.
            Some(Err(_)) if change == RosterChange::Stale => {}
            Some(Err(err)) => panic!("{} refused the administrator's roster: {err:?}", self.nodes[at].post),
        }
    }

    pub(super) fn disk_fails(&mut self, node: usize, fault: DiskFault) {
        let Runtime::Writer { disk, .. } = &self.nodes[node].runtime else { return };
        match fault {
            DiskFault::FailEvery(n) => disk.faults().fail_every(n),
            DiskFault::FailWriteIn(n) => disk.faults().fail_write_in(n),
            DiskFault::FailSync => disk.faults().fail_sync(true),
            DiskFault::Full => disk.faults().disk_full(true),
        }
        self.nodes[node].disk_failing = true;
        self.report.disk_faults += 1;
        if tracing_on() {
            eprintln!("{} DISK {} {fault:?}", self.now, self.nodes[node].post);
        }
    }

    pub(super) fn disk_heals(&mut self, node: usize) {
        let Runtime::Writer { disk, .. } = &self.nodes[node].runtime else { return };
        disk.faults().heal();
        self.nodes[node].disk_failing = false;
    }
}

/// In about a third of the seeds, one or two honest nodes' disks fail for
/// a few minutes, each in one of the ways a disk fails.
pub(super) fn schedule_disk_faults(fleet: &mut Fleet) {
    if !fleet.rng.random_bool(0.35) {
        return;
    }
    let writers: Vec<usize> = (0..fleet.nodes.len()).filter(|i| fleet.nodes[*i].kind != Kind::Byzantine).collect();
    for _ in 0..fleet.rng.random_range(1..=2) {
        let node = writers[fleet.rng.random_range(0..writers.len())];
        let fault = match fleet.rng.random_range(0..4) {
            0 => DiskFault::FailEvery(fleet.rng.random_range(3..40)),
            1 => DiskFault::FailWriteIn(fleet.rng.random_range(1..30)),
            2 => DiskFault::FailSync,
            _ => DiskFault::Full,
        };
        let at = fleet.rng.random_range(0..FAULT_MS * 3 / 4);
        let lasts = fleet.rng.random_range(10_000..8 * 60_000);
        fleet.schedule(at, Event::DiskFails { node, fault });
        fleet.schedule(at + lasts, Event::DiskHeals { node });
    }
}

/// The byzantine node's attacks, and the administrator's roster changes:
/// the late node enrolled, the byzantine node perhaps revoked (before or
/// after the enrolment), and stale rosters handed out.
pub(super) fn schedule_byzantine(fleet: &mut Fleet) {
    for _ in 0..fleet.rng.random_range(3..15) {
        let at = fleet.rng.random_range(0..FAULT_MS);
        let attack = ATTACKS[fleet.rng.random_range(0..ATTACKS.len())];
        fleet.schedule(at, Event::Attack { attack });
    }
    if fleet.node_of(Kind::Late).is_some() {
        let at = fleet.rng.random_range(0..FAULT_MS * 3 / 4);
        fleet.schedule(at, Event::Publish { change: RosterChange::EnrolLate });
    }
    if fleet.rng.random_bool(0.7) {
        let at = fleet.rng.random_range(FAULT_MS / 5..FAULT_MS);
        fleet.schedule(at, Event::Publish { change: RosterChange::RevokeByzantine });
    }
    for _ in 0..fleet.rng.random_range(0..3) {
        let at = fleet.rng.random_range(FAULT_MS / 3..FAULT_MS);
        fleet.schedule(at, Event::Publish { change: RosterChange::Stale });
    }
}
