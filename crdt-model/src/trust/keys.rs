//! Node and admin keys: ed25519, as libp2p uses for node identities.
//!
//! A node's libp2p peer id is its ed25519 public key, wrapped (an identity
//! multihash of the protobuf-encoded key, in base58), so the peer id an
//! admin enrols is the key that signs the node's changes. A node's
//! Automerge actors start with 16 bytes derived from that key
//! ([`actor_prefix`]), which binds every change to exactly one member.

use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::TrustError;

/// An ed25519 public key: a node's identity, or the fleet admin's.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

impl PublicKey {
    /// 64 hex digits, the form `--fleet-admin` takes.
    pub fn parse_hex(text: &str) -> Result<Self, TrustError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| TrustError::BadKey(format!("{text:?} is not 64 hex digits")))?;
        VerifyingKey::from_bytes(&bytes).map_err(|e| TrustError::BadKey(format!("{text:?}: {e}")))?;
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The key of a libp2p peer id (`12D3KooW…`), which for ed25519 keys is
    /// the key itself, wrapped.
    pub fn from_peer_id(text: &str) -> Result<Self, TrustError> {
        let bad = |why: &str| TrustError::BadPeerId { peer: text.to_string(), reason: why.to_string() };
        let bytes = bs58::decode(text.trim()).into_vec().map_err(|_| bad("not base58"))?;
        let key = bytes.strip_prefix(&PEER_ID_PREFIX[..]).ok_or_else(|| bad("not an ed25519 peer id (12D3KooW…)"))?;
        let key: [u8; 32] = key.try_into().map_err(|_| bad("wrong length"))?;
        VerifyingKey::from_bytes(&key).map_err(|_| bad("not a valid ed25519 key"))?;
        Ok(Self(key))
    }

    /// The libp2p peer id of this key.
    pub fn peer_id(&self) -> String {
        let mut bytes = PEER_ID_PREFIX.to_vec();
        bytes.extend_from_slice(&self.0);
        bs58::encode(bytes).into_string()
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &Signature) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else { return false };
        let signature = ed25519_dalek::Signature::from_bytes(&signature.to_bytes());
        key.verify(message, &signature).is_ok()
    }

    /// The first 16 bytes of every Automerge actor this node writes with.
    pub fn actor_prefix(&self) -> [u8; 16] {
        actor_prefix(self)
    }
}

/// Identity multihash (code 0, 36 bytes) of a protobuf `PublicKey`
/// message: field 1 (key type) = 1 (Ed25519), field 2 (data) of 32 bytes.
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// 16 bytes derived from a node's key: the prefix of its actors.
pub fn actor_prefix(key: &PublicKey) -> [u8; 16] {
    let digest = Sha256::new().chain_update(b"outpost/actor/1").chain_update(key.0).finalize();
    let mut prefix = [0u8; 16];
    prefix.copy_from_slice(&digest[..16]);
    prefix
}

/// An ed25519 signature. Serialised as its 64 bytes with no length prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature {
    r: [u8; 32],
    s: [u8; 32],
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.r[..4]))
    }
}

impl Signature {
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        Self { r, s }
    }

    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }
}

/// A secret key that signs: a node's (its changes, its attestations) or
/// the admin's (rosters). Made from 32 secret bytes the caller read or
/// drew; the model draws none.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({})", self.public().to_hex())
    }
}

impl Signer {
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&secret) }
    }

    /// The 32 secret bytes, for writing a key file.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature::from_bytes(self.key.sign(message).to_bytes())
    }
}

/// The secret bytes of an admin key file: 64 hex digits, with an optional
/// comment line before them.
pub fn parse_secret_file(text: &str) -> Result<[u8; 32], TrustError> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or_default();
    let mut secret = [0u8; 32];
    hex::decode_to_slice(line, &mut secret)
        .map_err(|_| TrustError::BadKey("the key file does not hold 64 hex digits".into()))?;
    Ok(secret)
}

/// The text of an admin key file for `signer`.
pub fn secret_file(signer: &Signer) -> String {
    format!(
        "# Outpost fleet admin key (ed25519). Keep it offline; it signs the fleet roster.\n# public {}\n{}\n",
        signer.public().to_hex(),
        hex::encode(signer.secret())
    )
}

/// The start of a node key file: libp2p's protobuf `PrivateKey` message,
/// field 1 (key type) = 1 (Ed25519), field 2 (data) of 64 bytes: the
/// secret half, then the public half.
const NODE_KEY_FILE_PREFIX: [u8; 4] = [0x08, 0x01, 0x12, 0x40];

/// The node key in a node key file (`node.key`, as `outpostd --init`
/// writes it: libp2p's encoding of an ed25519 keypair), so that a tool
/// can print a node's peer id without the daemon or libp2p.
pub fn parse_node_key_file(bytes: &[u8]) -> Result<Signer, TrustError> {
    let bad = |why: &str| TrustError::BadKey(format!("not a node key file: {why}"));
    let pair = bytes.strip_prefix(&NODE_KEY_FILE_PREFIX[..]).ok_or_else(|| bad("not an ed25519 libp2p keypair"))?;
    let pair: &[u8; 64] = pair.try_into().map_err(|_| bad("wrong length"))?;
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&pair[..32]);
    let signer = Signer::from_secret(secret);
    if signer.public().0[..] != pair[32..] {
        return Err(bad("its public half does not belong to its secret half"));
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_round_trip_and_look_like_libp2p_ones() {
        let signer = Signer::from_secret([7u8; 32]);
        let id = signer.public().peer_id();
        assert!(id.starts_with("12D3KooW"), "{id}");
        assert_eq!(PublicKey::from_peer_id(&id).unwrap(), signer.public());
        for bad in ["", "not-base58-0OIl", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"] {
            assert!(PublicKey::from_peer_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures_verify_only_for_their_key_and_message() {
        let signer = Signer::from_secret([1u8; 32]);
        let other = Signer::from_secret([2u8; 32]);
        let signature = signer.sign(b"message");
        assert!(signer.public().verifies(b"message", &signature));
        assert!(!signer.public().verifies(b"massage", &signature));
        assert!(!other.public().verifies(b"message", &signature));
        let mut bytes = signature.to_bytes();
        bytes[10] ^= 1;
        assert!(!signer.public().verifies(b"message", &Signature::from_bytes(bytes)));
        assert_eq!(postcard::to_allocvec(&signature).unwrap().len(), 64);
    }

    #[test]
    fn admin_key_files_round_trip_and_hex_keys_are_checked() {
        let signer = Signer::from_secret([9u8; 32]);
        let text = secret_file(&signer);
        assert_eq!(parse_secret_file(&text).unwrap(), signer.secret());
        assert!(parse_secret_file("# nothing\n").is_err());
        let hex = signer.public().to_hex();
        assert_eq!(PublicKey::parse_hex(&hex).unwrap(), signer.public());
        assert!(PublicKey::parse_hex("abc").is_err());
        assert_ne!(actor_prefix(&signer.public()), actor_prefix(&Signer::from_secret([8u8; 32]).public()));
    }

    #[test]
    fn node_key_files_decode_and_mismatched_halves_are_refused() {
        let signer = Signer::from_secret([4u8; 32]);
        let mut file = NODE_KEY_FILE_PREFIX.to_vec();
        file.extend_from_slice(&signer.secret());
        file.extend_from_slice(&signer.public().0);
        assert_eq!(parse_node_key_file(&file).unwrap().public(), signer.public());
        let mut wrong = file.clone();
        wrong[40] ^= 1;
        assert!(parse_node_key_file(&wrong).unwrap_err().to_string().contains("public half"));
        assert!(parse_node_key_file(&file[..60]).is_err());
        assert!(parse_node_key_file(b"/key/swarm/psk/1.0.0/").is_err());
    }
}
