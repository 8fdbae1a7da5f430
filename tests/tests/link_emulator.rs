//! The link emulator delays, paces and cuts connections as configured.
//! Only lower bounds on time are asserted: a busy machine may be slower,
//! never faster, than the emulated link.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use outpost_tests::harness::wait_for;
use outpost_tests::link_emulator::{Link, LinkProfile};

fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    port
}

fn round_trip(stream: &mut TcpStream, bytes: usize) -> Duration {
    let started = Instant::now();
    stream.write_all(&vec![7u8; bytes]).unwrap();
    let mut back = vec![0u8; bytes];
    stream.read_exact(&mut back).unwrap();
    assert!(back.iter().all(|b| *b == 7));
    started.elapsed()
}

#[test]
fn latency_and_rate_are_applied_and_an_outage_cuts_connections() {
    let target = echo_server();
    let profile = LinkProfile { latency: Duration::from_millis(100), ..LinkProfile::rate(200_000) };
    let link = Link::start(target, profile, 1);
    let mut stream = TcpStream::connect(("127.0.0.1", link.port())).unwrap();
    assert!(round_trip(&mut stream, 10) >= Duration::from_millis(200), "one round trip is two latencies");
    // 40 kB each way at 200 kB/s: at least 0.2 s of transmission each way.
    assert!(round_trip(&mut stream, 40_000) >= Duration::from_millis(400));
    // The counters move just after the bytes are written.
    wait_for("the byte counters", Duration::from_secs(5), || link.bytes() == (40_010, 40_010));

    link.set_up(false);
    let mut buf = [0u8; 1];
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cut = stream.write_all(b"x").and_then(|()| stream.read(&mut buf));
    assert!(matches!(cut, Ok(0) | Err(_)), "the old connection is cut");
    let mut refused = TcpStream::connect(("127.0.0.1", link.port())).unwrap();
    refused.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(matches!(refused.read(&mut buf), Ok(0) | Err(_)), "a new one is closed at once while down");

    link.set_up(true);
    let mut again = TcpStream::connect(("127.0.0.1", link.port())).unwrap();
    assert!(round_trip(&mut again, 10) >= Duration::from_millis(200));
}
