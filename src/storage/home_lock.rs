//! One process at a time per home: an exclusive `flock(2)` on the home
//! directory itself, taken before the environment is opened and held until
//! it is closed.
//!
//! A server opens the environment with DB_RECOVER, which assumes nobody else
//! uses it: run under a live server it rebuilds the regions that server is
//! using, and that server then fails for good. The lock is on the directory,
//! not on a file in it, so the home gains no file that could collide with a
//! queue name; the kernel drops it when the holder exits, however it exits,
//! so a crash leaves nothing stale. Tools that join a live environment
//! without recovery (`memcacheq-stat`, `db5.3_stat`) do not take it.

use std::fmt;
use std::fs::{self, File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct HomeLock {
    _dir: File,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum HomeLockError {
    /// Another process holds it: its pid, when `/proc/locks` shows it.
    InUse { home: PathBuf, pid: Option<u32> },
    /// The directory could not be opened or locked.
    Io { home: PathBuf, error: io::Error },
}

impl HomeLock {
    /// Locks `home` without waiting.
    pub fn acquire(home: &Path) -> Result<HomeLock, HomeLockError> {
        let io_error = |error| HomeLockError::Io {
            home: home.to_path_buf(),
            error,
        };
        let dir = File::open(home).map_err(io_error)?;
        match dir.try_lock() {
            Ok(()) => Ok(HomeLock { _dir: dir }),
            Err(TryLockError::WouldBlock) => {
                let pid = dir
                    .metadata()
                    .ok()
                    .and_then(|m| fs::read_to_string("/proc/locks").ok().map(|t| (m, t)))
                    .and_then(|(m, locks)| flock_holder(&locks, m.dev(), m.ino()));
                Err(HomeLockError::InUse {
                    home: home.to_path_buf(),
                    pid,
                })
            }
            Err(TryLockError::Error(error)) => Err(io_error(error)),
        }
    }
}

/// The pid holding a flock on the file `dev`/`ino`, from `/proc/locks`
/// text: lines like `1: FLOCK  ADVISORY  WRITE 1234 fe:01:5382151 0 EOF`,
/// the device as hexadecimal major:minor (`->` marks a waiter, skipped).
fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let file = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, "FLOCK", _, _, pid, id, ..] if *id == file => pid.parse().ok(),
            _ => None,
        }
    })
}

impl fmt::Display for HomeLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HomeLockError::InUse {
                home,
                pid: Some(pid),
            } => write!(
                f,
                "the home {} is in use by another memcacheq process (pid {pid})",
                home.display()
            ),
            HomeLockError::InUse { home, pid: None } => write!(
                f,
                "the home {} is in use by another memcacheq process (its pid is not in /proc/locks)",
                home.display()
            ),
            HomeLockError::Io { home, error } => {
                write!(f, "can't lock the home {}: {error}", home.display())
            }
        }
    }
}

impl std::error::Error for HomeLockError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_is_found_by_device_and_inode() {
        let locks = "1: POSIX  ADVISORY  WRITE 10 fe:00:77 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 11 fe:00:77 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 12 08:01:77 0 EOF\n\
                     4: FLOCK  ADVISORY  WRITE 13 fe:00:77 0 EOF\n";
        let dev = libc::makedev(0xfe, 0);
        assert_eq!(flock_holder(locks, dev, 77), Some(13));
        assert_eq!(flock_holder(locks, dev, 78), None);
    }

    #[test]
    fn a_second_lock_on_the_same_home_is_refused() {
        let home = std::env::temp_dir().join(format!("mcq-home-lock-{}", std::process::id()));
        fs::create_dir_all(&home).unwrap();
        let held = HomeLock::acquire(&home).unwrap();
        match HomeLock::acquire(&home) {
            Err(HomeLockError::InUse { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("second lock: {other:?}"),
        }
        drop(held);
        assert!(HomeLock::acquire(&home).is_ok());
        fs::remove_dir_all(&home).unwrap();
    }
}
