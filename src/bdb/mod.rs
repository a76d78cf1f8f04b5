//! A small safe layer over Berkeley DB (through `libdb-sys`). Every `unsafe`
//! call of the project lives in this module.
//!
//! Ownership mirrors what Berkeley DB requires: an [`Env`] closes its handle
//! when the last clone is dropped; each [`Database`] holds a clone, so it is
//! always closed before its environment; a [`Txn`] and a [`Cursor`] borrow
//! what they were opened from, so neither can outlive it.

mod database;
mod env;
mod error;
mod inspect;
mod txn;

pub use database::{Cursor, Database, QueueFormat};
pub use env::{Env, EnvConfig};
pub use error::{Error, Result};
pub use inspect::{version, EnvReport, QueueStat, Subsystems, LOG_MAGIC, LOG_VERSION};
pub use txn::Txn;

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
