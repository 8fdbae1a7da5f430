//! Officer roles on the control socket, driven through the real CLI run as
//! real Unix users: each role may do its own requests, is refused the
//! others with exit code 5 and the role it lacks, and the audit log names
//! the officer and the role. Needs root, to make the users and groups.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::process::Command;

use outpost_tests::harness::{Post, PostOptions, Run, binary, running_as_root};

/// Users and groups made for this test, removed when it ends.
struct Accounts {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Accounts {
    fn group(&mut self, name: &str) {
        let out = Command::new("groupadd").arg(name).output().expect("run groupadd");
        assert!(out.status.success(), "groupadd {name}: {}", String::from_utf8_lossy(&out.stderr));
        self.groups.push(name.to_string());
    }

    fn user(&mut self, name: &str, groups: &[&str]) -> (u32, u32) {
        let mut command = Command::new("useradd");
        command.args(["--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group"]);
        if !groups.is_empty() {
            command.arg("--groups").arg(groups.join(","));
        }
        let out = command.arg(name).output().expect("run useradd");
        assert!(out.status.success(), "useradd {name}: {}", String::from_utf8_lossy(&out.stderr));
        self.users.push(name.to_string());
        let user = nix::unistd::User::from_name(name).unwrap().unwrap();
        (user.uid.as_raw(), user.gid.as_raw())
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for user in &self.users {
            let _ = Command::new("userdel").arg(user).output();
        }
        for group in &self.groups {
            let _ = Command::new("groupdel").arg(group).output();
        }
    }
}

/// A copy of `outpost` every user may run: the checkout it was built in
/// may sit in a directory only root can enter (`mktemp -d`).
fn shared_cli() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cli = dir.path().join("outpost");
    std::fs::copy(binary("outpost"), &cli).unwrap();
    std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, cli)
}

fn as_user(cli: &std::path::Path, post: &Post, (uid, gid): (u32, u32), args: &[&str]) -> Run {
    let output = Command::new(cli)
        .args(args)
        .env("OUTPOST_SOCKET", post.socket())
        .uid(uid)
        .gid(gid)
        .output()
        .expect("run outpost as another user");
    Run::from_output(output)
}

#[test]
fn each_role_does_its_own_requests_and_is_refused_the_rest_by_name() {
    if !running_as_root("makes Unix users and groups") {
        return;
    }
    let tag = format!("op{}", std::process::id() % 100_000);
    let (officers, supervisors, auditors) = (format!("{tag}o"), format!("{tag}s"), format!("{tag}a"));
    let mut accounts = Accounts { users: Vec::new(), groups: Vec::new() };
    for group in [&officers, &supervisors, &auditors] {
        accounts.group(group);
    }
    let officer = accounts.user(&format!("{tag}off"), &[&officers]);
    let supervisor = accounts.user(&format!("{tag}sup"), &[&officers, &supervisors]);
    let auditor = accounts.user(&format!("{tag}aud"), &[&officers, &auditors]);
    let stranger = accounts.user(&format!("{tag}x"), &[]);

    let post = Post::start_with(PostOptions {
        extra_config: format!(
            "socket_mode = \"0666\"\n[roles]\nofficer = \"{officers}\"\nsupervisor = \"{supervisors}\"\nauditor = \"{auditors}\"\n"
        ),
        ..Default::default()
    });
    post.open_socket_dir();
    let (_shared, cli) = shared_cli();

    let search = ["--json", "watchlist", "search", "Алиев", "--purpose", "role test"];
    let add = [
        "--json",
        "watchlist",
        "add",
        "person",
        "--name",
        "Бахтиёр Турсунов",
        "--category",
        "warning",
        "--reason",
        "r",
    ];
    let audit = ["--json", "audit", "--limit", "50"];

    assert_eq!(as_user(&cli, &post, officer, &search).code, 0);
    let refused = as_user(&cli, &post, officer, &add);
    assert_eq!(refused.code, 5, "{refused:?}");
    assert!(refused.stderr.contains("supervisor") && refused.stderr.contains(&supervisors), "{refused:?}");
    assert_eq!(as_user(&cli, &post, officer, &audit).code, 5);

    let added = as_user(&cli, &post, supervisor, &add);
    assert_eq!(added.code, 0, "{added:?}");
    let id = added.json()["id"].as_str().unwrap().to_string();
    let close = ["--json", "watchlist", "close", &id, "--reason", "role test"];
    assert_eq!(as_user(&cli, &post, officer, &close).code, 5);
    assert_eq!(as_user(&cli, &post, supervisor, &close).code, 0);
    assert_eq!(as_user(&cli, &post, supervisor, &audit).code, 5);

    let stranger_status = as_user(&cli, &post, stranger, &["--json", "status"]);
    assert_eq!(stranger_status.code, 5, "a user in none of the groups has no role: {stranger_status:?}");

    let log = as_user(&cli, &post, auditor, &audit);
    assert_eq!(log.code, 0, "{log:?}");
    let records = log.json()["records"].as_array().unwrap().clone();
    let find = |action: &str| records.iter().find(|r| r["action"] == action).unwrap_or_else(|| panic!("no {action}"));
    assert_eq!(find("watchlist.add")["user"], format!("{tag}sup"));
    assert_eq!(find("watchlist.add")["role"], "supervisor");
    assert_eq!(find("watchlist.search")["user"], format!("{tag}off"));
    assert_eq!(find("watchlist.search")["role"], "officer");
    assert_eq!(find("audit.read")["role"], "auditor");

    // A backup holds every record and the audit log: root and the
    // daemon's user only. The file is not left behind.
    let backups = tempfile::tempdir().unwrap();
    std::fs::set_permissions(backups.path(), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let file = backups.path().join("post.backup");
    for user in [officer, supervisor, auditor] {
        let refused = as_user(&cli, &post, user, &["backup", file.to_str().unwrap()]);
        assert_eq!(refused.code, 5, "{refused:?}");
        assert!(refused.stderr.contains("admin"), "{refused:?}");
        assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 0, "a refused backup left a file");
    }
}
