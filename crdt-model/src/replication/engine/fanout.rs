//! Store and forward: a change made or received here is offered to every
//! other ready peer at once; documents that must wait queue per peer.

use super::{DocHost, Engine, Out, PeerKey, lane_of};
use crate::date::Timestamp;
use crate::ids::DocId;

impl Engine {
    /// A document changed here, by a local write or from `from`: update the
    /// inventory and offer the change to every other ready peer.
    pub(super) fn changed(
        &mut self,
        now: Timestamp,
        doc: &DocId,
        from: Option<&PeerKey>,
        host: &mut dyn DocHost,
        out: &mut Out,
    ) {
        let Ok(document) = host.doc(doc) else { return };
        let heads = document.heads();
        self.inventory.set(doc, &heads);
        let others: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(key, state)| {
                state.node.is_some() && state.syncing && Some(*key) != from && self.may_receive(&state.key, doc)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for peer in others {
            let Some(state) = self.peers.get_mut(&peer) else { continue };
            if state.sessions.contains_key(doc)
                || state.sessions.values().filter(|s| s.active()).count() < self.config.limits.max_active
            {
                if !self.ensure_session(now, &peer, doc, host, out) {
                    continue;
                }
                if let Some(session) = self.session_mut(&peer, doc) {
                    session.pushing = true;
                }
                self.drive(now, &peer, doc, host, out);
            } else {
                let (lane, month) = lane_of(doc);
                state.queue.insert((lane, month, doc.clone()));
            }
        }
    }

    /// Starts queued documents while fewer than `max_active` await replies.
    pub(super) fn pump(&mut self, now: Timestamp, peer: &PeerKey, host: &mut dyn DocHost, out: &mut Out) {
        loop {
            let Some(state) = self.peers.get_mut(peer) else { return };
            let active = state.sessions.values().filter(|s| s.active()).count();
            if active >= self.config.limits.max_active {
                break;
            }
            let Some((_, _, doc)) = state.queue.pop_first() else { break };
            self.drive(now, peer, &doc, host, out);
        }
        self.evict_idle(peer);
    }

    pub(super) fn evict_idle(&mut self, peer: &PeerKey) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        while state.sessions.len() > self.config.limits.max_sessions {
            let Some(idle) = state
                .sessions
                .iter()
                .filter(|(_, s)| !s.active() && s.incoming.is_none())
                .min_by_key(|(_, s)| s.last_used)
                .map(|(d, _)| d.clone())
            else {
                break;
            };
            state.sessions.remove(&idle);
        }
    }
}
