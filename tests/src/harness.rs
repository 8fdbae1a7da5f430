//! Real `outpostd` processes in temporary directories, driven through the
//! real `outpost` binary. Nothing here sleeps to wait: every wait polls a
//! condition until a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// How long a daemon may take to answer after it was started.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// The directory cargo put the workspace binaries in (`target/debug` for tests).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("executable directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn newest_source(root: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            // Unit-test files are not compiled into the binaries, so a
            // change to one does not rebuild them.
            let test_only =
                path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n == "tests.rs" || n.ends_with("_tests.rs"));
            if path.is_dir() {
                stack.push(path);
            } else if test_only {
                continue;
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                newest = newest.max(modified);
            }
        }
    }
    newest
}

/// Path of a workspace binary, refusing one older than its sources so a
/// test never silently runs yesterday's daemon.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| {
        panic!("{} is missing: run `cargo build --workspace` first (the README's test command does)", path.display())
    });
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let sources: &[&str] = match name {
        "outpostd" => &["crdt-model/src", "daemon/src"],
        "outpost" => &["crdt-model/src", "cli/src"],
        _ => &[],
    };
    for crate_dir in sources {
        let source = newest_source(&workspace.join(crate_dir));
        assert!(
            built >= source,
            "{} is older than {crate_dir}: run `cargo build --workspace` before the tests",
            path.display()
        );
    }
    path
}

/// The outcome of one `outpost` invocation.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(output: Output) -> Self {
        Self::from(output)
    }

    fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }
}

/// Options for a post; the defaults make a Kazakh border post.
#[derive(Debug, Clone)]
pub struct PostOptions {
    pub node_name: String,
    pub authority: String,
    pub utc_offset: String,
    /// Extra TOML appended to the generated config file.
    pub extra_config: String,
    /// A command that runs `outpostd` (such as `ip netns exec NS`); empty:
    /// run it directly.
    pub wrapper: Vec<String>,
    /// Files copied into the data directory before the first start (a
    /// store written by an older release), with mode 0600.
    pub data_from: Option<PathBuf>,
    /// Mount a tmpfs of this many bytes as the data directory (needs root),
    /// so that a test can fill the disk.
    pub data_tmpfs: Option<u64>,
}

impl Default for PostOptions {
    fn default() -> Self {
        Self {
            node_name: "kz-nurzhol".into(),
            authority: "KAZ-BS".into(),
            utc_offset: "+05:00".into(),
            extra_config: String::new(),
            wrapper: Vec::new(),
            data_from: None,
            data_tmpfs: None,
        }
    }
}

/// One post: a data directory, a socket and, while running, an `outpostd`.
#[derive(Debug)]
pub struct Post {
    dir: tempfile::TempDir,
    child: Option<Child>,
    wrapper: Vec<String>,
    /// The name and authority it was configured with.
    pub name: String,
    pub authority: String,
    /// A tmpfs mounted as the data directory, unmounted when dropped.
    mounted: Option<PathBuf>,
}

impl Post {
    pub fn start() -> Self {
        Self::start_with(PostOptions::default())
    }

    pub fn start_with(options: PostOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "node_name = \"{}\"\nauthority = \"{}\"\nutc_offset = \"{}\"\ndata_dir = \"{}\"\nsocket = \"{}\"\n{}\n",
            options.node_name,
            options.authority,
            options.utc_offset,
            dir.path().join("data").display(),
            dir.path().join("outpostd.sock").display(),
            options.extra_config
        );
        std::fs::write(dir.path().join("outpostd.toml"), config).expect("write config");
        if let Some(from) = &options.data_from {
            use std::os::unix::fs::PermissionsExt;
            let data = dir.path().join("data");
            std::fs::create_dir(&data).expect("create the data directory");
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod the data directory");
            for file in std::fs::read_dir(from).expect("read the seed data").flatten() {
                let to = data.join(file.file_name());
                std::fs::copy(file.path(), &to).expect("copy seed data");
                std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod seed data");
            }
        }
        let mut mounted = None;
        if let Some(bytes) = options.data_tmpfs {
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).expect("create the data directory");
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700"), "tmpfs"])
                .arg(&data)
                .output()
                .expect("run mount");
            assert!(
                out.status.success(),
                "mount a tmpfs at {}: {}",
                data.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            mounted = Some(data);
        }
        let mut post = Self {
            dir,
            child: None,
            wrapper: options.wrapper,
            name: options.node_name,
            authority: options.authority,
            mounted,
        };
        post.spawn();
        post
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("outpostd.sock")
    }

    /// Lets other users reach the socket (its directory is private), for
    /// tests that call the daemon as other users.
    pub fn open_socket_dir(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the post's dir");
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("outpostd.log")).unwrap_or_default()
    }

    /// Starts `outpostd` on this post's config, logging to `outpostd.log`.
    fn launch(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("outpostd.log"))
            .expect("log file");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary("outpostd"));
                command
            }
            None => Command::new(binary("outpostd")),
        };
        let child = command
            .arg("--config")
            .arg(self.dir.path().join("outpostd.toml"))
            .env("OUTPOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn outpostd");
        self.child = Some(child);
    }

    /// Starts the daemon and waits until it answers `status`.
    pub fn spawn(&mut self) {
        self.launch();
        self.wait_ready();
    }

    /// Starts the daemon and returns how long it took until `probe` first
    /// succeeded, polling every 2 ms: the cold-start time a user sees.
    pub fn spawn_measured(&mut self, mut probe: impl FnMut(&Path) -> bool) -> Duration {
        let started = Instant::now();
        self.launch();
        let socket = self.socket();
        while !probe(&socket) {
            assert!(started.elapsed() < START_DEADLINE, "outpostd did not answer within {START_DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
        started.elapsed()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if self.outpost(&["status", "--json"]).code == 0 {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("outpostd exited with {status} during start:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "outpostd did not answer within {START_DEADLINE:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown code runs, as in a power cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon not running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        child.wait().expect("wait for outpostd")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `outpost` against this post.
    pub fn outpost(&self, args: &[&str]) -> Run {
        let output = Command::new(binary("outpost"))
            .args(args)
            .env("OUTPOST_SOCKET", self.socket())
            .stdin(Stdio::null())
            .output()
            .expect("run outpost");
        Run::from(output)
    }

    /// Adds a person to the watchlist as a supervisor would, asserting
    /// success; returns the new entry's id.
    pub fn add_person(&self, name: &str) -> String {
        let added =
            self.json(&["watchlist", "add", "person", "--name", name, "--category", "warning", "--reason", "test"]);
        added["id"].as_str().expect("the new entry's id").to_string()
    }

    /// Runs `outpost --json …`, asserting success.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.outpost(&all);
        assert_eq!(run.code, 0, "outpost {args:?} failed: {run:?}\n{}", self.log());
        run.json()
    }
}

impl Drop for Post {
    fn drop(&mut self) {
        self.kill();
        if let Some(data) = self.mounted.take() {
            let _ = Command::new("umount").arg(&data).output();
        }
    }
}

/// Whether the test runs as root; when it does not, it may only be skipped
/// on request (`OUTPOST_SKIP_ROOT_TESTS`), never silently. `needs` says
/// what root is needed for.
pub fn running_as_root(needs: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("OUTPOST_SKIP_ROOT_TESTS").is_some(),
        "this test {needs} and needs root; run as root, or set OUTPOST_SKIP_ROOT_TESTS=1"
    );
    eprintln!("SKIPPED on request (OUTPOST_SKIP_ROOT_TESTS): not root");
    false
}

/// Polls `condition` every few milliseconds until it holds or `deadline` passes.
pub fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < until, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `probe` every 100 ms until it gives `Ok` or `deadline` passes,
/// then panics naming `what` and showing the last `Err` it gave.
pub fn wait_for_ok<T: std::fmt::Debug>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Result<(), T>) {
    let until = Instant::now() + deadline;
    loop {
        let last = match probe() {
            Ok(()) => return,
            Err(last) => last,
        };
        assert!(Instant::now() < until, "timed out after {deadline:?} waiting for {what}; last: {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP port on loopback that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A fleet: its admin key and its pre-shared key, written by the real
/// `outpost fleet init`.
#[derive(Debug)]
pub struct FleetKey {
    dir: tempfile::TempDir,
    /// The admin public key, 64 hex digits.
    pub admin: String,
}

impl FleetKey {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let fleet = dir.path().join("fleet");
        let run = Command::new(binary("outpost"))
            .args(["--json", "fleet", "init", "--dir"])
            .arg(&fleet)
            .output()
            .expect("run outpost fleet init");
        let run = Run::from(run);
        assert_eq!(run.code, 0, "outpost fleet init failed: {run:?}");
        let admin = run.json()["fleet_admin"].as_str().expect("the admin public key").to_string();
        Self { dir, admin }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("fleet/swarm.key")
    }

    pub fn admin_key(&self) -> PathBuf {
        self.dir.path().join("fleet/admin.key")
    }

    /// Enrols `member` with `role`, running `outpost fleet enroll` at `at`;
    /// `extra` are more flags (`--grant …`, `--regional`). Returns the
    /// command's outcome.
    pub fn enroll_with(&self, at: &Post, member: &Post, role: &str, extra: &[&str]) -> Run {
        self.enroll_peer(at, &member.peer_id(), &member.name, &member.authority, role, extra)
    }

    /// Enrols the node of `peer_id` (a test's own libp2p node, say) as
    /// `name` of `authority` with `role`, at `at`.
    pub fn enroll_peer(
        &self,
        at: &Post,
        peer_id: &str,
        name: &str,
        authority: &str,
        role: &str,
        extra: &[&str],
    ) -> Run {
        Self::enroll_signed(&self.admin_key(), at, (peer_id, name, authority, role), extra)
    }

    /// Enrols `(peer id, name, authority, role)` at `at`, signing with the
    /// admin key file `admin_key` (another than the fleet's, say).
    pub fn enroll_signed(admin_key: &Path, at: &Post, member: (&str, &str, &str, &str), extra: &[&str]) -> Run {
        let (peer_id, name, authority, role) = member;
        let mut args = vec![
            "--json",
            "fleet",
            "enroll",
            peer_id,
            "--name",
            name,
            "--role",
            role,
            "--authority",
            authority,
            "--admin-key",
            admin_key.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        at.outpost(&args)
    }

    /// Enrols `member` as a centre (writes its authority's watchlists) with
    /// its own incident log too, asserting success.
    pub fn enroll(&self, at: &Post, member: &Post) {
        let run = self.enroll_with(at, member, "centre", &["--grant", "incident-log"]);
        assert_eq!(run.code, 0, "enrolling {} failed: {run:?}\n{}", member.name, at.log());
    }

    /// Enrols every post at `at`.
    pub fn enroll_all(&self, at: &Post, posts: &[&Post]) {
        for post in posts {
            self.enroll(at, post);
        }
    }
}

/// A post of `authority` on loopback `port` in the fleet of `key`, dialling
/// the posts on `peers`.
pub fn networked_post(name: &str, authority: &str, key: &FleetKey, port: u16, peers: &[u16]) -> Post {
    Post::start_with(PostOptions {
        node_name: name.into(),
        authority: authority.into(),
        extra_config: network_config(key, port, peers),
        ..Default::default()
    })
}

/// The `[network]` section for a post on loopback `port` that dials the
/// posts on `peers`; mDNS is off so that tests running side by side do not
/// find each other.
pub fn network_config(key: &FleetKey, port: u16, peers: &[u16]) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("\"/ip4/127.0.0.1/tcp/{p}\"")).collect();
    format!(
        "[network]\nlisten = [\"/ip4/127.0.0.1/tcp/{port}\"]\npeers = [{}]\npsk_file = \"{}\"\nmdns = false\nfleet_admin = \"{}\"\n",
        peers.join(", "),
        key.path().display(),
        key.admin
    )
}

impl Post {
    /// This node's libp2p peer id, from `status`.
    pub fn peer_id(&self) -> String {
        self.json(&["status"])["peer_id"].as_str().expect("a peer id").to_string()
    }

    /// The signed roster this post holds, as `outpost fleet roster` gives it.
    pub fn roster_bytes(&self) -> Vec<u8> {
        let view = self.json(&["fleet", "roster"]);
        hex::decode(view["roster"].as_str().expect("a roster")).expect("the roster in hex")
    }

    /// The roster version this post holds, from `status`.
    pub fn roster_version(&self) -> u64 {
        self.json(&["status"])["replication"]["roster_version"].as_u64().unwrap_or(0)
    }

    /// Imports `count` generated entries (seed `seed`) with `outpost
    /// watchlist import`, `batch` to a request.
    pub fn import_generated(&self, seed: u64, count: usize, batch: usize) {
        use std::io::Write;
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let mut generator = crate::sample::Generator::new(seed);
        {
            let mut out = std::io::BufWriter::new(std::fs::File::create(file.path()).expect("create the import file"));
            for _ in 0..count {
                let line = serde_json::to_string(&generator.entry()).expect("encode an entry");
                writeln!(out, "{line}").expect("write the import file");
            }
        }
        let path = file.path().to_str().expect("utf-8 path");
        self.json(&["watchlist", "import", path, "--batch", &batch.to_string()]);
    }

    /// Entries this post holds, from `status`.
    pub fn entry_count(&self) -> u64 {
        self.json(&["status"])["entries"].as_u64().unwrap_or(0)
    }

    /// Changes held in quarantine until a roster lets them in, from
    /// `status`.
    pub fn held_changes(&self) -> u64 {
        self.json(&["status"])["replication"]["held_changes"].as_u64().unwrap_or(0)
    }

    /// What `outpost peers --json` says about the peer named `name`.
    pub fn peer_named(&self, name: &str) -> Option<Value> {
        let peers = self.json(&["peers"]);
        peers["peers"].as_array().and_then(|list| list.iter().find(|p| p["name"] == name).cloned())
    }

    /// Peers this post is connected to, from `outpost peers`.
    pub fn connected_peers(&self) -> Vec<String> {
        let peers = self.json(&["peers"]);
        peers["peers"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|p| p["connected"].as_bool() == Some(true))
                    .filter_map(|p| p["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }
}
