//! What is shown, terminal or not: two polls make a [`View`] (rates are
//! the differences of their counters over the time between them), rows in
//! the order shown, each cell as text; and the plain text of `--once`.

use std::collections::HashMap;

use crate::poll::{QueueCounts, Sample, Source};

/// The table's column titles; the first is left-aligned, the rest right.
pub const COLUMNS: [&str; 7] = [
    "QUEUE", "READY", "UNACKED", "IN/S", "OUT/S", "AGE", "WAITERS",
];

/// Narrowest a number column gets, so that ages and small counts do not
/// shift the layout from one refresh to the next.
pub const NUMBER_WIDTH: usize = 8;

/// One queue's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub ready: Option<u64>,
    pub unacked: Option<u64>,
    /// Messages stored per second.
    pub in_rate: Option<f64>,
    /// Messages taken out per second.
    pub out_rate: Option<f64>,
    /// The oldest ready message's age; `None` when nothing is ready.
    pub age_ms: Option<u64>,
    pub waiters: Option<u64>,
}

impl Row {
    /// What the queue holds, ready and open: the rows' order.
    fn depth(&self) -> u64 {
        self.ready.unwrap_or(0) + self.unacked.unwrap_or(0)
    }

    /// The row's cells, in [`COLUMNS`]' order; `-` for what is unknown.
    pub fn cells(&self) -> [String; 7] {
        [
            self.name.clone(),
            count(self.ready),
            count(self.unacked),
            rate(self.in_rate),
            rate(self.out_rate),
            self.age_ms.map_or_else(dash, age),
            count(self.waiters),
        ]
    }
}

/// The whole screen's content.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// HOST:PORT polled.
    pub addr: String,
    pub version: Option<String>,
    pub uptime: Option<u64>,
    pub connections: Option<u64>,
    /// Messages stored per second, all queues (`set_hits`).
    pub in_rate: Option<f64>,
    /// Messages returned per second, all queues (`get_hits`).
    pub out_rate: Option<f64>,
    pub source: Source,
    /// Deepest first, then by name.
    pub rows: Vec<Row>,
}

impl View {
    /// The view of `now`, with rates since `before` (none without it).
    pub fn new(addr: &str, before: Option<&Sample>, now: &Sample) -> View {
        let secs = before.map(|b| now.at.duration_since(b.at).as_secs_f64());
        let server_rate = |name: &str| per_second(before?.stat(name)?, now.stat(name)?, secs?);
        let earlier: HashMap<&str, &QueueCounts> = before
            .map(|b| b.queues.iter().map(|q| (q.name.as_str(), q)).collect())
            .unwrap_or_default();
        let mut rows: Vec<Row> = now
            .queues
            .iter()
            .map(|q| {
                // A queue missing from the earlier poll was made since: from 0.
                let was =
                    |field: fn(&QueueCounts) -> Option<u64>| match earlier.get(q.name.as_str()) {
                        Some(old) => field(old),
                        None => Some(0),
                    };
                let queue_rate = |field: fn(&QueueCounts) -> Option<u64>| {
                    per_second(was(field)?, field(q)?, secs?)
                };
                Row {
                    name: q.name.clone(),
                    ready: q.ready,
                    unacked: q.unacked,
                    in_rate: queue_rate(|c| c.stored),
                    out_rate: queue_rate(|c| c.taken),
                    // The server says 0 when no message is ready.
                    age_ms: q.age_ms.filter(|_| q.ready != Some(0)),
                    waiters: q.waiters,
                }
            })
            .collect();
        rows.sort_by(|a, b| b.depth().cmp(&a.depth()).then_with(|| a.name.cmp(&b.name)));
        View {
            addr: addr.to_string(),
            version: now.stats.get("version").cloned(),
            uptime: now.stat("uptime"),
            connections: now.stat("curr_connections"),
            in_rate: server_rate("set_hits"),
            out_rate: server_rate("get_hits"),
            source: now.source,
            rows,
        }
    }

    /// The header's lines.
    pub fn header(&self) -> [String; 2] {
        let source = match self.source {
            Source::DumpStats => "dump_stats",
            Source::StatsQueue => "stats queue: no unacked, age or waiters",
        };
        [
            format!(
                "{}  version {}  uptime {}  connections {}",
                self.addr,
                self.version.as_deref().unwrap_or("-"),
                self.uptime.map_or_else(dash, uptime),
                count(self.connections),
            ),
            format!(
                "messages in/s {}  out/s {}  queues {}  ({source})",
                rate(self.in_rate),
                rate(self.out_rate),
                self.rows.len(),
            ),
        ]
    }

    /// Every column's width: the queue names', or [`NUMBER_WIDTH`] unless
    /// a title or a cell is wider.
    pub fn widths(&self) -> [usize; 7] {
        let mut widths = COLUMNS.map(str::len);
        for w in &mut widths[1..] {
            *w = (*w).max(NUMBER_WIDTH);
        }
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row.cells()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        widths
    }

    /// `--once`'s output: the header, a blank line, the table.
    pub fn to_text(&self) -> String {
        let widths = self.widths();
        let line = |cells: [String; 7]| {
            let mut out = format!("{:<w$}", cells[0], w = widths[0]);
            for (cell, w) in cells[1..].iter().zip(&widths[1..]) {
                out.push_str(&format!("  {cell:>w$}"));
            }
            out + "\n"
        };
        let [first, second] = self.header();
        let mut text = format!("{first}\n{second}\n\n");
        text.push_str(&line(COLUMNS.map(String::from)));
        for row in &self.rows {
            text.push_str(&line(row.cells()));
        }
        text
    }
}

/// The change from `was` to `now` per second; none when the counter went
/// back (the server restarted, or `stats reset`).
fn per_second(was: u64, now: u64, secs: f64) -> Option<f64> {
    (now >= was && secs > 0.0).then(|| (now - was) as f64 / secs)
}

fn dash() -> String {
    "-".to_string()
}

fn count(n: Option<u64>) -> String {
    n.map_or_else(dash, |n| n.to_string())
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(dash, |r| format!("{r:.1}"))
}

/// `850ms`, `12.3s`, `5m02s`, `3h04m`, `2d03h`: at most six characters
/// below 100 days.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{s}.{}s", ms % 1000 / 100),
        60_000..3_600_000 => format!("{}m{:02}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

/// `02:03:04`, or `1d 02:03:04` from a day on.
fn uptime(s: u64) -> String {
    let clock = format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60);
    match s / 86_400 {
        0 => clock,
        days => format!("{days}d {clock}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    fn queue(name: &str, ready: u64, unacked: u64, stored: u64) -> QueueCounts {
        QueueCounts {
            name: name.into(),
            ready: Some(ready),
            unacked: Some(unacked),
            stored: Some(stored),
            taken: Some(stored - ready - unacked),
            waiters: Some(0),
            age_ms: Some(if ready > 0 { 1500 } else { 0 }),
        }
    }

    fn sample(at: Instant, set_hits: u64, queues: Vec<QueueCounts>) -> Sample {
        let stats: BTreeMap<String, String> = [
            ("uptime", "90061".to_string()),
            ("curr_connections", "3".into()),
            ("version", "0.2.1".into()),
            ("set_hits", set_hits.to_string()),
            ("get_hits", "7".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Sample {
            at,
            stats,
            queues,
            source: Source::DumpStats,
        }
    }

    #[test]
    fn rows_deepest_first_then_by_name() {
        let now = sample(
            Instant::now(),
            0,
            vec![
                queue("a", 1, 0, 1),
                queue("b", 0, 5, 5),
                queue("c", 2, 3, 9),
                queue("d", 0, 0, 0),
                queue("e", 1, 0, 4),
            ],
        );
        let view = View::new("h:1", None, &now);
        let names: Vec<&str> = view.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "a", "e", "d"]);
    }

    #[test]
    fn rates_are_differences_over_time() {
        let t0 = Instant::now();
        let before = sample(
            t0,
            10,
            vec![queue("jobs", 4, 0, 10), queue("gone", 0, 0, 3)],
        );
        let now = sample(
            t0 + Duration::from_secs(2),
            30,
            vec![
                queue("jobs", 6, 1, 20),
                queue("new", 1, 0, 4),
                queue("gone", 0, 0, 1),
            ],
        );
        let view = View::new("h:1", Some(&before), &now);
        let jobs = &view.rows[0];
        // 10 stored and (20 - 7) - (10 - 4) = 7 taken in 2 s.
        assert_eq!((jobs.in_rate, jobs.out_rate), (Some(5.0), Some(3.5)));
        // Made between the polls: counted from 0.
        let new = view.rows.iter().find(|r| r.name == "new").unwrap();
        assert_eq!((new.in_rate, new.out_rate), (Some(2.0), Some(1.5)));
        // Deleted and made again: its counters went back, no rate.
        let gone = view.rows.iter().find(|r| r.name == "gone").unwrap();
        assert_eq!((gone.in_rate, gone.out_rate), (None, None));
        assert_eq!((view.in_rate, view.out_rate), (Some(10.0), Some(0.0)));
        assert_eq!(View::new("h:1", None, &now).rows[0].in_rate, None);
    }

    #[test]
    fn names_only_queues_are_listed_by_name() {
        let mut now = sample(Instant::now(), 0, vec![]);
        now.source = Source::StatsQueue;
        now.queues = crate::poll::parse_stats_queue(b"STAT zz\r\nSTAT aa\r\nEND\r\n").unwrap();
        let view = View::new("h:1", Some(&now.clone()), &now);
        let cells: Vec<[String; 7]> = view.rows.iter().map(Row::cells).collect();
        assert_eq!(
            cells[0],
            ["aa", "-", "-", "-", "-", "-", "-"].map(String::from)
        );
        assert_eq!(cells[1][0], "zz");
    }

    #[test]
    fn plain_text_is_aligned() {
        let now = sample(
            Instant::now(),
            0,
            vec![
                queue("a-long-queue-name", 0, 0, 0),
                queue("jobs", 12, 1, 20),
            ],
        );
        let text = View::new("127.0.0.1:22201", None, &now).to_text();
        assert_eq!(
            text,
            "127.0.0.1:22201  version 0.2.1  uptime 1d 01:01:01  connections 3\n\
             messages in/s -  out/s -  queues 2  (dump_stats)\n\
             \n\
             QUEUE                 READY   UNACKED      IN/S     OUT/S       AGE   WAITERS\n\
             jobs                     12         1         -         -      1.5s         0\n\
             a-long-queue-name         0         0         -         -         -         0\n"
        );
    }

    #[test]
    fn ages_fit_their_column() {
        let cases = [
            (0, "0ms"),
            (999, "999ms"),
            (1_000, "1.0s"),
            (59_999, "59.9s"),
            (60_000, "1m00s"),
            (3_599_999, "59m59s"),
            (3_600_000, "1h00m"),
            (86_399_999, "23h59m"),
            (86_400_000, "1d00h"),
            (99 * 86_400_000 + 23 * 3_600_000, "99d23h"),
        ];
        for (ms, want) in cases {
            assert_eq!(age(ms), want, "{ms} ms");
            assert!(want.len() <= NUMBER_WIDTH);
        }
        assert_eq!(uptime(59), "00:00:59");
        assert_eq!(uptime(2 * 86_400 + 3723), "2d 01:02:03");
    }
}
