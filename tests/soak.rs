//! Memory under steady traffic (issue 19): many queues, every message
//! stored and taken again, for long enough that anything kept per message
//! shows. The server's anonymous memory (`RssAnon`; the Berkeley DB cache
//! is a file mapping and does not count) must stop growing after warm-up.
//! `MEMCACHEQ_SOAK_SECS` (default 20) sets how long the traffic runs.

mod common;

use common::*;
use std::time::{Duration, Instant};

const QUEUES: usize = 200;
/// Growth of anonymous memory allowed after warm-up.
const ALLOWED_GROWTH_KB: u64 = 2048;

/// One round: a set on every queue in one write, then a get of every
/// queue in another; every reply checked.
fn round(c: &mut Client, n: u64) {
    let mut sets = Vec::new();
    let mut gets = Vec::new();
    let mut want = Vec::new();
    for q in 0..QUEUES {
        let body = format!("m{n}-{q}");
        sets.extend_from_slice(&set_cmd(format!("soak{q}").as_bytes(), 0, body.as_bytes()));
        gets.extend_from_slice(format!("get soak{q}\r\n").as_bytes());
        want.extend_from_slice(&value_reply(
            format!("soak{q}").as_bytes(),
            "0",
            body.as_bytes(),
        ));
        want.extend_from_slice(END);
    }
    c.send(&sets);
    assert_eq!(c.read_n(STORED.len() * QUEUES), STORED.repeat(QUEUES));
    c.send(&gets);
    let have = c.read_n(want.len());
    assert!(have == want, "round {n}: {}", show(&have));
}

#[test]
fn anonymous_memory_stays_flat_under_steady_set_and_get() {
    let secs = std::env::var("MEMCACHEQ_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20u64);
    let (_home, server) = start(&["-N"]);
    let mut c = server.client();
    let start = Instant::now();
    let warm_up = Duration::from_secs(secs / 4);
    let mut n = 0;
    while start.elapsed() < warm_up {
        round(&mut c, n);
        n += 1;
    }
    let after_warm_up = anonymous_kb(server.pid());
    let mut samples = vec![after_warm_up];
    let mut next_sample = Instant::now() + Duration::from_secs(2);
    while start.elapsed() < Duration::from_secs(secs) {
        round(&mut c, n);
        n += 1;
        if Instant::now() >= next_sample {
            samples.push(anonymous_kb(server.pid()));
            next_sample += Duration::from_secs(2);
        }
    }
    let end = anonymous_kb(server.pid());
    samples.push(end);
    let messages = n * QUEUES as u64;
    eprintln!(
        "soak: {messages} messages through {QUEUES} queues; RssAnon kB every 2 s: {samples:?}"
    );
    assert!(
        end <= after_warm_up + ALLOWED_GROWTH_KB,
        "anonymous memory grew from {after_warm_up} kB to {end} kB over {messages} messages: {samples:?}"
    );
}
