//! Need-to-know: which members may receive which documents.
//!
//! The roster states, per document kind, who may receive it. A node sends
//! a document (or any byte about it: its digest entry, an `Open`, a sync
//! message, a bundle) only to a peer this policy lets receive it, and takes
//! a document only if it may hold it itself. A relay that may not hold a
//! document therefore never receives it and cannot forward it.

use serde::{Deserialize, Serialize};

use super::PublicKey;
use super::roster::{Fleet, Member, Role};
use crate::ids::DocId;
use crate::schema::DocKind;

/// Who receives the documents of one kind, besides the member that owns
/// them (an authority its watchlists, a post its incident log), which
/// always does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Audience {
    /// Every active member.
    Fleet,
    /// The members of the owner's country, and the regional centres
    /// (centres with no country, such as CARICC).
    Country,
    /// The centres of the owner's country only.
    NationalCentres,
}

impl Audience {
    pub fn parse(text: &str) -> Result<Self, super::TrustError> {
        match text.trim() {
            "fleet" => Ok(Audience::Fleet),
            "country" => Ok(Audience::Country),
            "national-centres" => Ok(Audience::NationalCentres),
            other => Err(super::TrustError::Invalid(format!(
                "audience {other:?}: expected fleet, country or national-centres"
            ))),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Audience::Fleet => "fleet",
            Audience::Country => "country",
            Audience::NationalCentres => "national-centres",
        }
    }
}

/// The audience of each document kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadPolicy {
    pub watchlists: Audience,
    pub incidents: Audience,
    pub audit: Audience,
}

impl Default for ReadPolicy {
    /// Watchlists to the whole fleet; a country's incident logs to that
    /// country and the regional centres; a post's audit log to its
    /// national centres only.
    fn default() -> Self {
        ReadPolicy { watchlists: Audience::Fleet, incidents: Audience::Country, audit: Audience::NationalCentres }
    }
}

impl ReadPolicy {
    pub fn of(&self, kind: &DocKind) -> Audience {
        match kind {
            DocKind::Watchlist { .. } => self.watchlists,
            DocKind::Incidents { .. } => self.incidents,
            DocKind::Audit { .. } => self.audit,
        }
    }

    /// `watchlists=fleet incidents=country audit=national-centres`.
    pub fn describe(&self) -> String {
        format!(
            "watchlists={} incidents={} audit={}",
            self.watchlists.as_str(),
            self.incidents.as_str(),
            self.audit.as_str()
        )
    }
}

/// The country a document's owner belongs to, and whether `member` is
/// that owner. `None`: the owner is not on the roster, and only the fleet
/// audience reaches its documents.
fn owner_of<'a>(fleet: &'a Fleet, member: &Member, kind: &DocKind) -> Option<(Option<&'a str>, bool)> {
    match kind {
        DocKind::Watchlist { authority, .. } => {
            let country =
                fleet.roster.members.iter().find(|m| m.authority == *authority).map(|m| m.country.as_deref())?;
            Some((country, member.authority == *authority))
        }
        DocKind::Incidents { post, .. } | DocKind::Audit { post, .. } => {
            let owner = fleet.member_named(post)?;
            Some((owner.country.as_deref(), owner.key == member.key))
        }
    }
}

impl Fleet {
    /// Whether the member with `key` may receive (and so hold) `doc`:
    /// active, and in the audience the roster gives its kind. A document
    /// id that names no kind goes to nobody.
    pub fn may_receive(&self, key: &PublicKey, doc: &DocId) -> bool {
        let Some(member) = self.member(key).filter(|m| m.is_active()) else { return false };
        let Ok(kind) = DocKind::parse(doc) else { return false };
        let audience = self.roster.reads.of(&kind);
        if audience == Audience::Fleet {
            return true;
        }
        let Some((country, owns)) = owner_of(self, member, &kind) else { return false };
        if owns {
            return true;
        }
        let same_country = country.is_some() && member.country.as_deref() == country;
        match audience {
            Audience::Fleet => true,
            Audience::Country => same_country || (member.role == Role::Centre && member.country.is_none()),
            Audience::NationalCentres => same_country && member.role == Role::Centre,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::trust::roster::tests::member;
    use crate::trust::{Roster, SignedRoster, Signer};

    fn fleet(roster: &Roster) -> Fleet {
        let admin = Signer::from_secret([200; 32]);
        Fleet::verify(&SignedRoster::sign(roster, &admin, vec![]).unwrap().encode().unwrap(), &admin.public()).unwrap()
    }

    #[test]
    fn the_default_policy_keeps_incidents_in_country_and_audit_with_the_national_centre() {
        let (_, kgz_post) = member(1, "kg-torugart", Role::Post, "KGZ-BS");
        let (_, kgz_centre) = member(2, "kg-centre", Role::Centre, "KGZ-BS");
        let (_, kaz_post) = member(3, "kz-nurzhol", Role::Post, "KAZ-BS");
        let (_, kaz_centre) = member(4, "kz-centre", Role::Centre, "KAZ-BS");
        let (_, caricc) = member(5, "caricc", Role::Centre, "CARICC");
        let (_, observer) = member(6, "unodc-hq", Role::Observer, "UNODC");
        let mut roster = Roster::default();
        for m in [&kgz_post, &kgz_centre, &kaz_post, &kaz_centre, &caricc, &observer] {
            roster = roster.enroll(m.clone()).unwrap();
        }
        let fleet = fleet(&roster);
        let doc = |s: &str| DocId::parse(s).unwrap();
        let incidents = doc("incidents/kg-torugart/2026-11");
        let audit = doc("audit/kg-torugart/2026-11");
        let watchlist = doc("watchlist/KGZ-BS/03");
        let who = |doc: &DocId| -> Vec<&str> {
            roster.members.iter().filter(|m| fleet.may_receive(&m.key, doc)).map(|m| m.name.as_str()).collect()
        };
        let mut everyone: Vec<&str> = roster.members.iter().map(|m| m.name.as_str()).collect();
        everyone.sort();
        let mut on_watchlist = who(&watchlist);
        on_watchlist.sort();
        assert_eq!(on_watchlist, everyone);
        let mut on_incidents = who(&incidents);
        on_incidents.sort();
        assert_eq!(on_incidents, ["caricc", "kg-centre", "kg-torugart"]);
        let mut on_audit = who(&audit);
        on_audit.sort();
        assert_eq!(on_audit, ["kg-centre", "kg-torugart"]);
        // A post the roster does not know has no audience but the fleet's.
        assert!(!fleet.may_receive(&caricc.key, &doc("incidents/ghost-post/2026-11")));
        // A revoked member receives nothing.
        let revoked = fleet_with(roster.revoke(&kgz_centre.key, Vec::new()).unwrap());
        assert!(!revoked.may_receive(&kgz_centre.key, &watchlist));
        assert!(revoked.may_receive(&kgz_post.key, &incidents));
    }

    fn fleet_with(roster: Roster) -> Fleet {
        fleet(&roster)
    }

    #[test]
    fn a_wider_policy_is_the_roster_s_to_give() {
        let (_, kgz_post) = member(1, "kg-torugart", Role::Post, "KGZ-BS");
        let (_, kaz_post) = member(3, "kz-nurzhol", Role::Post, "KAZ-BS");
        let mut roster = Roster::default().enroll(kgz_post).unwrap().enroll(kaz_post.clone()).unwrap();
        let incidents = DocId::parse("incidents/kg-torugart/2026-11").unwrap();
        assert!(!fleet(&roster).may_receive(&kaz_post.key, &incidents));
        roster.reads.incidents = Audience::Fleet;
        assert!(fleet(&roster).may_receive(&kaz_post.key, &incidents));
        assert_eq!(roster.reads.describe(), "watchlists=fleet incidents=fleet audit=national-centres");
    }
}
