//! Connections: `Hello`, document aliases and the digest exchange that
//! finds which documents differ.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::sync::Session;
use super::{DocHost, Effect, Engine, Lane, Out, PeerKey, lane_of, sent_bytes};
use crate::date::Timestamp;
use crate::ids::DocId;
use crate::replication::digest::{Part, View};
use crate::replication::frame::{Body, MAX_FRAME_BYTES, Slot};
use crate::schema::DocKind;
use crate::trust::{Fleet, PublicKey};

/// `Hello` feature bit: the sender has heard the receiver's `Hello`. A
/// repeated `Hello` without it means ours was lost, so it is answered.
const HEARD_YOU: u32 = 1;

/// How far ahead of this node's clock a monthly document's month may lie:
/// a month, for clocks that disagree around a month's turn.
const NEXT_MONTH_MS: i64 = 32 * 24 * 3600 * 1000;
/// The first month a monthly document may cover: incident logs and audit
/// logs start with the programme, and a month before it can only be junk.
const FIRST_MONTH: &str = "2000-01";

/// What a peer's `Hello` says.
pub(super) struct Greeting {
    pub(super) node: [u8; 16],
    pub(super) name: String,
    pub(super) features: u32,
    pub(super) roster: u64,
}

#[derive(Debug)]
pub(super) struct Peer {
    /// The peer's key, from its transport identity.
    pub(super) key: PublicKey,
    /// Set by the peer's `Hello`; nothing but `Hello` is accepted before.
    pub(super) node: Option<[u8; 16]>,
    pub(super) name: String,
    /// The roster version the peer announced.
    pub(super) roster: u64,
    /// Documents are exchanged with it: both sides are active members.
    pub(super) syncing: bool,
    pub(super) next_slot: Slot,
    /// Aliases this side gave documents in this connection.
    pub(super) my_slots: BTreeMap<DocId, Slot>,
    /// Aliases the peer gave documents in this connection.
    pub(super) their_slots: BTreeMap<Slot, DocId>,
    /// `Open` frames received in this connection, reused slots included.
    pub(super) opens: usize,
    pub(super) sessions: BTreeMap<DocId, Session>,
    /// Documents known to differ and not yet being synced, in order.
    pub(super) queue: BTreeSet<(Lane, Reverse<String>, DocId)>,
    /// Documents the last digest showed the peer holds no copy of.
    pub(super) absent: BTreeSet<DocId>,
    /// Documents one side refused: how often, and since when. Refused
    /// twice, a document is left alone for half a check period: frames
    /// already on their way would otherwise start the exchange again at
    /// once, and a change one side holds and the other refuses would cycle
    /// for ever. (A first refusal is often a passing one, a change resent
    /// without the later change whose proof covers it.)
    pub(super) quiet: BTreeMap<DocId, (u32, Timestamp)>,
    pub(super) next_check: Timestamp,
    pub(super) reconcile_frames: u32,
    /// Times each document started over with this peer in this period.
    pub(super) restarts: BTreeMap<DocId, u32>,
    pub(super) bad_frames: u32,
    pub(super) last_reconciled: Option<Timestamp>,
}

/// One peer's counts for its current period, kept past its connection.
#[derive(Debug, Clone)]
pub(super) struct Period {
    ends: Timestamp,
    reconcile_frames: u32,
    restarts: BTreeMap<DocId, u32>,
    quiet: BTreeMap<DocId, (u32, Timestamp)>,
}

impl Engine {
    pub fn handle_connected(&mut self, now: Timestamp, peer: &PeerKey) -> Vec<Effect> {
        let mut out = Out { effects: Vec::new() };
        if let Some(reason) = self.turned_away(now, peer) {
            out.effects.push(Effect::Disconnect { peer: peer.clone(), reason });
            return self.finish(out);
        }
        let Ok(key) = PublicKey::from_peer_id(&peer.0) else {
            out.effects
                .push(Effect::Disconnect { peer: peer.clone(), reason: "its peer id is not an ed25519 key".into() });
            return self.finish(out);
        };
        let syncing = self.may_sync(&key);
        // A second report of the same peer keeps what its period counted.
        self.drop_peer(now, peer);
        self.peers.insert(
            peer.clone(),
            Peer {
                key,
                node: None,
                name: String::new(),
                roster: 0,
                syncing,
                next_slot: 0,
                my_slots: BTreeMap::new(),
                their_slots: BTreeMap::new(),
                opens: 0,
                sessions: BTreeMap::new(),
                queue: BTreeSet::new(),
                absent: BTreeSet::new(),
                quiet: BTreeMap::new(),
                next_check: Timestamp::from_millis(now.as_millis() + self.config.limits.recheck_every_ms),
                reconcile_frames: 0,
                restarts: BTreeMap::new(),
                bad_frames: 0,
                last_reconciled: None,
            },
        );
        out.send(peer, Lane::Control, &self.hello(false));
        // The digest goes right behind the greeting, on both sides: it saves
        // half a round trip on every connection, for some 20 bytes. A peer
        // that is not (yet) a member gets the greeting only; a roster that
        // enrols it starts the digest then.
        if syncing {
            out.send(
                peer,
                Lane::Control,
                &Body::Reconcile { roster: self.roster_version(), parts: self.view_for(peer).opening() },
            );
        }
        if let Some(state) = self.peers.get_mut(peer) {
            state.next_check = Timestamp::from_millis(now.as_millis() + self.config.limits.hello_retry_ms);
        }
        self.finish(out)
    }

    pub(super) fn hello(&self, heard_you: bool) -> Body {
        let features = if heard_you { HEARD_YOU } else { 0 };
        Body::Hello {
            node: self.config.node(),
            // The roster wins over the config: peers check the name
            // against the roster entry.
            name: self.own_name().to_string(),
            features,
            max_frame: MAX_FRAME_BYTES as u32,
            roster: self.roster_version(),
        }
    }

    /// The documents `peer` may receive, fingerprinted for the digest
    /// exchange with it (see [`crate::replication::digest`]).
    pub(super) fn view_for(&self, peer: &PeerKey) -> View {
        let Some(state) = self.peers.get(peer) else { return View::default() };
        let key = state.key;
        self.inventory.view(&self.config.key.0, &key.0, |doc| self.may_receive(&key, doc))
    }

    pub(super) fn roster_version(&self) -> u64 {
        self.fleet.as_ref().map_or(0, Fleet::version)
    }

    /// What was in flight is forgotten; persisted sync states stay.
    pub fn handle_disconnected(&mut self, now: Timestamp, peer: &PeerKey) -> Vec<Effect> {
        self.drop_peer(now, peer);
        self.finish(Out { effects: Vec::new() })
    }

    /// Forgets a peer's connection, keeping what its period counted (for
    /// members it syncs with; others can do little, and can mint peer ids)
    /// until the period ends. Every way a peer's state goes passes here.
    pub(super) fn drop_peer(&mut self, now: Timestamp, peer: &PeerKey) {
        if let Some(state) = self.peers.remove(peer).filter(|s| s.syncing && s.node.is_some() && now < s.next_check) {
            let period = Period {
                ends: state.next_check,
                reconcile_frames: state.reconcile_frames,
                restarts: state.restarts,
                quiet: state.quiet,
            };
            self.periods.retain(|_, p| now < p.ends);
            if self.periods.len() >= self.config.limits.max_struck_peers
                && let Some(soonest) = self.periods.iter().min_by_key(|(_, p)| p.ends).map(|(k, _)| k.clone())
            {
                self.periods.remove(&soonest);
            }
            self.periods.insert(peer.clone(), period);
        }
    }

    pub(super) fn on_hello(&mut self, now: Timestamp, peer: &PeerKey, hello: Greeting, out: &mut Out) {
        let Greeting { node, name, features, roster } = hello;
        if node == self.config.node() {
            out.effects.push(Effect::Disconnect { peer: peer.clone(), reason: "connected to itself".into() });
            return;
        }
        if let Some(reason) = self.false_identity(peer, node, &name) {
            out.effects.push(Effect::Disconnect { peer: peer.clone(), reason });
            return;
        }
        let ours = self.fleet.as_ref().map_or(0, Fleet::version);
        if ours > 0 && roster == ours && self.peers.contains_key(peer) {
            self.roster_confirmed_at = Some(now);
        }
        let Some(state) = self.peers.get_mut(peer) else { return };
        state.name = name;
        let newer_here = roster < ours && state.roster < ours;
        state.roster = state.roster.max(roster);
        let syncing = state.syncing;
        match state.node {
            Some(known) if known != node => {
                out.effects.push(Effect::Disconnect {
                    peer: peer.clone(),
                    reason: "changed its node id within a connection".into(),
                });
                return;
            }
            // The peer greets again without having heard us: our `Hello`,
            // and the digest behind it, were lost. It counts as a reconcile
            // frame, since it costs a digest.
            Some(_) if features & HEARD_YOU == 0 => {
                if !self.count_reconcile_frame(peer, out) {
                    return;
                }
                out.send(peer, Lane::Control, &self.hello(true));
                if syncing {
                    self.start_reconcile(now, peer, out);
                }
            }
            Some(_) => {}
            None => {
                // Our digest already went out behind our `Hello`.
                state.node = Some(node);
                state.next_check = Timestamp::from_millis(now.as_millis() + self.config.limits.recheck_every_ms);
                // A period the peer's last connection left unfinished goes
                // on, with what it counted.
                if let Some(period) = self.periods.remove(peer).filter(|p| now < p.ends) {
                    state.next_check = period.ends;
                    state.reconcile_frames += period.reconcile_frames;
                    state.restarts = period.restarts;
                    state.quiet.extend(period.quiet);
                }
            }
        }
        // The newer roster goes first, before any document byte.
        if newer_here {
            self.send_roster(peer, out);
        }
    }

    /// Counts a frame that costs a digest or a roster check against the
    /// period's cap; false, and the peer disconnected, beyond it.
    pub(super) fn count_reconcile_frame(&mut self, peer: &PeerKey, out: &mut Out) -> bool {
        let cap = self.config.limits.max_reconcile_frames;
        let Some(state) = self.peers.get_mut(peer) else { return true };
        state.reconcile_frames += 1;
        if state.reconcile_frames > cap {
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!("more than {cap} reconcile frames in one period"),
            });
            return false;
        }
        true
    }

    pub(super) fn start_reconcile(&mut self, now: Timestamp, peer: &PeerKey, out: &mut Out) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        if state.node.is_none() {
            return;
        }
        // With a peer it does not sync with too: the check keeps the roster
        // versions known on both sides, and one left in the past would fire
        // the timer again at once, for ever.
        state.next_check = Timestamp::from_millis(now.as_millis() + self.config.limits.recheck_every_ms);
        let syncing = state.syncing;
        // The peer said it holds an older roster than ours: the one we sent
        // was lost (or never sent), so it goes again, ahead of the digest.
        if state.roster < self.roster_version() {
            self.send_roster(peer, out);
        }
        let parts = if syncing { self.view_for(peer).opening() } else { Vec::new() };
        out.send(peer, Lane::Control, &Body::Reconcile { roster: self.roster_version(), parts });
    }

    pub(super) fn on_reconcile(
        &mut self,
        now: Timestamp,
        peer: &PeerKey,
        (roster, parts): (u64, &[Part]),
        host: &mut dyn DocHost,
        out: &mut Out,
    ) {
        let Some(state) = self.peers.get_mut(peer) else { return };
        state.reconcile_frames += 1;
        if state.reconcile_frames > self.config.limits.max_reconcile_frames {
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!("more than {} reconcile frames in one period", self.config.limits.max_reconcile_frames),
            });
            return;
        }
        // What the peer holds now, not the most it ever held: a roster we
        // sent that it does not report was lost, and the next check sends
        // it again. Rosters only grow, so an honest peer's number never
        // falls below what it announced.
        state.roster = roster;
        if !state.syncing {
            if !parts.is_empty() {
                out.problem(peer, None, "a digest from a peer this node does not sync with".into());
            }
            return;
        }
        let ours = self.roster_version();
        let step = self.view_for(peer).step(parts);
        for doc in &step.agreed {
            self.agreed(doc, now);
        }
        let Some(state) = self.peers.get_mut(peer) else { return };
        state.last_reconciled = Some(now);
        state.absent.extend(step.absent.iter().cloned());
        if !step.reply.is_empty() {
            out.send(peer, Lane::Control, &Body::Reconcile { roster: ours, parts: step.reply });
        }
        let mut restart = Vec::new();
        for doc in step.differing {
            match state.sessions.get(&doc).map(Session::active) {
                // An idle session on a document that still differs missed
                // something (a lost frame): both sides start it over.
                Some(false) => restart.push(doc),
                Some(true) => {}
                None => {
                    let (lane, month) = lane_of(&doc);
                    state.queue.insert((lane, month, doc));
                }
            }
        }
        for doc in restart {
            // A digest that claims every document differs must not rebuild
            // them all, again and again: each start-over counts.
            if self.may_restart(now, peer, &doc, out) {
                self.reset_session(now, peer, &doc, "the digest shows the document still differs", host, out);
            }
        }
        self.pump(now, peer, host, out);
    }

    pub(super) fn on_open(&mut self, peer: &PeerKey, slot: Slot, doc: &str, out: &mut Out) {
        if !self.peers.contains_key(peer) {
            return;
        }
        let Ok(doc) = DocId::parse(doc) else { return };
        if let Err(err) = DocKind::parse(&doc) {
            out.send(peer, Lane::Control, &Body::Refuse { slot, reason: format!("unknown document kind: {err}") });
            return;
        }

        // Need-to-know, on the receiving side: a node takes no document it
        // may not hold, and says nothing about one to a peer that may not
        // receive it (the peer named it, so refusing its alias reveals
        // nothing).
        let Some(key) = self.peers.get(peer).map(|state| state.key) else { return };
        if !self.may_receive(&self.config.key, &doc) || !self.may_receive(&key, &doc) {
            out.send(peer, Lane::Control, &Body::Refuse { slot, reason: "not for this node to hold".into() });
            return;
        }
        let Some(state) = self.peers.get_mut(peer) else { return };
        state.opens += 1;
        if state.opens > self.config.limits.max_aliases {
            out.effects.push(Effect::Disconnect {
                peer: peer.clone(),
                reason: format!("opened more than {} documents in one connection", self.config.limits.max_aliases),
            });
            return;
        }
        state.their_slots.insert(slot, doc);
    }

    /// Why `doc` cannot hold anything, if it cannot: no member of the
    /// roster may write in it (unless `peer` announced a newer roster,
    /// which may enrol its writer), or its month has not begun.
    pub(super) fn junk(&self, now: Timestamp, peer: &PeerKey, doc: &DocId) -> Option<String> {
        let kind = match DocKind::parse(doc) {
            Ok(kind) => kind,
            Err(err) => return Some(format!("unknown document kind: {err}")),
        };
        let latest = crate::audit::log::audit_month(Timestamp::from_millis(now.as_millis() + NEXT_MONTH_MS));
        if kind.month().is_some_and(|month| month > latest.as_str()) {
            return Some(format!("its month is after {latest}, which has not begun"));
        }
        if kind.month().is_some_and(|month| month < FIRST_MONTH) {
            return Some(format!("its month is before {FIRST_MONTH}, before any record this fleet keeps"));
        }
        let fleet = self.fleet.as_ref()?;
        let newer_roster = self.peers.get(peer).is_some_and(|p| p.roster > self.roster_version());
        (!newer_roster && !crate::trust::policy::anyone_writes(fleet, &kind))
            .then(|| "no member of the roster may write it".into())
    }

    pub(super) fn doc_of(&mut self, peer: &PeerKey, slot: Slot, out: &mut Out) -> Option<DocId> {
        let doc = self.peers.get(peer)?.their_slots.get(&slot).cloned();
        if doc.is_none() {
            out.problem(peer, None, format!("a frame for slot {slot}, which the peer never opened"));
        }
        doc
    }

    /// Sends a frame about `doc`, opening an alias for it first if needed.
    pub(super) fn send_doc(
        &mut self,
        peer: &PeerKey,
        doc: &DocId,
        body: impl FnOnce(Slot) -> Body,
        out: &mut Out,
    ) -> usize {
        let Some(state) = self.peers.get(peer) else { return 0 };
        // The last guard of need-to-know: no byte about a document goes to
        // a peer that may not receive it, whichever path got here.
        if !self.may_receive(&state.key, doc) {
            out.problem(peer, Some(doc), "withheld a frame from a peer that may not receive the document".into());
            return 0;
        }
        let Some(state) = self.peers.get_mut(peer) else { return 0 };
        let lane = lane_of(doc).0;
        let mut sent = 0;
        let slot = match state.my_slots.get(doc) {
            Some(slot) => *slot,
            None => {
                let slot = state.next_slot;
                state.next_slot += 1;
                state.my_slots.insert(doc.clone(), slot);
                let before = out.effects.len();
                out.send(peer, lane, &Body::Open { slot, doc: doc.to_string(), priority: lane as u8 });
                sent += sent_bytes(&out.effects[before..]);
                slot
            }
        };
        let before = out.effects.len();
        out.send(peer, lane, &body(slot));
        sent + sent_bytes(&out.effects[before..])
    }
}
