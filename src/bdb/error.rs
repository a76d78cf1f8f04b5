use std::ffi::CStr;
use std::fmt;

use libdb_sys as sys;

/// A Berkeley DB (or system) error code, named where the caller cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// No such key, or an empty queue.
    NotFound,
    /// The record was deleted or never written.
    KeyEmpty,
    /// The transaction was chosen to break a deadlock; abort and retry.
    Deadlock,
    /// A lock could not be granted without waiting.
    LockNotGranted,
    /// The environment needs recovery; nothing more can be done with it.
    RunRecovery,
    /// Any other code (Berkeley DB's own, or an errno value).
    Other(i32),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The numeric code Berkeley DB returned.
    pub fn code(self) -> i32 {
        match self {
            Error::NotFound => sys::DB_NOTFOUND,
            Error::KeyEmpty => sys::DB_KEYEMPTY,
            Error::Deadlock => sys::DB_LOCK_DEADLOCK,
            Error::LockNotGranted => sys::DB_LOCK_NOTGRANTED,
            Error::RunRecovery => sys::DB_RUNRECOVERY,
            Error::Other(code) => code,
        }
    }

    /// Whether retrying the whole transaction may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Error::Deadlock | Error::LockNotGranted)
    }

    /// Whether other sites of a replication group did not acknowledge a
    /// commit in time (DB_REP_UNAVAIL).
    pub fn is_unacknowledged(self) -> bool {
        self == Error::Other(sys::DB_REP_UNAVAIL)
    }

    /// Whether another site became master of the replication group while
    /// a commit waited for acknowledgements (DB_REP_DUPMASTER): the commit
    /// will be rolled back.
    pub fn is_superseded(self) -> bool {
        self == Error::Other(sys::DB_REP_DUPMASTER)
    }

    /// Whether the disk (or the user's quota) is full.
    pub fn is_disk_full(self) -> bool {
        matches!(
            self,
            Error::Other(libc::ENOSPC) | Error::Other(libc::EDQUOT)
        )
    }

    fn from_code(code: i32) -> Error {
        match code {
            sys::DB_NOTFOUND => Error::NotFound,
            sys::DB_KEYEMPTY => Error::KeyEmpty,
            sys::DB_LOCK_DEADLOCK => Error::Deadlock,
            sys::DB_LOCK_NOTGRANTED => Error::LockNotGranted,
            sys::DB_RUNRECOVERY => Error::RunRecovery,
            other => Error::Other(other),
        }
    }
}

/// Turns a Berkeley DB return code into a `Result`.
pub fn check(code: i32) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(Error::from_code(code))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: db_strerror returns a pointer to a static (or thread-local)
        // NUL-terminated string for any code.
        let text = unsafe { CStr::from_ptr(sys::db_strerror(self.code())) };
        write!(f, "{} ({})", text.to_string_lossy(), self.code())
    }
}

impl std::error::Error for Error {}
