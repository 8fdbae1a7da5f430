//! What must hold once the faults stop: every honest node holds the same
//! heads and records for every document it may hold, read back from what
//! it stored, and nothing outside need-to-know.

use super::*;

impl Fleet {
    /// What one node stored that the other did not, change by change: the
    /// document, the change, and whose actor made it.
    pub(super) fn difference(&self, a: usize, b: usize, doc: &DocId) -> String {
        let changes = |n: usize| -> Result<BTreeMap<ChangeHash, String>, String> {
            let Some(Runtime::Writer { running: Some(writer), .. }) = self.nodes.get(n).map(|n| &n.runtime) else {
                return Err(format!("{} is not running", self.nodes[n].post));
            };
            let docs = writer.stored_docs()?;
            let Some((_, mut loaded)) = docs.into_iter().find(|(id, _)| id == doc) else { return Ok(BTreeMap::new()) };
            Ok(loaded
                .changes_since(&[])
                .iter()
                .map(|c| {
                    let bytes = c.actor_id().to_bytes();
                    let owner =
                        self.nodes.iter().find(|m| bytes.get(..16) == Some(&m.signer.public().actor_prefix()[..]));
                    let who = owner.map_or("?".to_string(), |m| format!("{}:{:?}", m.post, m.kind));
                    (c.hash(), format!("{who} seq {}", c.seq()))
                })
                .collect())
        };
        let inventory = |n: usize| {
            let state = self.nodes[n].engine()?.inventory().iter().find(|(d, _)| *d == doc).map(|(_, s)| *s)?;
            Some(hex::encode(&state[..4]))
        };
        if tracing_on() {
            for n in 0..self.nodes.len() {
                let stored = changes(n).map(|c| c.len());
                eprintln!("{} holds {doc} as {:?}, stored {stored:?} changes", self.nodes[n].post, inventory(n));
            }
        }
        let (ca, cb) = match (changes(a), changes(b)) {
            (Ok(ca), Ok(cb)) => (ca, cb),
            (Err(err), _) | (_, Err(err)) => return format!("cannot read what was stored: {err}"),
        };
        let mut out = Vec::new();
        for (hash, who) in ca.iter().filter(|(h, _)| !cb.contains_key(h)).take(4) {
            out.push(format!("only {} stored {hash} by {who}", self.nodes[a].post));
        }
        for (hash, who) in cb.iter().filter(|(h, _)| !ca.contains_key(h)).take(4) {
            out.push(format!("only {} stored {hash} by {who}", self.nodes[b].post));
        }
        if out.is_empty() {
            out.push(format!(
                "both stored the same {} changes; the engines' inventories say {:?} and {:?}",
                ca.len(),
                inventory(a),
                inventory(b)
            ));
        }
        out.join("; ")
    }

    /// Whether node `n` may hold `doc`, by the roster its engine holds.
    pub(super) fn may_hold(&self, n: usize, doc: &DocId) -> bool {
        let node = &self.nodes[n];
        node.engine().is_some_and(|e| e.may_receive(&node.signer.public(), doc))
    }

    /// The honest nodes that must end up holding the same state of `doc`
    /// as `from`: those reached from it over links between honest nodes
    /// that may all hold the document (need-to-know: nothing else carries
    /// it).
    pub(super) fn audience_reached(&self, doc: &DocId, from: usize) -> BTreeSet<usize> {
        let allowed = |n: usize| self.nodes[n].kind != Kind::Byzantine && self.may_hold(n, doc);
        let mut reached = BTreeSet::from([from]);
        let mut frontier = vec![from];
        while let Some(n) = frontier.pop() {
            for link in &self.links {
                let next = if link.a == n {
                    link.b
                } else if link.b == n {
                    link.a
                } else {
                    continue;
                };
                if allowed(next) && reached.insert(next) {
                    frontier.push(next);
                }
            }
        }
        reached
    }

    /// Every honest node holds what it may and nothing else: the same
    /// heads and records of each document as every honest node its links
    /// can carry that document to, read back from what it stored, with
    /// the rows officers read agreeing; every acknowledged write; and none
    /// of the changes every node must refuse.
    pub(super) fn converged(&mut self) -> Result<(), String> {
        if let Some(first) = self.unexplained.first() {
            return Err(first.clone());
        }
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].kind != Kind::Byzantine).collect();
        let held: Vec<BTreeMap<DocId, [u8; 32]>> = (0..self.nodes.len())
            .map(|i| {
                self.nodes[i]
                    .engine()
                    .map(|e| e.inventory().iter().map(|(d, state)| (d.clone(), *state)).collect())
                    .unwrap_or_default()
            })
            .collect();
        // Cheap first: the engines' inventories (document, heads) agree
        // within each document's audience, and nobody holds more.
        for &i in &honest {
            for (doc, state) in &held[i] {
                if !self.may_hold(i, doc) {
                    return Err(format!("{} holds {doc}, which it may not", self.nodes[i].key));
                }
                for other in self.audience_reached(doc, i) {
                    if held[other].get(doc) != Some(state) {
                        return Err(format!(
                            "{} holds another state of {doc} than {}: {}",
                            self.nodes[other].key,
                            self.nodes[i].key,
                            self.difference(i, other, doc)
                        ));
                    }
                }
            }
        }
        let mut reference: BTreeMap<DocId, (Vec<automerge::ChangeHash>, String)> = BTreeMap::new();
        let mut entries = BTreeSet::new();
        let mut incidents = BTreeSet::new();
        let (mut still_held, mut attested) = (0, 0);
        for &i in &honest {
            let post = self.nodes[i].post.clone();
            let bad: Vec<(ChangeHash, Attack)> = self.bad.iter().map(|(h, a)| (*h, *a)).collect();
            let Some(writer) = self.nodes[i].writer() else { return Err(format!("{post} is down")) };
            for (doc, mut loaded) in writer.stored_docs().map_err(|e| format!("{post}: {e}"))? {
                if let Some((hash, attack)) = bad.iter().find(|(h, _)| loaded.knows(&[*h])) {
                    return Err(format!("{post} holds the byzantine change {hash} ({attack:?}) in {doc}"));
                }
                let mut heads = loaded.heads();
                heads.sort_unstable();
                let records = match DocKind::parse(&doc) {
                    Ok(DocKind::Watchlist { .. }) => {
                        let list = read_entries(&loaded).map_err(|e| e.to_string())?;
                        for entry in &list {
                            if writer.entry_row(&entry.id)?.as_ref() != Some(entry) {
                                return Err(format!("{post}: the row of entry {} is not what {doc} holds", entry.id));
                            }
                        }
                        entries.extend(list.iter().map(|e| e.id));
                        serde_json::to_string(&list).map_err(|e| e.to_string())?
                    }
                    Ok(DocKind::Incidents { .. }) => {
                        let list = read_incidents(&loaded).map_err(|e| e.to_string())?;
                        for incident in &list {
                            if writer.incident_row(&incident.id)?.as_ref() != Some(incident) {
                                return Err(format!(
                                    "{post}: the row of incident {} is not what {doc} holds",
                                    incident.id
                                ));
                            }
                        }
                        incidents.extend(list.iter().map(|i| i.id));
                        serde_json::to_string(&list).map_err(|e| e.to_string())?
                    }
                    // Audit logs: the heads agree (the centre's checks of
                    // them are the audit trail's own tests).
                    Ok(DocKind::Audit { .. }) => String::new(),
                    Err(err) => return Err(format!("{post} stored {doc}: {err}")),
                };
                match reference.get(&doc) {
                    None => {
                        reference.insert(doc.clone(), (heads, records));
                    }
                    Some((h, r)) if *h == heads && *r != records => {
                        return Err(format!("{post} reads other records from {doc} with the same heads"));
                    }
                    Some(_) => {}
                }
            }
            if let Some(Ok(Written::TrustReport(trust))) = self.writer_job(i, WriteOp::TrustReport) {
                still_held += trust.held as usize;
                attested += trust.attested.values().sum::<u64>();
            }
        }
        if let Some((_, lost)) = self.acked_entries.iter().find(|(_, id)| !entries.contains(id)) {
            return Err(format!("acknowledged entry {lost} is missing"));
        }
        if let Some(lost) = self.acked_incidents.difference(&incidents).next() {
            return Err(format!("acknowledged incident {lost} is missing"));
        }
        // And on the disk of the node that acknowledged it (a write lost
        // there could hide behind a copy that had already left).
        for (node, acked) in self.acked_at.clone() {
            let post = self.nodes[node].post.clone();
            let Some(writer) = self.nodes[node].writer() else { return Err(format!("{post} is down")) };
            let here = match acked {
                Acked::Entry(id) => writer.entry_row(&id)?.is_some(),
                Acked::Incident(id) => writer.incident_row(&id)?.is_some(),
            };
            if !here {
                return Err(format!("{post} acknowledged {acked:?} and does not hold it"));
            }
        }
        self.report.faults_injected = self
            .nodes
            .iter()
            .map(|n| match &n.runtime {
                Runtime::Writer { disk, .. } => disk.faults().injected(),
                Runtime::Model { .. } => 0,
            })
            .sum();
        self.report.held = still_held;
        self.report.attested = attested;
        Ok(())
    }
}
