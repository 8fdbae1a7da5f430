//! Received changes, the one way in: admitted ([`crate::admission`]),
//! applied, and checked, whether they came in a sync message, a bundle or
//! out of quarantine.
//!
//! Admission decides before anything is applied. Whether every record
//! still reads can only be seen after: so the admitted changes are applied
//! to the document in memory, the records they touched are read, and if
//! one no longer reads, the document is discarded (reloaded from what was
//! stored) and admitted again without the changes that touched it.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{Change, ChangeHash};

use super::{DocHost, Effect, Engine, Out, PeerKey, sorted};
use crate::admission::{Incoming, Reason, Verdict, admit};
use crate::date::Timestamp;
use crate::ids::DocId;
use crate::replication::session;
use crate::schema::Document;
use crate::trust::proof::Proof;

/// How a batch of received changes fared.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// The document changed; its changes are to be stored.
    pub(super) changed: bool,
    /// Why some changes were refused or held, if any were.
    pub(super) refused: Option<String>,
    /// Some changes wait for dependencies this node lacks.
    pub(super) waiting: bool,
    /// Automerge refused the message itself.
    pub(super) error: Option<String>,
}

/// The records among `touched` that no longer read, and why.
fn broken(document: &Document, verdict: &Verdict) -> Option<(BTreeSet<String>, String)> {
    let records: BTreeSet<&String> = verdict.touched.values().flatten().collect();
    if let Err(err) = document.check_records(std::iter::empty()) {
        // The root itself: every change of the batch is suspect.
        let all = records.into_iter().cloned().collect();
        return Some((all, err.to_string()));
    }
    let mut bad = BTreeSet::new();
    let mut why = String::new();
    for record in records {
        if let Err(err) = document.check_records([record]) {
            if why.is_empty() {
                why = err.to_string();
            }
            bad.insert(record.clone());
        }
    }
    (!bad.is_empty()).then_some((bad, why))
}

/// Where received changes come from.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin<'a> {
    /// A connected peer.
    Peer(&'a PeerKey),
    /// This node's quarantine; `announced` is the newest roster version a
    /// peer had announced when they were held.
    Quarantine { announced: u64 },
}

impl<'a> Origin<'a> {
    fn peer(self) -> Option<&'a PeerKey> {
        match self {
            Origin::Peer(peer) => Some(peer),
            Origin::Quarantine { .. } => None,
        }
    }
}

impl Engine {
    /// The newest roster version `origin` has announced.
    fn announced(&self, origin: Origin<'_>) -> u64 {
        match origin {
            Origin::Peer(peer) => self.peers.get(peer).map_or(0, |p| p.roster),
            Origin::Quarantine { announced } => announced,
        }
    }

    /// Admits `changes` into `doc` and applies what passes: through the
    /// sync session when they came in a sync message (`via`), directly
    /// otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn receive(
        &mut self,
        now: Timestamp,
        origin: Origin<'_>,
        doc: &DocId,
        changes: Vec<Change>,
        proofs: &[Proof],
        via: Option<session::Received>,
        host: &mut dyn DocHost,
        out: &mut Out,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let Ok(document) = host.doc(doc) else {
            outcome.error = Some("this node cannot load the document".into());
            return outcome;
        };
        let before = document.heads();
        let from = origin.peer();
        let mut verdict = {
            let authority = self.authority_for(self.announced(origin));
            admit(document, Incoming { changes: changes.clone(), proofs }, &authority, &BTreeMap::new())
        };
        let admitted = verdict.admitted_hashes();
        let applied = match (via, from) {
            (Some(received), Some(peer)) => {
                let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) else {
                    return outcome;
                };
                session.sync.apply(now, document, received, |c| admitted.contains(&c.hash())).map_err(|e| e.to_string())
            }
            _ => document.apply_changes(verdict.admitted.clone()).map_err(|e| e.to_string()),
        };
        let applied = applied.and_then(|()| document.check_round_trip(&before, &admitted).map_err(|e| e.to_string()));
        if let Err(err) = applied {
            // Whatever applied before the failure is not kept: the
            // document is reloaded from what was stored.
            host.discard(doc);
            outcome.error = Some(err);
            return outcome;
        }
        if let Some((records, why)) = broken(document, &verdict) {
            verdict = self.readmit_without(now, origin, doc, changes, proofs, &verdict, (&records, &why), host, out);
        }
        let Ok(document) = host.doc(doc) else { return outcome };
        if sorted(document.heads()) != sorted(before.clone()) {
            outcome.changed = true;
            // Pushes made before the host stores these go out with them.
            for (hash, proof) in &verdict.proofs {
                self.fresh_proofs.entry((doc.clone(), *hash)).or_default().push(*proof);
            }
            out.effects.push(Effect::StoreChanges { doc: doc.clone(), since: before, proofs: verdict.proofs.clone() });
        }
        self.account(now, origin, doc, verdict, &mut outcome, out);
        outcome
    }

    /// The slow path, when applied changes left records unreadable: the
    /// document is discarded and the changes admitted again without those
    /// that touched the broken records. The session (if any) starts over
    /// from its persisted state, since what it learned may name discarded
    /// changes.
    #[allow(clippy::too_many_arguments)]
    fn readmit_without(
        &mut self,
        now: Timestamp,
        origin: Origin<'_>,
        doc: &DocId,
        changes: Vec<Change>,
        proofs: &[Proof],
        first: &Verdict,
        (records, why): (&BTreeSet<String>, &str),
        host: &mut dyn DocHost,
        out: &mut Out,
    ) -> Verdict {
        let culprits: BTreeMap<ChangeHash, Reason> = first
            .touched
            .iter()
            .filter(|(_, touched)| !touched.is_disjoint(records))
            .map(|(hash, _)| (*hash, Reason::Schema(why.to_string())))
            .collect();
        host.discard(doc);
        let from = origin.peer();
        if let Some(session) = from.and_then(|p| self.peers.get_mut(p)).and_then(|s| s.sessions.get_mut(doc)) {
            session.sync.restart(now);
        }
        let Ok(document) = host.doc(doc) else { return Verdict::default() };
        let verdict = {
            let authority = self.authority_for(self.announced(origin));
            admit(document, Incoming { changes, proofs }, &authority, &culprits)
        };
        let before = document.heads();
        let applied = document
            .apply_changes(verdict.admitted.clone())
            .and_then(|()| document.check_round_trip(&before, &verdict.admitted_hashes()));
        if applied.is_err() || broken(document, &verdict).is_some() {
            // Still broken: take nothing of this batch.
            host.discard(doc);
            let peer = from.cloned().unwrap_or_else(|| PeerKey("quarantine".into()));
            out.problem(
                &peer,
                Some(doc),
                "refused a whole batch of changes: applied, they leave records unreadable".into(),
            );
            let rejected = verdict
                .admitted
                .iter()
                .map(|c| (c.hash(), c.actor_id().clone(), Reason::Schema(why.to_string())))
                .chain(verdict.rejected)
                .collect();
            return Verdict { rejected, ..Verdict::default() };
        }
        verdict
    }

    /// Refusals counted and logged, held changes handed to the host,
    /// attestations counted.
    fn account(
        &mut self,
        now: Timestamp,
        origin: Origin<'_>,
        doc: &DocId,
        mut verdict: Verdict,
        outcome: &mut Outcome,
        out: &mut Out,
    ) {
        let from = origin.peer();
        outcome.waiting = verdict.waiting > 0;
        if let Some(first) = verdict.rejected.first() {
            outcome.refused = Some(format!("{} change(s) refused: {}", verdict.rejected.len(), first.2));
        } else {
            // Orphans wait without a refusal: the sender is asked again
            // (`waiting`), and what it was missing brings them in.
            let held_back: Vec<_> =
                verdict.held.iter().filter(|h| h.reason != crate::admission::Reason::MissingDependencies).collect();
            if let Some(first) = held_back.first() {
                outcome.refused = Some(format!("{} change(s) held back: {}", held_back.len(), first.reason));
            }
        }
        let mut attested: BTreeMap<String, u64> = BTreeMap::new();
        for change in verdict.admitted.iter().filter(|c| verdict.attested.contains(&c.hash())) {
            if let Some(member) = self.fleet.as_ref().and_then(|f| f.member_of_actor(change.actor_id().to_bytes())) {
                *attested.entry(member.name.clone()).or_default() += 1;
            }
        }
        for (member, changes) in attested {
            out.effects.push(Effect::Attested { member, changes });
        }
        if !verdict.held.is_empty() {
            let announced = self.announced(origin);
            let mut held = std::mem::take(&mut verdict.held);
            for item in &mut held {
                item.announced = announced;
            }
            out.effects.push(Effect::Hold { doc: doc.clone(), from: from.cloned(), held });
        }
        let refused = &verdict.rejected;
        match from {
            Some(peer) if !refused.is_empty() || verdict.bad_proofs > 0 => {
                self.count_refusals(now, peer, doc, (refused, verdict.bad_proofs), out);
            }
            None => {
                let quarantine = PeerKey("quarantine".into());
                for (hash, _, reason) in refused {
                    out.problem(&quarantine, Some(doc), format!("refused held change {hash}: {reason}"));
                }
            }
            Some(_) => {}
        }
    }

    /// Changes of `doc` that were held back, handed back when a newer
    /// roster arrived or the document changed: admitted if they now pass,
    /// held again (an `Effect::Hold`) if they still wait.
    pub fn handle_held(
        &mut self,
        now: Timestamp,
        doc: &DocId,
        held: Vec<crate::admission::Held>,
        host: &mut dyn DocHost,
    ) -> Vec<Effect> {
        let mut out = Out { effects: Vec::new() };
        let mut changes = Vec::new();
        let mut stored = BTreeMap::new();
        let announced = held.iter().map(|h| h.announced).max().unwrap_or(0);
        for item in held {
            stored.insert(item.change.hash(), item.proofs);
            changes.push(item.change);
        }
        let proofs = crate::trust::proof::wire_proofs(&changes, |h| stored.get(h).cloned().unwrap_or_default());
        let origin = Origin::Quarantine { announced };
        let outcome = self.receive(now, origin, doc, changes, &proofs, None, host, &mut out);
        if outcome.changed {
            self.changed(now, doc, None, host, &mut out);
        }
        self.finish(out)
    }
}
