//! `outpost-demo`: starts a fleet of three real `outpostd` processes on
//! loopback, as a line: centre ↔ post A ↔ post B. It shows an entry made at
//! the centre arriving at post B through post A, then cuts post A off,
//! records at both ends, heals, and shows the fleet converge. It leaves the
//! fleet running and prints the commands to query each post.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use outpost_cli::client::Client;
use outpost_model::api::{NewEntryInput, NewIncidentInput, Request, Response};
use outpost_tests::sample::Generator;

/// Start a demo fleet of three posts with sample watchlist entries and incidents.
#[derive(Debug, Parser)]
struct Args {
    /// Where the demo keeps its posts' data, sockets and logs (wiped on each run).
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

/// The demo fleet's keys, made by the real `outpost fleet init`.
struct DemoFleet {
    psk: PathBuf,
    admin_key: PathBuf,
    /// The admin public key, hex.
    admin: String,
}

impl DemoFleet {
    fn init(outpost: &Path, dir: &Path) -> anyhow::Result<Self> {
        let fleet = dir.join("fleet");
        let out = Command::new(outpost).args(["--json", "fleet", "init", "--dir"]).arg(&fleet).output()?;
        if !out.status.success() {
            bail!("outpost fleet init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let admin = json["fleet_admin"].as_str().context("fleet init printed no admin key")?.to_string();
        Ok(Self { psk: fleet.join("swarm.key"), admin_key: fleet.join("admin.key"), admin })
    }

    /// Enrols `post` through the CLI at `at`, signing with the admin key.
    fn enroll(&self, outpost: &Path, at: &DemoPost, post: &DemoPost, role: &str, grant: &str) -> anyhow::Result<()> {
        let status = Command::new(outpost).args(["--json", "status"]).env("OUTPOST_SOCKET", post.socket()).output()?;
        let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
        let peer_id = status["peer_id"].as_str().context("no peer id in status")?;
        let out = Command::new(outpost)
            .args(["fleet", "enroll", peer_id, "--name", post.name, "--role", role, "--authority", post.authority])
            .args(["--grant", grant, "--admin-key"])
            .arg(&self.admin_key)
            .env("OUTPOST_SOCKET", at.socket())
            .output()?;
        if !out.status.success() {
            bail!("enrolling {} failed: {}", post.name, String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

fn roster_version(post: &DemoPost) -> u64 {
    let Ok(mut client) = Client::connect(&post.socket()) else { return 0 };
    match client.call(Request::Status) {
        Ok(Response::Status(s)) => s.replication.map_or(0, |r| r.roster_version),
        _ => 0,
    }
}

/// One demo post.
struct DemoPost {
    name: &'static str,
    authority: &'static str,
    offset: &'static str,
    dir: PathBuf,
    port: u16,
    /// Ports of the posts it dials.
    dials: Vec<u16>,
    pid: u32,
    /// Started by this run: stopping it must also reap it.
    child: Option<std::process::Child>,
}

impl DemoPost {
    fn socket(&self) -> PathBuf {
        self.dir.join("outpostd.sock")
    }

    fn start(&mut self, outpostd: &Path, fleet: &DemoFleet) -> anyhow::Result<Client> {
        std::fs::create_dir_all(&self.dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("outpostd.log"))?;
        let mut command = Command::new(outpostd);
        command
            .args(["--node-name", self.name, "--authority", self.authority, "--utc-offset", self.offset])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .arg("--socket")
            .arg(self.socket())
            .arg("--psk-file")
            .arg(&fleet.psk)
            .arg("--fleet-admin")
            .arg(&fleet.admin)
            .arg("--listen")
            .arg(format!("/ip4/127.0.0.1/tcp/{}", self.port))
            .arg("--no-mdns");
        for port in &self.dials {
            command.arg("--peer").arg(format!("/ip4/127.0.0.1/tcp/{port}"));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group: Ctrl-C in this terminal must not stop the post.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start outpostd for {}", self.name))?;
        self.pid = child.id();
        std::fs::write(self.dir.join("outpostd.pid"), child.id().to_string())?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::connect(&self.socket()) {
                Ok(client) => return Ok(client),
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => bail!("{} did not start: {e}; see {}", self.name, self.dir.join("outpostd.log").display()),
            }
        }
    }

    /// SIGTERM and wait for the post to exit.
    fn stop(&mut self) {
        match self.child.take() {
            Some(mut child) => {
                let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                let _ = child.wait();
            }
            None => stop_previous(&self.dir),
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn add_person(client: &mut Client, name: &str, reason: &str) -> anyhow::Result<String> {
    let entry = NewEntryInput {
        kind: "person".into(),
        category: "locate-and-inform".into(),
        reason: reason.into(),
        names: vec![name.into()],
        ..Default::default()
    };
    match call(client, Request::WatchlistAdd { entry: Box::new(entry) })? {
        Response::Created(created) => Ok(created.id),
        _ => bail!("outpostd answered the add with something else"),
    }
}

fn holds(socket: &Path, id: &str) -> bool {
    let Ok(mut client) = Client::connect(socket) else { return false };
    let show = Request::WatchlistShow { id: id.into(), purpose: Some("demo: replication check".into()) };
    matches!(client.call(show), Ok(Response::Entry(_)))
}

/// Polls until every `(post, entry)` is held, or fails after a minute.
fn wait_until_held(what: &str, wanted: &[(&DemoPost, &str)]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !wanted.iter().all(|(post, id)| holds(&post.socket(), id)) {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{what} did not happen within a minute; see the posts' outpostd.log");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(started.elapsed())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (outpostd, outpost) = (binary("outpostd")?, binary("outpost")?);
    let mut posts = vec![
        DemoPost {
            name: "kz-centre",
            authority: "KAZ-BS",
            offset: "+05:00",
            dials: vec![],
            port: 0,
            dir: PathBuf::new(),
            pid: 0,
            child: None,
        },
        DemoPost {
            name: "kz-nurzhol",
            authority: "KAZ-BS",
            offset: "+05:00",
            dials: vec![],
            port: 0,
            dir: PathBuf::new(),
            pid: 0,
            child: None,
        },
        DemoPost {
            name: "kg-torugart",
            authority: "KGZ-BS",
            offset: "+06:00",
            dials: vec![],
            port: 0,
            dir: PathBuf::new(),
            pid: 0,
            child: None,
        },
    ];
    for post in &mut posts {
        post.dir = args.dir.join(post.name);
        stop_previous(&post.dir);
        post.port = free_port()?;
    }
    // A line: post A dials the centre, post B dials post A.
    posts[1].dials = vec![posts[0].port];
    posts[2].dials = vec![posts[1].port];
    stop_previous(&args.dir);
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir).with_context(|| format!("cannot clear {}", args.dir.display()))?;
    }
    std::fs::create_dir_all(&args.dir)?;
    let fleet = DemoFleet::init(&outpost, &args.dir)?;

    let mut clients = Vec::new();
    for post in &mut posts {
        clients.push(post.start(&outpostd, &fleet)?);
    }
    // The admin enrols the three posts at the centre; the roster reaches
    // the others over their links, ahead of any document.
    fleet.enroll(&outpost, &posts[0], &posts[0], "centre", "incident-log")?;
    fleet.enroll(&outpost, &posts[0], &posts[1], "post", "watchlist")?;
    fleet.enroll(&outpost, &posts[0], &posts[2], "post", "watchlist")?;
    let started = Instant::now();
    while !posts.iter().all(|p| roster_version(p) == 3) {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the roster did not reach every post within a minute; see the posts' outpostd.log");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let centre = &mut clients[0];

    let mut generator = Generator::new(42);
    let mut entries = known_entries();
    entries.extend((0..args.entries).map(|_| generator.entry()));
    let mut imported = 0;
    for batch in entries.chunks(1000) {
        if let Response::Imported(done) = call(centre, Request::WatchlistImport { entries: batch.to_vec() })? {
            imported += done.ids.len();
        }
    }
    let hit = match call(
        centre,
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
        call(centre, Request::IncidentLog { incident: Box::new(incident) })?;
    }
    println!("Started a fleet of three posts on loopback, as a line: kz-centre <-> kz-nurzhol <-> kg-torugart.");
    println!(
        "Enrolled them in the fleet roster (version 3), signed with the demo's admin key {}; every change is signed.",
        fleet.admin_key.display()
    );
    println!(
        "kz-centre holds {imported} watchlist entries and 3 incidents; kg-torugart only ever talks to kz-nurzhol.\n"
    );

    // 1. A change crosses two hops.
    let first = add_person(centre, "Бахтиёр Турсунов", "Demo: recorded at the centre")?;
    let took = wait_until_held("the centre's entry reaching kg-torugart", &[(&posts[2], &first)])?;
    println!(
        "1. Recorded Бахтиёр Турсунов at kz-centre; it reached kg-torugart through kz-nurzhol in {} ms.",
        took.as_millis()
    );

    // 2. Cut post A off; both ends keep recording.
    posts[1].stop();
    let at_centre = add_person(&mut clients[0], "Фарзона Рахимова", "Demo: recorded at the centre while cut off")?;
    let at_end = add_person(&mut clients[2], "Талант Жумабаев", "Demo: recorded at kg-torugart while cut off")?;
    println!("2. Stopped kz-nurzhol. Recorded Фарзона Рахимова at kz-centre and Талант Жумабаев at kg-torugart;");
    println!(
        "   kg-torugart holds the centre's new entry: {}; kz-centre holds kg-torugart's: {}.",
        holds(&posts[2].socket(), &at_centre),
        holds(&posts[0].socket(), &at_end)
    );

    // 3. Heal.
    clients.truncate(1);
    posts[1].start(&outpostd, &fleet)?;
    let took = wait_until_held(
        "the fleet converging after kz-nurzhol came back",
        &[(&posts[2], &at_centre), (&posts[0], &at_end), (&posts[1], &at_centre), (&posts[1], &at_end)],
    )?;
    println!("3. Restarted kz-nurzhol; all three posts hold both entries {} ms later.\n", took.as_millis());

    let o = outpost.display();
    println!("The fleet is still running. Query any post by pointing the CLI at its socket:\n");
    for post in &posts {
        println!("  OUTPOST_SOCKET={} {o} peers", post.socket().display());
    }
    println!("\nThen, for example:\n");
    println!("  export OUTPOST_SOCKET={}", posts[2].socket().display());
    println!("  {o} status");
    println!("  {o} watchlist search \"MUKHAMMAD ALIEV\" --purpose \"demo\"");
    println!("  {o} watchlist search \"Мухаммад Алиев\" --purpose \"demo\"");
    println!("  {o} watchlist search \"ALIEV<<MUKHAMMAD\" --dob 1985 --purpose \"demo\"");
    println!("  {o} watchlist search \"Magomed Aliyev\" --explain --purpose \"demo\"");
    println!("  {o} watchlist search \"777abc02\" --purpose \"vehicle check\"");
    println!("  {o} watchlist add person --name \"Азамат Бекмуратов\" --category warning --reason \"demo\"");
    println!("  {o} sync");
    println!("  {o} fleet roster");
    println!("  {o} incident list");
    println!("  {o} audit --limit 10");
    let pids: Vec<String> = posts.iter().map(|p| p.pid.to_string()).collect();
    println!("\nStop the fleet with: kill {}    (logs: {}/*/outpostd.log)", pids.join(" "), args.dir.display());
    Ok(())
}
