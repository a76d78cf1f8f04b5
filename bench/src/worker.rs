//! The closed loop of one connection: a request, its reply, the next one.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{Client, GetOutcome, Queue};
use crate::histogram::Histogram;
use crate::options::{Config, Mix};

/// Pause between failed reconnects, so a dead server is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// What one connection does.
pub struct Plan {
    /// The shared options.
    pub config: Arc<Config>,
    /// Released when every connection is up, so all start together.
    pub start: Arc<Barrier>,
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
            match Client::connect(config.addr, wait) {
                Ok(fresh) => client = Some(fresh),
                Err(e) => {
                    tally.error(format!("reconnect to {}: {e}", config.addr));
                    thread::sleep(RECONNECT_PAUSE.min(end.saturating_duration_since(now)));
                }
            }
            continue;
        };
        let measuring = now >= measure_start;
        let (index, is_set) = request(config.mix, step, plan.queues.len());
        step += 1;
        let queue = &plan.queues[index];
        let result = if is_set {
            conn.set(queue).map(|()| None)
        } else {
            conn.get(queue).map(Some)
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
            }
        }
    }
    tally.finish = Instant::now();
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
}
