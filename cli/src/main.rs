//! `outpost`: the officer's client of outpostd. It parses commands, sends
//! one request per command and prints the answer; it holds no rules.

use std::io::BufRead;
use std::process::ExitCode;

use clap::Parser;
use outpost_cli::args::{self, Cli, Command, Incident, Psk, Watchlist};
use outpost_cli::client::{Client, ClientError};
use outpost_cli::failure::{Failure, exit};
use outpost_cli::render::print_json;
use outpost_cli::{backup, fleet, keys, paths, render};
use outpost_model::api::{HealthCheckKind, MAX_REQUEST_BYTES, NewEntryInput, NewIncidentInput, Request, Response};

/// How a response is printed.
#[derive(Debug, Clone, Copy, Default)]
struct Output {
    json: bool,
    /// Search results with their word-by-word alignment.
    explain: bool,
}

/// Prints a response as JSON (the inner object) or as text.
fn show(response: &Response, Output { json, explain }: Output) {
    if json {
        match response {
            Response::Status(s) => print_json(s),
            Response::Created(c) => print_json(c),
            Response::Imported(i) => print_json(i),
            Response::Entry(e) => print_json(e),
            Response::Entries(l) => print_json(l),
            Response::Matches(m) => print_json(m),
            Response::Incident(i) => print_json(i),
            Response::Incidents(l) => print_json(l),
            Response::Audit(a) => print_json(a),
            Response::AuditCheck(c) => print_json(c),
            Response::Health(h) => print_json(h),
            Response::Peers(p) => print_json(p),
            Response::SyncStarted(s) => print_json(s),
            Response::Fleet(f) => print_json(f),
            Response::RosterPublished(r) => print_json(r),
            Response::Cut(c) => print_json(c),
            Response::BackupStarted(b) => print_json(b),
            Response::BackupWritten(b) => print_json(b),
        }
        return;
    }
    let text = match response {
        Response::Status(s) => render::status(s),
        Response::Created(c) => format!("{}\n", c.id),
        Response::Imported(i) => format!("imported {} entries\n", i.ids.len()),
        Response::Entry(e) => render::entry(e),
        Response::Entries(l) => render::entries(l),
        Response::Matches(m) => render::matches(m, explain),
        Response::Incident(i) => render::incident(i),
        Response::Incidents(l) => render::incidents(l),
        Response::Audit(a) => render::audit(a),
        Response::AuditCheck(c) => render::audit_check(c),
        Response::Health(h) => render::health(h),
        Response::Peers(p) => render::peers(p),
        Response::SyncStarted(s) => render::sync_started(s),
        Response::Fleet(f) => render::fleet(f),
        Response::RosterPublished(r) => format!("roster version {} installed\n", r.version),
        Response::Cut(c) => format!("{} cut entries\n", c.entries),
        Response::BackupStarted(b) => format!("backup of node {} started at {}\n", b.node_id, b.taken_at),
        Response::BackupWritten(b) => {
            format!("backup written: {} rows in {} tables, {} bytes\n", b.rows, b.tables, b.bytes)
        }
    };
    print!("{text}");
}

fn send_batch(client: &mut Client, pending: &mut Vec<NewEntryInput>) -> Result<usize, Failure> {
    if pending.is_empty() {
        return Ok(0);
    }
    let entries = std::mem::take(pending);
    match client.call(Request::WatchlistImport { entries })? {
        Response::Imported(done) => Ok(done.ids.len()),
        _ => Err(Failure::Local { code: 1, message: "outpostd answered the import with something else".into() }),
    }
}

/// Sends a JSON-lines file in batches that fit the request limit. Each batch
/// is stored all or nothing; a failure reports how many went in before it.
fn import(client: &mut Client, file: &std::path::Path, batch: usize, json: bool) -> Result<(), Failure> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).map_err(|e| Failure::Local {
            code: exit::BAD_INPUT,
            message: format!("cannot open {}: {e}", file.display()),
        })?;
        Box::new(std::io::BufReader::new(f))
    };
    let budget = (MAX_REQUEST_BYTES as usize) * 3 / 4;
    let (mut pending, mut pending_bytes, mut imported) = (Vec::new(), 0usize, 0usize);
    let stopped = |imported: usize, failure: Failure| match failure {
        Failure::Client(ClientError::Api(mut err)) => {
            err.message = format!("{} (after {imported} entries were imported)", err.message);
            Failure::Client(ClientError::Api(err))
        }
        other => other,
    };
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Failure::Local { code: 1, message: format!("reading {}: {e}", file.display()) })?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: NewEntryInput = serde_json::from_str(&line).map_err(|e| Failure::Local {
            code: exit::BAD_INPUT,
            message: format!("{} line {}: {e} (after {imported} entries were imported)", file.display(), n + 1),
        })?;
        pending_bytes += line.len();
        pending.push(entry);
        if pending.len() >= batch.max(1) || pending_bytes >= budget {
            imported += send_batch(client, &mut pending).map_err(|f| stopped(imported, f))?;
            pending_bytes = 0;
        }
    }
    imported += send_batch(client, &mut pending).map_err(|f| stopped(imported, f))?;
    if json {
        print_json(&serde_json::json!({ "imported": imported }));
    } else {
        println!("imported {imported} entries");
    }
    Ok(())
}

/// What a command does: one request, or a batched import.
enum Action {
    Call(Request),
    Search {
        request: Request,
        explain: bool,
    },
    Import {
        file: std::path::PathBuf,
        batch: usize,
    },
    /// Needs no daemon.
    Local(Psk),
    Backup(std::path::PathBuf),
    Fleet(args::Fleet),
}

fn action_for(command: Command) -> Action {
    Action::Call(match command {
        Command::Status { check: false } => Request::Status,
        Command::Status { check: true } => Request::HealthCheck,
        Command::Peers => Request::Peers,
        Command::Sync { peer } => Request::SyncNow { peer },
        Command::Psk(psk) => return Action::Local(psk),
        Command::Fleet(f) => return Action::Fleet(f),
        Command::Backup { file } => return Action::Backup(file),
        Command::Audit { check: Some(args::AuditCheck::Verify { post }), .. } => Request::AuditVerify { post },
        Command::Audit { check: None, since, limit, post } => Request::Audit { since, limit, post },
        Command::Watchlist(w) => match w {
            Watchlist::Add(kind) => Request::WatchlistAdd { entry: Box::new(kind.into_input()) },
            Watchlist::Search { query, dob, nationality, limit, purpose, explain } => {
                return Action::Search { request: args::search(query, dob, nationality, limit, purpose), explain };
            }
            Watchlist::Show { id, purpose } => Request::WatchlistShow { id, purpose },
            Watchlist::List { status, kind, limit, purpose } => Request::WatchlistList { status, kind, limit, purpose },
            Watchlist::Amend(amend) => amend.into_request(),
            Watchlist::Suspend(c) => {
                Request::WatchlistSetStatus { id: c.id, status: "suspended".into(), reason: c.reason }
            }
            Watchlist::Reactivate(c) => {
                Request::WatchlistSetStatus { id: c.id, status: "active".into(), reason: c.reason }
            }
            Watchlist::Close(c) => Request::WatchlistSetStatus { id: c.id, status: "closed".into(), reason: c.reason },
            Watchlist::Import { file, batch } => return Action::Import { file, batch },
        },
        Command::Incident(i) => match i {
            Incident::Log { incident_type, at, location, narrative, seized, persons, plates, hits } => {
                args::incident_log(NewIncidentInput {
                    incident_type,
                    at,
                    location,
                    narrative,
                    seized,
                    persons,
                    plates,
                    hits,
                })
            }
            Incident::List { since, follow_up, limit } => Request::IncidentList { since, follow_up, limit },
            Incident::Show { id } => Request::IncidentShow { id },
            Incident::Note { id, text } => Request::IncidentNote { id, text },
            Incident::Refer { id, note } => Request::IncidentSetFollowUp { id, follow_up: "referred".into(), note },
            Incident::Close { id, note } => Request::IncidentSetFollowUp { id, follow_up: "closed".into(), note },
        },
    })
}

/// Writes a new fleet key in the libp2p `swarm.key` format, readable by
/// its owner only. An existing file is never overwritten: replacing a
/// fleet's key cuts every post off that does not get the new one.
fn generate_psk(out: &std::path::Path, json: bool) -> Result<(), Failure> {
    keys::write_fleet_key(out)?;
    if json {
        print_json(&serde_json::json!({ "written": out.display().to_string() }));
    } else {
        println!(
            "wrote {} (mode 0600). Give every post in the fleet this file as psk_file; outpostd logs its fingerprint.",
            out.display()
        );
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), Failure> {
    let action = action_for(cli.command);
    let socket = paths::resolve(cli.socket);
    let connect = || Client::connect(&socket).map_err(Failure::from);
    match action {
        Action::Local(Psk::Generate { out }) => generate_psk(&out, cli.json),
        Action::Call(request) => {
            let response = connect()?.call(request)?;
            show(&response, Output { json: cli.json, explain: false });
            match &response {
                Response::AuditCheck(check) if !check.problems.is_empty() => Err(Failure::Shown {
                    code: exit::TAMPERED,
                    message: format!("the audit log of {} was tampered with", check.post),
                }),
                Response::Health(report) => match report.worst() {
                    None => Ok(()),
                    Some(worst) => Err(Failure::Shown {
                        code: match worst.check {
                            HealthCheckKind::Store => exit::UNHEALTHY_STORE,
                            HealthCheckKind::Disk => exit::UNHEALTHY_DISK,
                            HealthCheckKind::Peers => exit::UNHEALTHY_PEERS,
                            HealthCheckKind::Roster => exit::UNHEALTHY_ROSTER,
                        },
                        message: format!("unhealthy: {}: {}", worst.check, worst.detail),
                    }),
                },
                _ => Ok(()),
            }
        }
        Action::Search { request, explain } => {
            let response = connect()?.call(request)?;
            show(&response, Output { json: cli.json, explain });
            Ok(())
        }
        Action::Import { file, batch } => import(&mut connect()?, &file, batch, cli.json),
        Action::Fleet(command) => fleet::run(connect, command, cli.json),
        Action::Backup(file) => backup::run(&mut connect()?, &file, cli.json),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if json && !matches!(failure, Failure::Shown { .. }) {
                print_json(&serde_json::json!({"error": {"kind": failure.kind(), "message": failure.message()}}));
            }
            eprintln!("outpost: {}", failure.message());
            ExitCode::from(failure.code())
        }
    }
}
