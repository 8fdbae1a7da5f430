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
