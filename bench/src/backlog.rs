//! Backlog mode (`--backlog N`): how fast one queue takes N messages when
//! nobody consumes, and how fast it gives them back.
//!
//! Each connection writes a batch of `set`s of the same queue in one write,
//! reads their replies, and goes on until its share of N is stored; then,
//! in the drain, the same with `get`s. The moment each tenth of N was
//! acknowledged (over all connections) gives the rate of that tenth: one
//! line per tenth, then one for the whole phase, as `key=value` pairs.
//! Every reply is checked as in the closed loop (`STORED`; a `VALUE` of the
//! queue with the body this tool sends). A connection stops at its first
//! error, or in the drain at the first empty reply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{Client, GetOutcome, Queue};
use crate::options::{Backlog, Config};
use crate::{join_all, share};

/// Into how many blocks a phase's messages are cut for their rates.
const BLOCKS: u64 = 10;

/// Fills, then drains, as `backlog.phase` says; true if clean.
pub fn run(config: &Arc<Config>, backlog: Backlog) -> Result<bool, String> {
    let mut clean = true;
    if backlog.phase.fills() {
        clean &= phase(config, backlog, Work::Fill)?;
    }
    if backlog.phase.drains() {
        clean &= phase(config, backlog, Work::Drain)?;
    }
    Ok(clean)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    Fill,
    Drain,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Fill => "fill",
            Work::Drain => "drain",
        }
    }
}

/// When each block of a phase was complete.
struct Marks {
    /// Messages of the phase.
    total: u64,
    /// Blocks the messages are cut into (fewer than [`BLOCKS`] only for
    /// tiny runs).
    blocks: u64,
    /// Messages acknowledged so far.
    done: AtomicU64,
    /// When block `k` (0-based) was complete.
    at: Mutex<Vec<Option<Instant>>>,
}

impl Marks {
    fn new(total: u64) -> Marks {
        let blocks = BLOCKS.min(total);
        Marks {
            total,
            blocks,
            done: AtomicU64::new(0),
            at: Mutex::new(vec![None; blocks as usize]),
        }
    }

    /// Messages acknowledged when block `k` (0-based) is complete.
    fn end_of(&self, k: u64) -> u64 {
        ((k + 1) * self.total).div_ceil(self.blocks)
    }

    /// Counts `n` more acknowledged messages.
    fn advance(&self, n: u64) {
        let before = self.done.fetch_add(n, Ordering::SeqCst);
        let after = before + n;
        let now = Instant::now();
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        for k in 0..self.blocks {
            let end = self.end_of(k);
            if before < end && end <= after {
                at[k as usize].get_or_insert(now);
            }
        }
    }
}

/// What one connection did in a phase.
#[derive(Default)]
struct Tally {
    /// Messages stored or taken.
    done: u64,
    /// Gets that found the queue empty.
    misses: u64,
    /// The first failure; the connection stopped there.
    error: Option<String>,
}

/// Runs one phase on `config.connections` new connections and prints its
/// lines; true if no request failed and every message was done.
fn phase(config: &Arc<Config>, backlog: Backlog, work: Work) -> Result<bool, String> {
    let conns = config.connections;
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        let client = Client::connect(config.addr, config.timeout, config.read_timeout())
            .map_err(|e| format!("cannot connect to {}: {e}", config.addr))?;
        clients.push(client);
    }
    let marks = Arc::new(Marks::new(backlog.messages));
    let start = Arc::new(Barrier::new(conns + 1));
    let name = format!("{}0", config.queue_prefix);
    let mut handles = Vec::with_capacity(conns);
    for (conn, client) in clients.into_iter().enumerate() {
        let queue = Queue::new(&name, config.value_size);
        let share = share(backlog.messages, conn, conns);
        let marks = Arc::clone(&marks);
        let start = Arc::clone(&start);
        let limit = config.duration;
        let batch = backlog.batch;
        let handle = thread::Builder::new()
            .name(format!("{}-{conn}", work.name()))
            .spawn(move || {
                start.wait();
                let end = Instant::now() + limit;
                pump(client, &queue, work, share, batch, end, &marks)
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        handles.push(handle);
    }
    start.wait();
    let began = Instant::now();
    let tallies: Vec<Tally> = join_all(handles)?;
    let elapsed = began.elapsed();
    let at = marks.at.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let done: u64 = tallies.iter().map(|t| t.done).sum();
    let misses: u64 = tallies.iter().map(|t| t.misses).sum();
    let errors = tallies.iter().filter(|t| t.error.is_some()).count();
    for line in report(work, &marks, &at, began) {
        println!("{line}");
    }
    let rates = block_rates(&marks, &at, began);
    let fastest = rates.iter().copied().fold(0.0, f64::max);
    let slowest = if rates.len() as u64 == marks.blocks {
        rates.iter().copied().fold(f64::INFINITY, f64::min)
    } else {
        0.0
    };
    let ratio = if fastest > 0.0 {
        slowest / fastest
    } else {
        0.0
    };
    println!(
        "phase={} server={} connections={conns} batch={} value_size={} messages={done} \
         seconds={:.2} msgs_per_sec={:.1} slowest_block_per_sec={slowest:.1} \
         fastest_block_per_sec={fastest:.1} slowest_vs_fastest={ratio:.2} misses={misses} \
         errors={errors}",
        work.name(),
        config.addr,
        backlog.batch,
        config.value_size,
        elapsed.as_secs_f64(),
        per_sec(done, elapsed),
    );
    if let Some(first) = tallies.iter().find_map(|t| t.error.as_ref()) {
        eprintln!(
            "memcacheq-bench: {}: {errors} connection(s) failed; first: {first}",
            work.name()
        );
    }
    if done < backlog.messages {
        eprintln!(
            "memcacheq-bench: {}: {done} of {} messages",
            work.name(),
            backlog.messages
        );
    }
    Ok(errors == 0 && done == backlog.messages)
}

/// Stores (or takes) `share` messages on `client`, `batch` per write,
/// until done, `end`, the first error or (draining) an empty queue.
fn pump(
    mut client: Client,
    queue: &Queue,
    work: Work,
    share: u64,
    batch: usize,
    end: Instant,
    marks: &Marks,
) -> Tally {
    let mut tally = Tally::default();
    let request = match work {
        Work::Fill => queue.set_request(),
        Work::Drain => queue.get_request(),
    };
    let requests = request.repeat(batch);
    let mut left = share;
    while left > 0 && Instant::now() < end {
        let n = left.min(batch as u64) as usize;
        if let Err(e) = client.send(&requests[..n * request.len()]) {
            tally.error = Some(e.to_string());
            return tally;
        }
        let mut got = 0;
        for _ in 0..n {
            let reply = match work {
                Work::Fill => client.read_stored().map(|()| GetOutcome::Hit),
                Work::Drain => client.read_got(queue),
            };
            match reply {
                Ok(GetOutcome::Hit) => got += 1,
                Ok(GetOutcome::Miss) => tally.misses += 1,
                Err(e) => {
                    tally.error = Some(e.to_string());
                    break;
                }
            }
        }
        tally.done += got;
        left -= got;
        marks.advance(got);
        if tally.error.is_some() || tally.misses > 0 {
            break;
        }
    }
    tally
}

/// Messages per second of every complete block, in order, stopping at the
/// first block never completed.
fn block_rates(marks: &Marks, at: &[Option<Instant>], began: Instant) -> Vec<f64> {
    let mut rates = Vec::new();
    let mut previous = (began, 0);
    for (k, done_at) in at.iter().enumerate() {
        let Some(done_at) = *done_at else {
            break;
        };
        let end = marks.end_of(k as u64);
        rates.push(per_sec(
            end - previous.1,
            done_at.saturating_duration_since(previous.0),
        ));
        previous = (done_at, end);
    }
    rates
}

/// One line per block: its number, where it ends, how long it took and
/// its rate; `reached=no` for blocks never completed.
fn report(work: Work, marks: &Marks, at: &[Option<Instant>], began: Instant) -> Vec<String> {
    let rates = block_rates(marks, at, began);
    let mut previous = began;
    (0..marks.blocks)
        .map(|k| {
            let upto = marks.end_of(k);
            let block = k + 1;
            match (at[k as usize], rates.get(k as usize)) {
                (Some(done_at), Some(rate)) => {
                    let secs = done_at.saturating_duration_since(previous).as_secs_f64();
                    previous = done_at;
                    format!(
                        "phase={} block={block} upto={upto} seconds={secs:.3} msgs_per_sec={rate:.1}",
                        work.name()
                    )
                }
                _ => format!(
                    "phase={} block={block} upto={upto} reached=no",
                    work.name()
                ),
            }
        })
        .collect()
}

fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_end_at_each_tenth() {
        let marks = Marks::new(2_000_000);
        let ends: Vec<u64> = (0..10).map(|k| marks.end_of(k)).collect();
        assert_eq!(ends[0], 200_000);
        assert_eq!(ends[9], 2_000_000);
        let marks = Marks::new(25);
        let ends: Vec<u64> = (0..10).map(|k| marks.end_of(k)).collect();
        assert_eq!(ends, [3, 5, 8, 10, 13, 15, 18, 20, 23, 25]);
        let marks = Marks::new(3);
        assert_eq!(marks.blocks, 3);
        assert_eq!(
            (0..3).map(|k| marks.end_of(k)).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn advancing_marks_every_block_passed() {
        let marks = Marks::new(100);
        marks.advance(25);
        let at = marks.at.lock().unwrap().clone();
        assert!(at[0].is_some() && at[1].is_some());
        assert!(at[2].is_none());
        marks.advance(75);
        assert!(marks.at.lock().unwrap().iter().all(Option::is_some));
        let began = Instant::now() - Duration::from_secs(1);
        let lines = report(Work::Fill, &marks, &marks.at.lock().unwrap(), began);
        assert_eq!(lines.len(), 10);
        assert!(lines[9].starts_with("phase=fill block=10 upto=100 seconds="));
        let partial = Marks::new(100);
        partial.advance(15);
        let lines = report(Work::Drain, &partial, &partial.at.lock().unwrap(), began);
        assert!(lines[0].contains("msgs_per_sec="));
        assert_eq!(lines[1], "phase=drain block=2 upto=20 reached=no");
    }
}
