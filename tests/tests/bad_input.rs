//! Hostile or broken clients get clear errors; the daemon keeps serving and
//! loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use outpost_model::api::MAX_REQUEST_BYTES;
use outpost_tests::harness::Post;
use serde_json::{Value, json};

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn read_reply(stream: &mut UnixStream) -> Value {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn ask(stream: &mut UnixStream, body: &[u8]) -> Value {
    stream.write_all(&frame(body)).unwrap();
    read_reply(stream)
}

fn status_request() -> Vec<u8> {
    json!({"version": 1, "request": {"op": "status"}}).to_string().into_bytes()
}

fn with_one_entry() -> Post {
    let post = Post::start();
    post.json(&["watchlist", "add", "person", "--name", "Алишер Каримов", "--category", "warning", "--reason", "r"]);
    post
}

fn entries(post: &Post) -> u64 {
    post.json(&["status"])["entries"].as_u64().unwrap()
}

#[test]
fn malformed_json_gets_an_error_and_the_connection_stays_usable() {
    let post = with_one_entry();
    let mut stream = UnixStream::connect(post.socket()).unwrap();
    let reply = ask(&mut stream, b"{this is not json");
    assert_eq!(reply["error"]["kind"], "bad_input");
    assert!(reply["error"]["message"].as_str().unwrap().starts_with("malformed request"), "{reply}");
    let reply = ask(&mut stream, br#"{"version":1,"request":{"op":"drop_all_tables"}}"#);
    assert_eq!(reply["error"]["kind"], "bad_input");
    assert!(reply["error"]["message"].as_str().unwrap().contains("drop_all_tables"), "{reply}");
    let reply = ask(&mut stream, &status_request());
    assert_eq!(reply["ok"]["type"], "status");
    assert_eq!(entries(&post), 1);
}

#[test]
fn an_oversized_request_is_refused_before_it_is_read() {
    let post = with_one_entry();
    let mut stream = UnixStream::connect(post.socket()).unwrap();
    stream.write_all(&(MAX_REQUEST_BYTES + 1).to_be_bytes()).unwrap();
    let reply = read_reply(&mut stream);
    assert_eq!(reply["error"]["kind"], "too_large");
    assert!(reply["error"]["message"].as_str().unwrap().contains("larger than the limit"), "{reply}");
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0, "the daemon closes the connection");
    assert_eq!(entries(&post), 1);
}

#[test]
fn another_protocol_version_is_refused_by_name() {
    let post = with_one_entry();
    let mut stream = UnixStream::connect(post.socket()).unwrap();
    let reply = ask(&mut stream, br#"{"version":99,"request":{"op":"status"}}"#);
    assert_eq!(reply["error"]["kind"], "unsupported_version");
    assert!(reply["error"]["message"].as_str().unwrap().contains("version 99"), "{reply}");
}

#[test]
fn truncated_and_garbage_streams_do_not_disturb_other_clients() {
    let post = with_one_entry();
    {
        let mut stream = UnixStream::connect(post.socket()).unwrap();
        stream.write_all(&100u32.to_be_bytes()).unwrap();
        stream.write_all(b"{\"version\":1").unwrap();
    }
    {
        let mut stream = UnixStream::connect(post.socket()).unwrap();
        stream.write_all(&[0xff, 0x00, 0x13]).unwrap();
    }
    {
        let mut stream = UnixStream::connect(post.socket()).unwrap();
        let reply = ask(&mut stream, &[0xc3, 0x28, 0xa0, 0xa1]);
        assert_eq!(reply["error"]["kind"], "bad_input");
    }
    assert_eq!(entries(&post), 1);
}

#[test]
fn invalid_values_are_named_and_store_nothing() {
    let post = with_one_entry();
    let cases: &[(&[&str], &str)] = &[
        (&["--name", "A B", "--category", "terrorist", "--reason", "r"], "unknown category \"terrorist\""),
        (&["--name", "A B", "--category", "warning", "--reason", "r", "--dob", "1990-13-01"], "1990-13-01"),
        (&["--name", "", "--category", "warning", "--reason", "r"], "name must not be empty"),
        (
            &[
                "--name",
                "A B",
                "--category",
                "warning",
                "--reason",
                "r",
                "--valid-from",
                "2027-01-01",
                "--expires",
                "2026-12-31",
            ],
            "expiry 2026-12-31 is before the start date 2027-01-01",
        ),
        (&["--name", "A B", "--category", "warning", "--reason", "r", "--nationality", "XX"], "unknown country code"),
        (
            &["--name", "A B", "--category", "warning", "--reason", "r", "--document", "passport:TJK"],
            "TYPE:ISSUER:NUMBER",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["watchlist", "add", "person"];
        all.extend_from_slice(args);
        let run = post.outpost(&all);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(message), "{args:?}: expected {message:?} in {}", run.stderr);
    }
    let mut stream = UnixStream::connect(post.socket()).unwrap();
    let reply = ask(
        &mut stream,
        json!({"version": 1, "request": {"op": "watchlist_add", "entry": {"kind": "person", "names": ["A"],
            "category": "warning", "reason": "r", "shoe_size": 44}}})
        .to_string()
        .as_bytes(),
    );
    assert_eq!(reply["error"]["kind"], "bad_input");
    assert!(reply["error"]["message"].as_str().unwrap().contains("shoe_size"), "{reply}");
    assert_eq!(entries(&post), 1);
}

#[test]
fn hundreds_of_idle_clients_do_not_lock_an_officer_out() {
    let post = with_one_entry();
    let idle: Vec<UnixStream> = (0..300).map(|_| UnixStream::connect(post.socket()).unwrap()).collect();
    // The officer's request is answered although every slot was taken by
    // an idle client when it connected.
    assert_eq!(entries(&post), 1);
    let mut stream = UnixStream::connect(post.socket()).unwrap();
    assert_eq!(ask(&mut stream, &status_request())["ok"]["type"], "status");
    // The oldest idle clients were the ones dropped to make room.
    let mut first = idle.into_iter().next().unwrap();
    first.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    assert_eq!(first.read_to_end(&mut rest).unwrap(), 0, "the longest-idle client is disconnected");
}

#[test]
fn a_client_that_never_reads_holds_neither_a_slot_nor_shutdown() {
    let mut post = with_one_entry();
    let mut stuck = UnixStream::connect(post.socket()).unwrap();
    stuck.set_write_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
    // Requests until both socket buffers are full: the daemon is blocked
    // writing a reply nobody reads.
    let request = frame(&status_request());
    while stuck.write_all(&request).is_ok() {}
    assert_eq!(entries(&post), 1, "other clients are served meanwhile");
    let (done, finished) = std::sync::mpsc::channel();
    let pid = post.pid().unwrap();
    std::thread::spawn(move || {
        let status = post.stop();
        let _ = done.send(status);
    });
    let status = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("outpostd {pid} did not shut down while a client was not reading"));
    assert!(status.success(), "{status:?}");
    drop(stuck);
}
