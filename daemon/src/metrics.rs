//! The optional Prometheus endpoint (`metrics = "127.0.0.1:9464"` in the
//! config; off by default, loopback only): `GET /metrics` in the
//! OpenMetrics text format, encoded by `prometheus-client`.
//!
//! Latencies are histograms the search path and the writer's commit feed
//! as they happen. Everything else is read at scrape time, from where it
//! already lives: the writer's health probe (documents behind, refusals,
//! the quarantine, each connected peer's last sync), the network's
//! per-peer state and byte counts, the writer's queues, the store's table
//! lengths and file, and the data directory's file system. A scrape costs
//! one writer job and one read transaction; scrapes closer together than
//! [`CACHE_FOR`] get the last one's text, so a local user who scrapes in a
//! loop cannot load the writer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::health::Probes;
use crate::net::{LANES, PeerStats};
use crate::store::{RecordCounts, Store};
use crate::writer::HealthSnapshot;

/// How long a scrape waits for the writer's answer before it reports the
/// writer as not responding (and the rest without it).
const WRITER_WAIT: Duration = Duration::from_secs(2);
/// Connections served at once; one more is closed at once, so idle
/// connections can neither park the accept loop nor pile up.
const MAX_CONNECTIONS: usize = 8;
/// A request's head, at most; `GET /metrics` needs a few dozen bytes.
const MAX_REQUEST_BYTES: usize = 8192;
/// For the whole request head to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// For the whole exchange, the render included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A rendered scrape is served again for this long.
pub const CACHE_FOR: Duration = Duration::from_secs(5);

/// The latency histograms, fed where the work happens.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// An officer's search, from request to answer (the audit record
    /// included).
    pub search: Histogram,
    /// One durable commit of the writer.
    pub commit: Histogram,
}

impl Default for Latencies {
    fn default() -> Self {
        // 0.5 ms to about 16 s, doubling.
        let buckets = || Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        Self { search: buckets(), commit: buckets() }
    }
}

impl Latencies {
    pub fn observe_search(&self, took: Duration) {
        self.search.observe(took.as_secs_f64());
    }

    pub fn observe_commit(&self, took: Duration) {
        self.commit.observe(took.as_secs_f64());
    }
}

/// What one scrape read, encoded by [`Gathered`].
#[derive(Debug, Default)]
struct Scrape {
    /// `None`: the writer did not answer within [`WRITER_WAIT`].
    health: Option<HealthSnapshot>,
    networked: bool,
    net_peers: Vec<(String, PeerStats)>,
    queued_officers: usize,
    queued_peers: usize,
    counts: Option<RecordCounts>,
    store_bytes: u64,
    disk: Option<(u64, u64)>,
}

#[derive(Debug, Default)]
struct Gathered(Mutex<Scrape>);

type Labels = Vec<(&'static str, String)>;

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// One metric family: a series per label set, each made by `metric`.
fn family<V: Copy, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    series: &[(Labels, V)],
    metric: impl Fn(V) -> M,
    kind: MetricType,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in series {
        metric(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Gathered {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let scrape = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let e = &mut encoder;
        gauge(
            e,
            "writer_responding",
            "1 if the writer answered the scrape's probe within 5 s",
            i64::from(scrape.health.is_some()),
        )?;
        let queues = [("officers", scrape.queued_officers), ("peers", scrape.queued_peers)];
        let queues: Vec<(Labels, f64)> =
            queues.iter().map(|(q, n)| (vec![("queue", q.to_string())], *n as f64)).collect();
        family(
            e,
            ("writer_queue_depth", "jobs waiting for the writer, by queue"),
            &queues,
            ConstGauge::new,
            MetricType::Gauge,
        )?;
        if let Some(counts) = &scrape.counts {
            gauge(e, "entries", "watchlist entries held", counts.entries as i64)?;
            gauge(e, "incidents", "incidents held", counts.incidents as i64)?;
            let audit = vec![(Labels::new(), counts.audit_records)];
            family(
                e,
                ("audit_records", "audit records this post has written"),
                &audit,
                ConstCounter::new,
                MetricType::Counter,
            )?;
        }
        gauge(e, "store_bytes", "size of the database file", scrape.store_bytes as i64)?;
        if let Some((free, total)) = scrape.disk {
            gauge(e, "disk_free_bytes", "bytes free to the daemon on the data directory's file system", free as i64)?;
            gauge(e, "disk_total_bytes", "size of the data directory's file system", total as i64)?;
        }
        if let Some(health) = &scrape.health {
            gauge(e, "quarantine_changes", "changes held until a roster lets them in", health.held as i64)?;
            gauge(
                e,
                "storage_failing",
                "1 while the store refuses writes after an IO error",
                i64::from(health.storage_failing),
            )?;
            let refused: Vec<(Labels, u64)> =
                health.refused.iter().map(|(reason, n)| (vec![("reason", reason.clone())], *n)).collect();
            family(
                e,
                ("rejected_changes", "changes from peers refused since start, by reason"),
                &refused,
                ConstCounter::new,
                MetricType::Counter,
            )?;
            if scrape.networked {
                gauge(
                    e,
                    "documents_behind",
                    "documents whose copy differs from a connected peer's (behind or ahead), queued or syncing",
                    health.documents_differing as i64,
                )?;
                let last_sync: Vec<(Labels, f64)> = health
                    .peers
                    .iter()
                    .filter_map(|p| {
                        let at = p.last_reconciled?;
                        let labels = vec![("peer", p.peer.clone()), ("name", p.name.clone())];
                        Some((labels, at.as_millis() as f64 / 1000.0))
                    })
                    .collect();
                family(
                    e,
                    ("peer_last_sync_timestamp_seconds", "when each connected peer last finished a digest exchange"),
                    &last_sync,
                    ConstGauge::new,
                    MetricType::Gauge,
                )?;
            }
        }
        if !scrape.networked {
            return Ok(());
        }
        // From the network's own state, so these are there when the
        // writer is stuck too, and kept for peers that went away.
        let connected = scrape.net_peers.iter().filter(|(_, s)| s.connected).count();
        gauge(e, "peers_connected", "peers with an open connection", connected as i64)?;
        let seen: Vec<(Labels, f64)> = scrape
            .net_peers
            .iter()
            .filter_map(|(peer, s)| Some((vec![("peer", peer.clone())], s.last_seen?.as_millis() as f64 / 1000.0)))
            .collect();
        family(
            e,
            ("peer_last_seen_timestamp_seconds", "when each remembered peer last sent a frame or connected"),
            &seen,
            ConstGauge::new,
            MetricType::Gauge,
        )?;
        let mut sent: Vec<(Labels, u64)> = Vec::new();
        for (peer, stats) in &scrape.net_peers {
            for (lane, bytes) in LANES.iter().zip(stats.sent_by_lane) {
                sent.push((vec![("peer", peer.clone()), ("lane", lane.to_string())], bytes));
            }
        }
        family(
            e,
            ("peer_sent_bytes", "bytes written to each peer since start, framing included, by lane"),
            &sent,
            ConstCounter::new,
            MetricType::Counter,
        )?;
        let received: Vec<(Labels, u64)> =
            scrape.net_peers.iter().map(|(peer, s)| (vec![("peer", peer.clone())], s.bytes_received)).collect();
        family(
            e,
            ("peer_received_bytes", "bytes read from each peer since start, framing included"),
            &received,
            ConstCounter::new,
            MetricType::Counter,
        )?;
        Ok(())
    }
}

/// The endpoint's state: the registry, and where a scrape reads from.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
    gathered: Arc<Gathered>,
    probes: Probes,
    store: Arc<Store>,
    data_dir: PathBuf,
    /// The last scrape's text and when it was made; held across a render,
    /// so that scrapes at once make one render between them.
    last: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl Exporter {
    pub fn new(latencies: &Latencies, probes: Probes, store: Arc<Store>, data_dir: PathBuf) -> Self {
        let mut registry = Registry::with_prefix("outpost");
        registry.register(
            "search_duration_seconds",
            "an officer's search, request to answer",
            latencies.search.clone(),
        );
        registry.register("commit_duration_seconds", "one durable commit of the writer", latencies.commit.clone());
        let gathered = Arc::new(Gathered::default());
        registry.register_collector(Box::new(gathered.clone()));
        Self { registry, gathered, probes, store, data_dir, last: tokio::sync::Mutex::new(None) }
    }

    /// The scrape's text: the last one if it is fresh, else a new one.
    pub async fn render(&self) -> Result<String, std::fmt::Error> {
        let mut last = self.last.lock().await;
        if let Some((at, text)) = last.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(text.clone());
        }
        let text = self.gather_and_encode().await?;
        *last = Some((Instant::now(), text.clone()));
        Ok(text)
    }

    async fn gather_and_encode(&self) -> Result<String, std::fmt::Error> {
        let health = self.probes.writer_snapshot(WRITER_WAIT).await;
        let store = self.store.clone();
        let data_dir = self.data_dir.clone();
        let (counts, store_bytes, disk) = tokio::task::spawn_blocking(move || {
            let disk = crate::health::disk_space(&data_dir);
            (store.record_counts().ok(), store.file_bytes(), disk)
        })
        .await
        .unwrap_or_default();
        let (queued_officers, queued_peers) = self.probes.writer.queued();
        let net_peers = self.probes.net_state.as_ref().map(|state| {
            let state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            state.peers.iter().map(|(peer, stats)| (peer.clone(), stats.clone())).collect()
        });
        *self.gathered.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Scrape {
            health,
            networked: net_peers.is_some(),
            net_peers: net_peers.unwrap_or_default(),
            queued_officers,
            queued_peers,
            counts,
            store_bytes,
            disk,
        };
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Answers `GET /metrics` on `listener` until the task is aborted. The
/// accept loop never waits: past [`MAX_CONNECTIONS`] a connection is
/// closed at once.
pub async fn serve(listener: TcpListener, exporter: Arc<Exporter>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = listener.accept().await;
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics: too many connections; closed one");
            continue;
        };
        let exporter = exporter.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &exporter)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!(error = %err, "a metrics request failed"),
                Err(_) => tracing::debug!("a metrics request timed out"),
            }
        });
    }
}

async fn answer(mut stream: tokio::net::TcpStream, exporter: &Exporter) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    let head_by = tokio::time::Instant::now() + HEAD_TIMEOUT;
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let Ok(read) = tokio::time::timeout_at(head_by, stream.read(&mut buffer)).await else { return Ok(()) };
        let n = read?;
        if n == 0 || head.len() + n > MAX_REQUEST_BYTES {
            return Ok(());
        }
        head.extend_from_slice(&buffer[..n]);
    }
    let request_line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let (status, content_type, body) = if request_line.starts_with(b"GET /metrics ") {
        match exporter.render().await {
            Ok(text) => ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", text),
            Err(_) => ("500 Internal Server Error", "text/plain", "encoding failed\n".to_string()),
        }
    } else {
        ("404 Not Found", "text/plain", "only GET /metrics is served here\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
