//! A small safe layer over Berkeley DB (through `libdb-sys`).
//!
//! The crate denies `unsafe` code (`#![deny(unsafe_code)]` in `lib.rs`, and
//! a workspace lint); two modules allow it: this one, which makes every
//! call into Berkeley DB, and `os`, which makes the system calls std has no
//! API for. Nothing else in the crate, binaries included, may use it, and
//! every `unsafe` block and impl here carries a `// SAFETY:` comment
//! (clippy's `undocumented_unsafe_blocks`, a workspace lint).
//!
//! Ownership mirrors what Berkeley DB requires: an [`Env`] closes its handle
//! when the last clone is dropped; each [`Database`] holds a clone, so it is
//! always closed before its environment; a [`Txn`] and a [`Cursor`] borrow
//! what they were opened from, so neither can outlive it. A `Txn` also
//! remembers its environment: handing it to another environment's
//! database is a bug, and panics.
//!
//! # Threads
//!
//! [`Env`] and [`Database`] say in their type whether the handle was opened
//! with `DB_THREAD`, which makes a Berkeley DB handle free-threaded:
//!
//! - `Env<Threaded>` and `Database<Threaded>` (the default parameter): the
//!   server's, opened by [`Env::open`], [`Database::open_queue`] and
//!   [`Database::open_btree`] with `DB_THREAD`. They are `Send` and `Sync`.
//! - `Env<Unthreaded>` and `Database<Unthreaded>`: the inspection tools',
//!   opened by [`Env::join`], [`Env::open_private`] and
//!   [`Database::open_readonly`] without `DB_THREAD`, as `db_stat` and
//!   `db_dump` open them: joining a running server's environment then takes
//!   no mutexes from its shared region beyond what `db_stat` would, and
//!   the private environments stay as light. They are neither `Send` nor
//!   `Sync`, so the compiler keeps them on the thread that opened them,
//!   which is all the tools need.

#![allow(unsafe_code)]

mod database;
mod env;
mod error;
mod inspect;
mod replication;
#[cfg(test)]
mod tests;
mod txn;

pub use database::{Cursor, Database, IfMissing, QueueFormat};
pub use env::{CacheStats, Env, EnvConfig, LockStats};
pub use error::{Error, Result};
pub use inspect::{version, EnvReport, QueueStat, Subsystems, LOG_MAGIC, LOG_VERSION};
pub use replication::{Channel, Confirmation, RepConfig, RepEvent, RepSite, SiteAddress};
pub use txn::{CommitToken, Txn};

/// Bytes of a DB_QUEUE page's header, before its records (without
/// checksums or encryption, which the server never turns on).
pub const QUEUE_PAGE_HEADER: u32 = 28;
/// An upper bound of that header whatever the environment's settings:
/// for lower bounds on records per page.
pub const QUEUE_PAGE_HEADER_MAX: u32 = 64;
/// A log file's size when DB_CONFIG does not set one (set_lg_max).
pub const DEFAULT_LOG_FILE_SIZE: u32 = 10 << 20;

use std::ffi::CString;
use std::ptr::NonNull;

/// The type parameter of handles opened with `DB_THREAD` (see "Threads"
/// above): `Send` and `Sync`.
#[derive(Debug, Clone, Copy)]
pub enum Threaded {}

/// The type parameter of handles opened without `DB_THREAD` (see
/// "Threads" above): usable only on the thread that opened them.
#[derive(Debug, Clone, Copy)]
pub enum Unthreaded {}

/// [`Threaded`] or [`Unthreaded`]; implemented by those two alone.
pub trait Threading: sealed::Sealed {
    /// What DB->open adds to its flags: `DB_THREAD` or nothing.
    #[doc(hidden)]
    const DB_OPEN_FLAG: u32;
}

impl Threading for Threaded {
    const DB_OPEN_FLAG: u32 = libdb_sys::DB_THREAD;
}

impl Threading for Unthreaded {
    const DB_OPEN_FLAG: u32 = 0;
}

mod sealed {
    /// Keeps [`super::Threading`] to the two markers.
    pub trait Sealed {}
    impl Sealed for super::Threaded {}
    impl Sealed for super::Unthreaded {}
}

/// Calls a Berkeley DB method: the C handles keep their methods as
/// function-pointer fields, always set on a live handle.
macro_rules! method {
    ($handle:expr, $name:ident $(, $arg:expr)* $(,)?) => {{
        let handle = $handle;
        let f = (*handle)
            .$name
            .expect(concat!("Berkeley DB handle without ", stringify!($name)));
        f(handle $(, $arg)*)
    }};
}
pub(crate) use method;

/// The handle a Berkeley DB constructor (`db_create`, `txn_begin`, ...)
/// wrote through its out-pointer. They return 0 only with a handle, so
/// NULL after success is reported as ENOMEM rather than trusted.
fn non_null<T>(raw: *mut T) -> Result<NonNull<T>> {
    NonNull::new(raw).ok_or(Error::Other(libc::ENOMEM))
}

/// A file or directory name for Berkeley DB; EINVAL when it holds a NUL
/// byte, which no C string can.
fn c_string(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::Other(libc::EINVAL))
}
