//! Target `roster`: the fleet roster, as it travels and as it is built.
//!
//! First byte, mod 4:
//! 0. the rest is a signed roster as a peer sends it: what decodes
//!    re-encodes and decodes to itself; what verifies against the admin key
//!    keeps the roster rules and its lookups agree with it;
//! 1. the rest is a roster's content, signed here with the admin key: what
//!    verifies (current or pre-read-policy encoding) validates, and signed
//!    again from the decoded roster verifies to the same roster;
//! 2. a roster built from the input (members with any keys, names, roles,
//!    authorities, countries, rights, legacy actors, revocations; a read
//!    policy; a chain of admin key handovers, perhaps broken; signed by
//!    the right key or not): it verifies exactly when its content is valid,
//!    its prefixes distinct and its chain whole, and comes back equal;
//!    then an enrolment or a revocation, which must give a valid newer
//!    roster that may replace it;
//! 3. the rest is text for the roster's text parsers (roles, rights,
//!    audiences, keys, peer ids): what parses prints back to itself.

use std::collections::BTreeSet;

use outpost_model::replication::pair::node_signer;
use outpost_model::trust::readers::{Audience, ReadPolicy};
use outpost_model::trust::roster::{CutEntry, Handover, MAX_ROSTER_BYTES, Member, Revocation, Right, Role, Roster};
use outpost_model::trust::{Fleet, PublicKey, SignedRoster, Signer, TrustError};

use crate::input::Input;

/// The world's admin key (`pair::TestFleet`).
fn admin() -> Signer {
    Signer::from_secret([250; 32])
}

/// The domain a roster's signature covers (`trust/roster.rs`); checked
/// against `SignedRoster::sign` before use.
const ROSTER_DOMAIN: &[u8] = b"outpost/roster/1\0";

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 4 {
        0 => signed(input.rest()),
        1 => content(input.rest()),
        2 => built(&mut input),
        _ => texts(input.rest()),
    }
}

fn named(err: &TrustError) {
    assert!(!err.to_string().trim().is_empty(), "an error that names nothing");
}

/// A signed roster as a peer sends it.
pub fn signed(bytes: &[u8]) {
    match SignedRoster::decode(bytes) {
        Ok(signed) => {
            let again = signed.encode().expect("a decoded roster encodes");
            assert_eq!(SignedRoster::decode(&again).as_ref(), Ok(&signed), "a decoded roster does not come back");
        }
        Err(err) => named(&err),
    }
    match Fleet::verify(bytes, &admin().public()) {
        Ok(fleet) => check_fleet(&fleet),
        Err(err) => named(&err),
    }
}

/// A roster's content, signed here.
pub fn content(body: &[u8]) {
    let signature = admin().sign(&[ROSTER_DOMAIN, body].concat());
    let signed = SignedRoster { body: body.to_vec(), handovers: Vec::new(), signature };
    let Ok(bytes) = signed.encode() else { return };
    match Fleet::verify(&bytes, &admin().public()) {
        Ok(fleet) => {
            check_fleet(&fleet);
            let again = SignedRoster::sign(&fleet.roster, &admin(), Vec::new()).expect("a verified roster signs");
            let back = Fleet::verify(&again.encode().expect("encodes"), &admin().public())
                .expect("a verified roster, signed again, verifies");
            assert_eq!(back.roster, fleet.roster, "a verified roster, signed again, reads differently");
        }
        Err(err) => named(&err),
    }
}

/// What every verified roster keeps.
fn check_fleet(fleet: &Fleet) {
    let roster = &fleet.roster;
    if let Err(err) = roster.validate() {
        panic!("a roster verified that does not validate: {err}");
    }
    assert!(roster.members.len() <= outpost_model::trust::roster::MAX_MEMBERS);
    for member in &roster.members {
        assert_eq!(fleet.member(&member.key), Some(member), "lookup by key");
        assert_eq!(fleet.member_named(&member.name), Some(member), "lookup by name");
        let prefix = member.key.actor_prefix();
        assert_eq!(fleet.member_with_prefix(&prefix), Some(member), "lookup by actor prefix");
        let mut actor = prefix.to_vec();
        actor.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(fleet.member_of_actor(&actor), Some(member), "lookup by actor");
        actor.push(5);
        assert_eq!(fleet.member_of_actor(&actor), None, "an actor of 21 bytes belongs to nobody");
        for legacy in &member.legacy_actors {
            assert_eq!(fleet.member_with_prefix(legacy), Some(member), "lookup by legacy prefix");
        }
        assert_eq!(fleet.is_active(&member.key), member.revoked.is_none());
    }
    let encoded = fleet.encoded();
    assert!(encoded.len() <= MAX_ROSTER_BYTES);
    let back = Fleet::verify(&encoded, &admin().public());
    assert_eq!(back.map(|f| f.roster).as_ref(), Ok(roster), "a roster as held does not verify again");
    assert!(matches!(fleet.may_replace(fleet), Err(TrustError::NotNewer { .. })), "a roster replaces itself");
    let enrolled = roster.changes_from(None).iter().filter(|c| c.starts_with("enrolled")).count();
    assert_eq!(enrolled, roster.members.len(), "changes from nothing are not every enrolment");
}

const NAMES: &[&str] = &["node-1", "node-2", "kz-centre", "uz-post", "Bad Name", "", "node-1"];
const AUTHORITIES: &[&str] = &["KAZ-BS", "UZB-DCS", "CARICC", "TJK-DKN", "kaz", "K", ""];
const COUNTRIES: &[&str] = &["KAZ", "UZB", "TJK", "XXX", "kaz"];

fn pick(input: &mut Input<'_>, list: &[&str]) -> String {
    match input.choose(list.len() + 1) {
        i if i < list.len() => list[i].to_string(),
        _ => input.string(),
    }
}

fn role(input: &mut Input<'_>) -> Role {
    [Role::Centre, Role::Post, Role::Observer][input.choose(3)]
}

fn right(input: &mut Input<'_>) -> Right {
    match input.choose(3) {
        0 => Right::Watchlist { authority: pick(input, AUTHORITIES) },
        1 => Right::IncidentLog,
        _ => Right::IncidentNotes { country: input.flag().then(|| pick(input, COUNTRIES)) },
    }
}

fn audience(input: &mut Input<'_>) -> Audience {
    [Audience::Fleet, Audience::Country, Audience::NationalCentres][input.choose(3)]
}

fn key(input: &mut Input<'_>) -> PublicKey {
    match input.choose(8) {
        7 => PublicKey(input.array()),
        n => node_signer(1 + n as u8).public(),
    }
}

fn member(input: &mut Input<'_>, version: u64) -> Member {
    let key = key(input);
    let name = pick(input, NAMES);
    let role = role(input);
    let authority = pick(input, AUTHORITIES);
    let country = if input.flag() { Member::default_country(&authority) } else { Some(pick(input, COUNTRIES)) };
    let mut member = Member::new(key, &name, role, &authority, country);
    if input.flag() {
        member.rights = (0..input.choose(4)).map(|_| right(input)).collect();
        if input.flag() {
            member.rights.sort();
            member.rights.dedup();
        }
    }
    for _ in 0..input.choose(3) {
        member.legacy_actors.push(match input.choose(3) {
            0 => node_signer(1 + input.byte() % 8).public().actor_prefix(),
            _ => input.array(),
        });
    }
    member.legacy_until_ms = i64::from(input.u32());
    if input.choose(4) == 0 {
        let cut = (0..input.choose(3))
            .map(|_| CutEntry {
                doc: outpost_model::ids::DocId::parse("watchlist/KAZ-BS/00").expect("a valid id"),
                actor: input.take(20).to_vec(),
                seq: u64::from(input.byte()),
                hash: input.array(),
            })
            .collect();
        member.revoked = Some(Revocation { in_version: version.saturating_sub(u64::from(input.byte() % 3)), cut });
    }
    member
}

/// A roster built from the input, signed, verified, then grown.
fn built(input: &mut Input<'_>) {
    let version = u64::from(input.byte() % 8);
    let mut members: Vec<Member> = (0..input.choose(6)).map(|_| member(input, version)).collect();
    if input.choose(4) != 0 {
        members.sort_by_key(|m| m.key);
    }
    let reads = ReadPolicy { watchlists: audience(input), incidents: audience(input), audit: audience(input) };
    let roster = Roster { version, members, reads };

    // The admin key chain: admin, then up to two successors.
    let keys = [admin(), Signer::from_secret([251; 32]), Signer::from_secret([252; 32])];
    let links = input.choose(3);
    let broken = input.choose(6);
    let mut handovers = Vec::new();
    for n in 0..links {
        let next = keys[n + 1].public();
        handovers.push(if broken == n { Handover::new(&keys[n + 1], next) } else { Handover::new(&keys[n], next) });
    }
    let wrong_signer = input.choose(8) == 0;
    let signer = if wrong_signer { Signer::from_secret([9; 32]) } else { keys[links].clone() };
    let signed = match SignedRoster::sign(&roster, &signer, handovers) {
        Ok(signed) => signed,
        Err(err) => return named(&err),
    };
    let bytes = signed.encode().expect("a signed roster encodes");
    assert_eq!(SignedRoster::decode(&bytes).as_ref(), Ok(&signed), "a signed roster does not decode to itself");

    let chain_whole = broken >= links && !wrong_signer;
    let mut prefixes = BTreeSet::new();
    let distinct = roster
        .members
        .iter()
        .flat_map(|m| std::iter::once(m.key.actor_prefix()).chain(m.legacy_actors.iter().copied()))
        .all(|p| prefixes.insert(p));
    let valid = roster.validate();
    let expected = chain_whole && distinct && valid.is_ok();
    match Fleet::verify(&bytes, &admin().public()) {
        Ok(fleet) => {
            assert!(
                expected,
                "verified a roster that is invalid ({valid:?}), has shared prefixes ({distinct}) or a broken chain ({chain_whole})"
            );
            assert_eq!(fleet.roster, roster, "a verified roster reads differently from what was signed");
            check_fleet(&fleet);
        }
        Err(err) => {
            named(&err);
            assert!(!expected, "refused a valid roster with a whole chain: {err}");
        }
    }
    if valid.is_err() {
        return;
    }
    // The next version: an enrolment or a revocation.
    if input.flag() {
        let joining = member(input, roster.version + 1);
        match roster.enroll(joining.clone()) {
            Ok(next) => {
                assert_eq!(next.version, roster.version + 1);
                next.validate().expect("an enrolment validates");
                next.may_replace(&roster).expect("an enrolment may replace the roster before");
                let now = next.member(&joining.key).expect("the enrolled member is on the roster");
                if let Some(old) = roster.member(&joining.key) {
                    assert!(old.rights.iter().all(|r| now.rights.contains(r)), "an enrolment took rights away");
                }
            }
            Err(err) => named(&err),
        }
    } else if let Some(target) = roster.members.get(input.choose(roster.members.len().max(1))) {
        match roster.revoke(&target.key, Vec::new()) {
            Ok(next) => {
                assert!(next.member(&target.key).is_some_and(|m| m.revoked.is_some()), "revoked, still active");
                next.validate().expect("a revocation validates");
                next.may_replace(&roster).expect("a revocation may replace the roster before");
                assert!(roster.may_replace(&next).is_err(), "an older roster may replace a newer one");
            }
            Err(err) => named(&err),
        }
    }
}

/// The roster's text parsers.
fn texts(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut parts = text.splitn(3, '\n');
    let (a, b, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if let Ok(role) = Role::parse(a) {
        assert_eq!(Role::parse(role.as_str()), Ok(role));
    }
    if let Ok(audience) = Audience::parse(a) {
        assert_eq!(Audience::parse(audience.as_str()), Ok(audience));
    }
    let country = (!c.is_empty()).then_some(c);
    // Every right parsed reads back from what it shows (finding F5,
    // `README.md`, was a right made from a member's malformed authority).
    match Right::parse(a, b, country) {
        Ok(right) => {
            let shown = right.to_string();
            assert_eq!(Right::parse(&shown, b, country).as_ref(), Ok(&right), "right {shown} does not read back");
        }
        Err(err) => named(&err),
    }
    for line in [a, b, c] {
        if let Ok(key) = PublicKey::parse_hex(line) {
            assert_eq!(PublicKey::parse_hex(&key.to_hex()), Ok(key));
            assert_eq!(PublicKey::from_peer_id(&key.peer_id()), Ok(key), "a key's peer id does not read back");
        }
        if let Ok(key) = PublicKey::from_peer_id(line) {
            assert_eq!(PublicKey::from_peer_id(&key.peer_id()), Ok(key));
        }
    }
}

/// Checks the restated signing domain against the model's own signing.
pub fn domain_holds() -> bool {
    let roster = Roster::default();
    let Ok(signed) = SignedRoster::sign(&roster, &admin(), Vec::new()) else { return false };
    signed.signature == admin().sign(&[ROSTER_DOMAIN, &signed.body].concat())
}
