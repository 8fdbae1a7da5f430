//! Fuzz targets for Outpost: one function per target, each taking the
//! fuzzer's bytes and asserting what must hold, not only that nothing
//! panics. The binaries in `src/bin/` hand each function to AFL++
//! (through afl.rs, on the stable toolchain) or replay files through it.
//!
//! - [`frame`]: a peer's frame, decoded; a body built from the input,
//!   encoded and decoded back.
//! - [`engine`]: the replication engine's receive path, a real engine
//!   with a document host, fed frames as from a member peer.
//! - [`admission`]: `admission::admit` on changes the input makes and
//!   signs, with properties that no admitted change may break.
//! - [`roster`]: the signed roster, decoded, verified, rebuilt and signed.
//! - [`control`]: the control socket's framing and request parser.
//! - [`bundle`]: a USB-bundle-shaped blob (compressed changes and proofs)
//!   reassembled and received through the engine.
//!
//! Every target reads its input through [`input::Input`], a small
//! structure-aware reader: the first bytes pick what to build, the rest
//! fill it in, so that mutations stay meaningful. `src/bin/seeds.rs`
//! writes the seed corpora with the real encoders through
//! [`input::Writer`], the reader's mirror.

pub mod admission;
pub mod bundle;
pub mod control;
pub mod engine;
pub mod frame;
pub mod input;
pub mod roster;
pub mod world;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every target: its name and its function.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("frame", frame::run),
    ("engine_receive", engine::run),
    ("admission", admission::run),
    ("roster", roster::run),
    ("control_request", control::run),
    ("bundle", bundle::run),
];

/// The `main` of a target binary. With paths as arguments it replays every
/// file under them through `run` and exits non-zero if any panicked (CI's
/// corpus replay, and the way to reproduce a crash with a backtrace).
/// Without, it is the AFL++ persistent-mode loop (feature `afl`), or runs
/// one input read from stdin.
pub fn main_for(name: &str, run: fn(&[u8])) {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if !paths.is_empty() {
        std::process::exit(replay(name, run, &paths));
    }
    // No abort-on-panic hook: a panic the model does not catch still
    // aborts (afl.rs catches it and aborts).
    #[cfg(feature = "afl")]
    afl::fuzz(false, run);
    #[cfg(not(feature = "afl"))]
    {
        use std::io::Read;
        let mut data = Vec::new();
        if std::io::stdin().read_to_end(&mut data).is_ok() {
            run(&data);
        }
    }
}

/// Whether `OUTPOST_FUZZ_DEBUG` is set: targets then say what they did,
/// for checking that seeds reach what they are meant to.
pub fn debug() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("OUTPOST_FUZZ_DEBUG").is_some())
}

fn files_under(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| e.path()).collect();
        entries.sort();
        for entry in entries {
            files_under(&entry, out);
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    }
}

/// Replays every file under `paths`; returns the exit code.
fn replay(name: &str, run: fn(&[u8]), paths: &[PathBuf]) -> i32 {
    let mut files = Vec::new();
    for path in paths {
        files_under(path, &mut files);
    }
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut slowest = (Duration::ZERO, PathBuf::new());
    for file in &files {
        let Ok(data) = std::fs::read(file) else {
            eprintln!("{name}: cannot read {}", file.display());
            failed.push(file.clone());
            continue;
        };
        let at = Instant::now();
        let outcome = std::panic::catch_unwind(|| run(&data));
        let took = at.elapsed();
        if took > slowest.0 {
            slowest = (took, file.clone());
        }
        if outcome.is_err() {
            eprintln!("{name}: PANIC on {}", file.display());
            failed.push(file.clone());
        }
    }
    println!(
        "{name}: replayed {} inputs in {:.2} s (slowest {:.1} ms: {}), {} failed",
        files.len(),
        started.elapsed().as_secs_f64(),
        slowest.0.as_secs_f64() * 1e3,
        slowest.1.display(),
        failed.len()
    );
    i32::from(!failed.is_empty())
}
