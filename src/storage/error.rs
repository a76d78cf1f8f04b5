//! How storage fails: its own two failures, or Berkeley DB's.

use std::fmt;

use crate::bdb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// No queue of that name is open.
    NoSuchQueue,
    /// A stored record does not decode as a message.
    CorruptRecord,
    /// A delivery count is to be written, and `queue.deliveries` could not
    /// be created.
    NoDeliveriesFile,
    /// Berkeley DB failed.
    Bdb(bdb::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether retrying the whole transaction may succeed (a deadlock).
    pub fn is_retryable(self) -> bool {
        matches!(self, Error::Bdb(e) if e.is_retryable())
    }

    /// Whether the disk is full (or the quota used up).
    pub fn is_disk_full(self) -> bool {
        matches!(self, Error::Bdb(e) if e.is_disk_full())
    }

    /// The Berkeley DB error, if it is one.
    pub fn as_bdb(self) -> Option<bdb::Error> {
        match self {
            Error::Bdb(e) => Some(e),
            _ => None,
        }
    }
}

impl From<bdb::Error> for Error {
    fn from(e: bdb::Error) -> Error {
        Error::Bdb(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchQueue => f.write_str("no such queue"),
            Error::CorruptRecord => f.write_str("a stored record does not decode as a message"),
            Error::NoDeliveriesFile => {
                f.write_str("queue.deliveries is missing: no delivery count can be kept")
            }
            Error::Bdb(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}
