//! The package's man pages and bash completions (`daemon/debian/man`,
//! `daemon/debian/completions`) are made by clap_mangen and clap_complete
//! from the same command-line definitions the binaries parse, and are kept
//! in the tree so that `cargo deb` packages them as files. This test makes
//! them afresh and fails when a committed one differs, is missing or is
//! left over: after a change to either command line, run it with
//! `OUTPOST_UPDATE_PACKAGING=1` to write them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn debian_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/debian")
}

/// Every asset, by its path under `daemon/debian`.
fn generated() -> BTreeMap<String, Vec<u8>> {
    let mut assets = BTreeMap::new();
    let pages = tempfile::tempdir().unwrap();
    // One page for outpost and one for each of its commands
    // (`man outpost-backup`), section 1.
    clap_mangen::generate_to(outpost_cli::args::Cli::command(), pages.path()).unwrap();
    for page in std::fs::read_dir(pages.path()).unwrap().flatten() {
        let name = page.file_name().into_string().unwrap();
        assets.insert(format!("man/{name}"), std::fs::read(page.path()).unwrap());
    }
    // The daemon is an administrator's command: section 8.
    let mut daemon_page = Vec::new();
    clap_mangen::Man::new(outpost_daemon::args::Args::command()).section("8").render(&mut daemon_page).unwrap();
    assets.insert("man/outpostd.8".into(), daemon_page);
    for (name, mut command) in
        [("outpost", outpost_cli::args::Cli::command()), ("outpostd", outpost_daemon::args::Args::command())]
    {
        let mut script = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut command, name, &mut script);
        assets.insert(format!("completions/{name}"), script);
    }
    assets
}

fn committed() -> BTreeMap<String, Vec<u8>> {
    let mut assets = BTreeMap::new();
    for kind in ["man", "completions"] {
        let Ok(files) = std::fs::read_dir(debian_dir().join(kind)) else { continue };
        for file in files.flatten() {
            let name = file.file_name().into_string().unwrap();
            assets.insert(format!("{kind}/{name}"), std::fs::read(file.path()).unwrap());
        }
    }
    assets
}

#[test]
fn man_pages_and_completions_match_the_command_lines() {
    let fresh = generated();
    assert!(fresh.contains_key("man/outpost.1") && fresh.contains_key("man/outpost-backup.1"), "{:?}", fresh.keys());
    if std::env::var_os("OUTPOST_UPDATE_PACKAGING").is_some() {
        for kind in ["man", "completions"] {
            let dir = debian_dir().join(kind);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
        }
        for (path, bytes) in &fresh {
            std::fs::write(debian_dir().join(path), bytes).unwrap();
        }
        panic!(
            "wrote {} files under daemon/debian; commit them and run again without OUTPOST_UPDATE_PACKAGING",
            fresh.len()
        );
    }
    let kept = committed();
    let stale: Vec<&String> = fresh.keys().filter(|path| kept.get(*path) != fresh.get(*path)).collect();
    let left_over: Vec<&String> = kept.keys().filter(|path| !fresh.contains_key(*path)).collect();
    assert!(
        stale.is_empty() && left_over.is_empty(),
        "daemon/debian is out of date (differs or missing: {stale:?}; no longer made: {left_over:?}); run \
         OUTPOST_UPDATE_PACKAGING=1 cargo nextest run -p outpost-tests --test packaging_assets, and commit the result"
    );
}
