//! Command-line grammar. Each command maps one-to-one onto a request; the
//! daemon validates every value, so this file only names and carries them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use outpost_model::api::{AmendInput, NewEntryInput, NewIncidentInput, Request, SearchInput};

/// Outpost: watchlists and incident logs at the border post.
#[derive(Debug, Parser)]
#[command(name = "outpost", version, propagate_version = true)]
pub struct Cli {
    /// Control socket of outpostd (default: $OUTPOST_SOCKET, then /run/outpost/outpostd.sock).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print exactly one JSON document on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process; boxing variants would only obscure the grammar.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show this post's identity, counts and storage health.
    ///
    /// With --check: a health check for a timer or a monitoring agent. It exits 0 when every check passes; otherwise with the code of the most severe failure: 10 the store does not take a durable write, 11 the disk has less free space than [health] disk_min_free_mib, 12 no peer heard for longer than [health] no_peer_for, 13 the roster not confirmed the newest for longer than [health] roster_max_age (or none held). 3: the daemon did not answer.
    Status {
        /// Check the post's health against the config's [health] thresholds; see the exit codes above.
        #[arg(long)]
        check: bool,
    },
    /// Search, record and maintain watchlist entries.
    #[command(subcommand)]
    Watchlist(Watchlist),
    /// Record and follow up incidents at the post.
    #[command(subcommand)]
    Incident(Incident),
    /// Show the audit log of consultations and changes: this post's, or (at a national centre) a post's with --post.
    Audit {
        #[command(subcommand)]
        check: Option<AuditCheck>,
        /// Only records at or after this date or RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many (most recent) records.
        #[arg(long)]
        limit: Option<u32>,
        /// Show the log of this post, as this node (its national centre) holds it.
        #[arg(long, value_name = "NAME")]
        post: Option<String>,
    },
    /// Show the peers this post has seen: connection, traffic and what differs.
    Peers,
    /// Compare documents with a peer now (peer id, a prefix of it, or its name), or with every connected peer.
    Sync { peer: Option<String> },
    /// Manage the fleet's pre-shared key.
    #[command(subcommand)]
    Psk(Psk),
    /// Manage the fleet: its admin key, its roster of members, enrolment and revocation.
    #[command(subcommand)]
    Fleet(Fleet),
    /// Write a consistent backup of this post's store to FILE while outpostd runs (root or the daemon's user; mode 0600; never overwrites a file). Restore it with `outpostd --restore FILE`.
    Backup {
        /// Where to write the backup; it appears only once complete.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum Fleet {
    /// Create a fleet: write admin.key (the roster's signing key; keep it offline) and swarm.key, both mode 0600, into DIR. Needs no daemon.
    Init {
        /// Where to write the two key files (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print this node's peer id from its node key file, without a running daemon, so that a post can be enrolled before it first starts.
    Whoami {
        /// The node key file (`outpostd --init` writes it; readable by root only).
        #[arg(long, value_name = "FILE", default_value = "/etc/outpost/node.key")]
        key: PathBuf,
    },
    /// Enrol a node (or grant an enrolled one more rights): signs a new roster with the admin key and hands it to outpostd, which spreads it.
    Enroll {
        /// The node's libp2p peer id (`outpost status` at the node prints it).
        peer_id: String,
        /// The node's name (lower-case letters, digits and -); names its incident log.
        #[arg(long)]
        name: String,
        /// centre, post or observer.
        #[arg(long)]
        role: String,
        /// The issuing authority it acts for, e.g. KAZ-BS or CARICC.
        #[arg(long)]
        authority: String,
        /// Its country (ICAO code); default: the first three letters of the authority.
        #[arg(long, conflicts_with = "regional")]
        country: Option<String>,
        /// A regional body such as CARICC, of no country.
        #[arg(long)]
        regional: bool,
        /// A right beyond the role's defaults (repeatable): watchlist[:AUTHORITY], incident-log, incident-notes[:COUNTRY|*].
        #[arg(long = "grant", value_name = "RIGHT")]
        grants: Vec<String>,
        /// An actor prefix (32 hex digits) the node wrote with before signed changes (`outpost status` at a migrated node prints it).
        #[arg(long = "legacy-actor", value_name = "HEX")]
        legacy_actors: Vec<String>,
        /// The fleet admin key file (from `outpost fleet init`).
        #[arg(long, value_name = "FILE")]
        admin_key: PathBuf,
    },
    /// Revoke a member: its connections close, and its changes after the cut (what this node holds of it now) are refused everywhere.
    Revoke {
        /// The member's libp2p peer id, as `outpost fleet roster` lists it.
        peer_id: String,
        /// The fleet admin key file (from `outpost fleet init`).
        #[arg(long, value_name = "FILE")]
        admin_key: PathBuf,
    },
    /// Show the roster: its version, the members with their roles and rights, the revoked ones.
    Roster,
    /// Set who receives which kind of document (need-to-know) and publish the roster. AUDIENCE is `fleet` (every member), `country` (the owner's country and the regional centres) or `national-centres` (the centres of the owner's country); the owner always receives its own. Kinds not given keep their audience.
    Policy {
        /// Who receives watchlists (default: fleet).
        #[arg(long, value_name = "AUDIENCE")]
        watchlists: Option<String>,
        /// Who receives a post's incident logs (default: country).
        #[arg(long, value_name = "AUDIENCE")]
        incidents: Option<String>,
        /// Who receives a post's audit log (default: national-centres).
        #[arg(long, value_name = "AUDIENCE")]
        audit: Option<String>,
        /// The admin key file (mode 0600), from `outpost fleet init`.
        #[arg(long, value_name = "FILE")]
        admin_key: PathBuf,
    },
    /// Hand the admin role to a new key: writes it to OUT (mode 0600) and publishes a roster signed by it, with the handover signed by the old one.
    RotateAdmin {
        /// The current admin key file.
        #[arg(long, value_name = "FILE")]
        admin_key: PathBuf,
        /// Where to write the new admin key (never overwrites a file).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCheck {
    /// Check a post's audit log against the heads the post signed and the records that reached this node; exits 6 if it was tampered with.
    Verify {
        /// The post whose log to check.
        #[arg(long, value_name = "NAME")]
        post: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Psk {
    /// Write a new key in the libp2p swarm.key format (never overwrites a file).
    Generate {
        /// Where to write it.
        #[arg(long, default_value = "swarm.key")]
        out: PathBuf,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Watchlist {
    /// Add an entry; prints its id.
    #[command(subcommand)]
    Add(AddKind),
    /// Import entries from a JSON-lines file (one entry object per line; `-` for stdin).
    Import {
        file: PathBuf,
        /// Entries per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Search names, document numbers, plates, VINs and containers.
    Search {
        query: String,
        /// Date of birth (YYYY, YYYY-MM or YYYY-MM-DD) to weigh candidates.
        #[arg(long)]
        dob: Option<String>,
        /// Nationality (ICAO alpha-3) to weigh candidates.
        #[arg(long)]
        nationality: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        /// Why you are searching; required and written to the audit log.
        #[arg(long)]
        purpose: String,
        /// Show, for each result, which words of the query matched which
        /// stored words, and why.
        #[arg(long)]
        explain: bool,
    },
    /// Show one entry (an id prefix of 6 or more characters will do).
    Show {
        id: String,
        /// Why you are looking; written to the audit log.
        #[arg(long)]
        purpose: Option<String>,
    },
    /// List entries, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        purpose: Option<String>,
    },
    /// Change fields of an entry your authority issued.
    Amend(Amend),
    /// Suspend an active entry (it stops alerting).
    Suspend(StatusChange),
    /// Make a suspended entry active again.
    Reactivate(StatusChange),
    /// Close an entry for good.
    Close(StatusChange),
}

#[derive(Debug, Args)]
pub struct StatusChange {
    pub id: String,
    /// Why; recorded with the change.
    #[arg(long)]
    pub reason: String,
}

/// Fields every entry carries.
#[derive(Debug, Args)]
pub struct Common {
    /// wanted-for-arrest, locate-and-inform, warning, missing-person, refusal-of-entry,
    /// discreet-check, specific-check, seize-object or sanctions.
    #[arg(long)]
    pub category: String,
    #[arg(long)]
    pub reason: String,
    /// What the officer must do on a hit.
    #[arg(long)]
    pub action: Option<String>,
    /// armed, violent, escaped, suicide-risk or public-health-risk.
    #[arg(long = "warning")]
    pub warnings: Vec<String>,
    #[arg(long)]
    pub valid_from: Option<String>,
    #[arg(long)]
    pub expires: Option<String>,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum AddKind {
    /// A person: names in any script, dates of birth, nationalities, documents.
    Person {
        /// A name as written, in its original script; the first is the primary name.
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        #[arg(long = "dob")]
        dobs: Vec<String>,
        #[arg(long = "nationality")]
        nationalities: Vec<String>,
        /// TYPE:ISSUER:NUMBER, e.g. passport:TJK:A1234567.
        #[arg(long = "document")]
        documents: Vec<String>,
        #[arg(long)]
        gender: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// A vehicle by plate and/or VIN.
    Vehicle {
        #[arg(long = "plate")]
        plates: Vec<String>,
        #[arg(long)]
        vin: Option<String>,
        #[arg(long)]
        make: Option<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        colour: Option<String>,
        /// Country of registration (ICAO alpha-3).
        #[arg(long)]
        country: Option<String>,
        /// vehicle, plate or vin.
        #[arg(long)]
        wanted: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// A stolen, lost, revoked or forged travel document.
    Document {
        #[arg(long = "type")]
        doc_type: String,
        #[arg(long)]
        number: String,
        #[arg(long)]
        issuing_state: String,
        /// stolen, lost, revoked, forged or invalidated.
        #[arg(long)]
        doc_status: String,
        #[arg(long)]
        issued: Option<String>,
        #[arg(long)]
        doc_expires: Option<String>,
        #[arg(long)]
        event_date: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Cargo: a description, container numbers, an HS code.
    Cargo {
        #[arg(long)]
        description: String,
        #[arg(long = "container")]
        containers: Vec<String>,
        #[arg(long)]
        hs_code: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Args)]
pub struct Amend {
    pub id: String,
    #[arg(long)]
    pub category: Option<String>,
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub action: Option<String>,
    #[arg(long, conflicts_with = "no_expiry")]
    pub expires: Option<String>,
    /// Remove the expiry date.
    #[arg(long)]
    pub no_expiry: bool,
    #[arg(long = "add-name")]
    pub add_names: Vec<String>,
    #[arg(long = "remove-name")]
    pub remove_names: Vec<String>,
    #[arg(long = "add-dob")]
    pub add_dobs: Vec<String>,
    #[arg(long = "remove-dob")]
    pub remove_dobs: Vec<String>,
    #[arg(long = "add-nationality")]
    pub add_nationalities: Vec<String>,
    #[arg(long = "remove-nationality")]
    pub remove_nationalities: Vec<String>,
    #[arg(long = "add-document")]
    pub add_documents: Vec<String>,
    #[arg(long = "remove-document")]
    pub remove_documents: Vec<String>,
    #[arg(long = "add-warning")]
    pub add_warnings: Vec<String>,
    #[arg(long = "remove-warning")]
    pub remove_warnings: Vec<String>,
    #[arg(long = "add-plate")]
    pub add_plates: Vec<String>,
    #[arg(long = "remove-plate")]
    pub remove_plates: Vec<String>,
    #[arg(long)]
    pub vin: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Incident {
    /// Record an incident; prints its id.
    Log {
        /// seizure, detention, arrest, refusal-of-entry, smuggling-attempt,
        /// document-fraud, watchlist-hit or other.
        #[arg(long = "type")]
        incident_type: String,
        /// When it happened: RFC 3339, or "YYYY-MM-DD HH:MM" in post time (default: now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        location: Option<String>,
        #[arg(long)]
        narrative: String,
        /// SUBSTANCE:QUANTITY:UNIT, e.g. heroin:1.5:kg (units: g, kg, ml, l, tablets, units).
        #[arg(long)]
        seized: Vec<String>,
        /// A person involved, as the name was presented.
        #[arg(long = "person")]
        persons: Vec<String>,
        #[arg(long = "plate")]
        plates: Vec<String>,
        /// A watchlist entry this incident is a hit on.
        #[arg(long = "hit")]
        hits: Vec<String>,
    },
    /// List incidents, most recently recorded first.
    List {
        #[arg(long)]
        since: Option<String>,
        /// open, referred or closed.
        #[arg(long)]
        follow_up: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show one incident with its whole narrative.
    Show { id: String },
    /// Append a note to the narrative.
    Note { id: String, text: String },
    /// Mark an incident as referred to another agency.
    Refer {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Close an incident's follow-up.
    Close {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
}

fn entry(kind: &str, common: Common) -> NewEntryInput {
    NewEntryInput {
        kind: kind.into(),
        category: common.category,
        reason: common.reason,
        action: common.action,
        warnings: common.warnings,
        valid_from: common.valid_from,
        expires: common.expires,
        ..Default::default()
    }
}

impl AddKind {
    pub fn into_input(self) -> NewEntryInput {
        match self {
            AddKind::Person { names, dobs, nationalities, documents, gender, common } => {
                NewEntryInput { names, dobs, nationalities, documents, gender, ..entry("person", common) }
            }
            AddKind::Vehicle { plates, vin, make, model, colour, country, wanted, common } => {
                NewEntryInput { plates, vin, make, model, colour, country, wanted, ..entry("vehicle", common) }
            }
            AddKind::Document {
                doc_type,
                number,
                issuing_state,
                doc_status,
                issued,
                doc_expires,
                event_date,
                common,
            } => NewEntryInput {
                doc_type: Some(doc_type),
                number: Some(number),
                issuing_state: Some(issuing_state),
                doc_status: Some(doc_status),
                issued,
                doc_expires,
                event_date,
                ..entry("document", common)
            },
            AddKind::Cargo { description, containers, hs_code, common } => {
                NewEntryInput { description: Some(description), containers, hs_code, ..entry("cargo", common) }
            }
        }
    }
}

impl Amend {
    pub fn into_request(self) -> Request {
        let amendment = AmendInput {
            category: self.category,
            reason: self.reason,
            action: self.action,
            expires: self.expires,
            clear_expires: self.no_expiry,
            add_names: self.add_names,
            remove_names: self.remove_names,
            add_dobs: self.add_dobs,
            remove_dobs: self.remove_dobs,
            add_nationalities: self.add_nationalities,
            remove_nationalities: self.remove_nationalities,
            add_documents: self.add_documents,
            remove_documents: self.remove_documents,
            add_warnings: self.add_warnings,
            remove_warnings: self.remove_warnings,
            add_plates: self.add_plates,
            remove_plates: self.remove_plates,
            vin: self.vin,
            description: self.description,
        };
        Request::WatchlistAmend { id: self.id, amendment: Box::new(amendment) }
    }
}

pub fn search(
    query: String,
    dob: Option<String>,
    nationality: Option<String>,
    limit: Option<u32>,
    purpose: String,
) -> Request {
    Request::WatchlistSearch(Box::new(SearchInput { query, dob, nationality, limit, purpose }))
}

pub fn incident_log(input: NewIncidentInput) -> Request {
    Request::IncidentLog { incident: Box::new(input) }
}
