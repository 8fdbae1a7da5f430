//! One document's Automerge sync with one peer, and the limits that keep it
//! from stalling or running away.
//!
//! Plain Automerge sync waits forever when a message is lost, and a crafted
//! exchange can keep it going without end (`measurements.md`). A session
//! therefore counts rounds, notes when it last made progress, and can be
//! reset to a fresh sync state; the engine resets a stalled or runaway
//! session and the next inventory check finds the document again. The sync
//! state is persisted per (peer, document) by the caller, so a reconnect
//! costs bytes in proportion to what changed.

use automerge::Change;
use automerge::sync::{ChunkList, Message, State};
use thiserror::Error;

use super::received::{Budget, ReceiveLimits, changes_within};

use crate::date::Timestamp;
use crate::schema::Document;

/// More messages than this in a row without new changes means a
/// pathological or hostile exchange; two peers settle in a handful.
pub const MAX_ROUNDS: u32 = 16;
/// A session with no progress for this long is reset. Chosen for links with
/// 600 ms round trips that drop for seconds at a time; the engine may ask for
/// longer on slower links.
pub const STALL_AFTER_MS: i64 = 30_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("sync message does not decode: {0}")]
    Malformed(String),
    #[error("sync message rejected: {0}")]
    Rejected(String),
    #[error("sync session took {rounds} messages in a row without progress (at most {MAX_ROUNDS})")]
    TooManyRounds { rounds: u32 },
}

/// Most hash probes a peer's Bloom filter may ask for; Automerge uses 7.
const MAX_BLOOM_PROBES: u64 = 32;
/// Most bits per entry; Automerge uses 10.
const MAX_BLOOM_BITS_PER_ENTRY: u64 = 64;

/// Automerge trusts a peer's Bloom filter header: zero bits per entry makes
/// it divide by zero, and a huge probe count makes it allocate gigabytes.
/// Both are refused here, before the message reaches Automerge.
fn check_blooms(message: &Message) -> Result<(), SessionError> {
    for have in &message.have {
        let bytes = have.bloom.to_bytes();
        if bytes.is_empty() {
            continue;
        }
        let mut at = 0;
        let mut next = || super::received::leb128_u64(&bytes, &mut at);
        let (Some(entries), Some(bits_per_entry), Some(probes)) = (next(), next(), next()) else {
            return Err(SessionError::Malformed("Bloom filter header is cut off".into()));
        };
        let has_bits = at < bytes.len();
        let sane = (1..=MAX_BLOOM_BITS_PER_ENTRY).contains(&bits_per_entry)
            && (1..=MAX_BLOOM_PROBES).contains(&probes)
            && has_bits;
        if entries > 0 && !sane {
            return Err(SessionError::Malformed(format!(
                "Bloom filter with {bits_per_entry} bits per entry and {probes} probes over {} bytes",
                bytes.len().saturating_sub(at)
            )));
        }
    }
    Ok(())
}

/// The heads both sides were known to hold, from a persisted sync state:
/// how far behind a peer may be. `None` if the state does not decode.
pub fn shared_heads_of(persisted: &[u8]) -> Option<Vec<automerge::ChangeHash>> {
    State::decode(persisted).ok().map(|s| s.shared_heads)
}

/// A peer's sync message, decoded, with the changes it carries parsed.
#[derive(Debug)]
pub struct Received {
    message: Message,
    pub changes: Vec<Change>,
}

impl Received {
    /// Bytes of the Bloom filters the message carries, which the session
    /// keeps once it is applied.
    pub fn bloom_bytes(&self) -> usize {
        self.message.have.iter().map(|h| h.bloom.to_bytes().len()).sum()
    }
}

#[derive(Debug)]
pub struct DocSession {
    state: State,
    /// Messages received in a row that brought no new change, since the
    /// exchange last settled.
    rounds: u32,
    last_progress: Timestamp,
    /// A message was sent and no reply has come since.
    awaiting: bool,
    /// Bytes of the peer's Bloom filters the sync state holds.
    their_bloom_bytes: usize,
}

impl DocSession {
    /// A session that resumes from a persisted sync state. A state that does
    /// not decode is replaced by a fresh one: it costs one larger exchange,
    /// never a failure. The flag says whether that happened.
    pub fn resume(persisted: Option<&[u8]>, now: Timestamp) -> (Self, bool) {
        let (state, replaced) = match persisted.map(State::decode) {
            Some(Ok(state)) => (state, false),
            Some(Err(_)) => (State::new(), true),
            None => (State::new(), false),
        };
        (Self { state, rounds: 0, last_progress: now, awaiting: false, their_bloom_bytes: 0 }, replaced)
    }

    /// What to persist for (peer, document).
    pub fn persisted(&self) -> Vec<u8> {
        self.state.encode()
    }

    /// The next message to send, if any. Having nothing to say means the
    /// exchange settled, which clears the count of rounds without progress.
    pub fn next_message(&mut self, now: Timestamp, doc: &mut Document) -> Option<Vec<u8>> {
        self.next_sync(now, doc).map(Message::encode)
    }

    /// Before the peer has said anything in this session, assume it holds
    /// exactly the heads both last agreed on, so that the first message
    /// already carries the changes made since. Plain Automerge spends a
    /// round trip learning that first. The cost: a change the peer got from
    /// another post meanwhile is sent again (and ignored). Does nothing
    /// once the peer has spoken, or without shared heads.
    ///
    /// Without shared heads, `floor` is assumed instead when given: the
    /// document's genesis, which every copy holds, for a push of a document
    /// the peer has never synced with us (most likely new to it).
    pub fn prime(&mut self, floor: Option<&[automerge::ChangeHash]>) {
        if self.state.their_heads.is_some() {
            return;
        }
        let shared = match (self.state.shared_heads.is_empty(), floor) {
            (false, _) => self.state.shared_heads.clone(),
            (true, Some(floor)) if !floor.is_empty() => floor.to_vec(),
            (true, _) => return,
        };
        self.state.their_have =
            Some(vec![automerge::sync::Have { last_sync: shared.clone(), bloom: Default::default() }]);
        self.state.their_need = Some(Vec::new());
        self.state.their_heads = Some(shared);
        // Every node runs this build's Automerge: it reads whole-document
        // messages, which Automerge sends when a peer lacks a third of the
        // history and which compress far better than the changes one by one.
        if self.state.their_capabilities.is_none() {
            self.state.their_capabilities = Some(vec![
                automerge::sync::Capability::MessageV1,
                automerge::sync::Capability::MessageV2,
                automerge::sync::Capability::SyncReset,
            ]);
        }
    }

    /// [`Self::next_message`] before encoding, so that the engine can move
    /// a large message's changes into a compressed bundle.
    pub fn next_sync(&mut self, now: Timestamp, doc: &mut Document) -> Option<Message> {
        let Some(message) = doc.generate_sync_message(&mut self.state) else {
            self.rounds = 0;
            return None;
        };
        // A reply is due while either side may lack something of the
        // other's: the peer's last heads are not ours. The closing message
        // of an exchange, sent when both hold the same, awaits nothing.
        let mut ours = doc.heads();
        ours.sort_unstable();
        let mut theirs = self.state.their_heads.clone().unwrap_or_default();
        theirs.sort_unstable();
        let expects_reply = self.state.their_heads.is_none() || ours != theirs;
        if expects_reply && !self.awaiting {
            self.last_progress = now;
        }
        self.awaiting = expects_reply;
        Some(message)
    }

    /// Decodes a peer's message and parses the changes it carries within
    /// `limits`, without applying anything. Counts as a round.
    pub fn decode(&mut self, doc: &Document, bytes: &[u8], limits: ReceiveLimits) -> Result<Received, SessionError> {
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds > MAX_ROUNDS {
            return Err(SessionError::TooManyRounds { rounds: self.rounds });
        }
        let message = Message::decode(bytes).map_err(|e| SessionError::Malformed(e.to_string()))?;
        check_blooms(&message)?;
        let mut budget = Budget::new(limits);
        let changes = changes_within(message.changes.iter(), doc.genesis_heads(), &mut budget)
            .map_err(|e| SessionError::Rejected(e.to_string()))?;
        Ok(Received { message, changes })
    }

    /// Applies a decoded message to `doc`, carrying only the changes
    /// `keep` admits. A message Automerge rejects leaves the document as it
    /// was.
    pub fn apply(
        &mut self,
        now: Timestamp,
        doc: &mut Document,
        received: Received,
        keep: impl Fn(&Change) -> bool,
    ) -> Result<(), SessionError> {
        let bloom_bytes = received.bloom_bytes();
        let Received { mut message, changes } = received;
        message.changes =
            ChunkList::from(changes.iter().filter(|c| keep(c)).map(|c| c.raw_bytes().to_vec()).collect::<Vec<_>>());
        let before = doc.heads();
        let state = &mut self.state;
        crate::error::guard(|| doc.receive_sync_message(state, message))
            .map_err(|panic| SessionError::Rejected(format!("automerge failed on it ({panic})")))?
            .map_err(|e| SessionError::Rejected(e.to_string()))?;
        self.their_bloom_bytes = bloom_bytes;
        if doc.heads() != before {
            self.rounds = 0;
        }
        self.awaiting = false;
        self.last_progress = now;
        Ok(())
    }

    /// Applies a peer's message to `doc` with every change it carries.
    pub fn receive(&mut self, now: Timestamp, doc: &mut Document, bytes: &[u8]) -> Result<(), SessionError> {
        let received = self.decode(doc, bytes, ReceiveLimits::default())?;
        self.apply(now, doc, received, |_| true)
    }

    /// Bytes of the peer's Bloom filters this session holds.
    pub fn their_bloom_bytes(&self) -> usize {
        self.their_bloom_bytes
    }

    /// A message was sent and no reply has come since.
    pub fn is_awaiting(&self) -> bool {
        self.awaiting
    }

    /// When the session last made progress (a reply, or its first message).
    pub fn last_progress(&self) -> Timestamp {
        self.last_progress
    }

    /// The heads both sides are known to hold.
    pub fn shared_heads(&self) -> &[automerge::ChangeHash] {
        &self.state.shared_heads
    }

    /// Both sides were shown to hold exactly `heads` by other means than
    /// a sync message (a snapshot bundle confirmed by fingerprint), so
    /// later syncs start from there.
    pub fn settle_at(&mut self, now: Timestamp, heads: Vec<automerge::ChangeHash>) {
        self.state.shared_heads = heads;
        self.state.sent_hashes.clear();
        self.state.in_flight = false;
        self.rounds = 0;
        self.awaiting = false;
        self.last_progress = now;
    }

    /// A reply has been awaited for longer than [`STALL_AFTER_MS`]. An idle
    /// session that awaits nothing never stalls.
    pub fn is_stalled(&self, now: Timestamp) -> bool {
        self.awaiting && now.as_millis().saturating_sub(self.last_progress.as_millis()) > STALL_AFTER_MS
    }

    /// Starts over with a fresh sync state. Both sides must reset together
    /// (the engine sends a `Reset` frame): a side that keeps its state goes
    /// on filtering out changes it believes it already sent.
    pub fn reset(&mut self, now: Timestamp) {
        self.state = State::new();
        self.their_bloom_bytes = 0;
        self.rounds = 0;
        self.awaiting = false;
        self.last_progress = now;
    }

    /// Begins a new session over the same persisted state (a reconnect):
    /// what was in flight on the old connection is forgotten, as if the
    /// state had been saved and loaded.
    pub fn restart(&mut self, now: Timestamp) {
        self.state = State::decode(&self.state.encode()).unwrap_or_default();
        self.rounds = 0;
        self.awaiting = false;
        self.last_progress = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DocKind;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_795_000_000_000 + ms)
    }

    fn add(doc: &mut Document, n: u128, name: &str) {
        crate::test_support::add_person(doc, n, name, at(0));
    }

    fn pair() -> (Document, Document) {
        let kind = DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 0 };
        let mut a = Document::genesis(kind.clone()).unwrap();
        a.set_actor(automerge::ActorId::from([1u8; 16]));
        let mut b = Document::genesis(kind).unwrap();
        b.set_actor(automerge::ActorId::from([2u8; 16]));
        (a, b)
    }

    /// Exchanges messages until neither side has anything to say, dropping
    /// the message numbered `drop`; returns the bytes sent.
    fn exchange(
        a: &mut Document,
        sa: &mut DocSession,
        b: &mut Document,
        sb: &mut DocSession,
        drop: Option<usize>,
    ) -> usize {
        let (mut bytes, mut sent) = (0, 0);
        // One direction at a time: from a to b, then from b to a.
        let mut send = |from: &mut Document, s_from: &mut DocSession, to: &mut Document, s_to: &mut DocSession| {
            let Some(message) = s_from.next_message(at(0), from) else { return false };
            sent += 1;
            bytes += message.len();
            if Some(sent) != drop {
                s_to.receive(at(0), to, &message).unwrap();
            }
            assert!(sent < 40, "sync did not settle");
            true
        };
        loop {
            let a_spoke = send(a, sa, b, sb);
            let b_spoke = send(b, sb, a, sa);
            if !a_spoke && !b_spoke {
                return bytes;
            }
        }
    }

    #[test]
    fn two_copies_converge_and_a_persisted_state_keeps_reconnects_small() {
        let (mut a, mut b) = pair();
        for n in 0..50 {
            add(&mut a, n, "Мухаммад Алиев");
        }
        add(&mut b, 900, "Ерлан Сейткали");
        let (mut sa, _) = DocSession::resume(None, at(0));
        let (mut sb, _) = DocSession::resume(None, at(0));
        exchange(&mut a, &mut sa, &mut b, &mut sb, None);
        assert_eq!(a.heads(), b.heads());

        // Reconnect from persisted states after one new change.
        let (saved_a, saved_b) = (sa.persisted(), sb.persisted());
        add(&mut a, 51, "Шерзод Рахимов");
        let (mut sa, replaced) = DocSession::resume(Some(&saved_a), at(1));
        assert!(!replaced);
        let (mut sb, _) = DocSession::resume(Some(&saved_b), at(1));
        let bytes = exchange(&mut a, &mut sa, &mut b, &mut sb, None);
        assert_eq!(a.heads(), b.heads());
        assert!(bytes < 2_000, "{bytes} B for one change with persisted state");
    }

    /// Two copies with one change each, whose first exchange lost its
    /// second message.
    fn diverged_with_a_lost_message() -> (Document, DocSession, Document, DocSession) {
        let (mut a, mut b) = pair();
        add(&mut a, 1, "Мухаммад Алиев");
        add(&mut b, 2, "Ерлан Сейткали");
        let (mut sa, _) = DocSession::resume(None, at(0));
        let (mut sb, _) = DocSession::resume(None, at(0));
        exchange(&mut a, &mut sa, &mut b, &mut sb, Some(2));
        (a, sa, b, sb)
    }

    #[test]
    fn a_lost_message_is_detected_as_a_stall_and_a_reset_recovers() {
        let (mut a, mut sa, mut b, mut sb) = diverged_with_a_lost_message();
        assert_ne!(a.heads(), b.heads(), "with a message lost, plain sync stops short");
        // The side whose message was lost awaits a reply; it stalls.
        let stalled = sa.is_stalled(at(STALL_AFTER_MS + 1)) || sb.is_stalled(at(STALL_AFTER_MS + 1));
        assert!(stalled);
        assert!(!sa.is_stalled(at(STALL_AFTER_MS)) && !sb.is_stalled(at(STALL_AFTER_MS)));
        sa.reset(at(STALL_AFTER_MS + 1));
        sb.reset(at(STALL_AFTER_MS + 1));
        exchange(&mut a, &mut sa, &mut b, &mut sb, None);
        assert_eq!(a.heads(), b.heads());
    }

    #[test]
    fn bad_messages_are_named_and_leave_the_document_alone() {
        let (mut a, _) = pair();
        let before = a.heads();
        let (mut session, _) = DocSession::resume(None, at(0));
        let err = session.receive(at(0), &mut a, b"not a sync message").unwrap_err();
        assert!(matches!(err, SessionError::Malformed(_)), "{err}");
        assert_eq!(a.heads(), before);
        let (_, replaced) = DocSession::resume(Some(b"garbage state"), at(0));
        assert!(replaced);
    }

    #[test]
    fn a_bloom_filter_that_would_crash_automerge_is_refused() {
        use automerge::sync::{BloomFilter, Have};
        let (mut a, mut b) = pair();
        add(&mut b, 1, "Ерлан Сейткали");
        let (mut sa, _) = DocSession::resume(None, at(0));
        let (mut sb, _) = DocSession::resume(None, at(0));
        let honest = sb.next_sync(at(0), &mut b).unwrap();
        // num_entries 1, zero bits per entry, 7 probes, no bits.
        for header in [vec![1u8, 0, 7], vec![1u8, 10, 0xff, 0xff, 0xff, 0x0f, 0]] {
            let mut evil = honest.clone();
            let bloom = BloomFilter::try_from(header.as_slice()).unwrap_or_default();
            evil.have = vec![Have { last_sync: vec![], bloom }];
            let err = sa.receive(at(0), &mut a, &evil.encode());
            if header[1] == 0 {
                assert!(matches!(err, Err(SessionError::Malformed(_))), "{err:?}");
            }
            // Either refused or harmless: generating the next message must not panic.
            let _ = sa.next_sync(at(0), &mut a);
        }
    }

    #[test]
    fn a_session_that_never_settles_is_cut_off() {
        let (mut a, mut b) = pair();
        add(&mut b, 1, "Ерлан Сейткали");
        let (mut sa, _) = DocSession::resume(None, at(0));
        let (mut sb, _) = DocSession::resume(None, at(0));
        let message = sb.next_message(at(0), &mut b).unwrap();
        for _ in 0..MAX_ROUNDS {
            let _ = sa.receive(at(0), &mut a, &message);
        }
        let err = sa.receive(at(0), &mut a, &message).unwrap_err();
        assert_eq!(err, SessionError::TooManyRounds { rounds: MAX_ROUNDS + 1 });
        sa.restart(at(1));
        assert!(sa.receive(at(1), &mut a, &message).is_ok());
    }

    #[test]
    fn a_long_lived_session_with_steady_changes_is_never_cut_off() {
        let (mut a, mut b) = pair();
        let (mut sa, _) = DocSession::resume(None, at(0));
        let (mut sb, _) = DocSession::resume(None, at(0));
        for n in 0..(3 * MAX_ROUNDS as u128) {
            add(&mut a, n, "Мухаммад Алиев");
            exchange(&mut a, &mut sa, &mut b, &mut sb, None);
        }
        assert_eq!(a.heads(), b.heads());
        assert!(!sa.is_stalled(at(10 * STALL_AFTER_MS)), "an idle, settled session awaits nothing");
    }

    #[test]
    fn a_restart_after_a_lost_message_converges() {
        let (mut a, mut sa, mut b, mut sb) = diverged_with_a_lost_message();
        sa.restart(at(1));
        sb.restart(at(1));
        exchange(&mut a, &mut sa, &mut b, &mut sb, None);
        assert_eq!(a.heads(), b.heads());
    }
}
