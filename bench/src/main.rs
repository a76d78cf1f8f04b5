//! `memcacheq-bench`: closed-loop load for a MemcacheQ-compatible server.
//!
//! Each connection has its own thread and a blocking socket with one request
//! in flight: send, wait for the whole reply, check it, record the latency,
//! send the next. With the default `set-get` mix a connection appends a
//! message to its queue and takes one off again, so queues stay short and a
//! run leaves them as it found them. Only loopback addresses are accepted.
//!
//! `--read` chooses how messages are taken: a plain `get`, a reliable read
//! (`get q/close/open`, acknowledging the previous message and leasing the
//! next in one round trip) or a blocking one (`get q/t=<ms>`). With
//! `--producers` the connections split into producers that only `set` and
//! consumers that only `get`, meeting on the same queues.
//!
//! - `options`: the command line.
//! - `client`: one connection; builds requests, reads and checks replies.
//! - `worker`: the timed loop of one connection, and which queues it uses.
//! - `histogram`: log-linear latency buckets, mergeable across threads.
//! - `report`: totals, printed as a key=value line and optionally JSON.
//! - `backlog`: backlog mode.
//! - `cpu`: the server's CPU time per operation (`--server-pid`).
//!
//! `--backlog N` measures something else: N messages stored into one
//! queue as fast as pipelined batches allow, then taken off the same way,
//! with the rate of every tenth of N (see `backlog`).
//!
//! Exit status: 0 after a clean run, 1 when a request failed or none
//! succeeded (the figures are printed all the same), 2 on bad usage.

mod backlog;
mod client;
mod cpu;
mod histogram;
mod options;
mod report;
mod worker;

use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;

use client::{Client, Queue};
use options::{Config, Parsed};
use report::Summary;
use worker::{Plan, Tally};

/// Small stacks: up to a thousand threads that each hold a few buffers.
const STACK_SIZE: usize = 256 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match options::parse(&args) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("memcacheq-bench: {e}\nTry `memcacheq-bench --help`.");
            return ExitCode::from(2);
        }
    };
    match run(Arc::new(config)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("memcacheq-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark and prints the result; true if it was clean.
fn run(config: Arc<Config>) -> Result<bool, String> {
    if let Some(backlog) = config.backlog {
        return backlog::run(&config, backlog);
    }
    // Connect everything first: a server that is not there is a clear
    // failure, not a run full of errors.
    let mut clients = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let client = Client::connect(config.addr, config.timeout, config.read_timeout())
            .map_err(|e| format!("cannot connect to {}: {e}", config.addr))?;
        clients.push(client);
    }

    let sampler = usize::from(config.server_pid.is_some());
    let start = Arc::new(Barrier::new(config.connections + sampler));
    let mut handles = Vec::with_capacity(config.connections);
    for (conn, client) in clients.into_iter().enumerate() {
        let (mix, queues) = worker::role_of(conn, &config);
        let plan = Plan {
            config: Arc::clone(&config),
            start: Arc::clone(&start),
            mix,
            queues: queues
                .into_iter()
                .map(|q| Queue::new(&format!("{}{q}", config.queue_prefix), config.value_size))
                .collect(),
            quota: config
                .requests
                .map(|total| share(total, conn, config.connections)),
        };
        let handle = thread::Builder::new()
            .name(format!("conn-{conn}"))
            .stack_size(STACK_SIZE)
            .spawn(move || worker::run(plan, client))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        handles.push(handle);
    }
    // The server's CPU time from the end of the warmup, when the workers
    // start measuring, to when the last of them is done.
    let first_sample = config.server_pid.map(|pid| {
        let start = Arc::clone(&start);
        let warmup = config.warmup;
        thread::spawn(move || {
            start.wait();
            thread::sleep(warmup);
            cpu::sample(pid)
        })
    });
    let tallies: Vec<Tally> = join_all(handles)?;
    let spent = match (config.server_pid, first_sample) {
        (Some(pid), Some(first)) => {
            let first = first
                .join()
                .map_err(|_| "the CPU sampler panicked".to_string())?;
            let first = first.map_err(|e| format!("reading /proc/{pid}: {e}"))?;
            let last = cpu::sample(pid).map_err(|e| format!("reading /proc/{pid}: {e}"))?;
            Some(first.until(&last))
        }
        _ => None,
    };

    let summary = Summary::new(&tallies, spent);
    println!("{}", summary.text(&config));
    if config.json {
        println!("{}", summary.json(&config));
    }
    if let Some(first) = tallies.iter().find_map(|t| t.first_error.as_ref()) {
        eprintln!("memcacheq-bench: {} errors; first: {first}", summary.errors);
    }
    if summary.ops() == 0 {
        eprintln!("memcacheq-bench: no request succeeded");
    }
    Ok(summary.errors == 0 && summary.ops() > 0)
}

/// Connection `conn`'s part of `total` requests split over `conns`.
/// Waits for every connection thread; what each returned, in order.
fn join_all<T>(handles: Vec<thread::JoinHandle<T>>) -> Result<Vec<T>, String> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| "a connection thread panicked".to_string())
        })
        .collect()
}

fn share(total: u64, conn: usize, conns: usize) -> u64 {
    let conns = conns as u64;
    total / conns + u64::from((conn as u64) < total % conns)
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_add_up() {
        for total in [1, 7, 64, 1000] {
            for conns in [1, 3, 16, 64] {
                let sum: u64 = (0..conns).map(|c| share(total, c, conns)).sum();
                assert_eq!(sum, total);
            }
        }
    }
}
