//! Revocation, per document: the cut a revocation records (what the
//! revoking node holds of the member), and the attestations by which a node
//! that learns of a revocation vouches for the revoked member's changes it
//! admitted before it knew, so that honest nodes do not diverge over a
//! change that slipped in through a post with the older roster.

use automerge::ChangeHash;

use super::Signer;
use super::proof::{StoredProof, attest};
use super::roster::{CutEntry, Member};
use crate::schema::Document;

/// The cut a revocation of `member` records in `doc`: the newest change of
/// each actor it writes with here.
pub fn cut_in(doc: &mut Document, member: &Member) -> Vec<CutEntry> {
    let id = doc.id().clone();
    doc.actor_tips()
        .into_iter()
        .filter(|(actor, _, _)| member.writes_with(actor.to_bytes()))
        .map(|(actor, seq, hash)| CutEntry { doc: id.clone(), actor: actor.to_bytes().to_vec(), seq, hash: hash.0 })
        .collect()
}

/// For each actor of `member` in `doc` whose newest change lies beyond the
/// revocation's cut, an attestation by `signer` of that change (which
/// covers the actor's earlier ones through the hash chain). Nothing for a
/// member that is not revoked.
pub fn attestations(doc: &mut Document, member: &Member, signer: &Signer) -> Vec<(ChangeHash, StoredProof)> {
    let Some(revocation) = &member.revoked else { return Vec::new() };
    let id = doc.id().clone();
    let mut out = Vec::new();
    for (actor, seq, hash) in doc.actor_tips() {
        let bytes = actor.to_bytes();
        if !member.writes_with(bytes) {
            continue;
        }
        let cut = revocation.cut.iter().find(|e| e.doc == id && e.actor.as_slice() == bytes);
        let inside = cut.is_some_and(|e| seq <= e.seq);
        if !inside {
            out.push((hash, attest(signer, &id, &hash)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DocKind;
    use crate::trust::roster::{CutEntry, Revocation, Role};

    #[test]
    fn only_changes_beyond_the_cut_are_attested() {
        let author = Signer::from_secret([1; 32]);
        let mut doc = Document::genesis(DocKind::Watchlist { authority: "KAZ-BS".into(), shard: 0 }).unwrap();
        let mut actor = author.public().actor_prefix().to_vec();
        actor.extend_from_slice(&[0, 0, 0, 1]);
        doc.set_actor(automerge::ActorId::from(actor.clone()));
        let at = crate::date::Timestamp::from_millis(1_795_000_000_000);
        crate::test_support::add_person(&mut doc, 1, "Мухаммад Алиев", at);
        let tip = doc.actor_tips().into_iter().find(|t| t.0.to_bytes() == actor).unwrap();
        let mut member = Member::new(author.public(), "kz-centre", Role::Centre, "KAZ-BS", Some("KAZ".into()));
        let attester = Signer::from_secret([2; 32]);
        assert!(attestations(&mut doc, &member, &attester).is_empty(), "not revoked: nothing to attest");
        let cut = vec![CutEntry { doc: doc.id().clone(), actor: actor.clone(), seq: tip.1, hash: tip.2.0 }];
        member.revoked = Some(Revocation { in_version: 2, cut });
        assert!(attestations(&mut doc, &member, &attester).is_empty(), "inside the cut");
        crate::test_support::add_person(&mut doc, 2, "Ерлан Сейткали", at);
        let found = attestations(&mut doc, &member, &attester);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1.attester, Some(attester.public().actor_prefix()));
    }
}
