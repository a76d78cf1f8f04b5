//! The result of a run, as one key=value text line or one JSON line.

use std::fmt::Write;
use std::time::Duration;

use crate::cpu::Spent;
use crate::histogram::Histogram;
use crate::options::{Config, Read};
use crate::worker::Tally;

/// Totals over all connections.
pub struct Summary {
    /// Measured wall time, first measured request to last reply.
    pub elapsed: Duration,
    /// Latency of every measured successful request, in nanoseconds.
    pub latency: Histogram,
    pub sets: u64,
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    /// The server's CPU time in the measured window, if asked for.
    pub server_cpu: Option<Spent>,
}

impl Summary {
    pub fn new(tallies: &[Tally], server_cpu: Option<Spent>) -> Summary {
        let mut latency = Histogram::new();
        for tally in tallies {
            latency.merge(&tally.latency);
        }
        let start = tallies.iter().map(|t| t.measure_start).min();
        let finish = tallies.iter().map(|t| t.finish).max();
        let elapsed = match (start, finish) {
            (Some(start), Some(finish)) => finish.saturating_duration_since(start),
            _ => Duration::ZERO,
        };
        Summary {
            elapsed,
            latency,
            sets: tallies.iter().map(|t| t.sets).sum(),
            hits: tallies.iter().map(|t| t.hits).sum(),
            misses: tallies.iter().map(|t| t.misses).sum(),
            errors: tallies.iter().map(|t| t.errors).sum(),
            server_cpu,
        }
    }

    pub fn ops(&self) -> u64 {
        self.sets + self.hits + self.misses
    }

    pub fn ops_per_sec(&self) -> f64 {
        self.per_sec(self.ops())
    }

    /// Messages taken per second: every `get` that returned one (a reliable
    /// read's message is acknowledged by the next read, or at the end).
    pub fn consumed_per_sec(&self) -> f64 {
        self.per_sec(self.hits)
    }

    fn per_sec(&self, count: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            count as f64 / secs
        } else {
            0.0
        }
    }

    /// The figures of both formats, in print order: name, value. Runs of
    /// the kinds that predate `--read` and `--producers` print exactly the
    /// fields they always did; the others add theirs at the end.
    fn fields(&self, config: &Config) -> Vec<(&'static str, Value)> {
        let us = |ns: u64| Value::Float(ns as f64 / 1000.0, 1);
        let mut fields = vec![
            ("server", Value::Text(config.addr.to_string())),
            ("mix", Value::Text(config.mix.name().into())),
            ("connections", Value::Int(config.connections as u64)),
            ("queues", Value::Int(config.queues as u64)),
            ("value_size", Value::Int(config.value_size as u64)),
            ("seconds", Value::Float(self.elapsed.as_secs_f64(), 2)),
            ("ops", Value::Int(self.ops())),
            ("ops_per_sec", Value::Float(self.ops_per_sec(), 1)),
            ("sets", Value::Int(self.sets)),
            ("get_hits", Value::Int(self.hits)),
            ("get_misses", Value::Int(self.misses)),
            ("mean_us", Value::Float(self.latency.mean() / 1000.0, 1)),
            ("p50_us", us(self.latency.quantile(0.50))),
            ("p99_us", us(self.latency.quantile(0.99))),
            ("p999_us", us(self.latency.quantile(0.999))),
            ("max_us", us(self.latency.max())),
            ("errors", Value::Int(self.errors)),
        ];
        if let Some(spent) = &self.server_cpu {
            let per_op = |ns: u64| Value::Float(ns as f64 / 1000.0 / self.ops().max(1) as f64, 2);
            fields.extend([
                ("server_cpu_us_per_op", per_op(spent.total_ns)),
                ("busiest_thread_us_per_op", per_op(spent.busiest_ns)),
                (
                    "busiest_thread",
                    Value::Text(spent.busiest.replace(' ', "_")),
                ),
            ]);
        }
        if !config.is_classic() {
            fields.extend([
                ("read", Value::Text(config.read.name().into())),
                ("producers", Value::Int(config.producers as u64)),
                ("consumers", Value::Int(config.consumers() as u64)),
                ("consumed_per_sec", Value::Float(self.consumed_per_sec(), 1)),
            ]);
            if config.read == Read::Blocking {
                fields.push(("wait_ms", Value::Int(config.wait_ms)));
            }
        }
        fields
    }

    /// `key=value` pairs separated by spaces; no value contains a space.
    pub fn text(&self, config: &Config) -> String {
        let mut line = String::new();
        for (name, value) in self.fields(config) {
            if !line.is_empty() {
                line.push(' ');
            }
            let _ = write!(line, "{name}=");
            value.write(&mut line, false);
        }
        line
    }

    /// The same figures as one JSON object.
    pub fn json(&self, config: &Config) -> String {
        let mut line = String::from("{");
        for (name, value) in self.fields(config) {
            if line.len() > 1 {
                line.push(',');
            }
            let _ = write!(line, "\"{name}\":");
            value.write(&mut line, true);
        }
        line.push('}');
        line
    }
}

/// One reported figure.
enum Value {
    Int(u64),
    /// A number and its decimal places.
    Float(f64, usize),
    Text(String),
}

impl Value {
    fn write(&self, out: &mut String, json: bool) {
        let _ = match self {
            Value::Int(n) => write!(out, "{n}"),
            Value::Float(x, places) => write!(out, "{x:.places$}"),
            Value::Text(s) if json => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
                Ok(())
            }
            Value::Text(s) => write!(out, "{s}"),
        };
    }
}
