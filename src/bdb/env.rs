use std::ffi::{c_char, c_void, CStr, OsStr};
use std::marker::PhantomData;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use libdb_sys as sys;

use super::error::{check, Result};
use super::replication::{self, RepCallbacks, RepConfig};
use super::txn::CommitToken;
use super::{c_string, method, non_null, Threaded, Txn, Unthreaded};

/// How to open the environment (docs/STORAGE.md, "The environment").
#[derive(Debug, Clone)]
pub struct EnvConfig {
    /// Shared memory pool size in bytes (-m).
    pub cache_bytes: u64,
    /// In-memory log buffer in bytes (-L).
    pub log_buffer_bytes: u32,
    /// Lockers, locks, lock objects and active transactions alike.
    pub lock_table_size: u32,
    /// Commit without flushing the log (-N).
    pub nosync: bool,
    /// Remove log files as soon as they are no longer needed (-R).
    pub auto_remove_logs: bool,
}

/// Lock requests that met a conflict (DB_ENV->lock_stat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Waited for a lock another locker held.
    pub waits: u64,
    /// Refused to break a deadlock (DB_LOCK_DEADLOCK to their caller).
    pub deadlocks: u64,
}

/// The memory pool (DB_ENV->memp_stat): its size and how much of it is
/// dirty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The cache's size in bytes (Berkeley DB adds a quarter to a -m
    /// below 500 MB).
    pub bytes: u64,
    /// The page size the pool assumes (that of most databases).
    pub page_size: u64,
    /// Pages in the cache now.
    pub pages: u64,
    /// Of those, pages modified but not yet written to their files.
    pub dirty_pages: u64,
}

impl CacheStats {
    /// About how many pages the cache holds when full.
    pub fn capacity(&self) -> u64 {
        self.bytes
            .checked_div(self.page_size)
            .map_or(self.pages, |pages| pages.max(self.pages))
    }
}

/// The C handle; closed when the last `Env` clone goes away.
struct EnvHandle<T> {
    ptr: NonNull<sys::DB_ENV>,
    /// What repmgr's callbacks use (behind DB_ENV->app_private); dropped
    /// after the handle is closed.
    replication: Option<Box<RepCallbacks>>,
    /// With replication, the token of the newest commit (`Txn`).
    last_commit: Mutex<Option<CommitToken>>,
    /// Set by [`Env::checkpoint_for_shutdown`]: databases close without
    /// their own sync from then on.
    checkpointed_for_shutdown: AtomicBool,
    /// [`Threaded`] when opened with DB_THREAD, else [`Unthreaded`].
    _threads: PhantomData<T>,
}

impl<T> EnvHandle<T> {
    fn new(raw: *mut sys::DB_ENV) -> Result<EnvHandle<T>> {
        Ok(EnvHandle {
            ptr: non_null(raw)?,
            replication: None,
            last_commit: Mutex::new(None),
            checkpointed_for_shutdown: AtomicBool::new(false),
            _threads: PhantomData,
        })
    }
}

// SAFETY: `Env::open` makes every EnvHandle<Threaded> and opens it with
// DB_THREAD, which makes the DB_ENV handle free-threaded: Berkeley DB
// serialises access to it internally. Until DB_ENV->open has succeeded the
// handle is a local of `Env::open`, used by that one thread.
unsafe impl Send for EnvHandle<Threaded> {}
// SAFETY: as for Send.
unsafe impl Sync for EnvHandle<Threaded> {}

impl<T> Drop for EnvHandle<T> {
    fn drop(&mut self) {
        // SAFETY: the last reference to a live handle; every Database holds
        // an Env clone, so all of them are closed already.
        let rc = unsafe { method!(self.ptr.as_ptr(), close, 0) };
        if let Err(e) = check(rc) {
            log::error!("closing the Berkeley DB environment failed: {e}");
        }
    }
}

/// A Berkeley DB environment: the server's transactional one
/// (`Env<Threaded>`, shared by every thread), or one of the inspection
/// tools' (`Env<Unthreaded>`, see [`Env::join`]).
pub struct Env<T = Threaded> {
    handle: Arc<EnvHandle<T>>,
}

impl<T> Clone for Env<T> {
    fn clone(&self) -> Env<T> {
        Env {
            handle: Arc::clone(&self.handle),
        }
    }
}

/// Sends Berkeley DB's own error messages to our log. A failing disk makes
/// it repeat the same message for every write, so each kind (the text up
/// to its first colon, e.g. `BDB0137 write`) is rate-limited.
unsafe extern "C" fn log_bdb_message(
    _env: *const sys::DB_ENV,
    _prefix: *const c_char,
    message: *const c_char,
) {
    if !message.is_null() {
        // SAFETY: Berkeley DB passes a NUL-terminated message.
        let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        let kind = text.split(':').next().unwrap_or_default();
        crate::log_limit::error!(kind, "berkeley db: {text}");
    }
}

impl Env {
    /// Opens (creating and recovering as needed) the environment in `home`;
    /// with `replication`, as a site of a replication group (started by
    /// [`Env::start_replication`]).
    pub fn open(home: &Path, config: &EnvConfig, replication: Option<RepConfig>) -> Result<Env> {
        let mut raw = ptr::null_mut();
        // SAFETY: db_env_create writes a new handle into `raw`.
        check(unsafe { sys::db_env_create(&mut raw, 0) })?;
        let mut handle = EnvHandle::new(raw)?;
        let replicated = replication.is_some();
        if let Some(rep) = replication {
            // SAFETY: a live handle, not yet opened.
            handle.replication = Some(unsafe { replication::configure(raw, rep) }?);
        }
        let env = Env {
            handle: Arc::new(handle),
        };
        let p = env.as_ptr();
        let gb = 1u64 << 30;
        let home = c_string(home.as_os_str().as_bytes())?;
        let lock_size = config.lock_table_size;
        // SAFETY: `p` is a live, not yet opened handle; these setters are
        // the ones Berkeley DB allows before DB_ENV->open.
        unsafe {
            method!(p, set_errcall, Some(log_bdb_message));
            check(method!(
                p,
                set_cachesize,
                (config.cache_bytes / gb) as u32,
                (config.cache_bytes % gb) as u32,
                0
            ))?;
            check(method!(p, set_lk_max_lockers, lock_size))?;
            check(method!(p, set_lk_max_locks, lock_size))?;
            check(method!(p, set_lk_max_objects, lock_size))?;
            check(method!(p, set_tx_max, lock_size))?;
            check(method!(p, set_lg_bsize, config.log_buffer_bytes))?;
        }
        if config.nosync {
            env.set_flag(sys::DB_TXN_NOSYNC)?;
        }
        // Region files are written in full when created, so the memory
        // mapped from them is on disk, not a hole that a full disk turns
        // into SIGBUS (the parts they grow by later: storage::space).
        env.set_flag(sys::DB_REGION_INIT)?;
        // SAFETY: `p` is still live and not yet opened: log_set_config is
        // allowed, and open gets a NUL-terminated home outliving the call.
        unsafe {
            if config.auto_remove_logs {
                check(method!(p, log_set_config, sys::DB_LOG_AUTO_REMOVE, 1))?;
            }
            let rep_flag = if replicated { sys::DB_INIT_REP } else { 0 };
            let flags = rep_flag
                | sys::DB_CREATE
                | sys::DB_INIT_LOCK
                | sys::DB_THREAD
                | sys::DB_INIT_MPOOL
                | sys::DB_INIT_LOG
                | sys::DB_INIT_TXN
                | sys::DB_RECOVER;
            check(method!(p, open, home.as_ptr(), flags, 0o660))?;
        }
        Ok(env)
    }

    /// Begins a transaction.
    pub fn begin(&self) -> Result<Txn<'_>> {
        let mut raw = ptr::null_mut();
        // SAFETY: a live environment; txn_begin writes a new handle.
        check(unsafe { method!(self.as_ptr(), txn_begin, ptr::null_mut(), &mut raw, 0) })?;
        Ok(Txn::from_raw(self, non_null(raw)?))
    }

    /// Whether the environment is a site of a replication group.
    pub fn is_replicated(&self) -> bool {
        self.handle.replication.is_some()
    }

    /// Notes the token of a transaction that committed.
    pub(super) fn committed(&self, token: CommitToken) {
        *self.lock_last_commit() = Some(token);
    }

    /// With replication, the token of the newest transaction committed.
    pub fn last_commit(&self) -> Option<CommitToken> {
        *self.lock_last_commit()
    }

    fn lock_last_commit(&self) -> std::sync::MutexGuard<'_, Option<CommitToken>> {
        self.handle
            .last_commit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a checkpoint now.
    pub fn checkpoint(&self) -> Result<()> {
        self.checkpoint_with(0)
    }

    fn checkpoint_with(&self, flags: u32) -> Result<()> {
        // SAFETY: a live environment.
        check(unsafe { method!(self.as_ptr(), txn_checkpoint, 0, 0, flags) })
    }

    /// Writes the last checkpoint before the databases are closed, even if
    /// nothing was logged since the previous one. Once it succeeds, every
    /// page is on disk (and the log holds every commit), so
    /// the handles closed from then on skip their own sync (DB_NOSYNC): a
    /// queue's close syncs every extent file of every queue, so closing
    /// N queues made N * N sync calls (28 s for 1,000 queues).
    pub fn checkpoint_for_shutdown(&self) -> Result<()> {
        self.checkpoint_with(sys::DB_FORCE)?;
        self.handle
            .checkpointed_for_shutdown
            .store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Writes and flushes the whole log to disk: every transaction committed
    /// before the call is durable when it returns.
    pub fn flush_log(&self) -> Result<()> {
        // SAFETY: a live environment; a NULL LSN means the whole log.
        check(unsafe { method!(self.as_ptr(), log_flush, ptr::null()) })
    }

    /// Where the log ends now: the number of the log file being written.
    pub fn log_tail_file(&self) -> Result<u32> {
        let mut raw: *mut sys::DB_LOG_STAT = ptr::null_mut();
        // SAFETY: a live environment with a log; Berkeley DB mallocs the
        // result, which we read and free exactly once.
        unsafe {
            check(method!(self.as_ptr(), log_stat, &mut raw, 0))?;
            let stat = non_null(raw)?;
            let file = stat.as_ref().st_cur_file;
            libc::free(stat.as_ptr() as *mut c_void);
            Ok(file)
        }
    }

    /// The size of a full log file in bytes (set_lg_max;
    /// `DEFAULT_LOG_FILE_SIZE` unless DB_CONFIG sets one).
    pub fn log_file_size(&self) -> Result<u32> {
        let mut size = 0;
        // SAFETY: a live environment; `size` outlives the call.
        check(unsafe { method!(self.as_ptr(), get_lg_max, &mut size) })?;
        Ok(size)
    }

    /// The path of log file number `file` (`<home>/log.<file>` unless
    /// DB_CONFIG names another log directory).
    pub fn log_file_path(&self, file: u32) -> Result<PathBuf> {
        let lsn = sys::DB_LSN { file, offset: 0 };
        let mut buf = [0 as c_char; 4096];
        // SAFETY: a live environment; Berkeley DB writes a NUL-terminated
        // name of at most `buf.len()` bytes into `buf`.
        let name = unsafe {
            check(method!(
                self.as_ptr(),
                log_file,
                &lsn,
                buf.as_mut_ptr(),
                buf.len()
            ))?;
            CStr::from_ptr(buf.as_ptr())
        };
        Ok(PathBuf::from(OsStr::from_bytes(name.to_bytes())))
    }

    /// Bytes of cache pages modified but not yet written to their files.
    pub fn dirty_cache_bytes(&self) -> Result<u64> {
        let cache = self.cache_stats()?;
        Ok(cache.dirty_pages * cache.page_size)
    }

    /// The memory pool's size and fill (DB_ENV->memp_stat, without
    /// per-file figures).
    pub fn cache_stats(&self) -> Result<CacheStats> {
        let mut raw: *mut sys::DB_MPOOL_STAT = ptr::null_mut();
        // SAFETY: a live environment with a memory pool; no per-file
        // statistics are asked for; the malloc'd result is read and freed
        // exactly once.
        unsafe {
            check(method!(
                self.as_ptr(),
                memp_stat,
                &mut raw,
                ptr::null_mut(),
                0
            ))?;
            let stat = non_null(raw)?;
            let s = stat.as_ref();
            let stats = CacheStats {
                bytes: u64::from(s.st_gbytes) * (1 << 30) + u64::from(s.st_bytes),
                page_size: u64::from(s.st_pagesize),
                pages: u64::from(s.st_pages),
                dirty_pages: u64::from(s.st_page_dirty),
            };
            libc::free(stat.as_ptr() as *mut c_void);
            Ok(stats)
        }
    }

    /// Writes dirty cache pages until `percent` of the cache is clean;
    /// returns how many pages were written.
    pub fn trickle(&self, percent: i32) -> Result<i32> {
        let mut written = 0;
        // SAFETY: a live environment; `written` outlives the call.
        check(unsafe { method!(self.as_ptr(), memp_trickle, percent, &mut written) })?;
        Ok(written)
    }

    /// How many lock requests waited, and how many were refused to break
    /// a deadlock, since the environment's regions were created.
    pub fn lock_stats(&self) -> Result<LockStats> {
        let mut raw: *mut sys::DB_LOCK_STAT = ptr::null_mut();
        // SAFETY: a live environment with a lock subsystem; Berkeley DB
        // mallocs the result, which we read and free exactly once.
        unsafe {
            check(method!(self.as_ptr(), lock_stat, &mut raw, 0))?;
            let stat = non_null(raw)?;
            let s = stat.as_ref();
            let stats = LockStats {
                waits: s.st_lock_wait,
                deadlocks: s.st_ndeadlocks,
            };
            libc::free(stat.as_ptr() as *mut c_void);
            Ok(stats)
        }
    }

    /// Runs the deadlock detector, aborting the youngest locker of each
    /// cycle; returns how many lock requests were rejected.
    pub fn detect_deadlocks(&self) -> Result<i32> {
        let mut rejected = 0;
        // SAFETY: a live environment; `rejected` outlives the call.
        check(unsafe {
            method!(
                self.as_ptr(),
                lock_detect,
                0,
                sys::DB_LOCK_YOUNGEST,
                &mut rejected
            )
        })?;
        Ok(rejected)
    }

    /// Removes the log files no longer needed for recovery.
    pub fn remove_unneeded_logs(&self) -> Result<()> {
        // SAFETY: a live environment; with DB_ARCH_REMOVE no list is returned.
        check(unsafe {
            method!(
                self.as_ptr(),
                log_archive,
                ptr::null_mut(),
                sys::DB_ARCH_REMOVE
            )
        })
    }

    /// Removes the database file `file` inside `txn`; its handle must be
    /// closed first.
    pub fn remove_database(&self, txn: &Txn<'_>, file: &[u8]) -> Result<()> {
        let file = c_string(file)?;
        // SAFETY: a live environment and transaction, a NUL-terminated name.
        check(unsafe {
            method!(
                self.as_ptr(),
                dbremove,
                txn.as_ptr_in(self),
                file.as_ptr(),
                ptr::null(),
                0
            )
        })
    }
}

impl<T> Env<T> {
    pub(super) fn as_ptr(&self) -> *mut sys::DB_ENV {
        self.handle.ptr.as_ptr()
    }

    /// Marks the environment as needing recovery (DB_PANIC_ENVIRONMENT):
    /// from then on every process using it gets DB_RUNRECOVERY. For drills
    /// and tests of what the server does then.
    pub fn panic(&self) -> Result<()> {
        self.set_flag(sys::DB_PANIC_ENVIRONMENT)
    }

    /// Turns on one of the `DB_ENV->set_flags` flags.
    fn set_flag(&self, flag: u32) -> Result<()> {
        // SAFETY: a live handle; Berkeley DB refuses (EINVAL) a flag that
        // cannot be set at this point of the handle's life.
        check(unsafe { method!(self.as_ptr(), set_flags, flag, 1) })
    }

    /// The flags for DB->close of this environment's databases.
    pub(super) fn close_flags(&self) -> u32 {
        if self.handle.checkpointed_for_shutdown.load(Ordering::SeqCst) {
            sys::DB_NOSYNC
        } else {
            0
        }
    }
}

impl Env<Unthreaded> {
    /// Wraps a handle fresh from `db_env_create` that will be opened
    /// without DB_THREAD, so it is closed on drop whether or not it gets
    /// opened.
    pub(super) fn from_raw(raw: *mut sys::DB_ENV) -> Result<Env<Unthreaded>> {
        // Both kinds of Env hold an Arc; this one is neither Send nor Sync,
        // so its clones stay on the opening thread.
        #[allow(clippy::arc_with_non_send_sync)]
        let handle = Arc::new(EnvHandle::new(raw)?);
        Ok(Env { handle })
    }
}
