//! Identifiers. Newtypes so that an entry id can never be passed where a
//! document id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationError;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an id the caller generated (the model has no random source).
            pub fn from_uuid(id: Uuid) -> Self { Self(id) }
            /// A new record's id for the documents of `owner`: `id` (a
            /// fresh UUIDv7) with `owner`'s tag written into it. See
            /// [`owner_tag`].
            pub fn owned_by(owner: &str, id: Uuid) -> Self { Self(stamp(id, owner)) }
            /// Whether this id carries `owner`'s tag.
            pub fn belongs_to(&self, owner: &str) -> bool { tag_of(&self.0) == owner_tag(owner) }
            pub fn as_uuid(&self) -> &Uuid { &self.0 }
            /// Parses the canonical hyphenated form.
            pub fn parse(text: &str) -> Result<Self, ValidationError> {
                Uuid::try_parse(text.trim()).map(Self).map_err(|_| ValidationError::Malformed {
                    field: $what,
                    value: text.to_string(),
                    expected: "a UUID such as 0193a5c2-7b1e-7d3f-9c4a-5e6f7a8b9c0d",
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

/// The 20 bits of a record id that name whose documents it belongs to: a
/// watchlist entry's issuing authority, an incident's post. Projections and
/// the search index know a record by its id alone, so a record created in
/// one owner's document under an id made for another's could hide that
/// other's record at every node. Admission therefore takes a new record
/// only under an id with its document owner's tag. The tag sits in bytes
/// 6, 7 and 9 (UUIDv7's `rand_a` and the start of `rand_b`), away from the
/// time-ordered prefix and the last twelve hex digits officers type, which
/// stay random.
pub fn owner_tag(owner: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(b"outpost/record-owner/1\0").chain_update(owner.as_bytes()).finalize();
    (u32::from(digest[0]) << 16 | u32::from(digest[1]) << 8 | u32::from(digest[2])) & 0x000f_ffff
}

fn stamp(id: Uuid, owner: &str) -> Uuid {
    let tag = owner_tag(owner);
    let mut bytes = *id.as_bytes();
    bytes[6] = (bytes[6] & 0xf0) | ((tag >> 16) as u8 & 0x0f);
    bytes[7] = (tag >> 8) as u8;
    bytes[9] = tag as u8;
    Uuid::from_bytes(bytes)
}

fn tag_of(id: &Uuid) -> u32 {
    let bytes = id.as_bytes();
    u32::from(bytes[6] & 0x0f) << 16 | u32::from(bytes[7]) << 8 | u32::from(bytes[9])
}

uuid_id!(
    /// A watchlist entry (UUIDv7, so ids sort by creation time).
    EntryId,
    "entry id"
);
uuid_id!(
    /// An incident record (UUIDv7).
    IncidentId,
    "incident id"
);

/// A node (post or centre). Random, created on the node's first start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 16]);

impl NodeId {
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(&text, &mut bytes).map_err(serde::de::Error::custom)?;
        Ok(Self(bytes))
    }
}

/// The name of an Automerge document, e.g. `watchlist/KAZ-BS/0f` or
/// `incidents/kz-nurzhol/2026-11`. Stable across the fleet: every node derives
/// the same id for the same content, so copies of a document can merge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocId(String);

/// Ids read from a peer or a disk are checked like typed ones.
impl TryFrom<String> for DocId {
    type Error = ValidationError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<DocId> for String {
    fn from(id: DocId) -> Self {
        id.0
    }
}

impl DocId {
    /// Accepts a document id read back from storage or a peer.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let ok = !text.is_empty()
            && text.len() <= 128
            && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(ValidationError::Malformed {
                field: "document id",
                value: text.to_string(),
                expected: "ASCII letters, digits and / - _ . (at most 128)",
            })
        }
    }

    pub(crate) fn from_parts(parts: &[&str]) -> Self {
        Self(parts.join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_id_stays_a_time_ordered_uuidv7_with_a_random_tail() {
        let raw = Uuid::from_u128(0x0193_a5c2_7b1e_7d3f_9c4a_5e6f_7a8b_9c0d);
        let id = EntryId::owned_by("KAZ-BS", raw);
        assert!(id.belongs_to("KAZ-BS"));
        assert!(!id.belongs_to("UZB-DCS"));
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert_eq!(id.as_uuid().get_variant(), uuid::Variant::RFC4122);
        assert_eq!(id.as_uuid().as_bytes()[..6], raw.as_bytes()[..6], "the time prefix");
        assert_eq!(id.to_string()[24..], raw.to_string()[24..], "the last twelve digits");
        assert!(IncidentId::owned_by("kz-nurzhol", raw).belongs_to("kz-nurzhol"));
    }
}
