//! The closed loop of one connection: a request, its reply, the next one.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{Client, GetOutcome, Queue};
use crate::histogram::Histogram;
use crate::options::{Config, Mix, Read};

/// Pause after a failed request or reconnect, so that a server that is
/// gone, or refuses every request, is not hammered with new connections.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// What one connection does.
pub struct Plan {
    /// The shared options.
    pub config: Arc<Config>,
    /// Released when every connection is up, so all start together.
    pub start: Arc<Barrier>,
    /// What this connection sends: the run's mix, or only `set` or only
    /// `get` when the run splits producers from consumers.
    pub mix: Mix,
    /// The queues this connection cycles through (at least one).
    pub queues: Vec<Queue>,
    /// Measured requests this connection sends at most, if bounded.
    pub quota: Option<u64>,
}

/// What one connection measured.
pub struct Tally {
    /// Latency of every measured successful request, in nanoseconds.
    pub latency: Histogram,
    /// Measured successful `set`s.
    pub sets: u64,
    /// Measured successful `get`s that returned a message.
    pub hits: u64,
    /// Measured successful `get`s that found the queue empty.
    pub misses: u64,
    /// Failed requests and reconnects, warmup included: any is a problem.
    pub errors: u64,
    /// The first failure, to tell the user what went wrong.
    pub first_error: Option<String>,
    /// When measuring began here.
    pub measure_start: Instant,
    /// When this connection stopped.
    pub finish: Instant,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

/// Which queue the `step`th request goes to, and whether it is a `set`.
fn request(mix: Mix, step: u64, queues: usize) -> (usize, bool) {
    match mix {
        Mix::SetGet => ((step / 2 % queues as u64) as usize, step.is_multiple_of(2)),
        Mix::Set => ((step % queues as u64) as usize, true),
        Mix::Get => ((step % queues as u64) as usize, false),
    }
}

/// What connection `conn` sends and the queue numbers it cycles through.
/// With producers, the first `producers` connections only `set` and the
/// others only `get`; each group spreads over the queues as [`queues_of`]
/// says, so producers and consumers meet on the same queues.
pub fn role_of(conn: usize, config: &Config) -> (Mix, Vec<usize>) {
    let producers = config.producers;
    if producers == 0 {
        let queues = queues_of(conn, config.connections, config.queues);
        (config.mix, queues)
    } else if conn < producers {
        (Mix::Set, queues_of(conn, producers, config.queues))
    } else {
        let queues = queues_of(conn - producers, config.consumers(), config.queues);
        (Mix::Get, queues)
    }
}

/// The `/t=` of a blocking read sent with `left` of the run to go: the
/// configured wait, but not beyond the end, so that a consumer waiting on a
/// queue the stopped producers no longer fill does not stretch the run.
fn wait_for(wait_ms: u64, left: Duration) -> u64 {
    let left_ms = left.as_nanos().div_ceil(1_000_000);
    u64::try_from(left_ms)
        .unwrap_or(u64::MAX)
        .clamp(1, wait_ms.max(1))
}

/// The queue numbers connection `conn` of `conns` cycles through, out of
/// `queues`: its own share when there are more queues than connections,
/// else one queue shared with the connections of the same remainder.
pub fn queues_of(conn: usize, conns: usize, queues: usize) -> Vec<usize> {
    if queues <= conns {
        vec![conn % queues]
    } else {
        (conn..queues).step_by(conns).collect()
    }
}

/// Runs the loop on `client` until the time is up or the quota is done.
pub fn run(plan: Plan, client: Client) -> Tally {
    let config = &plan.config;
    plan.start.wait();
    let begin = Instant::now();
    let measure_start = begin + config.warmup;
    let end = measure_start + config.duration;
    let mut tally = Tally {
        latency: Histogram::new(),
        sets: 0,
        hits: 0,
        misses: 0,
        errors: 0,
        first_error: None,
        measure_start,
        finish: begin,
    };
    let mut client = Some(client);
    // Reliable reads: whether this connection holds an open message on
    // each of its queues, so the next read closes it first.
    let mut holding = vec![false; plan.queues.len()];
    let mut measured = 0u64;
    let mut step = 0u64;
    loop {
        let now = Instant::now();
        if now >= end || plan.quota.is_some_and(|quota| measured >= quota) {
            break;
        }
        let Some(conn) = client.as_mut() else {
            // The reply stream of a failed request cannot be trusted: start
            // over on a new connection.
            let wait = config.timeout.min(end - now);
            match Client::connect(config.addr, wait, config.read_timeout()) {
                Ok(fresh) => {
                    // The server gave back what the old connection held.
                    holding.fill(false);
                    client = Some(fresh);
                }
                Err(e) => {
                    tally.error(format!("reconnect to {}: {e}", config.addr));
                    thread::sleep(RECONNECT_PAUSE.min(end.saturating_duration_since(now)));
                }
            }
            continue;
        };
        let measuring = now >= measure_start;
        let (index, is_set) = request(plan.mix, step, plan.queues.len());
        step += 1;
        let queue = &plan.queues[index];
        let result = if is_set {
            conn.set(queue).map(|()| None)
        } else {
            match config.read {
                Read::Plain => conn.get(queue),
                Read::Reliable => {
                    let outcome = conn.open(queue, holding[index]);
                    holding[index] = matches!(outcome, Ok(GetOutcome::Hit));
                    outcome
                }
                Read::Blocking => conn.get_wait(
                    queue,
                    wait_for(config.wait_ms, end.saturating_duration_since(now)),
                ),
            }
            .map(Some)
        };
        let elapsed = now.elapsed();
        if measuring {
            measured += 1;
        }
        match result {
            Ok(outcome) if measuring => {
                tally.latency.record(elapsed.as_nanos() as u64);
                match outcome {
                    None => tally.sets += 1,
                    Some(GetOutcome::Hit) => tally.hits += 1,
                    Some(GetOutcome::Miss) => tally.misses += 1,
                }
            }
            Ok(_) => {}
            Err(e) => {
                tally.error(e.to_string());
                client = None;
                thread::sleep(RECONNECT_PAUSE.min(end.saturating_duration_since(Instant::now())));
            }
        }
    }
    tally.finish = Instant::now();
    // Acknowledge the last leased messages, unmeasured, so that the queues
    // hold no open message the next run would have to wait for.
    if let Some(conn) = client.as_mut() {
        for (queue, _) in plan.queues.iter().zip(&holding).filter(|(_, &h)| h) {
            if let Err(e) = conn.close(queue) {
                tally.error(format!("final close: {e}"));
                break;
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_assignment_covers_every_queue_once() {
        for conns in 1..10 {
            for queues in 1..25 {
                let mut seen = vec![0; queues];
                for conn in 0..conns {
                    let mine = queues_of(conn, conns, queues);
                    assert!(!mine.is_empty());
                    for q in mine {
                        seen[q] += 1;
                    }
                }
                assert!(seen.iter().all(|&n| n >= 1), "{conns} {queues}");
                if queues > conns {
                    assert!(seen.iter().all(|&n| n == 1));
                }
            }
        }
    }

    #[test]
    fn set_get_pairs_share_a_queue() {
        assert_eq!(request(Mix::SetGet, 0, 3), (0, true));
        assert_eq!(request(Mix::SetGet, 1, 3), (0, false));
        assert_eq!(request(Mix::SetGet, 2, 3), (1, true));
        assert_eq!(request(Mix::SetGet, 5, 3), (2, false));
        assert_eq!(request(Mix::Get, 4, 3), (1, false));
    }

    #[test]
    fn producers_and_consumers_meet() {
        let args: Vec<String> = ["-c", "5", "--producers", "2", "--read", "blocking"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let Ok(crate::options::Parsed::Run(config)) = crate::options::parse(&args) else {
            panic!("options refused");
        };
        assert_eq!(config.queues, 2);
        let roles: Vec<_> = (0..5).map(|conn| role_of(conn, &config)).collect();
        assert_eq!(roles[0], (Mix::Set, vec![0]));
        assert_eq!(roles[1], (Mix::Set, vec![1]));
        assert_eq!(roles[2], (Mix::Get, vec![0]));
        assert_eq!(roles[3], (Mix::Get, vec![1]));
        assert_eq!(roles[4], (Mix::Get, vec![0]));
    }

    #[test]
    fn waits_end_with_the_run() {
        assert_eq!(wait_for(1000, Duration::from_secs(5)), 1000);
        assert_eq!(wait_for(1000, Duration::from_micros(250_001)), 251);
        assert_eq!(wait_for(1000, Duration::ZERO), 1);
    }
}
