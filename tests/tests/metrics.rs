//! The metrics endpoint (`metrics = "127.0.0.1:PORT"`): scraped over HTTP
//! from a post that replicates with a centre, and parsed with an
//! independent Prometheus text parser (`prometheus-parse`), so that what
//! the daemon serves is what a Prometheus server reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::Duration;

use outpost_tests::harness::{FleetKey, Post, PostOptions, free_port, network_config, networked_post, wait_for};
use prometheus_parse::{Scrape, Value};

const DEADLINE: Duration = Duration::from_secs(60);

/// `GET path` on loopback `port`: the status line and the body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

fn scrape_text(port: u16) -> String {
    let (status, body) = get(port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(
        |s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        },
    )
}

#[test]
fn a_scrape_reports_peers_traffic_latencies_the_store_and_the_disk() {
    let key = FleetKey::generate();
    let ports = [free_port(), free_port()];
    let metrics_port = free_port();
    let centre = networked_post("kz-centre", "KAZ-BS", &key, ports[0], &[]);
    let post = Post::start_with(PostOptions {
        node_name: "kz-nurzhol".into(),
        extra_config: format!(
            "metrics = \"127.0.0.1:{metrics_port}\"\n{}",
            network_config(&key, ports[1], &[ports[0]])
        ),
        ..Default::default()
    });
    key.enroll_all(&centre, &[&centre, &post]);
    let id = centre.add_person("Мухаммад Алиев");
    wait_for("the centre's entry at the post", DEADLINE, || post.entry_count() == 1);
    for _ in 0..3 {
        post.json(&["watchlist", "search", "--purpose", "metrics test", "Muhammad Aliev"]);
    }
    post.add_person("Timur Bekov");

    let centre_id = centre.peer_id();
    // A scrape within five seconds of the last is the last one's text, so
    // this polls until one shows the sync and the searches.
    let mut text = String::new();
    wait_for("a scrape showing the sync with the centre and the searches", DEADLINE, || {
        text = scrape_text(metrics_port);
        let scraped = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the Prometheus text format");
        value(&scraped, "outpost_peer_last_sync_timestamp_seconds", &[("peer", &centre_id)]).is_some()
            && value(&scraped, "outpost_search_duration_seconds_count", &[]).is_some_and(|n| n >= 3.0)
            && value(&scraped, "outpost_entries", &[]) == Some(2.0)
    });
    // prometheus-parse reads the samples; the types are checked on the
    // text itself, since it does not check them.
    for (metric, kind) in [
        ("outpost_peers_connected", "gauge"),
        ("outpost_peer_sent_bytes", "counter"),
        ("outpost_peer_received_bytes", "counter"),
        ("outpost_rejected_changes", "counter"),
        ("outpost_audit_records", "counter"),
        ("outpost_search_duration_seconds", "histogram"),
        ("outpost_commit_duration_seconds", "histogram"),
        ("outpost_documents_behind", "gauge"),
        ("outpost_quarantine_changes", "gauge"),
        ("outpost_writer_queue_depth", "gauge"),
        ("outpost_store_bytes", "gauge"),
        ("outpost_disk_free_bytes", "gauge"),
        ("outpost_peer_last_sync_timestamp_seconds", "gauge"),
    ] {
        assert!(text.contains(&format!("# TYPE {metric} {kind}\n")), "no {kind} {metric}:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    let scraped = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the Prometheus text format");
    let has = |name: &str, labels: &[(&str, &str)]| {
        value(&scraped, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in the scrape"))
    };
    assert_eq!(has("outpost_writer_responding", &[]), 1.0);
    assert_eq!(has("outpost_peers_connected", &[]), 1.0);
    assert_eq!(has("outpost_entries", &[]), 2.0);
    assert_eq!(has("outpost_quarantine_changes", &[]), 0.0);
    assert_eq!(has("outpost_storage_failing", &[]), 0.0);
    assert!(has("outpost_audit_records_total", &[]) >= 4.0, "three searches and an add are audited");
    assert!(has("outpost_store_bytes", &[]) > 0.0);
    let (free, total) = (has("outpost_disk_free_bytes", &[]), has("outpost_disk_total_bytes", &[]));
    assert!(free > 0.0 && free <= total, "free {free} of {total}");
    assert_eq!(has("outpost_writer_queue_depth", &[("queue", "officers")]), 0.0, "nothing waits while idle");
    assert!(has("outpost_search_duration_seconds_count", &[]) >= 3.0);
    assert!(has("outpost_commit_duration_seconds_count", &[]) >= 1.0);
    let last_sync = has("outpost_peer_last_sync_timestamp_seconds", &[("peer", &centre_id), ("name", "kz-centre")]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - last_sync).abs() < 600.0, "last sync {last_sync}, now {now}");
    assert!(has("outpost_peer_last_seen_timestamp_seconds", &[("peer", &centre_id)]) > now - 600.0);
    // The post's own entry went out on the watchlist lane; the lanes add
    // up to what `outpost peers` counts as sent.
    let sent = |lane: &str| has("outpost_peer_sent_bytes_total", &[("peer", &centre_id), ("lane", lane)]);
    assert!(sent("watchlist") > 0.0 && sent("control") > 0.0);
    let lanes: f64 = ["control", "watchlist", "incidents", "audit"].iter().map(|l| sent(l)).sum();
    let peers = post.json(&["peers"]);
    let listed = peers["peers"].as_array().unwrap().iter().find(|p| p["peer_id"] == centre_id.as_str()).cloned();
    let listed = listed.unwrap_or_else(|| panic!("the centre in `outpost peers`: {peers}"));
    let (sent_then, received_then) =
        (listed["bytes_sent"].as_f64().unwrap(), listed["bytes_received"].as_f64().unwrap());
    assert!(lanes <= sent_then, "the scrape came first: {lanes} <= {sent_then}");
    let received = has("outpost_peer_received_bytes_total", &[("peer", &centre_id)]);
    assert!(received > 0.0 && received <= received_then, "{received} <= {received_then}");
    assert!(holds(&post, &id));

    let (status, _) = get(metrics_port, "/");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

fn holds(post: &Post, id: &str) -> bool {
    post.outpost(&["--json", "watchlist", "show", id, "--purpose", "metrics test"]).code == 0
}

#[test]
fn a_post_without_the_setting_serves_no_metrics() {
    let key = FleetKey::generate();
    let port = free_port();
    let post = networked_post("kz-nurzhol", "KAZ-BS", &key, port, &[]);
    assert!(!post.log().contains("metrics endpoint listening"), "{}", post.log());
}
