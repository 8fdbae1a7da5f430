//! Catch-up bundles on the wire: a snapshot for a peer with no copy, or a
//! sync message's changes compressed together, split into parts.

use super::receive::Origin;
use super::{DocHost, Effect, Engine, Out, PeerKey, sorted};
use crate::date::Timestamp;
use crate::ids::DocId;
use crate::replication::bundle::{BundleError, Reassembly};
use crate::replication::digest::fingerprint;
use crate::replication::frame::{Body, BundleKind};
use crate::replication::received::{Budget, changes_within};

impl Engine {
    pub(super) fn send_parts(
        &mut self,
        peer: &PeerKey,
        doc: &DocId,
        kind: BundleKind,
        parts: Result<Vec<Vec<u8>>, BundleError>,
        out: &mut Out,
    ) {
        let parts = match parts {
            Ok(parts) => parts,
            Err(err) => {
                out.problem(peer, Some(doc), format!("cannot bundle the document: {err}"));
                return;
            }
        };
        let of = parts.len() as u16;
        let mut sent = 0;
        for (n, data) in parts.into_iter().enumerate() {
            let part = n as u16;
            sent += self.send_doc(peer, doc, |slot| Body::Bundle { slot, kind, part, of, data }, out);
        }
        if let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) {
            session.bytes_out += sent as u64;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_bundle(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        kind: BundleKind,
        part: u16,
        of: u16,
        data: &[u8],
        host: &mut dyn DocHost,
        out: &mut Out,
    ) {
        if !self.ensure_session(now, peer, doc, host, out) {
            return;
        }
        let building: usize = self
            .peers
            .get(peer)
            .map_or(0, |s| s.sessions.values().filter_map(|x| x.incoming.as_ref()).map(Reassembly::len).sum());
        if building + data.len() > self.config.limits.max_peer_reassembly_bytes {
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!(
                    "sends bundles of more than {} bytes at once",
                    self.config.limits.max_peer_reassembly_bytes
                ),
            });
            self.drop_peer(now, peer);
            return;
        }
        let Some(session) = self.session_mut(peer, doc) else { return };
        let (kind, payload) = match Reassembly::add(&mut session.incoming, kind, part, of, data) {
            Ok(Some(done)) => done,
            Ok(None) => return,
            Err(err) => {
                out.problem(peer, Some(doc), format!("refused a bundle: {err}"));
                self.reset_session(now, peer, doc, &err.to_string(), host, out);
                return;
            }
        };
        let document = match host.doc(doc) {
            Ok(document) => document,
            Err(err) => {
                out.problem(
                    peer,
                    Some(doc),
                    format!("cannot apply a bundle to a document this node cannot load: {err}"),
                );
                return;
            }
        };
        let mut budget = Budget::new(self.config.limits.receive);
        let changes =
            match changes_within(payload.chunks.iter().map(Vec::as_slice), document.genesis_heads(), &mut budget) {
                Ok(changes) => changes,
                Err(err) => {
                    out.problem(peer, Some(doc), format!("refused a bundle: {err}"));
                    self.refuse(now, peer, doc, &err.to_string(), out);
                    return;
                }
            };
        let outcome = self.receive(now, Origin::Peer(peer), doc, changes, &payload.proofs, None, host, out);
        if outcome.changed {
            self.changed(now, doc, Some(peer), host, out);
        }
        if !self.peers.contains_key(peer) {
            return;
        }
        if let Some(reason) = outcome.error.or(outcome.refused) {
            out.problem(peer, Some(doc), format!("refused a bundle: {reason}"));
            self.refuse(now, peer, doc, &reason, out);
            return;
        }
        let Ok(document) = host.doc(doc) else { return };
        let after = document.heads();
        if kind == BundleKind::Snapshot {
            let theirs = payload.heads();
            if sorted(after.clone()) == sorted(theirs) {
                if let Some(session) = self.peers.get_mut(peer).and_then(|s| s.sessions.get_mut(doc)) {
                    session.sync.settle_at(now, after.clone());
                }
                self.persist(peer, doc, out);
                let fp = fingerprint(doc, &after);
                self.send_doc(peer, doc, |slot| Body::Done { slot, fingerprint: fp }, out);
                self.agreed(doc, now);
            } else {
                self.drive(now, peer, doc, host, out);
            }
        }
    }
}
