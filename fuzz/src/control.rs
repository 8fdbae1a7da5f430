//! Target `control_request`: the control socket's framing and request
//! parser (`outpost_daemon::control::{request_len, parse_request}`, what the
//! daemon runs on every request before any handler).
//!
//! First byte even: the rest is what a client writes on the socket, read
//! as the daemon reads it: a 4-byte big-endian length, refused past
//! `MAX_REQUEST_BYTES` (and the connection closed), then that many bytes,
//! parsed; and again, until the stream ends. First byte odd: a JSON
//! request built from the input (known ops and fields, values of every
//! JSON type, versions right and wrong), serialised and parsed.
//!
//! What must hold: nothing panics; a refusal is an error reply of the
//! right kind whose message names the problem (`malformed request: …`, the
//! version it does not speak, the size over the limit); an accepted
//! request speaks this protocol version, the `op` logged is the one it
//! carries, it serialises and parses back to the same JSON, and it needs
//! a role.

use outpost_daemon::control::{BadRequest, parse_request, request_len};
use outpost_model::api::{ErrorKind, MAX_REQUEST_BYTES, Outcome, PROTOCOL_VERSION, ResponseEnvelope};
use serde_json::{Map, Value, json};

use crate::input::Input;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    if input.byte() & 1 == 0 {
        stream(input.rest());
    } else {
        let body = serde_json::to_vec(&request(&mut input)).expect("a JSON value serialises");
        body_of(&body);
    }
}

fn error_of(reply: &ResponseEnvelope) -> (ErrorKind, &str) {
    assert_eq!(reply.version, PROTOCOL_VERSION, "a reply in another protocol version");
    match &reply.outcome {
        Outcome::Error(err) => {
            assert!(!err.message.trim().is_empty(), "an error reply that names nothing");
            (err.kind, err.message.as_str())
        }
        Outcome::Ok(_) => panic!("a refusal that is not an error"),
    }
}

/// A client's bytes on the socket, read as `control::connection` reads
/// them.
pub fn stream(mut bytes: &[u8]) {
    while bytes.len() >= 4 {
        let header: [u8; 4] = bytes[..4].try_into().expect("4 bytes");
        bytes = &bytes[4..];
        let announced = u32::from_be_bytes(header);
        let len = match request_len(header) {
            Ok(len) => {
                assert!(announced <= MAX_REQUEST_BYTES);
                assert_eq!(len, announced as usize);
                len
            }
            Err(reply) => {
                assert!(announced > MAX_REQUEST_BYTES, "a request of {announced} bytes refused as too large");
                let (kind, message) = error_of(&reply);
                assert_eq!(kind, ErrorKind::TooLarge);
                assert!(message.contains(&announced.to_string()), "the size refused is not named: {message}");
                return;
            }
        };
        if bytes.len() < len {
            // The client stopped mid-body: the daemon waits, then closes.
            return;
        }
        let (body, rest) = bytes.split_at(len);
        body_of(body);
        bytes = rest;
    }
}

/// One request body.
pub fn body_of(body: &[u8]) {
    match parse_request(body) {
        Ok((op, envelope)) => {
            assert_eq!(envelope.version, PROTOCOL_VERSION, "a request in another version was taken");
            let value = serde_json::to_value(&envelope).expect("a request serialises");
            assert_eq!(value["request"]["op"].as_str(), Some(op.as_str()), "the op logged is not the request's");
            let again = serde_json::to_vec(&envelope).expect("a request serialises");
            match parse_request(&again) {
                Ok((op2, back)) => {
                    assert_eq!(op2, op);
                    let back = serde_json::to_value(&back).expect("serialises");
                    assert_eq!(back, value, "a request does not survive serialise then parse");
                }
                Err(BadRequest { reply, .. }) => {
                    panic!("a request the daemon took does not parse once serialised: {:?}", reply.outcome)
                }
            }
            assert!(envelope.request.needs().is_some(), "a request that needs no role");
        }
        Err(BadRequest { reply, .. }) => {
            let (kind, message) = error_of(&reply);
            match kind {
                ErrorKind::BadInput => {
                    assert!(message.starts_with("malformed request: "), "a refusal that does not say so: {message}");
                    assert!(message.len() > "malformed request: ".len(), "a malformed request with no reason");
                }
                ErrorKind::UnsupportedVersion => {
                    // The version the body carries, read as leniently as the
                    // daemon reads it: the rest of the body may not even be
                    // valid JSON (an invalid string or an out-of-range number
                    // in a field that is skipped), and the version is still
                    // the first thing named.
                    #[derive(serde::Deserialize)]
                    struct Version {
                        version: Option<u64>,
                    }
                    let version = serde_json::from_slice::<Version>(body)
                        .ok()
                        .and_then(|v| v.version)
                        .expect("refused for a version it carries");
                    assert!(message.contains(&version.to_string()), "the version refused is not named: {message}");
                }
                other => panic!("a request refused as {other:?}"),
            }
        }
    }
}

const OPS: &[&str] = &[
    "status",
    "watchlist_add",
    "watchlist_import",
    "watchlist_show",
    "watchlist_list",
    "watchlist_search",
    "watchlist_amend",
    "watchlist_set_status",
    "incident_log",
    "incident_list",
    "incident_show",
    "incident_note",
    "incident_set_follow_up",
    "audit",
    "audit_verify",
    "peers",
    "sync_now",
    "fleet_roster",
    "fleet_publish",
    "fleet_cut",
];

const FIELDS: &[&str] = &[
    "id",
    "purpose",
    "status",
    "kind",
    "limit",
    "since",
    "follow_up",
    "note",
    "text",
    "post",
    "peer",
    "roster",
    "reason",
    "entry",
    "entries",
    "incident",
    "amendment",
    "query",
    "names",
    "category",
    "narrative",
    "incident_type",
    "add_names",
    "clear_expires",
    "op",
    "version",
    "bogus",
];

const STRINGS: &[&str] = &["", "person", "warning", "KAZ-BS", "2026-11-25", "Мухаммад", "\u{0}", "closed", "x"];

fn value(input: &mut Input<'_>, depth: u8) -> Value {
    match input.choose(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(input.flag()),
        2 => match input.choose(4) {
            0 => json!(input.u64()),
            1 => json!(-i64::from(input.u32())),
            2 => json!(f64::from(input.u16()) / 3.0),
            _ => json!(input.byte()),
        },
        3 => Value::String(STRINGS[input.choose(STRINGS.len())].to_string()),
        4 | 5 => Value::String(input.string()),
        6 => Value::Array((0..input.choose(4)).map(|_| value(input, depth - 1)).collect()),
        _ => Value::Object(fields(input, depth - 1)),
    }
}

fn fields(input: &mut Input<'_>, depth: u8) -> Map<String, Value> {
    let mut map = Map::new();
    for _ in 0..input.choose(5) {
        let key = FIELDS[input.choose(FIELDS.len())].to_string();
        map.insert(key, value(input, depth));
    }
    map
}

/// A request as a client (or an attacker) might write it.
fn request(input: &mut Input<'_>) -> Value {
    let mut request = fields(input, 2);
    match input.choose(8) {
        0 => {}
        1 => {
            request.insert("op".into(), value(input, 0));
        }
        _ => {
            request.insert("op".into(), Value::String(OPS[input.choose(OPS.len())].into()));
        }
    }
    let mut envelope = Map::new();
    match input.choose(6) {
        0 => {}
        1 => {
            envelope.insert("version".into(), value(input, 0));
        }
        2 => {
            envelope.insert("version".into(), json!(u64::from(input.byte())));
        }
        _ => {
            envelope.insert("version".into(), json!(PROTOCOL_VERSION));
        }
    }
    if input.choose(8) != 0 {
        envelope.insert("request".into(), Value::Object(request));
    }
    if input.choose(8) == 0 {
        envelope.insert(FIELDS[input.choose(FIELDS.len())].into(), value(input, 1));
    }
    Value::Object(envelope)
}
