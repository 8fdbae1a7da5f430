//! The simulated links: which are up, frames on their way (each lane in
//! order, lanes overtaking each other), and connections opened and closed
//! at both ends.

use super::*;

impl Fleet {
    pub(super) fn link_usable(&self, link: usize) -> bool {
        let l = &self.links[link];
        l.up && self.alive(l.a) && self.alive(l.b)
    }

    pub(super) fn connect(&mut self, link: usize) {
        self.tell_both_ends(link, true);
    }

    pub(super) fn disconnect(&mut self, link: usize) {
        self.links[link].epoch += 1;
        self.tell_both_ends(link, false);
    }

    /// Tells each live end of `link` that the other connected (or
    /// disconnected).
    pub(super) fn tell_both_ends(&mut self, link: usize, connected: bool) {
        let (a, b) = (self.links[link].a, self.links[link].b);
        for (me, other) in [(a, b), (b, a)] {
            let key = self.nodes[other].key.clone();
            let input = if connected { ReplicationInput::Connected(key) } else { ReplicationInput::Disconnected(key) };
            self.input(me, input);
        }
    }

    pub(super) fn link_between(&self, a: usize, b: usize) -> Option<usize> {
        self.links.iter().position(|l| (l.a, l.b) == (a.min(b), a.max(b)))
    }

    pub(super) fn send(&mut self, node: usize, peer: PeerKey, lane: Lane, frame: Vec<u8>) {
        let Some(to) = self.nodes.iter().position(|n| n.key == peer) else { return };
        let Some(link) = self.link_between(node, to) else { return };
        if !self.link_usable(link) {
            return;
        }
        self.report.frames += 1;
        self.report.bytes += frame.len() as u64;
        if self.faults && self.rng.random_bool(self.drop_p) {
            self.report.dropped += 1;
            return;
        }
        let copies = if self.faults && self.rng.random_bool(self.dup_p) { 2 } else { 1 };
        self.report.duplicated += copies - 1;
        for _ in 0..copies {
            let jitter = if self.faults { self.rng.random_range(0..=self.jitter_ms) } else { 0 };
            let epoch = self.links[link].epoch;
            // The transport keeps each lane in order; frames of different
            // lanes overtake each other.
            let last = self.lane_clock.entry((link, to, lane)).or_default();
            let at = (self.now + LATENCY_MS + jitter).max(*last);
            *last = at;
            self.schedule(at, Event::Deliver { link, epoch, to, frame: frame.clone() });
        }
    }

    /// `node` closes its connection to `peer`, which must involve the
    /// byzantine node: honest nodes never cut each other off. The peer
    /// dials again a little later, as the daemon's dialler does.
    pub(super) fn close(&mut self, node: usize, peer: &PeerKey, reason: &str) {
        let Some(to) = self.nodes.iter().position(|n| n.key == *peer) else { return };
        let byzantine = [node, to].iter().any(|i| self.nodes[*i].kind == Kind::Byzantine);
        assert!(byzantine, "honest node {} cut off honest {peer}: {reason}", self.nodes[node].key);
        if self.nodes[node].kind != Kind::Byzantine {
            self.report.byzantine_cut_offs += 1;
        }
        let Some(link) = self.link_between(node, to) else { return };
        if self.links[link].up {
            self.disconnect(link);
            self.links[link].up = false;
            let redial = self.rng.random_range(30_000..120_000);
            self.schedule(self.now + redial, Event::Redial { link });
        }
    }

    pub(super) fn bring_up(&mut self, link: usize) {
        self.links[link].up = true;
        if self.link_usable(link) {
            self.connect(link);
        }
    }
}
