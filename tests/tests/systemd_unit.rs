//! `outpostd` started the way `systemd/outpostd.service` starts it, without
//! systemd: a credentials directory holding the keys, a state directory, a
//! runtime directory, `NOTIFY_SOCKET` and `WATCHDOG_USEC`. The test is the
//! service manager: it reads READY=1, STATUS= and the watchdog pings from
//! its own notify socket, wedges the writer thread (ptrace stops that one
//! thread, as a hung disk would) and checks that the pings stop, then that
//! they resume.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost_tests::harness::{FleetKey, Run, START_DEADLINE, binary, free_port};

/// The watchdog interval the test asks for: pings every half second or so.
const WATCHDOG: Duration = Duration::from_secs(2);

/// The test's end of `NOTIFY_SOCKET`.
struct Manager {
    socket: UnixDatagram,
    /// Every line received, in order.
    seen: Vec<String>,
}

impl Manager {
    fn bind(path: &Path) -> Self {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("read timeout");
        Self { socket, seen: Vec::new() }
    }

    /// Lines received before `until`; empty once it passed.
    fn receive(&mut self, until: Instant) -> Vec<String> {
        let mut buffer = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = self.socket.recv(&mut buffer) {
                let lines: Vec<String> = String::from_utf8_lossy(&buffer[..n]).lines().map(str::to_string).collect();
                self.seen.extend(lines.iter().cloned());
                return lines;
            }
        }
        Vec::new()
    }

    /// Waits for a line `matches` accepts; returns it.
    fn wait_for(&mut self, what: &str, within: Duration, matches: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + within;
        loop {
            assert!(Instant::now() < until, "no {what} within {within:?}; received {:?}", self.seen);
            if let Some(line) = self.receive(until).into_iter().find(|l| matches(l)) {
                return line;
            }
        }
    }

    /// Lines received during `window`.
    fn during(&mut self, window: Duration) -> Vec<String> {
        let until = Instant::now() + window;
        let mut lines = Vec::new();
        while Instant::now() < until {
            lines.extend(self.receive(until));
        }
        lines
    }
}

/// The directories systemd would make for the unit, and a config.
struct UnitEnvironment {
    dir: tempfile::TempDir,
}

impl UnitEnvironment {
    fn new(fleet: &FleetKey) -> Self {
        Self::listening_on(fleet, free_port())
    }

    fn listening_on(fleet: &FleetKey, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, mode) in [("state", 0o700), ("run", 0o750), ("credentials", 0o700)] {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).expect("create a unit directory");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let swarm = dir.path().join("credentials/swarm.key");
        std::fs::copy(fleet.path(), &swarm).expect("copy the fleet key");
        std::fs::set_permissions(&swarm, std::fs::Permissions::from_mode(0o400)).expect("chmod the credential");
        // The paths named here are the packaged ones: under the unit the
        // keys come from the credentials, whatever the files say.
        let config = format!(
            "node_name = \"kz-nurzhol\"\nauthority = \"KAZ-BS\"\nutc_offset = \"+05:00\"\n\
             node_key_file = \"/etc/outpost/node.key\"\n\
             [network]\npsk_file = \"/etc/outpost/swarm.key\"\npsk_only = true\nmdns = false\n\
             listen = [\"/ip4/127.0.0.1/tcp/{port}\"]\n"
        );
        std::fs::write(dir.path().join("outpostd.toml"), config).expect("write the config");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `outpostd --init` writing the node key where the unit loads it from
    /// (here, straight into the credentials directory); its peer id.
    fn init_node_key(&self) -> String {
        let run = Run::from_output(
            Command::new(binary("outpostd"))
                .arg("--init")
                .arg("--node-key-file")
                .arg(self.path("credentials/node.key"))
                .output()
                .expect("run outpostd --init"),
        );
        assert_eq!(run.code, 0, "outpostd --init failed: {run:?}");
        assert!(run.stderr.contains("created the node key"), "{run:?}");
        run.stdout.trim().to_string()
    }

    /// Starts `outpostd` as the unit does, with `manager` as its notify socket.
    fn start(&self) -> Child {
        let log = std::fs::File::create(self.path("outpostd.log")).expect("log file");
        Command::new(binary("outpostd"))
            .arg("--config")
            .arg(self.path("outpostd.toml"))
            .env("STATE_DIRECTORY", self.path("state"))
            .env("RUNTIME_DIRECTORY", self.path("run"))
            .env("CREDENTIALS_DIRECTORY", self.path("credentials"))
            .env("NOTIFY_SOCKET", self.path("notify.sock"))
            .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
            .env_remove("JOURNAL_STREAM")
            .env_remove("OUTPOST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn outpostd")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("outpostd.log")).unwrap_or_default()
    }

    fn outpost(&self, args: &[&str]) -> Run {
        Run::from_output(
            Command::new(binary("outpost"))
                .args(args)
                .env("OUTPOST_SOCKET", self.path("run/outpostd.sock"))
                .stdin(Stdio::null())
                .output()
                .expect("run outpost"),
        )
    }
}

/// The thread id of `pid`'s thread named `name`.
fn thread_named(pid: u32, name: &str) -> i32 {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the daemon's threads").flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return task.file_name().to_string_lossy().parse().expect("a thread id");
        }
    }
    panic!("outpostd has no thread named {name}");
}

/// Stops one thread of another process (and only that thread) until dropped.
struct StoppedThread(nix::unistd::Pid);

impl StoppedThread {
    fn stop(tid: i32) -> Self {
        use nix::sys::ptrace;
        use nix::sys::wait::{WaitPidFlag, waitpid};
        let tid = nix::unistd::Pid::from_raw(tid);
        ptrace::seize(tid, ptrace::Options::empty())
            .expect("ptrace the writer thread (needs root or CAP_SYS_PTRACE, as CI has)");
        ptrace::interrupt(tid).expect("interrupt the writer thread");
        waitpid(tid, Some(WaitPidFlag::__WALL)).expect("wait for the writer thread to stop");
        Self(tid)
    }
}

impl Drop for StoppedThread {
    fn drop(&mut self) {
        let _ = nix::sys::ptrace::detach(self.0, None);
    }
}

#[test]
fn started_as_the_unit_does_it_reports_ready_pings_while_healthy_and_stops_pinging_when_the_writer_is_wedged() {
    let fleet = FleetKey::generate();
    let unit = UnitEnvironment::new(&fleet);
    let peer_id = unit.init_node_key();
    assert!(peer_id.starts_with("12D3KooW"), "{peer_id}");
    // The post can be enrolled before it ever starts.
    let whoami = Run::from_output(
        Command::new(binary("outpost"))
            .args(["fleet", "whoami", "--key"])
            .arg(unit.path("credentials/node.key"))
            .output()
            .expect("run outpost fleet whoami"),
    );
    assert_eq!((whoami.code, whoami.stdout.trim()), (0, peer_id.as_str()), "{whoami:?}");

    let mut manager = Manager::bind(&unit.path("notify.sock"));
    let mut daemon = unit.start();
    let pid = daemon.id();
    manager.wait_for("READY=1", START_DEADLINE, |l| l == "READY=1");
    // Ready means the socket answers, with the credential's identity.
    let status = unit.outpost(&["--json", "status"]);
    assert_eq!(status.code, 0, "status right after READY=1: {status:?}\n{}", unit.log());
    assert_eq!(status.json()["peer_id"].as_str(), Some(peer_id.as_str()), "{}", status.stdout);
    assert!(unit.path("run/outpostd.sock").exists());
    assert!(!unit.path("state/node.key").exists(), "under the unit the node key is never made in the state directory");

    manager.wait_for("a STATUS= line naming peers", WATCHDOG * 5, |l| {
        l.starts_with("STATUS=") && l.contains("peers connected")
    });
    for n in 0..3 {
        manager.wait_for(&format!("watchdog ping {n}"), WATCHDOG, |l| l == "WATCHDOG=1");
    }

    let writer = thread_named(pid, "outpost-writer");
    let wedged = StoppedThread::stop(writer);
    let stalled =
        manager.wait_for("STATUS= saying the writer is stalled", WATCHDOG * 3, |l| l.starts_with("STATUS=STALLED"));
    assert!(stalled.contains("the writer"), "{stalled}");
    let meanwhile = manager.during(WATCHDOG * 2);
    assert!(
        !meanwhile.iter().any(|l| l == "WATCHDOG=1"),
        "pings went on for two watchdog intervals with the writer wedged: {meanwhile:?}"
    );
    assert!(daemon.try_wait().expect("poll outpostd").is_none(), "outpostd exited while wedged");
    // The health check says so within its own deadline (exit 10), rather
    // than leaving the CLI to give up on the daemon (exit 1 or 3).
    let check = unit.outpost(&["status", "--check"]);
    assert_eq!(check.code, 10, "{check:?}");
    assert!(check.stdout.contains("did not answer"), "{check:?}");

    drop(wedged);
    manager.wait_for("pings once the writer runs again", WATCHDOG * 3, |l| l == "WATCHDOG=1");
    manager.wait_for("STATUS= healthy again", WATCHDOG * 3, |l| l.starts_with("STATUS=") && !l.contains("STALLED"));

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM outpostd");
    manager.wait_for("STOPPING=1", START_DEADLINE, |l| l == "STOPPING=1");
    let exit = daemon.wait().expect("wait for outpostd");
    assert!(exit.success(), "outpostd exited with {exit} on SIGTERM\n{}", unit.log());
    assert!(unit.log().contains("systemd watchdog on"), "{}", unit.log());
}

#[test]
fn a_network_loop_that_ended_is_reported_while_the_pings_go_on() {
    let fleet = FleetKey::generate();
    // Someone else holds the post's port: the network cannot listen and
    // its loop ends. Officers can still work, and a restart would not
    // free the port, so the daemon says so and keeps pinging.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unit = UnitEnvironment::listening_on(&fleet, taken.local_addr().unwrap().port());
    unit.init_node_key();
    let mut manager = Manager::bind(&unit.path("notify.sock"));
    let mut daemon = unit.start();
    manager.wait_for("READY=1", START_DEADLINE, |l| l == "READY=1");
    let status =
        manager.wait_for("STATUS= saying the network stopped", WATCHDOG * 5, |l| l.contains("NETWORK STOPPED"));
    assert!(!status.contains("STALLED"), "{status}");
    for n in 0..3 {
        manager.wait_for(&format!("watchdog ping {n} with the network ended"), WATCHDOG, |l| l == "WATCHDOG=1");
    }
    assert!(unit.log().contains("cannot listen on"), "{}", unit.log());
    let search = unit.outpost(&["watchlist", "list"]);
    assert_eq!(search.code, 0, "officers still work: {search:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .expect("SIGTERM outpostd");
    assert!(daemon.wait().unwrap().success(), "{}", unit.log());
}

#[test]
fn a_missing_credential_stops_the_daemon_with_exit_78_naming_it_and_makes_no_key() {
    let fleet = FleetKey::generate();
    let unit = UnitEnvironment::new(&fleet);
    let _manager = Manager::bind(&unit.path("notify.sock"));
    let mut daemon = unit.start();
    let exit = daemon.wait().expect("wait for outpostd");
    // 78 is the unit's RestartPreventExitStatus=: no restart loop.
    assert_eq!(exit.code(), Some(78), "{}", unit.log());
    let log = unit.log();
    assert!(log.contains("systemd credential \"node.key\"") && log.contains("outpostd --init"), "{log}");
    assert!(!unit.path("credentials/node.key").exists() && !unit.path("state/node.key").exists());
}

#[test]
fn check_config_passes_the_shipped_example_and_names_an_unknown_key_with_its_line() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let check = |config: &Path| {
        Run::from_output(
            Command::new(binary("outpostd"))
                .arg("--check-config")
                .arg("--config")
                .arg(config)
                .env_remove("CREDENTIALS_DIRECTORY")
                .env("STATE_DIRECTORY", "/var/lib/outpost")
                .output()
                .expect("run outpostd --check-config"),
        )
    };
    let example = check(&workspace.join("systemd/outpostd.toml.example"));
    assert_eq!(example.code, 0, "{example:?}");
    assert!(example.stdout.contains("valid"), "{example:?}");
    assert!(example.stderr.contains("warning:"), "a fresh install has no keys yet: {example:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("outpostd.toml");
    std::fs::write(&bad, "authority = \"KAZ-BS\"\n[network]\nmdns = true\nlisten_adress = []\n").expect("write");
    let run = check(&bad);
    assert_eq!(run.code, 78, "{run:?}");
    assert!(run.stderr.contains("listen_adress") && run.stderr.contains("line 4"), "{run:?}");

    let missing = check(&dir.path().join("nowhere.toml"));
    assert_eq!(missing.code, 78, "{missing:?}");
    assert!(
        missing.stderr.contains("cannot read config file") && missing.stderr.contains("nowhere.toml"),
        "{missing:?}"
    );
}
