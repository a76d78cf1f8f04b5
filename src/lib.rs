//! A MemcacheQ 0.2.1 compatible persistent message queue on Berkeley DB.
//!
//! - `config`: the original's command line.
//! - `protocol`: the memcache text protocol subset (parsing, no I/O).
//! - `queue_name`: which queue names are safe file names.
//! - `storage`: queues as DB_QUEUE databases, `queue.list`, the record
//!   layout and the background chores.
//! - `server`: the mio reactor, connections, and the group-commit executor.
//! - `bdb`: the safe layer over Berkeley DB; `os`: signals, users, limits.
//! - `stats`: the `stats` counters.
//! - `log_limit`: rate-limited logging of errors that repeat (a full disk).
//! - `fatal`: Berkeley DB asking for recovery, which ends the server.
//! - `inspect`: `memcacheq-stat` (db_stat's reports, the `-Q` queue
//!   overview, `--peek`) and `memcacheq-upgrade` (moving a home to our
//!   Berkeley DB release).

pub mod bdb;
pub mod config;
mod fatal;
pub mod inspect;
mod log_limit;
mod os;
pub mod protocol;
pub mod queue_name;
pub mod server;
pub mod stats;
pub mod storage;
