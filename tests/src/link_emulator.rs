//! A userspace link emulator: a TCP proxy that gives a loopback connection
//! the behaviour of a satellite, radio or 3G link. This kernel has no
//! netem, so delay, jitter, loss and outages are made here.
//!
//! - **Delay and jitter:** every chunk is held for the one-way latency plus
//!   a random jitter, never overtaking the chunk before it (TCP's order).
//! - **Bandwidth:** chunks leave no faster than the byte rate.
//! - **Loss by stalling:** TCP hides a lost segment behind a retransmission,
//!   which the application sees as a stall; a chunk is stalled with some
//!   probability.
//! - **Outages:** [`Link::set_up`] cuts every connection and refuses new
//!   ones until the link comes back, by hand or on a schedule.
//!
//! The waiting here is the emulated link itself; tests wait for their
//! conditions by polling, never by sleeping.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How a link behaves, each way.
#[derive(Debug, Clone)]
pub struct LinkProfile {
    pub latency: Duration,
    pub jitter: Duration,
    /// `None`: as fast as loopback.
    pub bytes_per_sec: Option<u64>,
    pub stall_probability: f64,
    pub stall: Duration,
}

impl LinkProfile {
    /// A geostationary VSAT link: 600 ms round trips, 256 kbit/s.
    pub fn vsat() -> Self {
        Self {
            latency: Duration::from_millis(300),
            jitter: Duration::ZERO,
            bytes_per_sec: Some(32_000),
            stall_probability: 0.0,
            stall: Duration::ZERO,
        }
    }

    /// Loopback with only a byte rate.
    pub fn rate(bytes_per_sec: u64) -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            bytes_per_sec: Some(bytes_per_sec),
            stall_probability: 0.0,
            stall: Duration::ZERO,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    up: AtomicBool,
    /// Bytes carried towards the target, and back.
    forward: AtomicU64,
    backward: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
}

/// A running emulated link from a local port to a target port.
#[derive(Debug)]
pub struct Link {
    port: u16,
    shared: Arc<Shared>,
}

impl Link {
    /// Listens on a free loopback port and carries each connection to
    /// `127.0.0.1:target` under `profile`. `seed` fixes the randomness.
    pub fn start(target: u16, profile: LinkProfile, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the link's port");
        let port = listener.local_addr().expect("local address").port();
        let shared = Arc::new(Shared { up: AtomicBool::new(true), ..Default::default() });
        let accepting = shared.clone();
        thread::spawn(move || {
            for (n, inbound) in listener.incoming().enumerate() {
                let Ok(inbound) = inbound else { continue };
                if !accepting.up.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = inbound.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                if let (Ok(a), Ok(b)) = (inbound.try_clone(), outbound.try_clone()) {
                    let mut open = accepting.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    open.push(a);
                    open.push(b);
                }
                let seed = seed.wrapping_add(n as u64 * 2);
                pump(&inbound, &outbound, profile.clone(), seed, accepting.clone(), true);
                pump(&outbound, &inbound, profile.clone(), seed + 1, accepting.clone(), false);
            }
        });
        Self { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Takes the link down (cutting every connection, refusing new ones)
    /// or brings it back.
    pub fn set_up(&self, up: bool) {
        self.shared.up.store(up, Ordering::SeqCst);
        if !up {
            let mut open = self.shared.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for stream in open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    pub fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::SeqCst)
    }

    /// Takes the link down and up on a schedule of `(down_at, up_at)` times
    /// measured from now.
    pub fn schedule_outages(&self, outages: Vec<(Duration, Duration)>) {
        let shared = self.shared.clone();
        let link = Link { port: self.port, shared };
        thread::spawn(move || {
            let start = Instant::now();
            for (down_at, up_at) in outages {
                thread::sleep(down_at.saturating_sub(start.elapsed()));
                link.set_up(false);
                thread::sleep(up_at.saturating_sub(start.elapsed()));
                link.set_up(true);
            }
        });
    }

    /// Bytes carried so far: towards the target, and back.
    pub fn bytes(&self) -> (u64, u64) {
        (self.shared.forward.load(Ordering::SeqCst), self.shared.backward.load(Ordering::SeqCst))
    }
}

/// Carries bytes from `from` to `to`: a reader stamps each chunk with when
/// it may leave, a writer sends it then.
fn pump(from: &TcpStream, to: &TcpStream, profile: LinkProfile, seed: u64, shared: Arc<Shared>, forward: bool) {
    let (Ok(mut reader), Ok(mut writer)) = (from.try_clone(), to.try_clone()) else { return };
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut line_free = Instant::now();
        let mut last_due = Instant::now();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = Instant::now();
            // The bytes occupy the line for their transmission time.
            let sending = profile
                .bytes_per_sec
                .map_or(Duration::ZERO, |rate| Duration::from_secs_f64(n as f64 / rate.max(1) as f64));
            line_free = line_free.max(now) + sending;
            let jitter = if profile.jitter.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(rng.random_range(0.0..profile.jitter.as_secs_f64()))
            };
            let stall =
                if rng.random_bool(profile.stall_probability.clamp(0.0, 1.0)) { profile.stall } else { Duration::ZERO };
            let due = (line_free + profile.latency + jitter + stall).max(last_due);
            last_due = due;
            if tx.send((due, buffer[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    thread::spawn(move || {
        for (due, chunk) in rx {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            if writer.write_all(&chunk).is_err() {
                break;
            }
            let counter = if forward { &shared.forward } else { &shared.backward };
            counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        let _ = writer.shutdown(Shutdown::Write);
    });
}
