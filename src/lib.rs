//! A MemcacheQ 0.2.1 compatible persistent message queue on Berkeley DB.
//!
//! - `config`: the original's command line.
//! - `protocol`: the memcache text protocol subset (parsing, no I/O).
//! - `queue_name`: which queue names are safe file names.
//! - `item`: the memcache item layout, which is also the on-disk record.
//! - `storage`: queues as DB_QUEUE databases, `queue.list`'s format, and
//!   the background chores.
//! - `server`: the process (`run`: set-up, chores, shutdown) and serving
//!   (`serve`: the mio reactor, connections, the group-commit executor,
//!   the Prometheus endpoint of `--metrics-listen`), which a test can run
//!   in-process.
//! - `bdb`: the safe layer over Berkeley DB; `os`: signals, users, limits.
//!   These two are the only modules that may call C; both say so, and
//!   why, in their own docs.
//! - `stats`: the `stats` counters.
//! - `log_limit`: rate-limited logging of errors that repeat (a full disk).
//! - `fatal`: Berkeley DB asking for recovery, which ends the server.
//! - `inspect`: `memcacheq-stat` (db_stat's reports, the `-Q` queue
//!   overview, `--peek`) and `memcacheq-upgrade` (moving a home to our
//!   Berkeley DB release).

// Also a workspace lint (Cargo.toml); `bdb` and `os` lift it for themselves.
#![deny(unsafe_code)]

pub mod bdb;
pub mod config;
mod fatal;
pub mod inspect;
pub mod item;
mod log_limit;
mod os;
pub mod protocol;
pub mod queue_name;
pub mod server;
pub mod stats;
pub mod storage;
#[cfg(test)]
mod test_home;
