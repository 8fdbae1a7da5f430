//! Human-readable output: cards for one record, tables for many.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use outpost_model::api::{
    AuditCheck, AuditPage, EntryList, EntryView, FleetView, IncidentList, PeerList, SearchResults, StatusInfo,
    SyncStarted,
};
use outpost_model::incident::Incident;
use outpost_model::search::SearchHit;
use outpost_model::watchlist::{FieldConflict, Subject};

/// Label-value lines with aligned values; multi-line values stay aligned.
#[derive(Debug, Default)]
struct Card {
    rows: Vec<(String, String)>,
}

impl Card {
    fn row(&mut self, label: &str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        if !value.is_empty() {
            self.rows.push((label.to_string(), value));
        }
        self
    }

    fn list(&mut self, label: &str, values: impl IntoIterator<Item = String>) -> &mut Self {
        let joined: Vec<String> = values.into_iter().collect();
        self.row(label, joined.join("\n"))
    }

    fn render(&self) -> String {
        let width = self.rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0) + 2;
        let mut out = String::new();
        for (label, value) in &self.rows {
            for (i, line) in value.lines().enumerate() {
                let head = if i == 0 { format!("{label}:") } else { String::new() };
                out.push_str(&format!("  {head:<width$}{line}\n"));
            }
        }
        out
    }
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    table
}

/// The random tail of a UUIDv7; its head is a timestamp shared by ids made
/// close together. `outpost … show` accepts it.
fn short(id: impl std::fmt::Display) -> String {
    let full = id.to_string();
    full.rsplit('-').next().unwrap_or(&full).to_string()
}

fn conflicts(card: &mut Card, conflicts: &[FieldConflict]) {
    card.list(
        "CONFLICTS",
        conflicts.iter().map(|c| {
            format!("{}: {}", c.field, c.values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(" | "))
        }),
    );
    if !conflicts.is_empty() {
        card.row("", "posts wrote these concurrently; the first is shown. Resolve with `outpost watchlist amend`.");
    }
}

pub fn status(s: &StatusInfo) -> String {
    let mut card = Card::default();
    card.row("Node", format!("{} ({})", s.node_name, s.node_id))
        .row("Authority", &s.authority)
        .row("Version", format!("{} (protocol {})", s.version, s.protocol_version))
        .row("Entries", format!("{} ({} active alerts)", s.entries, s.active_entries))
        .row("Incidents", s.incidents.to_string())
        .row("Documents", s.documents.to_string())
        .row("Audit records", s.audit_records.to_string())
        .row("Up since", format!("{} ({} s)", s.started_at, s.uptime_secs))
        .row(
            "Data",
            format!(
                "{} ({} bytes, {} changes to compact)",
                s.data_dir, s.storage.file_bytes, s.storage.pending_changes
            ),
        )
        .row("Socket", &s.socket);
    if s.storage.repaired_on_open {
        card.row("WARNING", "the database was not closed cleanly and was repaired at start");
    }
    if let Some(peer_id) = &s.peer_id {
        card.row("Peer id", peer_id);
    }
    if let Some(actor) = &s.legacy_actor {
        let note = if s.legacy_actor_bound {
            format!("{actor} (history from before fleet trust, bound to this node by the roster)")
        } else {
            format!("{actor} (history from before fleet trust: enrol this node with --legacy-actor {actor})")
        };
        card.row("Old actor", &note);
    }
    match &s.replication {
        Some(r) => {
            card.list("Listening", s.listen_addrs.iter().cloned())
                .row("Fleet key", format!("fingerprint {}", r.psk_fingerprint));
            if let Some(next) = &r.psk_next_fingerprint {
                card.row("Next fleet key", format!("fingerprint {next} (a rotation is under way)"));
            }
            card.row("Membership", membership(r))
                .list("WARNING", r.conflicts.iter().cloned())
                .list("AUDIT LOG TAMPERED", r.audit_alarms.iter().cloned())
                .row("Peers", format!("{} connected", r.connected_peers));
            if r.held_changes > 0 {
                card.row(
                    "Held",
                    format!(
                        "{} changes held until they can be judged (a newer roster, or changes they depend on)",
                        r.held_changes
                    ),
                );
            }
            let stalest = match (&r.stalest_document, r.stalest_agreed_at) {
                (Some(doc), Some(at)) => format!("{doc}, last agreed with a peer at {at}"),
                (Some(doc), None) => format!("{doc}, not compared with any peer since this start"),
                _ => "no documents".into(),
            };
            card.row("Stalest", stalest);
        }
        None => {
            card.row("Network", "off (no pre-shared key configured)");
        }
    }
    format!("Outpost post status\n{}", card.render())
}

fn membership(r: &outpost_model::api::ReplicationStatus) -> String {
    match r.membership.as_str() {
        "fleet" if r.roster_version == 0 => "no roster yet: replicates with nobody until one arrives".into(),
        "fleet" if r.roster_revoked => format!("REVOKED in roster version {}", r.roster_version),
        "fleet" => match &r.roster_role {
            Some(role) => format!("{role} (roster version {})", r.roster_version),
            None => format!(
                "not enrolled in roster version {}: replicates with nobody; enrol this peer id",
                r.roster_version
            ),
        },
        "psk-only" => "psk-only: every holder of the fleet key is a full member, changes are not signed".into(),
        "nobody" => "no fleet admin key configured: replicates with nobody".into(),
        other => other.into(),
    }
}

pub fn fleet(view: &FleetView) -> String {
    let mut out = String::new();
    match view.version {
        0 => out.push_str(&format!("no roster yet (mode {})\n", view.mode)),
        v => out.push_str(&format!(
            "roster version {v}, signed by admin key {}\n",
            view.signing_key.as_deref().unwrap_or("?")
        )),
    }
    let mut t = table(&["NAME", "ROLE", "AUTHORITY", "COUNTRY", "RIGHTS", "PEER ID", "STATE"]);
    for m in &view.members {
        let state = match (m.revoked, m.revoked_in) {
            (true, Some(v)) => format!("revoked in v{v}; {} changes admitted by attestation", m.attested_changes),
            (true, None) => "revoked".into(),
            (false, _) if m.peer_id == view.this_node => "member (this node)".into(),
            (false, _) => "member".into(),
        };
        t.add_row(vec![
            m.name.clone(),
            m.role.clone(),
            m.authority.clone(),
            m.country.clone().unwrap_or_else(|| "regional".into()),
            if m.rights.is_empty() { "none".into() } else { m.rights.join("\n") },
            m.peer_id.clone(),
            state,
        ]);
    }
    out.push_str(&format!("{t}\n{} members\n", view.members.len()));
    if let Some(reads) = &view.reads {
        out.push_str(&format!("who receives what: {reads}\n"));
    }
    for conflict in &view.conflicts {
        out.push_str(&format!("WARNING: {conflict}\n"));
    }
    if view.held_changes > 0 {
        out.push_str(&format!(
            "{} changes held until they can be judged (a newer roster, or changes they depend on)\n",
            view.held_changes
        ));
    }
    out
}

pub fn peers(list: &PeerList) -> String {
    let mut t =
        table(&["NAME", "PEER ID", "STATE", "LAST SEEN", "SENT", "RECEIVED", "DOCUMENTS", "REFUSED", "ADDRESSES"]);
    for p in &list.peers {
        let documents = if p.differing.is_empty() {
            format!("{} in sync", p.in_sync_documents)
        } else {
            let behind: Vec<String> = p
                .differing
                .iter()
                .map(|d| match d.changes_behind {
                    Some(n) => format!("{}: {n} changes behind", d.doc),
                    None => format!("{}: differs", d.doc),
                })
                .collect();
            format!("{} in sync\n{}", p.in_sync_documents, behind.join("\n"))
        };
        let refused: Vec<String> = p.refused.iter().map(|(why, n)| format!("{n} {why}")).collect();
        let state = match (p.connected, p.syncing) {
            (true, true) => "connected".to_string(),
            (true, false) => format!("connected, not syncing (roster v{})", p.roster_version),
            (false, _) => "disconnected".to_string(),
        };
        t.add_row(vec![
            if p.name.is_empty() { "?".into() } else { p.name.clone() },
            p.peer_id.clone(),
            state,
            p.last_seen.map(|t| t.to_string()).unwrap_or_else(|| "never".into()),
            format!("{} B", p.bytes_sent),
            format!("{} B", p.bytes_received),
            documents,
            if refused.is_empty() { "-".into() } else { refused.join("\n") },
            p.addresses.join("\n"),
        ]);
    }
    format!("{t}\n{} peers\n", list.peers.len())
}

pub fn sync_started(started: &SyncStarted) -> String {
    format!("digest exchange started with {}\n", started.peers.join(", "))
}

fn status_label(hit_alert: bool, expired: bool, status: &str) -> String {
    if hit_alert {
        "ALERT".into()
    } else if expired {
        "expired".into()
    } else {
        status.into()
    }
}

pub fn entry(view: &EntryView) -> String {
    let e = &view.entry;
    let mut card = Card::default();
    match &e.subject {
        Subject::Person(p) => {
            card.list("Names", p.names.iter().map(|n| format!("{}  ({}, {})", n.text, n.kind, n.script)));
            card.list("Born", p.dobs.iter().map(ToString::to_string));
            card.row("Nationality", p.nationalities.join(", "));
            card.list("Documents", p.documents.iter().map(|d| format!("{} {} {}", d.doc_type, d.issuer, d.number)));
            card.row("Gender", p.gender.map(|g| g.to_string()).unwrap_or_default());
        }
        Subject::Vehicle(v) => {
            card.list("Plates", v.plates.iter().map(|p| format!("{}  ({})", p.raw, p.normalized)));
            card.row("VIN", v.vin.clone().unwrap_or_default());
            let desc: Vec<&str> = [&v.colour, &v.make, &v.model].iter().filter_map(|s| s.as_deref()).collect();
            card.row("Vehicle", desc.join(" "));
            card.row("Registered", v.country.clone().unwrap_or_default());
            card.row("Wanted", v.wanted.to_string());
        }
        Subject::Document(d) => {
            card.row("Document", format!("{} {} {}", d.doc_type, d.issuing_state, d.number));
            card.row(
                "Reported",
                format!("{}{}", d.doc_status, d.event_date.map(|e| format!(" on {e}")).unwrap_or_default()),
            );
            card.row("Issued", d.issued.map(|d| d.to_string()).unwrap_or_default());
            card.row("Doc expires", d.expires.map(|d| d.to_string()).unwrap_or_default());
        }
        Subject::Cargo(c) => {
            card.row("Cargo", &c.description);
            card.row("Containers", c.containers.join(", "));
            card.row("HS code", c.hs_code.clone().unwrap_or_default());
        }
    }
    card.row("Category", e.category.to_string())
        .row("Reason", &e.reason)
        .row("Action on hit", &e.action)
        .row("Warnings", e.warnings.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        .row(
            "Valid",
            format!(
                "{} → {}{}",
                e.valid_from,
                e.expires.map_or("no expiry".to_string(), |d| d.to_string()),
                if view.expired { "  (EXPIRED: no longer an alert)" } else { "" }
            ),
        )
        .row("Issued by", &e.authority)
        .row("Created", format!("{} by {}", e.created_at, e.created_by))
        .row("Updated", format!("{} by {}", e.updated_at, e.updated_by));
    conflicts(&mut card, &e.conflicts);
    let status = e.status.to_string().to_uppercase();
    let status = if view.expired { format!("{status}, EXPIRED") } else { status };
    format!("Entry {}  {}  {status}\n{}", e.id, e.subject.kind(), card.render())
}

pub fn entries(list: &EntryList) -> String {
    let mut t = table(&["ID", "KIND", "SUBJECT", "CATEGORY", "STATUS", "AUTHORITY", "UPDATED"]);
    for e in &list.entries {
        let status = status_label(false, e.expired, e.status.as_str());
        let flag = if e.conflicted { " ⚠conflict" } else { "" };
        t.add_row(vec![
            short(e.id),
            e.kind.to_string(),
            e.headline.clone(),
            e.category.to_string(),
            format!("{status}{flag}"),
            e.authority.clone(),
            e.updated_at.to_string(),
        ]);
    }
    format!("{t}\n{} of {} entries\n", list.entries.len(), list.total)
}

pub fn matches(results: &SearchResults, explain: bool) -> String {
    if results.matches.is_empty() {
        return "No matches.\n".into();
    }
    let mut t = table(&["SCORE", "NAME / IDENTIFIER", "STATUS", "CATEGORY", "WHY", "ID"]);
    for m in &results.matches {
        t.add_row(vec![
            format!("{:.2}", m.score),
            m.name.clone(),
            status_label(m.alert, m.expired, m.status.as_str()),
            m.category.to_string(),
            m.reason.clone(),
            short(m.id),
        ]);
    }
    let mut out = format!("{t}\n");
    if explain {
        for m in &results.matches {
            out.push_str(&explanation(m));
        }
    }
    for m in results.matches.iter().filter(|m| m.alert) {
        out.push_str(&alert_line(m));
    }
    out.push_str("A name match alone is not an identification: check the person's documents.\n");
    out
}

/// Which query word met which stored word, and why, for one result.
fn explanation(m: &SearchHit) -> String {
    let mut out = format!("\n{} {} ({:.2}): {}\n", short(m.id), m.name, m.score, m.reason);
    if m.explanation.is_empty() {
        out.push_str("  matched on an identifier, not a name\n");
        return out;
    }
    let mut t = table(&["YOU TYPED", "STORED", "ROLE", "HOW", "SIMILARITY", "DETAIL"]);
    for w in &m.explanation {
        t.add_row(vec![
            w.query.clone().unwrap_or_else(|| "—".into()),
            w.stored.clone().unwrap_or_else(|| "—".into()),
            w.role.label().to_string(),
            w.how.map_or("no partner", |h| h.label()).to_string(),
            if w.how.is_some() { format!("{:.2}", w.similarity) } else { String::new() },
            w.detail.clone(),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    out
}

fn alert_line(m: &SearchHit) -> String {
    let warnings = if m.warnings.is_empty() {
        String::new()
    } else {
        format!("  WARNING: {}", m.warnings.iter().map(|w| w.to_string().to_uppercase()).collect::<Vec<_>>().join(", "))
    };
    let action = if m.action.is_empty() { "see the entry".to_string() } else { m.action.clone() };
    format!("ALERT {} ({}): {action}{warnings}\n", short(m.id), m.authority)
}

pub fn incident(i: &Incident) -> String {
    let mut card = Card::default();
    card.row("Type", i.incident_type.to_string())
        .row("When", i.occurred_at.to_string())
        .row("Post", &i.post)
        .row("Location", i.location.clone().unwrap_or_default())
        .list("Seized", i.seized.iter().map(|s| format!("{} {} {}", s.quantity, s.unit, s.substance)))
        .list(
            "Persons",
            i.persons.iter().map(|p| {
                format!("{}{}", p.name, p.entry.map(|e| format!("  → entry {}", short(e))).unwrap_or_default())
            }),
        )
        .list(
            "Vehicles",
            i.vehicles.iter().map(|v| {
                format!("{}{}", v.plate, v.entry.map(|e| format!("  → entry {}", short(e))).unwrap_or_default())
            }),
        )
        .list("Hits", i.hits.iter().map(ToString::to_string))
        .row("Follow-up", i.follow_up.to_string())
        .row("Recorded", format!("{} by {}", i.recorded_at, i.recorded_by))
        .list("Narrative", i.narrative.iter().map(|n| format!("[{} {}] {}", n.at, n.by, n.text)));
    conflicts(&mut card, &i.conflicts);
    format!("Incident {}\n{}", i.id, card.render())
}

pub fn incidents(list: &IncidentList) -> String {
    let mut t = table(&["ID", "WHEN", "TYPE", "POST", "FOLLOW-UP", "NOTES", "NARRATIVE"]);
    for i in &list.incidents {
        t.add_row(vec![
            short(i.id),
            i.occurred_at.to_string(),
            i.incident_type.to_string(),
            i.post.clone(),
            i.follow_up.to_string(),
            i.notes.to_string(),
            i.first_line.clone(),
        ]);
    }
    format!("{t}\n{} of {} incidents\n", list.incidents.len(), list.total)
}

pub fn audit(page: &AuditPage) -> String {
    let mut t = table(&["SEQ", "TIME", "OFFICER", "ACTION", "PURPOSE", "DETAIL", "RESULTS"]);
    for r in &page.records {
        let officer = match (r.user.is_empty(), r.role.is_empty()) {
            (true, _) => format!("uid {}", r.uid),
            (false, true) => r.user.clone(),
            (false, false) => format!("{} ({})", r.user, r.role),
        };
        t.add_row(vec![
            r.seq.to_string(),
            r.at.to_string(),
            officer,
            r.action.clone(),
            r.purpose.clone().unwrap_or_default(),
            r.detail.clone(),
            r.result_ids.len().to_string(),
        ]);
    }
    let whose = page.post.as_ref().map(|p| format!("{p}'s log: ")).unwrap_or_default();
    let chain = match &page.chain_error {
        None => format!("{whose}hash chain verified over all {} records", page.chain_length),
        Some(err) => format!("{whose}HASH CHAIN BROKEN: {err}"),
    };
    format!("{t}\n{chain}\n")
}

pub fn audit_check(check: &AuditCheck) -> String {
    let mut out = String::new();
    let head = match (check.head_seq, &check.head_hash) {
        (Some(seq), Some(hash)) => format!("record {seq} ({})", &hash[..hash.len().min(16)]),
        _ => "none".into(),
    };
    out.push_str(&format!(
        "{}'s audit log: {} records held here{}, newest signed head {head}\n",
        check.post,
        check.records,
        check.first.filter(|f| *f > 1).map(|f| format!(" from record {f}")).unwrap_or_default()
    ));
    if !check.signatures_checked {
        out.push_str("signatures NOT checked: the roster held here does not name this post\n");
    }
    if check.problems.is_empty() {
        out.push_str("the log holds: every record hashes, follows the one before and carries its post's signature\n");
    } else {
        out.push_str(&format!("TAMPERED: {} sign(s) that the log was changed\n", check.problems.len()));
        for problem in &check.problems {
            out.push_str(&format!("  {problem}\n"));
        }
    }
    out
}

/// Prints `value` as the one JSON document `--json` promises.
pub fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("outpost: cannot encode output: {err}"),
    }
}

/// `outpost status --check`: one line per check, most severe first.
pub fn health(report: &outpost_model::api::HealthReport) -> String {
    let mut out = String::new();
    for check in &report.checks {
        let verdict = if check.ok { "ok  " } else { "FAIL" };
        out.push_str(&format!("{verdict} {:<7} {}\n", check.check.to_string(), check.detail));
    }
    out
}
