//! `outpost-demo`: starts one border post with sample data and leaves it
//! running, so a newcomer can query it at once.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use outpost_cli::client::Client;
use outpost_model::api::{NewEntryInput, NewIncidentInput, Request, Response};
use outpost_tests::sample::Generator;

/// Start a demo border post with sample watchlist entries and incidents.
#[derive(Debug, Parser)]
struct Args {
    /// Where the demo keeps its data, socket and log (wiped on each run).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("outpost-demo"))]
    dir: PathBuf,
    /// Generated watchlist entries besides the hand-written ones.
    #[arg(long, default_value_t = 500)]
    entries: usize,
}

fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = outpost_tests::harness::bin_dir().join(name);
    if !path.exists() {
        bail!("{} not found; build everything first: cargo build --release", path.display());
    }
    Ok(path)
}

/// Stops a demo daemon left from an earlier run.
fn stop_previous(dir: &Path) {
    let Ok(pid) = std::fs::read_to_string(dir.join("outpostd.pid")) else { return };
    let Ok(pid) = pid.trim().parse::<i32>() else { return };
    let pid = nix::unistd::Pid::from_raw(pid);
    if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_ok() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while nix::sys::signal::kill(pid, None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn known_entries() -> Vec<NewEntryInput> {
    vec![
        NewEntryInput {
            kind: "person".into(),
            category: "wanted-for-arrest".into(),
            reason: "Organiser of heroin shipments on the Panj–Osh route (case 12/2026)".into(),
            action: Some("Detain and inform the national central bureau and CARICC".into()),
            warnings: vec!["armed".into()],
            names: vec!["Мухаммад Алиев".into(), "Muhammad Aliyev".into()],
            dobs: vec!["1985-03-07".into()],
            nationalities: vec!["TJK".into()],
            documents: vec!["passport:TJK:A1234567".into()],
            ..Default::default()
        },
        NewEntryInput {
            kind: "person".into(),
            category: "missing-person".into(),
            reason: "Reported missing in Almaty on 2026-10-02".into(),
            action: Some("Do not detain; inform the family liaison officer".into()),
            names: vec!["Айгерим Нурланова".into()],
            dobs: vec!["2004".into()],
            nationalities: vec!["KAZ".into()],
            ..Default::default()
        },
        NewEntryInput {
            kind: "vehicle".into(),
            category: "seize-object".into(),
            reason: "Stolen in Bishkek; used to move precursors".into(),
            plates: vec!["777 АВС 02".into()],
            make: Some("Toyota".into()),
            model: Some("Camry".into()),
            colour: Some("white".into()),
            country: Some("KAZ".into()),
            ..Default::default()
        },
        NewEntryInput {
            kind: "document".into(),
            category: "seize-object".into(),
            reason: "Blank passport stolen from the issuing office".into(),
            doc_type: Some("passport".into()),
            number: Some("N 1234567".into()),
            issuing_state: Some("KGZ".into()),
            doc_status: Some("stolen".into()),
            ..Default::default()
        },
    ]
}

fn call(client: &mut Client, request: Request) -> anyhow::Result<Response> {
    client.call(request).map_err(|e| anyhow::anyhow!("{e}"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (outpostd, outpost) = (binary("outpostd")?, binary("outpost")?);
    stop_previous(&args.dir);
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir).with_context(|| format!("cannot clear {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let socket = args.dir.join("outpostd.sock");
    let log = std::fs::File::create(args.dir.join("outpostd.log"))?;
    let child = Command::new(&outpostd)
        .args(["--node-name", "kz-nurzhol", "--authority", "KAZ-BS", "--utc-offset", "+05:00", "--data-dir"])
        .arg(args.dir.join("data"))
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Its own process group: Ctrl-C in this terminal must not stop the post.
        .process_group(0)
        .spawn()
        .context("cannot start outpostd")?;
    std::fs::write(args.dir.join("outpostd.pid"), child.id().to_string())?;

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client = loop {
        match Client::connect(&socket) {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => bail!("outpostd did not start: {e}; see {}", args.dir.join("outpostd.log").display()),
        }
    };

    let mut generator = Generator::new(42);
    let mut entries = known_entries();
    entries.extend((0..args.entries).map(|_| generator.entry()));
    let mut imported = 0;
    for batch in entries.chunks(1000) {
        if let Response::Imported(done) = call(&mut client, Request::WatchlistImport { entries: batch.to_vec() })? {
            imported += done.ids.len();
        }
    }
    let hit = match call(
        &mut client,
        Request::WatchlistSearch(Box::new(outpost_model::api::SearchInput {
            query: "A1234567".into(),
            purpose: "demo set-up: link the sample incident".into(),
            ..Default::default()
        })),
    )? {
        Response::Matches(m) => m.matches.first().map(|m| m.id.to_string()),
        _ => None,
    };
    let mut incidents = vec![NewIncidentInput {
        incident_type: "watchlist-hit".into(),
        narrative: "Пассажир автобуса Душанбе–Бишкек предъявил паспорт A1234567; задержан. \
                    Bus passenger presented passport A1234567; detained."
            .into(),
        persons: vec!["ALIEV MUKHAMMAD".into()],
        hits: hit.into_iter().collect(),
        ..Default::default()
    }];
    incidents.extend((0..2).map(|_| generator.incident()));
    for incident in incidents {
        call(&mut client, Request::IncidentLog { incident: Box::new(incident) })?;
    }

    let o = outpost.display();
    println!("Outpost demo post kz-nurzhol (authority KAZ-BS, UTC+05:00) is running as pid {}.", child.id());
    println!("It holds {imported} watchlist entries and 3 incidents.\n");
    println!("Point the CLI at it, then try:\n");
    println!("  export OUTPOST_SOCKET={}", socket.display());
    println!("  {o} status");
    println!("  {o} watchlist search \"MUKHAMMAD ALIEV\" --purpose \"demo\"");
    println!("  {o} watchlist search \"Мухаммад Алиев\" --purpose \"demo\"");
    println!("  {o} watchlist search \"ALIEV<<MUKHAMMAD\" --dob 1985 --purpose \"demo\"");
    println!("  {o} watchlist search \"Magomed Aliyev\" --explain --purpose \"demo\"");
    println!("  {o} watchlist search \"Aygerim Nurlanova\" --explain --purpose \"demo\"");
    println!("  {o} watchlist search \"777abc02\" --purpose \"vehicle check\"");
    println!("  {o} watchlist list --limit 10");
    println!("  {o} incident list");
    println!("  {o} audit --limit 10");
    println!("\nStop it with: kill {}    (log: {})", child.id(), args.dir.join("outpostd.log").display());
    Ok(())
}
