//! `outpostd --check-config`: the configuration validated as the daemon
//! would load it, then what it names looked for on this machine. Key files
//! and groups not there yet are warnings, so that it runs on a fresh
//! install; so is a key path the packaged unit would not load.

use std::path::Path;

use crate::config::{Environment, Membership, Overrides, load};
use crate::keys::{KeyFile, KeySource, inspect};

pub use crate::config::ConfigError;

/// Where the packaged unit's `LoadCredential=` lines read the keys from.
pub const UNIT_NODE_KEY: &str = "/etc/outpost/node.key";
pub const UNIT_FLEET_KEY: &str = "/etc/outpost/swarm.key";
/// Where `systemd/fleet-key-next.conf.example` loads the next fleet key from.
pub const UNIT_FLEET_KEY_NEXT: &str = "/etc/outpost/swarm-next.key";
/// Where ADMIN.md installs that drop-in.
const NEXT_KEY_DROP_IN: &str = "/etc/systemd/system/outpostd.service.d/fleet-key-next.conf";

/// What `outpostd --check-config` found besides errors.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Things that would stop or limit the daemon but are normal on a
    /// fresh install: key files not made yet, groups not created yet.
    pub warnings: Vec<String>,
}

fn key_warning(what: &str, source: &KeySource, remedy: &str) -> Option<String> {
    match inspect(&source.path()) {
        KeyFile::Private(_) => None,
        KeyFile::Readable { mode } => {
            Some(format!("{what} {source} has mode {mode:o}: outpostd refuses a key others can read (chmod 600)"))
        }
        KeyFile::Missing => Some(format!("{what} {source} does not exist yet: {remedy}")),
        KeyFile::Unreadable(err) => Some(format!("{what} {source} cannot be checked: {err}")),
    }
}

/// A key file the packaged unit would not load: under the unit the key
/// comes from the credential, whatever the config names.
fn unit_path_warning(what: &str, source: &KeySource, unit: &str) -> Option<String> {
    let KeySource::File(path) = source else { return None };
    (path != Path::new(unit)).then(|| {
        format!(
            "{what} is {} but the packaged unit loads {unit} (LoadCredential=); under systemd that file is the one \
             used, so keep them the same",
            path.display()
        )
    })
}

/// Validates the configuration as `load` does, then looks for the files
/// and groups it names, reporting their absence as warnings.
pub fn check(overrides: &Overrides, env: &dyn Environment) -> Result<CheckReport, ConfigError> {
    let config = load(overrides, env)?;
    let mut report = CheckReport::default();
    if !config.node_key.create_if_missing {
        report.warnings.extend(key_warning(
            "the node key",
            &config.node_key.source,
            "create it with `outpostd --init`",
        ));
        report.warnings.extend(unit_path_warning("node_key_file", &config.node_key.source, UNIT_NODE_KEY));
    }
    match &config.network {
        Some(network) => {
            report.warnings.extend(key_warning(
                "the fleet key",
                &network.psk,
                "copy the fleet's swarm.key there (mode 0600)",
            ));
            report.warnings.extend(unit_path_warning("psk_file", &network.psk, UNIT_FLEET_KEY));
            if let Some(next) = &network.psk_next {
                report.warnings.extend(key_warning(
                    "the next fleet key",
                    next,
                    "copy the new swarm.key there (mode 0600), and add the fleet-key-next drop-in under systemd",
                ));
                report.warnings.extend(unit_path_warning("psk_next_file", next, UNIT_FLEET_KEY_NEXT));
                if !Path::new(NEXT_KEY_DROP_IN).exists() {
                    report.warnings.push(format!(
                        "psk_next_file is set but {NEXT_KEY_DROP_IN} does not exist: under systemd the next key \
                         reaches the daemon only through that drop-in, and without it the daemon runs on its current \
                         key alone (ADMIN.md, \"Rotating keys\")"
                    ));
                }
                if let (Ok(current), Ok(next)) = (crate::keys::read_psk(&network.psk), crate::keys::read_psk(next))
                    && current == next
                {
                    report.warnings.push(
                        "the next fleet key is the current one: the daemon ignores it; install the new key".into(),
                    );
                }
            }
            if network.membership == Membership::Nobody {
                report.warnings.push(
                    "no fleet_admin is set: this post replicates with nobody until [network] fleet_admin names the \
                     fleet admin's public key"
                        .into(),
                );
            }
        }
        None => report.warnings.push("no psk_file is set: this post does not network".into()),
    }
    for (role, group) in [
        ("officer", &config.roles.officer),
        ("supervisor", &config.roles.supervisor),
        ("auditor", &config.roles.auditor),
    ] {
        if !matches!(nix::unistd::Group::from_name(group), Ok(Some(_))) {
            report.warnings.push(format!(
                "the {role} group {group:?} does not exist: nobody holds that role (the package's sysusers file \
                 creates the default groups)"
            ));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::tests::{FakeEnv, with_file};

    #[test]
    fn check_config_warns_of_missing_keys_and_groups_but_passes() {
        let dir = tempfile::tempdir().unwrap();
        let admin = outpost_model::trust::Signer::from_secret([5; 32]).public().to_hex();
        let text = format!(
            "authority = \"KAZ-BS\"\ndata_dir = \"{0}\"\nnode_key_file = \"{0}/node.key\"\n[roles]\nauditor = \"no-such-group-here\"\n[network]\npsk_file = \"{0}/swarm.key\"\nfleet_admin = \"{admin}\"\n",
            dir.path().display()
        );
        let (_file, overrides) = with_file(&text);
        let report = check(&overrides, &FakeEnv::default()).unwrap();
        let all = report.warnings.join("\n");
        assert!(all.contains("node.key does not exist yet: create it with `outpostd --init`"), "{all}");
        assert!(all.contains("swarm.key does not exist yet"), "{all}");
        assert!(all.contains("\"no-such-group-here\" does not exist"), "{all}");
        crate::keys::create_node_key(&dir.path().join("node.key")).unwrap();
        let report = check(&overrides, &FakeEnv::default()).unwrap();
        assert!(!report.warnings.join("\n").contains("node.key does not exist"), "{:?}", report.warnings);
        let (_file, overrides) = with_file("authority = \"KAZ-BS\"\nsocket_mode = 5\n");
        assert!(check(&overrides, &FakeEnv::default()).unwrap_err().to_string().contains("socket_mode"));
    }

    #[test]
    fn key_paths_the_unit_would_not_load_are_named() {
        let (_file, overrides) = with_file(
            "authority = \"KAZ-BS\"\ndata_dir = \"/srv\"\nnode_key_file = \"/srv/node.key\"\n[network]\npsk_file = \"/etc/outpost/swarm.key\"\n",
        );
        let all = check(&overrides, &FakeEnv::default()).unwrap().warnings.join("\n");
        assert!(
            all.contains("node_key_file is /srv/node.key but the packaged unit loads /etc/outpost/node.key"),
            "{all}"
        );
        assert!(!all.contains("psk_file is"), "{all}");
    }
}
