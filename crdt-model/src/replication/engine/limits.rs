//! Every bound the engine keeps, in one place, so that tests can shrink
//! them and SECURITY-minded readers can find them.

use crate::replication::received::ReceiveLimits;

/// How much one peer may make this node hold or do, and the engine's
/// timing. [`Limits::default`] is what the daemon runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sessions per peer that may await a reply at once: bounds memory and
    /// keeps a slow link from being flooded.
    pub max_active: usize,
    /// Sessions per peer kept in memory; idle ones beyond are dropped
    /// (their state is persisted).
    pub max_sessions: usize,
    /// How often the digest is exchanged again on a quiet link.
    pub recheck_every_ms: i64,
    /// A sync message whose changes exceed this moves them into a
    /// compressed bundle, split into frames.
    pub bundle_over_bytes: usize,
    /// The slowest link we plan for, in bytes per second: a reply is not
    /// overdue while what we sent could still be on its way.
    pub slowest_link_bytes_per_s: u64,
    /// A peer that has not said `Hello` is greeted again this often.
    pub hello_retry_ms: i64,
    /// Document ids a peer may name by alias in one connection; a peer that
    /// opens more is cut off.
    pub max_aliases: usize,
    /// A pushed document the peer never synced with us is sent whole when
    /// it has at most this many changes.
    pub push_whole_up_to: usize,
    /// Sessions a peer may make this node keep; beyond, it is cut off.
    /// Idle sessions are dropped long before (`max_sessions`), so only a
    /// peer that opens documents without end reaches this.
    pub max_peer_sessions: usize,
    /// Bundle bytes being reassembled from one peer at once; beyond, it is
    /// cut off.
    pub max_peer_reassembly_bytes: usize,
    /// Bytes of a peer's Bloom filters (the `have` of its sync messages)
    /// its sessions may hold at once; a message that would pass it is
    /// refused.
    pub max_peer_bloom_bytes: usize,
    /// Reconcile frames a peer may send within one recheck period.
    pub max_reconcile_frames: u32,
    /// Frames that fail to decode before a peer is cut off.
    pub max_bad_frames: u32,
    /// What one sync message or bundle may expand to.
    pub receive: ReceiveLimits,
    /// Refused changes that no out-of-date roster explains (bad
    /// signatures, forbidden fields, …), over any number of connections,
    /// before the peer is cut off.
    pub max_refused_changes: u32,
    /// How long a peer that was cut off is turned away.
    pub cut_off_ms: i64,
    /// Peers whose strikes are remembered at once.
    pub max_struck_peers: usize,
    /// Times one document may start over with one peer within a recheck
    /// period (a snapshot built for it, a `Reset` from it): a peer that
    /// claims to hold nothing and resets again and again would otherwise
    /// make this node build the whole document in a loop. Beyond, the
    /// document waits for the next period.
    pub max_restarts_per_doc: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_active: 8,
            max_sessions: 64,
            recheck_every_ms: 10 * 60 * 1000,
            // Below this a frame's own compression does as well.
            bundle_over_bytes: 2 * 1024,
            // 2.4 kbit/s, an HF data link.
            slowest_link_bytes_per_s: 300,
            hello_retry_ms: 30_000,
            max_aliases: 1 << 16,
            push_whole_up_to: 64,
            // Idle sessions beyond `max_sessions` (64) are dropped, and an
            // honest peer keeps at most `max_active` (8) awaiting replies.
            max_peer_sessions: 128,
            // A 62,500-entry shard (1M entries per post) saves to ~4 MB.
            max_peer_reassembly_bytes: 32 << 20,
            // 10 bits per change: 16 MiB covers 13M changes.
            max_peer_bloom_bytes: 16 << 20,
            max_reconcile_frames: 512,
            max_bad_frames: 16,
            receive: ReceiveLimits::default(),
            max_refused_changes: 32,
            cut_off_ms: 30 * 60 * 1000,
            max_struck_peers: 1024,
            max_restarts_per_doc: 16,
        }
    }
}
