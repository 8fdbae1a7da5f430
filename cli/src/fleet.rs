//! `outpost fleet`: the admin's commands. The admin key never leaves the
//! admin's machine: the CLI reads the roster the daemon holds, builds the
//! next version with the model's rules, signs it with the key file, and
//! hands the signed roster to the daemon, which checks it and spreads it.

use std::path::Path;

use outpost_model::api::{FleetView, Request, Response};
use outpost_model::trust::readers::Audience;
use outpost_model::trust::roster::{CutEntry, Handover, Member, Right, Role, Roster, SignedRoster};
use outpost_model::trust::{PublicKey, Signer};
use outpost_model::validate;

use crate::args::Fleet;
use crate::client::Client;
use crate::failure::Failure;
use crate::keys::{read_admin_key, write_admin_key, write_fleet_key};
use crate::render::{self, print_json};

fn bad(err: impl std::fmt::Display) -> Failure {
    Failure::bad_input(err.to_string())
}

/// `outpost fleet init --dir DIR`: the admin key and the fleet key.
pub fn init(dir: &Path, json: bool) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Failure::Local { code: 1, message: format!("cannot create {}: {e}", dir.display()) })?;
    }
    let admin_path = dir.join("admin.key");
    let swarm_path = dir.join("swarm.key");
    for path in [&admin_path, &swarm_path] {
        if path.exists() {
            return Err(bad(format!("{} exists already; it is never overwritten", path.display())));
        }
    }
    let admin = write_admin_key(&admin_path)?;
    write_fleet_key(&swarm_path)?;
    let public = admin.public().to_hex();
    if json {
        print_json(&serde_json::json!({
            "fleet_admin": public,
            "admin_key": admin_path.display().to_string(),
            "swarm_key": swarm_path.display().to_string(),
        }));
    } else {
        println!("{public}");
        eprintln!(
            "wrote {} (the admin key: keep it offline, with the fleet's administrators) and {} (the fleet key: \
             every node's psk_file), both mode 0600.\nGive every daemon the admin public key above: \
             fleet_admin = \"{public}\" in [network], or --fleet-admin.",
            admin_path.display(),
            swarm_path.display()
        );
    }
    Ok(())
}

/// `outpost fleet whoami`: the peer id of a node key file.
pub fn whoami(path: &Path, json: bool) -> Result<(), Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => "; create it with `outpostd --init`",
            std::io::ErrorKind::PermissionDenied => "; it is readable by root only: run this with sudo",
            _ => "",
        };
        Failure::Local { code: 1, message: format!("cannot read {}: {e}{hint}", path.display()) }
    })?;
    let signer =
        outpost_model::trust::keys::parse_node_key_file(&bytes).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let peer_id = signer.public().peer_id();
    if json {
        print_json(&serde_json::json!({ "peer_id": peer_id, "key": path.display().to_string() }));
    } else {
        println!("{peer_id}");
    }
    Ok(())
}

/// Runs a fleet command; `connect` reaches the daemon, for the commands
/// that need it (`init` does not).
pub fn run(connect: impl FnOnce() -> Result<Client, Failure>, command: Fleet, json: bool) -> Result<(), Failure> {
    match command {
        Fleet::Init { dir } => init(&dir, json),
        Fleet::Whoami { key } => whoami(&key, json),
        Fleet::Roster => {
            let client = &mut connect()?;
            let view = roster_view(client)?;
            if json {
                print_json(&view)
            } else {
                print!("{}", render::fleet(&view))
            }
            Ok(())
        }
        Fleet::Enroll { peer_id, name, role, authority, country, regional, grants, legacy_actors, admin_key } => {
            let client = &mut connect()?;
            let admin = read_admin_key(&admin_key)?;
            let member = new_member(&peer_id, &name, &role, &authority, country, regional, &grants, &legacy_actors)?;
            let (current, handovers) = current_roster(client, &admin)?;
            let next = current.enroll(member).map_err(bad)?;
            let version = publish(client, &next, &admin, handovers)?;
            let entry = next.member(&PublicKey::from_peer_id(&peer_id).map_err(bad)?).cloned();
            report(json, version, entry.as_ref(), "enrolled");
            Ok(())
        }
        Fleet::Revoke { peer_id, admin_key } => {
            let client = &mut connect()?;
            let admin = read_admin_key(&admin_key)?;
            let key = PublicKey::from_peer_id(&peer_id).map_err(bad)?;
            let (current, handovers) = current_roster(client, &admin)?;
            let cut = match client.call(Request::FleetCut { peer: peer_id.clone() })? {
                Response::Cut(list) => {
                    let bytes = hex::decode(list.cut).map_err(bad)?;
                    postcard::from_bytes::<Vec<CutEntry>>(&bytes).map_err(bad)?
                }
                _ => return Err(bad("outpostd answered with something else than a cut")),
            };
            let next = current.revoke(&key, cut).map_err(bad)?;
            let version = publish(client, &next, &admin, handovers)?;
            report(json, version, next.member(&key), "revoked");
            Ok(())
        }
        Fleet::Policy { watchlists, incidents, audit, admin_key } => {
            let client = &mut connect()?;
            let admin = read_admin_key(&admin_key)?;
            let (current, handovers) = current_roster(client, &admin)?;
            let mut reads = current.reads;
            for (given, slot) in
                [(watchlists, &mut reads.watchlists), (incidents, &mut reads.incidents), (audit, &mut reads.audit)]
            {
                if let Some(text) = given {
                    *slot = Audience::parse(&text).map_err(bad)?;
                }
            }
            if reads == current.reads {
                return Err(bad(format!("the roster already says {}; nothing to publish", reads.describe())));
            }
            let next = Roster { version: current.version + 1, reads, ..current };
            let version = publish(client, &next, &admin, handovers)?;
            if json {
                print_json(&serde_json::json!({ "version": version, "reads": reads.describe() }));
            } else {
                println!("roster version {version}: {}", reads.describe());
            }
            Ok(())
        }
        Fleet::RotateAdmin { admin_key, out } => {
            let client = &mut connect()?;
            let admin = read_admin_key(&admin_key)?;
            let (current, mut handovers) = current_roster(client, &admin)?;
            if current.version == 0 {
                return Err(bad("there is no roster yet; enrol a member first"));
            }
            let successor = write_admin_key(&out)?;
            handovers.push(Handover::new(&admin, successor.public()));
            let next = Roster { version: current.version + 1, ..current };
            let version = publish(client, &next, &successor, handovers)?;
            if json {
                print_json(&serde_json::json!({ "version": version, "fleet_admin": successor.public().to_hex() }));
            } else {
                println!("{}", successor.public().to_hex());
                eprintln!(
                    "roster version {version} is signed by the new admin key in {}. Every node that holds it refuses \
                     rosters signed by the old key; daemons configured with the old public key follow the handover.",
                    out.display()
                );
            }
            Ok(())
        }
    }
}

fn roster_view(client: &mut Client) -> Result<FleetView, Failure> {
    match client.call(Request::FleetRoster)? {
        Response::Fleet(view) => Ok(*view),
        _ => Err(bad("outpostd answered with something else than the roster")),
    }
}

/// The roster the daemon holds (or an empty one), checked against the
/// admin key: it must be the key that signs the next version.
fn current_roster(client: &mut Client, admin: &Signer) -> Result<(Roster, Vec<Handover>), Failure> {
    let view = roster_view(client)?;
    let Some(anchor) = view.fleet_admin.as_deref() else {
        return Err(bad(format!(
            "this node ({}) is not configured with a fleet admin key (it is in mode {}); set fleet_admin first",
            view.this_node, view.mode
        )));
    };
    let anchor = PublicKey::parse_hex(anchor).map_err(bad)?;
    let (roster, handovers, signing) = match view.roster {
        Some(text) => {
            let signed = SignedRoster::decode(&hex::decode(text).map_err(bad)?).map_err(bad)?;
            let roster = signed.verify(&anchor).map_err(bad)?;
            let signing = signed.signing_key(&anchor).map_err(bad)?;
            (roster, signed.handovers, signing)
        }
        None => (Roster::default(), Vec::new(), anchor),
    };
    if admin.public() != signing {
        return Err(bad(format!(
            "this admin key ({}) is not the fleet's current admin key ({}), which the node's roster is signed with",
            admin.public().to_hex(),
            signing.to_hex()
        )));
    }
    Ok((roster, handovers))
}

fn publish(client: &mut Client, roster: &Roster, admin: &Signer, handovers: Vec<Handover>) -> Result<u64, Failure> {
    let signed = SignedRoster::sign(roster, admin, handovers).map_err(bad)?;
    let bytes = signed.encode().map_err(bad)?;
    match client.call(Request::FleetPublish { roster: hex::encode(bytes) })? {
        Response::RosterPublished(done) => Ok(done.version),
        _ => Err(bad("outpostd answered with something else than the roster's version")),
    }
}

#[allow(clippy::too_many_arguments)]
fn new_member(
    peer_id: &str,
    name: &str,
    role: &str,
    authority: &str,
    country: Option<String>,
    regional: bool,
    grants: &[String],
    legacy: &[String],
) -> Result<Member, Failure> {
    let key = PublicKey::from_peer_id(peer_id).map_err(bad)?;
    let name = validate::node_name(name).map_err(bad)?;
    let authority = validate::authority_code(authority).map_err(bad)?;
    let role = Role::parse(role).map_err(bad)?;
    let country = match (regional, country) {
        (true, _) => None,
        (false, Some(code)) => Some(outpost_model::country::parse_country("country", &code).map_err(bad)?),
        (false, None) => Some(Member::default_country(&authority).ok_or_else(|| {
            bad(format!(
                "{authority} does not start with a country code; give --country CODE, or --regional for a regional body"
            ))
        })?),
    };
    let mut member = Member::new(key, &name, role, &authority, country);
    for grant in grants {
        member.rights.push(Right::parse(grant, &member.authority, member.country.as_deref()).map_err(bad)?);
    }
    for text in legacy {
        let mut prefix = [0u8; 16];
        hex::decode_to_slice(text.trim(), &mut prefix)
            .map_err(|_| bad(format!("legacy actor {text:?} is not 32 hex digits")))?;
        member.legacy_actors.push(prefix);
        // The history they stand for was written before now.
        member.legacy_until_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    }
    Ok(member)
}

fn report(json: bool, version: u64, member: Option<&Member>, what: &str) {
    let Some(member) = member else { return };
    let rights: Vec<String> = member.rights.iter().map(ToString::to_string).collect();
    if json {
        print_json(&serde_json::json!({
            "version": version,
            "peer_id": member.key.peer_id(),
            "name": member.name,
            "role": member.role.as_str(),
            "authority": member.authority,
            "country": member.country,
            "rights": rights,
            "revoked": member.revoked.is_some(),
        }));
    } else {
        println!(
            "{what} {} ({}) as {} of {} in roster version {version}; rights: {}",
            member.name,
            member.key.peer_id(),
            member.role.as_str(),
            member.authority,
            if rights.is_empty() { "none".to_string() } else { rights.join(", ") }
        );
    }
}
