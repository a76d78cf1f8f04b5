//! I/O threads (-t N). With N > 1, N - 1 threads beside the reactor do the
//! socket work of a turn: reading and framing the ready connections'
//! commands (`gather`), and writing their replies. The reactor keeps the
//! event loop and runs every transaction; it hands connections over in
//! batches, one batch per thread, does a share itself, and takes every
//! connection back (with its commands, or what its write did) before it
//! goes on. A connection is thus only ever in one thread's hands, and
//! nothing is locked on the way. With few connections ready the reactor
//! does all the work itself: waking a thread would cost more than it saves.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

use super::connection::Connection;
use super::executor::Entry;
use super::gather::{self, Limits, Next};
use crate::protocol::Parser;

/// Connections a thread must be given at least for waking it to pay.
const JOBS_PER_THREAD: usize = 4;
/// The most I/O threads, whatever -t says: beyond this many, threads only
/// wait for one another.
const MAX_THREADS: usize = 64;

/// Socket work on one connection, taken out of the reactor's hands.
pub enum Job {
    /// Read and frame its commands of this turn.
    Gather(usize, Connection),
    /// Write its pending replies.
    Flush(usize, Connection),
}

/// A job done: the connection, given back, and what came of it.
pub enum Done {
    Gathered {
        index: usize,
        conn: Connection,
        next: Next,
        /// Bytes read.
        read: usize,
        entries: Vec<Entry>,
    },
    Flushed {
        index: usize,
        conn: Connection,
        /// Bytes written, or why writing failed.
        result: io::Result<usize>,
    },
}

/// The jobs one thread does in a turn.
struct Batch {
    jobs: Vec<Job>,
    limits: Limits,
}

struct Worker {
    jobs: Sender<Batch>,
    thread: JoinHandle<()>,
}

/// The I/O threads, and what the reactor needs to do their work itself.
pub struct IoThreads {
    workers: Vec<Worker>,
    done: Receiver<Vec<Done>>,
    parser: Parser,
}

impl IoThreads {
    /// `threads` threads doing socket work, the reactor's own included;
    /// each frames commands with a copy of `parser`.
    pub fn start(threads: usize, parser: Parser) -> io::Result<IoThreads> {
        let (done_tx, done) = mpsc::channel();
        let mut workers = Vec::new();
        for n in 1..threads.clamp(1, MAX_THREADS) {
            let (jobs, batches) = mpsc::channel::<Batch>();
            let done_tx = done_tx.clone();
            let thread = thread::Builder::new()
                .name(format!("io-{n}"))
                .spawn(move || {
                    for batch in batches {
                        let done = batch
                            .jobs
                            .into_iter()
                            .map(|job| execute(job, &parser, &batch.limits))
                            .collect();
                        if done_tx.send(done).is_err() {
                            return;
                        }
                    }
                })?;
            workers.push(Worker { jobs, thread });
        }
        Ok(IoThreads {
            workers,
            done,
            parser,
        })
    }

    /// Does `jobs`, spread over the threads and the caller, and gives back
    /// every connection with what came of its job (in no set order).
    pub fn run(&self, mut jobs: Vec<Job>, limits: &Limits) -> Vec<Done> {
        let helpers = self.workers.len().min(jobs.len() / JOBS_PER_THREAD);
        let share = jobs.len() / (helpers + 1);
        let mut sent = 0;
        for worker in &self.workers[..helpers] {
            let batch = Batch {
                jobs: jobs.split_off(jobs.len() - share),
                limits: *limits,
            };
            match worker.jobs.send(batch) {
                Ok(()) => sent += 1,
                // A thread that is gone (it cannot be, short of a panic):
                // its jobs come back undone and are done here.
                Err(mpsc::SendError(batch)) => jobs.extend(batch.jobs),
            }
        }
        let mut done: Vec<Done> = jobs
            .into_iter()
            .map(|job| execute(job, &self.parser, limits))
            .collect();
        for _ in 0..sent {
            match self.done.recv() {
                Ok(more) => done.extend(more),
                Err(_) => break,
            }
        }
        done
    }
}

impl Drop for IoThreads {
    fn drop(&mut self) {
        for worker in self.workers.drain(..) {
            drop(worker.jobs);
            let _ = worker.thread.join();
        }
    }
}

fn execute(job: Job, parser: &Parser, limits: &Limits) -> Done {
    match job {
        Job::Gather(index, mut conn) => {
            let mut entries = Vec::new();
            let (next, read) = gather::gather(index, &mut conn, parser, limits, &mut entries);
            Done::Gathered {
                index,
                conn,
                next,
                read,
                entries,
            }
        }
        Job::Flush(index, mut conn) => {
            let result = conn.flush();
            Done::Flushed {
                index,
                conn,
                result,
            }
        }
    }
}
