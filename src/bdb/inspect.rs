//! Read-only access to a home for the inspection and upgrade tools: joining
//! a live environment or opening a private one, Berkeley DB's own
//! statistics printers, queue statistics, the log cursor, and the
//! `DB->upgrade` / `DB_ENV->lsn_reset` calls.

use std::ffi::{c_char, c_void, CStr};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::{self, NonNull};

use libdb_sys as sys;

use super::database::{allocated, take_allocated, DbHandle};
use super::error::{check, Error, Result};
use super::{c_string, method, non_null, Database, Env, Unthreaded};

/// Which region-backed subsystems a private environment needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subsystems {
    /// The shared memory pool (to read database files).
    pub mpool: bool,
    /// The log subsystem (to read or describe the log files).
    pub log: bool,
}

/// One of the environment-wide statistics printers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvReport {
    /// `DB_ENV->stat_print` (db_stat -e).
    Environment,
    /// `DB_ENV->lock_stat_print` (db_stat -c).
    Locks,
    /// `DB_ENV->log_stat_print` (db_stat -l).
    Log,
    /// `DB_ENV->memp_stat_print` (db_stat -m).
    Mpool,
    /// `DB_ENV->txn_stat_print` (db_stat -t).
    Txn,
    /// `DB_ENV->repmgr_stat_print`, then `DB_ENV->rep_stat_print` (db_stat
    /// -r).
    Replication,
}

/// What `DB->stat` reports about a DB_QUEUE database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStat {
    /// Records present (walks the pages; exact at the time of the call).
    pub nkeys: u32,
    /// Record number of the first record that may still be present.
    pub first_recno: u32,
    /// Record number the next append will get.
    pub cur_recno: u32,
    /// Fixed record length.
    pub re_len: u32,
    /// Page size.
    pub pagesize: u32,
    /// Pages per extent file (0: no extents).
    pub extentsize: u32,
}

/// Message lines of the statistics printers go to our stdout, one per call.
unsafe extern "C" fn print_message(_env: *const sys::DB_ENV, message: *const c_char) {
    if message.is_null() {
        return;
    }
    // SAFETY: Berkeley DB passes a NUL-terminated line.
    let text = unsafe { CStr::from_ptr(message) };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.to_bytes());
    let _ = out.write_all(b"\n");
}

/// Berkeley DB's error messages go to stderr, as the db_* utilities do.
unsafe extern "C" fn print_error(
    _env: *const sys::DB_ENV,
    prefix: *const c_char,
    message: *const c_char,
) {
    if message.is_null() {
        return;
    }
    // SAFETY: Berkeley DB passes NUL-terminated strings (prefix may be NULL).
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    let prefix = if prefix.is_null() {
        String::new()
    } else {
        // SAFETY: as above.
        format!("{}: ", unsafe { CStr::from_ptr(prefix) }.to_string_lossy())
    };
    eprintln!("{prefix}{text}");
}

/// The library's version line, e.g. `Berkeley DB 5.3.28: (September  9, 2013)`.
pub fn version() -> String {
    // SAFETY: db_version accepts NULL out-pointers and returns a static string.
    let text = unsafe {
        CStr::from_ptr(sys::db_version(
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        ))
    };
    text.to_string_lossy().into_owned()
}

/// The log version this library writes (19 for 5.3).
pub const LOG_VERSION: u32 = sys::DB_LOGVERSION;
/// The magic number at the start of every log file's header.
pub const LOG_MAGIC: u32 = sys::DB_LOGMAGIC;

impl Env<Unthreaded> {
    /// A fresh, unopened handle reporting through stdout/stderr with `prefix`.
    fn for_tool(prefix: &'static CStr) -> Result<Env<Unthreaded>> {
        let mut raw = ptr::null_mut();
        // SAFETY: db_env_create writes a new handle into `raw`.
        check(unsafe { sys::db_env_create(&mut raw, 0) })?;
        let env = Env::from_raw(raw)?;
        let p = env.as_ptr();
        // SAFETY: a live unopened handle; Berkeley DB keeps the prefix
        // pointer, which is 'static.
        unsafe {
            method!(p, set_errcall, Some(print_error));
            method!(p, set_msgcall, Some(print_message));
            method!(p, set_errpfx, prefix.as_ptr());
        }
        Ok(env)
    }

    /// Joins the environment whose region files exist in `home`, creating
    /// nothing and running no recovery: the way `db_stat` attaches to a
    /// running server (without DB_THREAD, as `db_stat` does). Fails
    /// (ENOENT) when the home has no regions.
    pub fn join(home: &Path, prefix: &'static CStr) -> Result<Env<Unthreaded>> {
        let env = Env::for_tool(prefix)?;
        let home = c_string(home.as_os_str().as_bytes())?;
        // SAFETY: a live unopened handle and a NUL-terminated home.
        check(unsafe { method!(env.as_ptr(), open, home.as_ptr(), sys::DB_USE_ENVIRON, 0) })?;
        Ok(env)
    }

    /// Opens a private environment on `home` (regions in this process's
    /// memory, no region files written, no DB_THREAD): the way `db_stat`
    /// reads a home when no environment is running.
    pub fn open_private(
        home: &Path,
        subsystems: Subsystems,
        prefix: &'static CStr,
    ) -> Result<Env<Unthreaded>> {
        let env = Env::for_tool(prefix)?;
        let home = c_string(home.as_os_str().as_bytes())?;
        let mut flags = sys::DB_CREATE | sys::DB_PRIVATE | sys::DB_USE_ENVIRON;
        if subsystems.mpool {
            flags |= sys::DB_INIT_MPOOL;
        }
        if subsystems.log {
            flags |= sys::DB_INIT_LOG;
        }
        // SAFETY: a live unopened handle and a NUL-terminated home.
        check(unsafe { method!(env.as_ptr(), open, home.as_ptr(), flags, 0) })?;
        Ok(env)
    }
}

impl<T> Env<T> {
    /// Prints one of the environment reports to stdout through Berkeley
    /// DB's own printer; `flags` as for the C call (e.g. DB_STAT_ALL).
    pub fn print_report(&self, report: EnvReport, flags: u32) -> Result<()> {
        let p = self.as_ptr();
        // SAFETY: an open environment; the printers only read it.
        let rc = unsafe {
            match report {
                EnvReport::Environment => method!(p, stat_print, flags),
                EnvReport::Locks => method!(p, lock_stat_print, flags),
                EnvReport::Log => method!(p, log_stat_print, flags),
                EnvReport::Mpool => method!(p, memp_stat_print, flags),
                EnvReport::Txn => method!(p, txn_stat_print, flags),
                EnvReport::Replication => match method!(p, repmgr_stat_print, flags) {
                    0 => method!(p, rep_stat_print, flags),
                    failed => failed,
                },
            }
        };
        check(rc)
    }

    /// Every record of the log, in order, as (file, offset, the first
    /// `head` bytes of the record: its type, transaction id, previous LSN
    /// and the start of its fields).
    pub fn log_records(&self, head: usize) -> Result<Vec<(u32, u32, Vec<u8>)>> {
        let mut raw = ptr::null_mut();
        // SAFETY: an open environment with a log; log_cursor writes a handle.
        check(unsafe { method!(self.as_ptr(), log_cursor, &mut raw, 0) })?;
        let cursor = LogCursor(non_null(raw)?);
        let mut records = Vec::new();
        loop {
            let mut lsn = sys::DB_LSN { file: 0, offset: 0 };
            let mut data = allocated();
            // SAFETY: a live cursor; the DBT asks for a malloc'd copy,
            // which take_allocated frees.
            let rc = unsafe { method!(cursor.0.as_ptr(), get, &mut lsn, &mut data, sys::DB_NEXT) };
            match check(rc) {
                Ok(()) => {
                    let mut bytes = take_allocated(&data);
                    bytes.truncate(head);
                    records.push((lsn.file, lsn.offset, bytes));
                }
                Err(Error::NotFound) => return Ok(records),
                Err(e) => return Err(e),
            }
        }
    }

    /// Resets the page LSNs of database `file` to "not logged", so it can
    /// move to an environment with a different log (db_load -r lsn).
    pub fn lsn_reset(&self, file: &[u8]) -> Result<()> {
        let file = c_string(file)?;
        // SAFETY: an open environment with a memory pool, a NUL-terminated name.
        check(unsafe { method!(self.as_ptr(), lsn_reset, file.as_ptr(), 0) })
    }
}

/// A log cursor, closed on drop.
struct LogCursor(NonNull<sys::DB_LOGC>);

impl Drop for LogCursor {
    fn drop(&mut self) {
        // SAFETY: a live cursor, closed exactly once.
        let _ = unsafe { method!(self.0.as_ptr(), close, 0) };
    }
}

impl Database<Unthreaded> {
    /// Opens database `file` read-only, whatever its type, outside any
    /// transaction and without DB_THREAD (as db_stat and db_dump do).
    pub fn open_readonly(env: &Env<Unthreaded>, file: &[u8]) -> Result<Database<Unthreaded>> {
        DbHandle::create(env)?.open(None, file, sys::DB_UNKNOWN, sys::DB_RDONLY, 0)
    }

    /// Upgrades database `file` in place to this release's on-disk format
    /// (`DB->upgrade`); a file already current is left alone.
    pub fn upgrade_file(env: &Env<Unthreaded>, file: &[u8]) -> Result<()> {
        // Never opened: DB->upgrade wants an unopened handle.
        let db = DbHandle::create(env)?;
        let name = c_string(file)?;
        // SAFETY: a live unopened handle, as DB->upgrade requires; the
        // handle is closed when `db` drops.
        check(unsafe { method!(db.as_ptr(), upgrade, name.as_ptr(), 0) })
    }
}

impl<T> Database<T> {
    /// Whether this is a DB_QUEUE database.
    pub fn is_queue(&self) -> Result<bool> {
        let mut kind = sys::DB_UNKNOWN;
        // SAFETY: an open handle; `kind` outlives the call.
        check(unsafe { method!(self.as_ptr(), get_type, &mut kind) })?;
        Ok(kind == sys::DB_QUEUE)
    }

    /// Prints the database's statistics to stdout with Berkeley DB's own
    /// printer (db_stat -d).
    pub fn print_stats(&self, flags: u32) -> Result<()> {
        // SAFETY: an open handle.
        check(unsafe { method!(self.as_ptr(), stat_print, flags) })
    }

    /// `DB->stat` of a DB_QUEUE database (walks the pages: exact counts).
    pub fn queue_stat(&self) -> Result<QueueStat> {
        let mut raw: *mut sys::DB_QUEUE_STAT = ptr::null_mut();
        // SAFETY: an open queue handle; Berkeley DB mallocs the result.
        check(unsafe {
            method!(
                self.as_ptr(),
                stat,
                ptr::null_mut(),
                &mut raw as *mut *mut sys::DB_QUEUE_STAT as *mut c_void,
                0
            )
        })?;
        let raw = non_null(raw)?;
        // SAFETY: a filled DB_QUEUE_STAT that we own and free exactly once.
        let stat = unsafe {
            let s = raw.as_ref();
            let out = QueueStat {
                nkeys: s.qs_nkeys,
                first_recno: s.qs_first_recno,
                cur_recno: s.qs_cur_recno,
                re_len: s.qs_re_len,
                pagesize: s.qs_pagesize,
                extentsize: s.qs_extentsize,
            };
            libc::free(raw.as_ptr().cast());
            out
        };
        Ok(stat)
    }
}
