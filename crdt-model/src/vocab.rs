//! Closed vocabularies of the domain: every enum an officer types on the
//! command line or a peer writes into a document.
//!
//! Each term has exactly one spelling on the wire, in documents and on the
//! command line (kebab-case). Parsing also accepts `snake_case` and any case,
//! because officers type in a hurry; an unknown term is an error that lists
//! the known ones.

use crate::error::ValidationError;

/// Declares a closed vocabulary with one canonical kebab-case spelling per term.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident as $field:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every term, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a term, accepting any case and `_` for `-`.
            pub fn parse(input: &str) -> Result<Self, ValidationError> {
                let wanted = input.trim().to_lowercase().replace('_', "-");
                $( if wanted == $text { return Ok($name::$variant); } )+
                Err(ValidationError::UnknownTerm {
                    field: $field,
                    value: input.to_string(),
                    allowed: Self::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> { Self::parse(s) }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

vocabulary! {
    /// What a watchlist entry is about.
    SubjectKind as "subject kind" {
        Person => "person",
        Vehicle => "vehicle",
        Document => "document",
        Cargo => "cargo",
    }
}

vocabulary! {
    /// Why an entry exists; decides how urgent a hit is.
    Category as "category" {
        WantedForArrest => "wanted-for-arrest",
        LocateAndInform => "locate-and-inform",
        Warning => "warning",
        MissingPerson => "missing-person",
        RefusalOfEntry => "refusal-of-entry",
        DiscreetCheck => "discreet-check",
        SpecificCheck => "specific-check",
        SeizeObject => "seize-object",
        Sanctions => "sanctions",
    }
}

vocabulary! {
    /// Officer-safety warnings, shown first on a hit.
    Warning as "warning" {
        Armed => "armed",
        Violent => "violent",
        Escaped => "escaped",
        SuicideRisk => "suicide-risk",
        PublicHealthRisk => "public-health-risk",
    }
}

vocabulary! {
    /// Lifecycle of an entry: active ⇄ suspended → closed.
    EntryStatus as "status" {
        Active => "active",
        Suspended => "suspended",
        Closed => "closed",
    }
}

impl EntryStatus {
    /// How restrictive a status is. When two posts set the status
    /// concurrently the more restrictive one takes effect, so a concurrent
    /// reactivation can never silently undo a closure.
    pub fn restrictiveness(self) -> u8 {
        match self {
            EntryStatus::Active => 0,
            EntryStatus::Suspended => 1,
            EntryStatus::Closed => 2,
        }
    }

    /// Whether an officer may move an entry from `self` to `next`.
    pub fn may_become(self, next: EntryStatus) -> bool {
        matches!(
            (self, next),
            (EntryStatus::Active, EntryStatus::Suspended)
                | (EntryStatus::Suspended, EntryStatus::Active)
                | (EntryStatus::Active | EntryStatus::Suspended, EntryStatus::Closed)
        )
    }
}

vocabulary! {
    /// The role a name variant plays for its person.
    NameKind as "name kind" {
        Primary => "primary",
        Birth => "birth",
        Alias => "alias",
        Previous => "previous",
        WeakAlias => "weak-alias",
    }
}

vocabulary! {
    /// The writing system a name was recorded in.
    Script as "script" {
        Cyrillic => "cyrillic",
        Latin => "latin",
        Mixed => "mixed",
        Other => "other",
    }
}

vocabulary! {
    /// Identity and travel document types.
    DocumentType as "document type" {
        Passport => "passport",
        IdCard => "id-card",
        Visa => "visa",
        ResidencePermit => "residence-permit",
        DrivingLicence => "driving-licence",
        SeamansBook => "seamans-book",
        TravelDocument => "travel-document",
        Other => "other",
    }
}

vocabulary! {
    /// Why a travel document is on the watchlist.
    DocumentStatus as "document status" {
        Stolen => "stolen",
        Lost => "lost",
        Revoked => "revoked",
        Forged => "forged",
        Invalidated => "invalidated",
    }
}

vocabulary! {
    /// Which part of a vehicle entry is wanted.
    VehicleWanted as "vehicle wanted" {
        Vehicle => "vehicle",
        Plate => "plate",
        Vin => "vin",
    }
}

vocabulary! {
    /// Gender as recorded on an identity document.
    Gender as "gender" {
        Female => "female",
        Male => "male",
        Unknown => "unknown",
    }
}

vocabulary! {
    /// What happened at the post.
    IncidentType as "incident type" {
        Seizure => "seizure",
        Detention => "detention",
        Arrest => "arrest",
        RefusalOfEntry => "refusal-of-entry",
        SmugglingAttempt => "smuggling-attempt",
        DocumentFraud => "document-fraud",
        WatchlistHit => "watchlist-hit",
        Other => "other",
    }
}

vocabulary! {
    /// Units for seized quantities (UNODC reports in kg, litres or units).
    Unit as "unit" {
        Gram => "g",
        Kilogram => "kg",
        Millilitre => "ml",
        Litre => "l",
        Tablets => "tablets",
        Units => "units",
    }
}

vocabulary! {
    /// Follow-up state of an incident.
    FollowUp as "follow-up status" {
        Open => "open",
        Referred => "referred",
        Closed => "closed",
    }
}

impl FollowUp {
    /// Concurrent follow-up states resolve to the most advanced one.
    pub fn progress(self) -> u8 {
        match self {
            FollowUp::Open => 0,
            FollowUp::Referred => 1,
            FollowUp::Closed => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_term_round_trips_through_its_spelling() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()).ok(), Some(*c));
            let json = serde_json::to_string(c).unwrap_or_default();
            assert_eq!(serde_json::from_str::<Category>(&json).ok(), Some(*c));
        }
        for u in Unit::ALL {
            assert_eq!(Unit::parse(u.as_str()).ok(), Some(*u));
        }
    }

    #[test]
    fn parsing_accepts_snake_case_and_any_case() {
        assert_eq!(Category::parse("WANTED_FOR_ARREST").ok(), Some(Category::WantedForArrest));
        assert_eq!(Unit::parse(" KG ").ok(), Some(Unit::Kilogram));
    }

    #[test]
    fn unknown_term_names_the_field_and_the_choices() {
        let err = Category::parse("terrorist").unwrap_err().to_string();
        assert!(err.contains("unknown category \"terrorist\""), "{err}");
        assert!(err.contains("wanted-for-arrest"), "{err}");
    }

    #[test]
    fn closed_is_terminal() {
        assert!(EntryStatus::Active.may_become(EntryStatus::Closed));
        assert!(!EntryStatus::Closed.may_become(EntryStatus::Active));
        assert!(!EntryStatus::Active.may_become(EntryStatus::Active));
    }
}
