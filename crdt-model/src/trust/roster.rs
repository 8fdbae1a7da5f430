//! The fleet roster: who is a member, with which role and rights, signed
//! by the fleet's admin key.
//!
//! Every daemon is told the admin public key (the anchor). A roster carries
//! a version and its members; a newer valid roster replaces an older one
//! everywhere. The admin key can be rotated: a roster may carry handovers,
//! each naming the next admin key and signed by the one before, so a
//! daemon configured with the first key still verifies rosters signed by
//! the latest. A newer roster must carry the handovers of the one it
//! replaces, so once a node has seen a handover, the retired key signs
//! nothing it will take: a stolen old key cannot outrank its successor.
//!
//! A member's entry only ever grows between versions (rights and legacy
//! actors are added) until it is revoked, and a revocation is permanent.
//! Reducing rights in place would let two honest nodes judge the same
//! change differently depending on which roster they learned first; to
//! reduce a member's rights, revoke it and enrol a new key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::TrustError;
use super::keys::{PublicKey, Signature, Signer};
use super::readers::ReadPolicy;
use crate::ids::DocId;
use crate::validate;

/// The most a signed roster may take, encoded: it crosses in one frame.
pub const MAX_ROSTER_BYTES: usize = 512 * 1024;
/// Members one roster may list.
pub const MAX_MEMBERS: usize = 4096;
/// Cut entries one revocation may carry.
pub const MAX_CUT_ENTRIES: usize = 16 * 1024;
/// Admin key handovers one roster may carry: each costs a signature check
/// whenever the roster is verified.
pub const MAX_HANDOVERS: usize = 64;

const ROSTER_DOMAIN: &[u8] = b"outpost/roster/1\0";
const HANDOVER_DOMAIN: &[u8] = b"outpost/admin-handover/1\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Centre,
    Post,
    Observer,
}

impl Role {
    pub fn parse(text: &str) -> Result<Self, TrustError> {
        match text.trim() {
            "centre" => Ok(Role::Centre),
            "post" => Ok(Role::Post),
            "observer" => Ok(Role::Observer),
            other => Err(TrustError::Invalid(format!("role {other:?}: expected centre, post or observer"))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Centre => "centre",
            Role::Post => "post",
            Role::Observer => "observer",
        }
    }
}

/// What a member may write.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Right {
    /// The watchlists of this authority (`watchlist/AUTHORITY/*`).
    Watchlist { authority: String },
    /// Its own incident log (`incidents/NAME/*`, NAME its roster name).
    IncidentLog,
    /// Notes and referrals on the incidents of the posts of this country,
    /// or of every country (`None`, for a regional centre).
    IncidentNotes { country: Option<String> },
}

impl Right {
    /// `watchlist`, `watchlist:AUTH`, `incident-log`, `incident-notes`,
    /// `incident-notes:CTY` or `incident-notes:*`; a bare `watchlist` or
    /// `incident-notes` means the member's own authority or country.
    pub fn parse(text: &str, authority: &str, country: Option<&str>) -> Result<Self, TrustError> {
        let (name, arg) = match text.trim().split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (text.trim(), None),
        };
        // The member's own authority and country are checked as any other
        // (a right must read back from what it shows).
        match (name, arg) {
            ("watchlist", None) => Ok(Right::Watchlist { authority: validate::authority_code(authority)? }),
            ("watchlist", Some(auth)) => Ok(Right::Watchlist { authority: validate::authority_code(auth)? }),
            ("incident-log", None) => Ok(Right::IncidentLog),
            ("incident-notes", None) => Ok(Right::IncidentNotes {
                country: country.map(|c| crate::country::parse_country("country", c)).transpose()?,
            }),
            ("incident-notes", Some("*")) => Ok(Right::IncidentNotes { country: None }),
            ("incident-notes", Some(c)) => {
                Ok(Right::IncidentNotes { country: Some(crate::country::parse_country("country", c)?) })
            }
            _ => Err(TrustError::Invalid(format!(
                "right {text:?}: expected watchlist[:AUTHORITY], incident-log or incident-notes[:COUNTRY|*]"
            ))),
        }
    }
}

impl Right {
    /// Whether what it names is well formed, as [`Right::parse`] would
    /// have made it: a roster is checked with it, since a signed roster
    /// may come from any tool.
    pub fn validate(&self) -> Result<(), TrustError> {
        let same = |parsed: String, given: &str| {
            if parsed == given {
                Ok(())
            } else {
                Err(TrustError::Invalid(format!("right {self}: {given:?} is not written as {parsed:?} would be")))
            }
        };
        match self {
            Right::Watchlist { authority } => same(validate::authority_code(authority)?, authority),
            Right::IncidentNotes { country: Some(country) } => {
                same(crate::country::parse_country("country", country)?, country)
            }
            Right::IncidentLog | Right::IncidentNotes { country: None } => Ok(()),
        }
    }
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Right::Watchlist { authority } => write!(f, "watchlist:{authority}"),
            Right::IncidentLog => f.write_str("incident-log"),
            Right::IncidentNotes { country: Some(c) } => write!(f, "incident-notes:{c}"),
            Right::IncidentNotes { country: None } => f.write_str("incident-notes:*"),
        }
    }
}

/// The rights a role has unless more are granted: a centre writes its
/// authority's watchlists and annotates its country's incidents; a post
/// writes its own incident log; an observer writes nothing.
pub fn default_rights(role: Role, authority: &str, country: Option<&str>) -> Vec<Right> {
    match role {
        Role::Centre => vec![
            Right::Watchlist { authority: authority.to_string() },
            Right::IncidentNotes { country: country.map(str::to_string) },
        ],
        Role::Post => vec![Right::IncidentLog],
        Role::Observer => Vec::new(),
    }
}

/// For one actor of a revoked member in one document, the highest change
/// the revoking node knew of. Changes up to it (its ancestors by the same
/// actor, and itself) stay admitted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CutEntry {
    pub doc: DocId,
    pub actor: Vec<u8>,
    pub seq: u64,
    pub hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The roster version that revoked the member.
    pub in_version: u64,
    pub cut: Vec<CutEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its node key; its libp2p peer id is derived from it.
    pub key: PublicKey,
    pub name: String,
    pub role: Role,
    pub authority: String,
    /// `None`: a regional body such as CARICC.
    pub country: Option<String>,
    /// Sorted, without repeats.
    pub rights: Vec<Right>,
    /// Actor prefixes this member wrote with before signed changes (a
    /// migrated store), bound to it by the admin.
    pub legacy_actors: Vec<[u8; 16]>,
    /// When the admin bound them (ms since the epoch): records those actors
    /// created under ids without an owner's tag count only if the ids are
    /// older, so the history they stand for cannot grow.
    pub legacy_until_ms: i64,
    /// Set once the member is revoked; its `rights` are those it had then.
    pub revoked: Option<Revocation>,
}

impl Member {
    /// A member with its role's default rights, its country from its
    /// authority (`None` for a regional body), no legacy actors.
    pub fn new(key: PublicKey, name: &str, role: Role, authority: &str, country: Option<String>) -> Self {
        Member {
            key,
            name: name.to_string(),
            role,
            authority: authority.to_string(),
            rights: default_rights(role, authority, country.as_deref()),
            country,
            legacy_actors: Vec::new(),
            legacy_until_ms: 0,
            revoked: None,
        }
    }

    pub fn is_active(&self) -> bool {
        self.revoked.is_none()
    }

    /// Whether `actor` is one this member writes with: 20 bytes whose
    /// first 16 are its key's prefix or one of its legacy prefixes.
    pub fn writes_with(&self, actor: &[u8]) -> bool {
        actor.len() == 20
            && (actor[..16] == self.key.actor_prefix()
                || self.legacy_actors.iter().any(|prefix| actor[..16] == prefix[..]))
    }

    /// The country a member's authority stands for by default: the first
    /// three letters (`KAZ-BS` → `KAZ`), if they are a country code.
    pub fn default_country(authority: &str) -> Option<String> {
        authority.get(..3).and_then(|code| crate::country::parse_country("country", code).ok())
    }
}

/// The roster's content, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Roster {
    pub version: u64,
    /// Sorted by key.
    pub members: Vec<Member>,
    /// Who may receive which documents.
    pub reads: ReadPolicy,
}

/// A roster as signed before it stated who may receive what: read with the
/// default policy.
#[derive(Deserialize)]
struct RosterBeforeReads {
    version: u64,
    members: Vec<Member>,
}

impl Roster {
    /// Decodes a roster's signed content, written by this version or by
    /// one from before the read policy.
    fn decode(body: &[u8]) -> Result<Self, TrustError> {
        let whole = |rest: &[u8]| {
            if rest.is_empty() {
                Ok(())
            } else {
                Err(TrustError::Invalid("the roster's content is followed by stray bytes".into()))
            }
        };
        match postcard::take_from_bytes::<Roster>(body) {
            Ok((roster, rest)) => whole(rest).map(|()| roster),
            Err(err) => match postcard::take_from_bytes::<RosterBeforeReads>(body) {
                Ok((old, rest)) => whole(rest).map(|()| Roster {
                    version: old.version,
                    members: old.members,
                    reads: ReadPolicy::default(),
                }),
                Err(_) => Err(TrustError::Invalid(format!("the roster's content does not decode: {err}"))),
            },
        }
    }
}

/// A successor admin key, signed by the key before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handover {
    pub next: PublicKey,
    pub signature: Signature,
}

fn handover_message(from: &PublicKey, next: &PublicKey) -> Vec<u8> {
    [HANDOVER_DOMAIN, &from.0, &next.0].concat()
}

impl Handover {
    pub fn new(from: &Signer, next: PublicKey) -> Self {
        Self { next, signature: from.sign(&handover_message(&from.public(), &next)) }
    }
}

/// A roster as it travels: the encoded content, the admin key's chain
/// from the anchor, and the last key's signature over the content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRoster {
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    pub handovers: Vec<Handover>,
    pub signature: Signature,
}

impl SignedRoster {
    /// Signs `roster` with `admin`, which must be the last key of
    /// `handovers` (or the anchor when there are none).
    pub fn sign(roster: &Roster, admin: &Signer, handovers: Vec<Handover>) -> Result<Self, TrustError> {
        let body = postcard::to_allocvec(roster).map_err(|e| TrustError::Invalid(e.to_string()))?;
        let signature = admin.sign(&[ROSTER_DOMAIN, &body].concat());
        let signed = Self { body, handovers, signature };
        if signed.encode()?.len() > MAX_ROSTER_BYTES {
            return Err(TrustError::Invalid(format!("the roster is larger than {MAX_ROSTER_BYTES} bytes")));
        }
        Ok(signed)
    }

    pub fn encode(&self) -> Result<Vec<u8>, TrustError> {
        postcard::to_allocvec(self).map_err(|e| TrustError::Invalid(e.to_string()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, TrustError> {
        if bytes.len() > MAX_ROSTER_BYTES {
            return Err(TrustError::Invalid(format!("a roster of {} bytes is over the limit", bytes.len())));
        }
        let (signed, rest) = postcard::take_from_bytes::<SignedRoster>(bytes)
            .map_err(|e| TrustError::Invalid(format!("the roster does not decode: {e}")))?;
        if !rest.is_empty() {
            return Err(TrustError::Invalid("the roster is followed by stray bytes".into()));
        }
        Ok(signed)
    }

    /// The admin key that signed this roster, if the chain from `anchor`
    /// holds. The anchor may be any key of the chain: a node set up after a
    /// rotation is configured with the current key, and then takes nothing
    /// signed by a key retired before it.
    pub fn signing_key(&self, anchor: &PublicKey) -> Result<PublicKey, TrustError> {
        if self.handovers.len() > MAX_HANDOVERS {
            return Err(TrustError::Invalid(format!(
                "{} admin key handovers, at most {MAX_HANDOVERS}",
                self.handovers.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        if !self.handovers.iter().all(|h| seen.insert(h.next)) {
            return Err(TrustError::Invalid("an admin key is handed over to twice".into()));
        }
        // Where the chain is checked from: from its start when the anchor
        // signed the first handover (the anchor is the fleet's first admin
        // key), else from the handover that names the anchor (a node set
        // up after a rotation, configured with a later key). Every link
        // after that is checked, so a link appended to name the anchor
        // again proves nothing.
        let first_signed_by_anchor =
            self.handovers.first().is_some_and(|h| anchor.verifies(&handover_message(anchor, &h.next), &h.signature));
        let start = if first_signed_by_anchor {
            0
        } else {
            self.handovers.iter().position(|h| h.next == *anchor).map_or(0, |at| at + 1)
        };
        let mut key = *anchor;
        for (n, handover) in self.handovers.iter().enumerate().skip(start) {
            if !key.verifies(&handover_message(&key, &handover.next), &handover.signature) {
                return Err(TrustError::BadSignature(format!(
                    "admin key handover {} is not signed by its predecessor",
                    n + 1
                )));
            }
            key = handover.next;
        }
        Ok(key)
    }

    /// The roster, once its signature chain verifies from `anchor` and its
    /// content is consistent.
    pub fn verify(&self, anchor: &PublicKey) -> Result<Roster, TrustError> {
        let key = self.signing_key(anchor)?;
        if !key.verifies(&[ROSTER_DOMAIN, &self.body].concat(), &self.signature) {
            return Err(TrustError::BadSignature("the roster is not signed by the fleet's admin key".into()));
        }
        let roster = Roster::decode(&self.body)?;
        roster.validate()?;
        Ok(roster)
    }
}

impl Roster {
    /// What the types cannot say: valid names, codes and rights, members
    /// sorted by key, no key or name twice.
    pub fn validate(&self) -> Result<(), TrustError> {
        if self.members.len() > MAX_MEMBERS {
            return Err(TrustError::Invalid(format!("{} members, at most {MAX_MEMBERS}", self.members.len())));
        }
        if !self.members.windows(2).all(|w| w[0].key < w[1].key) {
            return Err(TrustError::Invalid("members are not sorted by key, or a key is listed twice".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        // Records are bound to their owner by a 20-bit tag: two owners (an
        // authority, a post) with one tag could shadow each other's.
        let mut tags: BTreeMap<u32, &str> = BTreeMap::new();
        for owner in self.members.iter().flat_map(|m| [m.authority.as_str(), m.name.as_str()]) {
            let tag = crate::ids::owner_tag(owner);
            match tags.get(&tag) {
                Some(other) if *other != owner => {
                    return Err(TrustError::Invalid(format!(
                        "{owner} and {other} would tag their records alike; give one of them another name"
                    )));
                }
                _ => {
                    tags.insert(tag, owner);
                }
            }
        }
        for member in &self.members {
            let who = || member.key.peer_id();
            validate::node_name(&member.name).map_err(|e| TrustError::Invalid(format!("member {}: {e}", who())))?;
            validate::authority_code(&member.authority)
                .map_err(|e| TrustError::Invalid(format!("member {}: {e}", who())))?;
            if let Some(country) = &member.country {
                crate::country::parse_country("country", country)
                    .map_err(|e| TrustError::Invalid(format!("member {}: {e}", who())))?;
            }
            if !names.insert(member.name.as_str()) {
                return Err(TrustError::Invalid(format!("the name {} is given to two members", member.name)));
            }
            if !member.rights.windows(2).all(|w| w[0] < w[1]) {
                return Err(TrustError::Invalid(format!("member {}: rights not sorted or repeated", member.name)));
            }
            for right in &member.rights {
                right.validate().map_err(|e| TrustError::Invalid(format!("member {}: {e}", member.name)))?;
            }
            if let Some(revocation) = &member.revoked {
                if revocation.cut.len() > MAX_CUT_ENTRIES {
                    return Err(TrustError::Invalid(format!("member {}: revocation cut too long", member.name)));
                }
                if revocation.in_version > self.version {
                    return Err(TrustError::Invalid(format!("member {}: revoked in a later version", member.name)));
                }
            }
        }
        Ok(())
    }

    pub fn member(&self, key: &PublicKey) -> Option<&Member> {
        self.members.binary_search_by(|m| m.key.cmp(key)).ok().map(|i| &self.members[i])
    }

    /// Whether this roster may replace `older`: it is newer, it keeps every
    /// member, entries only grow (rights, legacy actors) and revocations
    /// stay as they were.
    pub fn may_replace(&self, older: &Roster) -> Result<(), TrustError> {
        if self.version <= older.version {
            return Err(TrustError::NotNewer { offered: self.version, held: older.version });
        }
        for old in &older.members {
            let who = &old.name;
            let Some(new) = self.member(&old.key) else {
                return Err(TrustError::Invalid(format!("roster {} drops member {who}", self.version)));
            };
            if (&new.name, new.role, &new.authority, &new.country)
                != (&old.name, old.role, &old.authority, &old.country)
            {
                return Err(TrustError::Invalid(format!(
                    "roster {} changes the name, role, authority or country of {who}; revoke it and enrol a new key",
                    self.version
                )));
            }
            match (&old.revoked, &new.revoked) {
                (Some(a), Some(b)) if a == b && old.rights == new.rights => {}
                (Some(_), _) => {
                    return Err(TrustError::Invalid(format!(
                        "roster {} changes the revocation of {who}; a revocation is permanent",
                        self.version
                    )));
                }
                (None, _) => {
                    if let Some(lost) = old.rights.iter().find(|r| !new.rights.contains(r)) {
                        return Err(TrustError::Invalid(format!(
                            "roster {} takes the right {lost} from {who}; revoke it and enrol a new key instead",
                            self.version
                        )));
                    }
                    if let Some(lost) = old.legacy_actors.iter().find(|a| !new.legacy_actors.contains(a)) {
                        return Err(TrustError::Invalid(format!(
                            "roster {} unbinds legacy actor {} from {who}",
                            self.version,
                            hex::encode(lost)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// What this roster changes from `older`, in words, for the audit log.
    pub fn changes_from(&self, older: Option<&Roster>) -> Vec<String> {
        let mut out = Vec::new();
        if older.map_or(self.reads != ReadPolicy::default(), |o| o.reads != self.reads) {
            out.push(format!("who receives what: {}", self.reads.describe()));
        }
        for member in &self.members {
            let who = format!("{} ({} of {})", member.name, member.role.as_str(), member.authority);
            match older.and_then(|o| o.member(&member.key)) {
                None => out.push(format!("enrolled {who}")),
                Some(old) => {
                    if old.revoked.is_none() && member.revoked.is_some() {
                        out.push(format!("revoked {who}"));
                    }
                    for right in member.rights.iter().filter(|r| !old.rights.contains(r)) {
                        out.push(format!("granted {right} to {}", member.name));
                    }
                    if member.legacy_actors.len() > old.legacy_actors.len() {
                        out.push(format!("bound old actors to {}", member.name));
                    }
                }
            }
        }
        out
    }

    /// The next version with `member` enrolled, or its entry grown.
    pub fn enroll(&self, member: Member) -> Result<Roster, TrustError> {
        let mut next = self.clone();
        next.version += 1;
        match next.members.binary_search_by(|m| m.key.cmp(&member.key)) {
            Ok(at) => {
                let old = &mut next.members[at];
                if old.revoked.is_some() {
                    return Err(TrustError::Invalid(format!(
                        "{} was revoked; a revoked key cannot be enrolled again",
                        member.key.peer_id()
                    )));
                }
                let mut rights = old.rights.clone();
                rights.extend(member.rights);
                rights.sort();
                rights.dedup();
                let mut legacy = old.legacy_actors.clone();
                legacy.extend(member.legacy_actors);
                legacy.sort();
                legacy.dedup();
                let legacy_until_ms = old.legacy_until_ms.max(member.legacy_until_ms);
                *old = Member { rights, legacy_actors: legacy, legacy_until_ms, ..member };
            }
            Err(at) => {
                let mut member = member;
                member.rights.sort();
                member.rights.dedup();
                member.legacy_actors.sort();
                member.legacy_actors.dedup();
                next.members.insert(at, member);
            }
        }
        next.validate()?;
        next.may_replace(self)?;
        Ok(next)
    }

    /// The next version with `key` revoked, keeping the changes inside
    /// `cut`.
    pub fn revoke(&self, key: &PublicKey, mut cut: Vec<CutEntry>) -> Result<Roster, TrustError> {
        let mut next = self.clone();
        next.version += 1;
        let version = next.version;
        let member =
            next.members.iter_mut().find(|m| m.key == *key).ok_or_else(|| TrustError::NotMember(key.peer_id()))?;
        if member.revoked.is_some() {
            return Err(TrustError::Invalid(format!("{} is already revoked", member.name)));
        }
        cut.sort();
        cut.dedup();
        member.revoked = Some(Revocation { in_version: version, cut });
        next.validate()?;
        Ok(next)
    }
}

/// A verified roster with the lookups admission needs: by key, by name and
/// by actor prefix.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub signed: SignedRoster,
    pub roster: Roster,
    by_prefix: BTreeMap<[u8; 16], usize>,
    by_name: BTreeMap<String, usize>,
}

impl Fleet {
    /// Decodes and verifies a roster against the fleet's `anchor` key.
    pub fn verify(bytes: &[u8], anchor: &PublicKey) -> Result<Self, TrustError> {
        let signed = SignedRoster::decode(bytes)?;
        let roster = signed.verify(anchor)?;
        let mut by_prefix = BTreeMap::new();
        let mut by_name = BTreeMap::new();
        for (i, member) in roster.members.iter().enumerate() {
            by_name.insert(member.name.clone(), i);
            for prefix in std::iter::once(member.key.actor_prefix()).chain(member.legacy_actors.iter().copied()) {
                if by_prefix.insert(prefix, i).is_some() {
                    return Err(TrustError::Invalid(format!(
                        "actor prefix {} is bound to two members",
                        hex::encode(prefix)
                    )));
                }
            }
        }
        Ok(Self { signed, roster, by_prefix, by_name })
    }

    pub fn version(&self) -> u64 {
        self.roster.version
    }

    /// Whether this roster may replace `older`: its content may
    /// ([`Roster::may_replace`]), and its admin key chain extends the older
    /// one's, so that a key handed over never signs a roster again.
    pub fn may_replace(&self, older: &Fleet) -> Result<(), TrustError> {
        self.roster.may_replace(&older.roster)?;
        if !self.signed.handovers.starts_with(&older.signed.handovers) {
            return Err(TrustError::Invalid(format!(
                "roster {} is not signed down the admin key chain of roster {}: it was signed by a retired admin key",
                self.version(),
                older.version()
            )));
        }
        Ok(())
    }

    pub fn encoded(&self) -> Vec<u8> {
        self.signed.encode().unwrap_or_default()
    }

    pub fn member(&self, key: &PublicKey) -> Option<&Member> {
        self.roster.member(key)
    }

    /// The member an Automerge actor belongs to: actors are 16 bytes bound
    /// to a member, then a 4-byte nonce.
    pub fn member_of_actor(&self, actor: &[u8]) -> Option<&Member> {
        let prefix: [u8; 16] = actor.get(..16)?.try_into().ok()?;
        if actor.len() != 20 {
            return None;
        }
        self.by_prefix.get(&prefix).map(|i| &self.roster.members[*i])
    }

    /// The member an actor prefix is bound to.
    pub fn member_with_prefix(&self, prefix: &[u8; 16]) -> Option<&Member> {
        self.by_prefix.get(prefix).map(|i| &self.roster.members[*i])
    }

    pub fn member_named(&self, name: &str) -> Option<&Member> {
        self.by_name.get(name).map(|i| &self.roster.members[*i])
    }

    /// Enrolled and not revoked.
    pub fn is_active(&self, key: &PublicKey) -> bool {
        self.member(key).is_some_and(Member::is_active)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn member(seed: u8, name: &str, role: Role, authority: &str) -> (Signer, Member) {
        let signer = Signer::from_secret([seed; 32]);
        let member = Member::new(signer.public(), name, role, authority, Member::default_country(authority));
        (signer, member)
    }

    fn admin() -> Signer {
        Signer::from_secret([200; 32])
    }

    #[test]
    fn a_signed_roster_verifies_against_its_anchor_only() {
        let (_, centre) = member(1, "kz-centre", Role::Centre, "KAZ-BS");
        let roster = Roster::default().enroll(centre).unwrap();
        let signed = SignedRoster::sign(&roster, &admin(), Vec::new()).unwrap();
        let bytes = signed.encode().unwrap();
        let fleet = Fleet::verify(&bytes, &admin().public()).unwrap();
        assert_eq!(fleet.version(), 1);
        assert_eq!(fleet.roster.members[0].country.as_deref(), Some("KAZ"));
        let stranger = Signer::from_secret([201; 32]).public();
        assert!(matches!(Fleet::verify(&bytes, &stranger), Err(TrustError::BadSignature(_))));
        let mut tampered = signed.clone();
        tampered.body[2] ^= 1;
        assert!(Fleet::verify(&tampered.encode().unwrap(), &admin().public()).is_err());
    }

    #[test]
    fn a_roster_signed_before_the_read_policy_reads_with_the_default_policy() {
        #[derive(Serialize)]
        struct Old<'a> {
            version: u64,
            members: &'a [Member],
        }
        let (_, centre) = member(1, "kz-centre", Role::Centre, "KAZ-BS");
        let roster = Roster::default().enroll(centre).unwrap();
        let body = postcard::to_allocvec(&Old { version: roster.version, members: &roster.members }).unwrap();
        let signature = admin().sign(&[ROSTER_DOMAIN, &body].concat());
        let signed = SignedRoster { body, handovers: Vec::new(), signature };
        let read = signed.verify(&admin().public()).unwrap();
        assert_eq!(read, Roster { reads: ReadPolicy::default(), ..roster });
        let mut stray = signed.clone();
        stray.body.push(0);
        stray.signature = admin().sign(&[ROSTER_DOMAIN, &stray.body].concat());
        assert!(stray.verify(&admin().public()).is_err());
    }

    #[test]
    fn a_right_reads_back_from_what_it_shows_and_a_roster_with_a_malformed_one_is_refused() {
        // Fuzzing finding F5: the member's own authority and country were
        // taken as given, so a right could show what does not parse.
        assert!(Right::parse("watchlist", "kaz bs", None).is_err());
        assert!(Right::parse("incident-notes", "KAZ-BS", Some("Atlantis")).is_err());
        let right = Right::parse("incident-notes", "KAZ-BS", Some("kaz")).unwrap();
        assert_eq!(Right::parse(&right.to_string(), "KAZ-BS", None).unwrap(), right);
        // A roster signed by another tool is checked right by right.
        let (_, mut centre) = member(1, "kz-centre", Role::Centre, "KAZ-BS");
        centre.rights = vec![Right::Watchlist { authority: "kaz bs".into() }];
        let roster = Roster { version: 1, members: vec![centre], ..Roster::default() };
        let err = roster.validate().unwrap_err().to_string();
        assert!(err.contains("kz-centre") && err.contains("authority"), "{err}");
        let (_, mut post) = member(2, "kz-post", Role::Post, "KAZ-BS");
        post.rights = vec![Right::IncidentNotes { country: Some("kaz".into()) }];
        let roster = Roster { version: 1, members: vec![post], ..Roster::default() };
        assert!(roster.validate().is_err());
    }

    #[test]
    fn a_successor_admin_key_signs_later_rosters() {
        let (_, post) = member(2, "kz-nurzhol", Role::Post, "KAZ-BS");
        let next = Signer::from_secret([202; 32]);
        let roster = Roster::default().enroll(post).unwrap();
        let handovers = vec![Handover::new(&admin(), next.public())];
        let signed = SignedRoster::sign(&roster, &next, handovers.clone()).unwrap();
        assert!(Fleet::verify(&signed.encode().unwrap(), &admin().public()).is_ok());
        // A handover not signed by the anchor does not count.
        let forged = vec![Handover::new(&next, next.public())];
        let signed = SignedRoster::sign(&roster, &next, forged).unwrap();
        assert!(Fleet::verify(&signed.encode().unwrap(), &admin().public()).is_err());
    }

    #[test]
    fn once_the_admin_key_is_handed_over_the_retired_key_signs_nothing_newer() {
        let (_, post) = member(2, "kz-nurzhol", Role::Post, "KAZ-BS");
        let (_, other) = member(3, "kz-east", Role::Post, "KAZ-BS");
        let anchor = admin().public();
        let next = Signer::from_secret([202; 32]);
        let v1 = Roster::default().enroll(post).unwrap();
        let handovers = vec![Handover::new(&admin(), next.public())];
        let rotated = SignedRoster::sign(&v1, &next, handovers.clone()).unwrap();
        let rotated = Fleet::verify(&rotated.encode().unwrap(), &anchor).unwrap();
        // The retired key, stolen, signs a newer roster with no handover.
        let v2 = v1.enroll(other).unwrap();
        let by_thief = SignedRoster::sign(&v2, &admin(), Vec::new()).unwrap();
        let by_thief = Fleet::verify(&by_thief.encode().unwrap(), &anchor).unwrap();
        let err = by_thief.may_replace(&rotated).unwrap_err();
        assert!(err.to_string().contains("retired admin key"), "{err}");
        // The successor's next roster carries the chain and replaces it.
        let by_successor = SignedRoster::sign(&v2, &next, handovers).unwrap();
        let by_successor = Fleet::verify(&by_successor.encode().unwrap(), &anchor).unwrap();
        assert!(by_successor.may_replace(&rotated).is_ok());
        // A node set up after the rotation, configured with the new key,
        // takes the successor's rosters and nothing the retired key signs.
        let rotated = SignedRoster::sign(&v1, &next, vec![Handover::new(&admin(), next.public())]).unwrap();
        assert!(Fleet::verify(&rotated.encode().unwrap(), &next.public()).is_ok());
        let by_thief = SignedRoster::sign(&v2, &admin(), Vec::new()).unwrap();
        assert!(Fleet::verify(&by_thief.encode().unwrap(), &next.public()).is_err());
        // A thief holding the retired key appends a handover that names it
        // again: the chain is checked from its start, and the forged link
        // fails.
        let mut forged_chain = vec![Handover::new(&admin(), next.public())];
        forged_chain.push(Handover { next: admin().public(), signature: crate::trust::Signature::from_bytes([0; 64]) });
        let by_thief = SignedRoster::sign(&v2, &admin(), forged_chain).unwrap();
        assert!(Fleet::verify(&by_thief.encode().unwrap(), &anchor).is_err());
        assert!(Fleet::verify(&by_thief.encode().unwrap(), &next.public()).is_err());
        // A chain longer than the bound is refused before any check.
        let long: Vec<Handover> = (0..=MAX_HANDOVERS).map(|_| Handover::new(&admin(), admin().public())).collect();
        let signed = SignedRoster::sign(&v1, &admin(), long).unwrap();
        assert!(signed.signing_key(&anchor).unwrap_err().to_string().contains("handovers"));
    }

    #[test]
    fn entries_only_grow_and_revocations_are_permanent() {
        let (_, post) = member(2, "kz-nurzhol", Role::Post, "KAZ-BS");
        let key = post.key;
        let v1 = Roster::default().enroll(post.clone()).unwrap();
        let mut granted = post.clone();
        granted.rights = vec![Right::Watchlist { authority: "KAZ-BS".into() }];
        let v2 = v1.enroll(granted).unwrap();
        assert_eq!(v2.member(&key).unwrap().rights.len(), 2, "grants add to the rights");
        let mut stripped = v2.clone();
        stripped.version = 3;
        stripped.members[0].rights.pop();
        assert!(stripped.may_replace(&v2).unwrap_err().to_string().contains("takes the right"));
        let mut renamed = v2.clone();
        renamed.version = 3;
        renamed.members[0].name = "kz-other".into();
        assert!(renamed.may_replace(&v2).is_err());
        let v3 = v2.revoke(&key, Vec::new()).unwrap();
        assert!(!v3.member(&key).unwrap().is_active());
        assert!(v3.enroll(post).unwrap_err().to_string().contains("revoked"));
        let mut unrevoked = v3.clone();
        unrevoked.version = 4;
        unrevoked.members[0].revoked = None;
        assert!(unrevoked.may_replace(&v3).unwrap_err().to_string().contains("permanent"));
        assert!(matches!(v1.may_replace(&v3), Err(TrustError::NotNewer { .. })));
    }

    #[test]
    fn actors_map_to_their_members_and_names_are_unique() {
        let (signer, centre) = member(1, "kz-centre", Role::Centre, "KAZ-BS");
        let (_, twin) = member(3, "kz-centre", Role::Post, "KAZ-BS");
        let roster = Roster::default().enroll(centre).unwrap();
        assert!(roster.enroll(twin).unwrap_err().to_string().contains("two members"));
        let fleet =
            Fleet::verify(&SignedRoster::sign(&roster, &admin(), vec![]).unwrap().encode().unwrap(), &admin().public())
                .unwrap();
        let mut actor = signer.public().actor_prefix().to_vec();
        actor.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(fleet.member_of_actor(&actor).map(|m| m.name.as_str()), Some("kz-centre"));
        assert!(fleet.member_of_actor(&actor[..16]).is_none(), "an actor is 20 bytes");
        assert!(fleet.member_of_actor(&[9u8; 20]).is_none());
    }

    #[test]
    fn rights_parse_with_the_members_own_authority_and_country() {
        assert_eq!(
            Right::parse("watchlist", "KAZ-BS", Some("KAZ")).unwrap(),
            Right::Watchlist { authority: "KAZ-BS".into() }
        );
        assert_eq!(Right::parse("incident-notes:*", "CARICC", None).unwrap(), Right::IncidentNotes { country: None });
        assert_eq!(
            Right::parse("incident-notes:kgz", "KAZ-BS", Some("KAZ")).unwrap(),
            Right::IncidentNotes { country: Some("KGZ".into()) }
        );
        assert!(Right::parse("everything", "KAZ-BS", None).is_err());
        assert_eq!(Member::default_country("CARICC"), None);
        assert_eq!(Member::default_country("UZB-DCS").as_deref(), Some("UZB"));
    }
}
