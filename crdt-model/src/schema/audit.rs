//! A post's audit log in Automerge, one document per month.
//!
//! ```text
//! root.records[<record hash, 64 hex>] = {
//!   record:    <the AuditRecord as JSON>,
//!   signature: <the post's signature over the chain head, 128 hex>
//! }
//! ```
//! Records are only ever added, each by the change that creates it, and
//! never changed (admission refuses anything else, see
//! `admission/fields.rs`). Keys are the records' own hashes, so a post
//! that writes a record under a number it used before adds a second record
//! beside the first instead of replacing it: the fork stays in view.

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ScalarValue, Value};

use super::{Document, Records};
use crate::audit::AuditRecord;
use crate::audit::log::SignedRecord;
use crate::error::ModelError;
use crate::trust::Signature;

/// Whether `key` has the shape of a record hash: 64 lowercase hex digits.
pub fn is_record_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Records<'_> {
    pub fn append_audit(&mut self, signed: &SignedRecord) -> Result<(), ModelError> {
        let key = signed.record.hash.as_str();
        if self.record(key)?.is_some() {
            return Ok(());
        }
        let json = serde_json::to_string(&signed.record)
            .map_err(|e| ModelError::schema(self.doc_id, key, format!("cannot encode the record: {e}")))?;
        let obj = self.doc.put_object(&self.records, key, ObjType::Map)?;
        self.doc.put(&obj, "record", json)?;
        self.doc.put(&obj, "signature", hex::encode(signed.signature.to_bytes()))?;
        Ok(())
    }
}

fn text(doc: &Document, obj: &automerge::ObjId, key: &str, field: &str) -> Result<String, ModelError> {
    match doc.read().get(obj, field)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(t) => Ok(t.to_string()),
            _ => Err(ModelError::schema(doc.id(), format!("records/{key}/{field}"), "not text")),
        },
        _ => Err(ModelError::schema(doc.id(), format!("records/{key}/{field}"), "missing")),
    }
}

/// The record stored under `key`, checked to be the one its key names.
pub fn read_audit_record(doc: &Document, key: &str) -> Result<SignedRecord, ModelError> {
    let records = doc.records_obj()?;
    let obj = match doc.read().get(&records, key)? {
        Some((Value::Object(ObjType::Map), obj)) => obj,
        _ => return Err(ModelError::schema(doc.id(), format!("records/{key}"), "not a record")),
    };
    let bad = |what: String| ModelError::schema(doc.id(), format!("records/{key}"), what);
    let record: AuditRecord =
        serde_json::from_str(&text(doc, &obj, key, "record")?).map_err(|e| bad(format!("record: {e}")))?;
    if record.hash != key {
        return Err(bad(format!("holds record {} under another hash", record.seq)));
    }
    let mut signature = [0u8; 64];
    hex::decode_to_slice(text(doc, &obj, key, "signature")?, &mut signature)
        .map_err(|_| bad("the signature is not 128 hex digits".into()))?;
    Ok(SignedRecord { record, signature: Signature::from_bytes(signature) })
}

/// Every record of one month's audit document.
pub fn read_audit(doc: &Document) -> Result<Vec<SignedRecord>, ModelError> {
    let records = doc.records_obj()?;
    doc.read().keys(&records).map(|key| read_audit_record(doc, &key)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::audit::{GENESIS_HASH, seal};
    use crate::date::Timestamp;
    use crate::schema::{ChangeMeta, DocKind};
    use crate::trust::Signer;

    #[test]
    fn records_go_in_under_their_hash_and_read_back_signed() {
        let signer = Signer::from_secret([3; 32]);
        let mut doc = Document::genesis(DocKind::Audit { post: "kz-post".into(), month: "2026-11".into() }).unwrap();
        let event = crate::test_support::search_event(Timestamp::from_millis(1_795_600_000_000), "ALIEV");
        let signed = SignedRecord::sign(&signer, "kz-post", seal(event, 1, "kz-post", GENESIS_HASH));
        let meta = ChangeMeta { at: Timestamp::from_millis(1_795_600_000_000), by: "outpostd".into(), op: "audit" };
        doc.transact(&meta, |r| r.append_audit(&signed)).unwrap();
        assert!(is_record_key(&signed.record.hash));
        let read = read_audit(&doc).unwrap();
        assert_eq!(read, vec![signed.clone()]);
        assert!(read[0].signed_by(&signer.public(), "kz-post"));
        doc.check_records([&signed.record.hash]).unwrap();
    }
}
