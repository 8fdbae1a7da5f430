//! The roster in the engine: which peers documents are exchanged with,
//! how a newer roster spreads (ahead of everything else, on every live
//! connection), and what a peer that keeps sending refused changes costs
//! it.

use super::{DocHost, Effect, Engine, Lane, Out, PeerKey, Trust};
use crate::admission::{Authority, Reason};
use crate::date::Timestamp;
use crate::ids::DocId;
use crate::replication::frame::Body;
use crate::trust::{Fleet, PublicKey, TrustError};

/// What one peer sent that was refused.
#[derive(Debug, Default)]
pub(super) struct Offences {
    /// Refused changes, by reason, since this node started.
    pub(super) refused: std::collections::BTreeMap<&'static str, u64>,
    /// Refusals no honest peer causes, since its last cut-off.
    strikes: u32,
}

impl Engine {
    /// The roster this node holds, if any.
    pub fn fleet(&self) -> Option<&Fleet> {
        self.fleet.as_ref()
    }

    pub fn trust(&self) -> Trust {
        self.config.trust
    }

    /// Whether the node with `key` may receive `doc` (need-to-know): in a
    /// fleet, as the roster's read policy says; with `--psk-only`, every
    /// holder of the fleet key may.
    pub fn may_receive(&self, key: &PublicKey, doc: &DocId) -> bool {
        match self.config.trust {
            Trust::PskOnly => true,
            Trust::Closed => false,
            Trust::Fleet { .. } => self.fleet.as_ref().is_some_and(|f| f.may_receive(key, doc)),
        }
    }

    /// Takes the roster this node stored, at start; no effects.
    pub fn set_roster(&mut self, bytes: &[u8]) -> Result<u64, TrustError> {
        let fleet = self.verify(bytes)?;
        let version = fleet.version();
        self.fleet = Some(fleet);
        Ok(version)
    }

    /// A roster handed in by an administrator (signed by the CLI with the
    /// admin key): installed and spread if it is valid and newer.
    pub fn handle_roster(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
        host: &mut dyn DocHost,
    ) -> Result<Vec<Effect>, TrustError> {
        let fleet = self.verify(bytes)?;
        if let Some(held) = &self.fleet {
            fleet.may_replace(held)?;
        }
        let mut out = Out { effects: Vec::new() };
        self.install(now, fleet, host, &mut out);
        Ok(self.finish(out))
    }

    fn verify(&self, bytes: &[u8]) -> Result<Fleet, TrustError> {
        match self.config.trust {
            Trust::Fleet { anchor } => Fleet::verify(bytes, &anchor),
            Trust::Closed | Trust::PskOnly => {
                Err(TrustError::Invalid("this node is not configured with a fleet admin key".into()))
            }
        }
    }

    /// A peer's roster: installed if it is valid and newer than ours.
    pub(super) fn on_roster(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        bytes: &[u8],
        host: &mut dyn DocHost,
        out: &mut Out,
    ) {
        // A roster costs a decode and a signature check: it counts against
        // the same per-period cap as a digest, and a copy of ours costs
        // neither.
        if !self.count_reconcile_frame(peer, out) {
            return;
        }
        if self.fleet.as_ref().is_some_and(|held| held.encoded() == bytes) {
            return;
        }
        let fleet = match self.verify(bytes) {
            Ok(fleet) => fleet,
            Err(err) => {
                out.problem(peer, None, format!("refused the peer's roster: {err}"));
                return;
            }
        };
        if let Some(held) = &self.fleet {
            if fleet.version() == held.version() && fleet.encoded() != held.encoded() {
                out.problem(
                    peer,
                    None,
                    format!(
                        "the peer holds another roster with version {}: two administrators published at once, and \
                         the fleet is split until one roster that keeps the members of both is published",
                        held.version()
                    ),
                );
            }
            if fleet.version() <= held.version() {
                return;
            }
            if let Err(err) = fleet.may_replace(held) {
                out.problem(peer, None, format!("refused the peer's roster: {err}"));
                return;
            }
        }
        // Only a roster that verified and may replace ours says the peer
        // holds that version.
        if let Some(state) = self.peers.get_mut(peer) {
            state.roster = state.roster.max(fleet.version());
        }
        self.install(now, fleet, host, out);
    }

    /// Makes `fleet` this node's roster: stores it, sends it on to every
    /// peer that holds an older one, starts syncing with peers it enrols and
    /// cuts off those it revokes.
    fn install(&mut self, now: Timestamp, fleet: Fleet, host: &mut dyn DocHost, out: &mut Out) {
        let version = fleet.version();
        let was_active =
            |key: &PublicKey| self.fleet.as_ref().is_none_or(|f| f.member(key).is_none_or(|m| m.is_active()));
        let revoked: Vec<PublicKey> =
            fleet.roster.members.iter().filter(|m| !m.is_active() && was_active(&m.key)).map(|m| m.key).collect();
        out.effects.push(Effect::RosterInstalled { version, roster: fleet.encoded(), revoked });
        self.fleet = Some(fleet);
        self.roster_confirmed_at = Some(now);
        let peers: Vec<PeerKey> = self.peers.keys().cloned().collect();
        for peer in peers {
            let Some(state) = self.peers.get(&peer) else { continue };
            let (key, was_syncing, greeted) = (state.key, state.syncing, state.node.is_some());
            if greeted && state.roster < version {
                self.send_roster(&peer, out);
            }
            let revoked = self.fleet.as_ref().and_then(|f| f.member(&key)).is_some_and(|m| !m.is_active());
            if revoked {
                out.effects.push(Effect::Disconnect { peer: peer.clone(), reason: "revoked from the fleet".into() });
                self.drop_peer(now, &peer);
                continue;
            }
            let syncing = self.may_sync(&key);
            if let Some(state) = self.peers.get_mut(&peer) {
                state.syncing = syncing;
            }
            if syncing && !was_syncing && greeted {
                // Enrolled, or this node was: the digest starts now.
                self.start_reconcile(now, &peer, out);
                self.pump(now, &peer, host, out);
            }
        }
        if self.fleet.as_ref().is_some_and(|f| !f.is_active(&self.config.key)) {
            out.problem(
                &PeerKey(self.config.name.clone()),
                None,
                format!("this node is not an active member in roster {version}"),
            );
        }
    }

    pub(super) fn send_roster(&mut self, peer: &PeerKey, out: &mut Out) {
        let Some(fleet) = &self.fleet else { return };
        let (version, roster) = (fleet.version(), fleet.encoded());
        if let Some(state) = self.peers.get_mut(peer) {
            state.roster = state.roster.max(version);
        }
        out.send(peer, Lane::Control, &Body::Roster { roster });
    }

    /// The name this node goes by: its roster entry's when it has one, else
    /// its config's.
    pub(super) fn own_name(&self) -> &str {
        self.fleet.as_ref().and_then(|f| f.member(&self.config.key)).map_or(&self.config.name, |m| &m.name)
    }

    /// Whether documents are exchanged with the node of `key`.
    pub(super) fn may_sync(&self, key: &PublicKey) -> bool {
        match self.config.trust {
            Trust::Closed => false,
            Trust::PskOnly => true,
            Trust::Fleet { .. } => {
                self.fleet.as_ref().is_some_and(|f| f.is_active(&self.config.key) && f.is_active(key))
            }
        }
    }

    /// Why a connection from `peer` is closed at once, if it is.
    pub(super) fn turned_away(&mut self, now: Timestamp, peer: &PeerKey) -> Option<String> {
        if self.config.trust == Trust::Closed {
            return Some(
                "no fleet admin key is configured, so this node replicates with nobody (set --fleet-admin, or --psk-only)"
                    .into(),
            );
        }
        match self.cut_off.get(peer) {
            Some(until) if *until > now => Some(format!("cut off until {until} for sending refused changes")),
            Some(_) => {
                self.cut_off.remove(peer);
                None
            }
            None => {
                let revoked = PublicKey::from_peer_id(&peer.0)
                    .ok()
                    .and_then(|key| self.fleet.as_ref()?.member(&key).map(|m| !m.is_active()))
                    .unwrap_or(false);
                revoked.then(|| "revoked from the fleet".into())
            }
        }
    }

    /// Whether the node id and name a peer states in `Hello` are not those
    /// its key and its roster entry give.
    pub(super) fn false_identity(&self, peer: &PeerKey, node: [u8; 16], name: &str) -> Option<String> {
        let state = self.peers.get(peer)?;
        if node != state.key.actor_prefix() {
            return Some(format!("states node id {}, which is not its key's", crate::ids::NodeId::from_bytes(node)));
        }
        let member = self.fleet.as_ref().and_then(|f| f.member(&state.key))?;
        (member.name != name).then(|| format!("calls itself {name:?}; the roster names it {:?}", member.name))
    }

    /// What changes are judged by, when where they came from had announced
    /// roster version `announced`.
    pub(super) fn authority_for(&self, announced: u64) -> Authority<'_> {
        match (&self.config.trust, &self.fleet) {
            (Trust::Fleet { .. }, Some(fleet)) => Authority::Fleet { fleet, newer_known: announced > fleet.version() },
            _ => Authority::Open,
        }
    }

    /// Counts refused changes from `peer`, across its connections; one
    /// that keeps sending changes no honest node sends is cut off for a
    /// while.
    pub(super) fn count_refusals(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        doc: &DocId,
        (refused, bad_proofs): (&[(automerge::ChangeHash, automerge::ActorId, Reason)], usize),
        out: &mut Out,
    ) {
        if (refused.is_empty() && bad_proofs == 0) || !self.peers.contains_key(peer) {
            return;
        }
        // Only peers that connected (so hold the fleet key) are counted, but
        // a key holder can make up peer ids: the map stays bounded by
        // forgetting the peer with the fewest strikes.
        if !self.offences.contains_key(peer) && self.offences.len() >= self.config.limits.max_struck_peers {
            let least = self.offences.iter().min_by_key(|(_, o)| o.strikes).map(|(p, _)| p.clone());
            if let Some(least) = least {
                self.offences.remove(&least);
            }
        }
        let peer_key = self.peers.get(peer).map(|p| p.key);
        let author_of = |actor: &automerge::ActorId| {
            self.fleet.as_ref().and_then(|f| f.member_of_actor(actor.to_bytes())).map(|m| (m.key, m.name.clone()))
        };
        let judged: Vec<(bool, String)> = refused
            .iter()
            .map(|(hash, actor, reason)| {
                let author = author_of(actor);
                // Two changes with one sequence number, or a change out of
                // its actor's sequence, are the author's doing; a relay
                // that took them (its copy may lack a proof that covered
                // the gap) is honest.
                let by_peer = author.as_ref().is_none_or(|(key, _)| Some(*key) == peer_key);
                let strike = match reason {
                    Reason::Equivocation | Reason::Sequence => by_peer,
                    other => !other.may_be_honest(),
                };
                let detail = match (reason, author) {
                    (Reason::Equivocation, Some((_, name))) => format!(
                        "refused change {hash}: {reason}; {name} forked its own history, and nodes that took the \
                         other change now disagree on this document: revoke {name}"
                    ),
                    _ => format!("refused change {hash}: {reason}"),
                };
                (strike, detail)
            })
            .collect();
        let record = self.offences.entry(peer.clone()).or_default();
        for ((_, _, reason), (strike, detail)) in refused.iter().zip(judged) {
            *record.refused.entry(reason.kind()).or_default() += 1;
            *self.refused_total.entry(reason.kind()).or_default() += 1;
            if strike {
                record.strikes = record.strikes.saturating_add(1);
            }
            out.problem(peer, Some(doc), detail);
        }
        if bad_proofs > 0 {
            *record.refused.entry("bad-proof").or_default() += bad_proofs as u64;
            *self.refused_total.entry("bad-proof").or_default() += bad_proofs as u64;
            record.strikes = record.strikes.saturating_add(u32::try_from(bad_proofs).unwrap_or(u32::MAX));
            out.problem(peer, Some(doc), format!("{bad_proofs} proof(s) did not verify under the key they name"));
        }
        let limit = self.config.limits.max_refused_changes;
        if record.strikes > limit {
            record.strikes = 0;
            let until = Timestamp::from_millis(now.as_millis() + self.config.limits.cut_off_ms);
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!("sent more than {limit} changes that no honest node sends; cut off until {until}"),
            });
            self.cut_off.insert(peer.clone(), until);
            self.drop_peer(now, peer);
        }
    }
}
