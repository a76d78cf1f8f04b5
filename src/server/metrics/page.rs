//! The metrics page in Prometheus' text exposition format (0.0.4),
//! written by prometheus-client from a snapshot and what the endpoint
//! read of the environment. The names are fixed (README, "Metrics"):
//! dashboards and alerts rely on them.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::endpoint::EnvSample;
use super::{QueueSample, Snapshot};

/// The `Content-Type` of the page.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// What `memcacheq_build_info` reports as `version`: this build's.
const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The page for `snapshot` and `env`.
pub fn render(snapshot: Arc<Snapshot>, env: EnvSample) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Page { snapshot, env }));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

#[derive(Debug)]
struct Page {
    snapshot: Arc<Snapshot>,
    env: EnvSample,
}

type Per = fn(&QueueSample) -> u64;

/// Per-queue series: name (counters without `_total`), help, type, value.
const QUEUE_SERIES: [(&str, &str, MetricType, Per); 9] = [
    (
        "memcacheq_queue_messages_ready",
        "Messages waiting that nobody holds open.",
        MetricType::Gauge,
        |q| q.ready,
    ),
    (
        "memcacheq_queue_messages_unacked",
        "Messages open (get <q>/open), not yet closed or given back.",
        MetricType::Gauge,
        |q| q.unacked,
    ),
    (
        "memcacheq_queue_messages",
        "Messages in the queue, ready and unacked.",
        MetricType::Gauge,
        |q| q.ready + q.unacked,
    ),
    (
        "memcacheq_queue_published",
        "Messages ever stored (the set count stats queue keeps on disk).",
        MetricType::Counter,
        |q| q.published,
    ),
    (
        "memcacheq_queue_delivered",
        "Messages taken by get or opened since the server started.",
        MetricType::Counter,
        |q| q.delivered,
    ),
    (
        "memcacheq_queue_acked",
        "Open messages closed (get <q>/close) since the server started.",
        MetricType::Counter,
        |q| q.acked,
    ),
    (
        "memcacheq_queue_redelivered",
        "Messages opened again since the server started.",
        MetricType::Counter,
        |q| q.redelivered,
    ),
    (
        "memcacheq_queue_dead_lettered",
        "Messages moved to <q>.dead since the server started.",
        MetricType::Counter,
        |q| q.dead_lettered,
    ),
    (
        "memcacheq_queue_waiters",
        "Requests waiting for a message (get <q>/t=<ms>).",
        MetricType::Gauge,
        |q| q.waiters,
    ),
];

fn gauge<N>(enc: &mut DescriptorEncoder, name: &str, help: &str, value: N) -> std::fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    metric.encode(enc.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(enc.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter with one label, a series per value.
fn labelled_counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'static str, u64)>,
) -> std::fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, value)];
        ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A queue name as a label value: the name itself when it is UTF-8,
/// else with every byte outside printable ASCII written `\xNN`, so that
/// two names never share a label (which would make Prometheus drop the
/// whole scrape as a duplicate series).
fn label_of(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(name) => name.to_string(),
        Err(_) => name.escape_ascii().to_string(),
    }
}

impl Page {
    fn queues(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let names: Vec<String> = self
            .snapshot
            .queues
            .iter()
            .map(|q| label_of(&q.name))
            .collect();
        for (name, help, kind, value) in QUEUE_SERIES {
            let mut metric = enc.encode_descriptor(name, help, None, kind)?;
            for (q, queue) in self.snapshot.queues.iter().zip(&names) {
                let labels = [("queue", queue.as_str())];
                let family = metric.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(value(q)).encode(family)?,
                    _ => ConstGauge::new(value(q)).encode(family)?,
                }
            }
        }
        let mut metric = enc.encode_descriptor(
            "memcacheq_queue_oldest_message_age_seconds",
            "Seconds since the oldest ready message was stored (0 when none).",
            None,
            MetricType::Gauge,
        )?;
        for (q, queue) in self.snapshot.queues.iter().zip(&names) {
            let labels = [("queue", queue.as_str())];
            ConstGauge::new(q.age_ms as f64 / 1000.0).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn server(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let s = &self.snapshot.server;
        gauge(
            enc,
            "memcacheq_connections",
            "Open client connections.",
            s.connections,
        )?;
        counter(
            enc,
            "memcacheq_connections",
            "Client connections accepted since the server started.",
            s.connections_total,
        )?;
        labelled_counter(
            enc,
            "memcacheq_commands",
            "Requests received, by command.",
            "command",
            s.counters.commands(),
        )?;
        labelled_counter(
            enc,
            "memcacheq_refused",
            "Requests and connections refused, by reason.",
            "reason",
            s.counters.refusals(),
        )?;
        counter(
            enc,
            "memcacheq_read_bytes",
            "Bytes read from clients.",
            s.read_bytes,
        )?;
        counter(
            enc,
            "memcacheq_written_bytes",
            "Bytes written to clients.",
            s.written_bytes,
        )?;
        enc.encode_descriptor(
            "memcacheq_commit_seconds",
            "Time from a turn's commit to the release of its replies.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            s.commit.sum(),
            s.commit.count(),
            &s.commit.buckets(),
            None,
        )?;
        gauge(
            enc,
            "memcacheq_uptime_seconds",
            "Seconds since the server started.",
            s.uptime.as_secs_f64(),
        )?;
        enc.encode_descriptor(
            "memcacheq_build",
            "The version of this build.",
            None,
            MetricType::Info,
        )?
        .encode_info(&[("version", BUILD_VERSION)])
    }

    fn environment(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let e = &self.env;
        gauge(
            enc,
            "memcacheq_disk_free_bytes",
            "Free bytes on the filesystem of the home.",
            e.disk_free,
        )?;
        gauge(
            enc,
            "memcacheq_disk_refusal_threshold_bytes",
            "Sets are refused while memcacheq_disk_free_bytes is below this.",
            e.refusal_threshold,
        )?;
        gauge(
            enc,
            "memcacheq_bdb_cache_dirty_ratio",
            "Part of the Berkeley DB cache modified and not yet written.",
            e.dirty_ratio,
        )?;
        counter(
            enc,
            "memcacheq_bdb_deadlocks",
            "Lock requests Berkeley DB refused to break a deadlock.",
            e.deadlocks,
        )?;
        let Some(rep) = &e.replication else {
            return Ok(());
        };
        let mut metric = enc.encode_descriptor(
            "memcacheq_replication_role",
            "1 for this site's role in its replication group, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        for role in ["master", "replica", "electing"] {
            let labels = [("role", role)];
            ConstGauge::new(u64::from(rep.role == role)).encode(metric.encode_family(&labels)?)?;
        }
        gauge(
            enc,
            "memcacheq_replication_sites_connected",
            "Other sites of the group this site is connected to.",
            rep.connected,
        )?;
        counter(
            enc,
            "memcacheq_replication_perm_failed",
            "Commits whose --rep-ack was not met in time.",
            rep.perm_failed,
        )
    }
}

impl Collector for Page {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        self.queues(&mut enc)?;
        self.server(&mut enc)?;
        self.environment(&mut enc)
    }
}
