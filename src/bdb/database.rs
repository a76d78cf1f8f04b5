use std::ffi::c_void;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use libdb_sys as sys;

use super::error::{check, Error, Result};
use super::{c_string, method, non_null, Env, Threaded, Threading, Txn};

/// How new queue databases are laid out (-B, -A, -E).
#[derive(Debug, Clone, Copy)]
pub struct QueueFormat {
    /// Fixed record length in bytes.
    pub record_len: u32,
    /// Page size in bytes.
    pub page_size: u32,
    /// Pages per extent file; 0 keeps the queue in one file.
    pub extent_pages: u32,
}

/// What opening a database does when its file does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Create it (DB_CREATE).
    Create,
    /// Fail with ENOENT.
    Fail,
}

/// An open database handle; closed on drop, before its environment. `T`
/// says whether it was opened with DB_THREAD, as for [`Env`].
pub struct Database<T = Threaded>(DbHandle<T>);

// SAFETY: a Database<Threaded> is made only by `DbHandle::open`, after
// DB->open succeeded with Threaded::DB_OPEN_FLAG, DB_THREAD, which makes
// the DB handle free-threaded (DB->open accepts it because the handle's
// Env<Threaded> was opened with DB_THREAD too).
unsafe impl Send for Database<Threaded> {}
// SAFETY: as for Send.
unsafe impl Sync for Database<Threaded> {}

/// A DB handle from `db_create`, closed on drop whether or not it was
/// opened; becomes a [`Database`] by [`DbHandle::open`]. Neither `Send`
/// nor `Sync`.
pub(super) struct DbHandle<T> {
    ptr: NonNull<sys::DB>,
    /// Keeps the environment open as long as this handle is.
    env: Env<T>,
}

impl<T> Drop for DbHandle<T> {
    fn drop(&mut self) {
        let flags = self.env.close_flags();
        // SAFETY: a live handle, closed exactly once.
        let rc = unsafe { method!(self.ptr.as_ptr(), close, flags) };
        if let Err(e) = check(rc) {
            log::error!("closing a database failed: {e}");
        }
    }
}

/// A DBT describing `bytes`, which Berkeley DB only reads.
fn input(bytes: &[u8]) -> sys::DBT {
    // SAFETY: DBT is a plain C struct for which all-zero is the empty value.
    let mut dbt: sys::DBT = unsafe { std::mem::zeroed() };
    dbt.data = bytes.as_ptr() as *mut c_void;
    dbt.size = bytes.len() as u32;
    dbt
}

/// A DBT into which Berkeley DB writes at most `buf.len()` bytes.
fn output(buf: &mut [u8]) -> sys::DBT {
    // SAFETY: as in `input`.
    let mut dbt: sys::DBT = unsafe { std::mem::zeroed() };
    dbt.data = buf.as_mut_ptr() as *mut c_void;
    dbt.ulen = buf.len() as u32;
    dbt.flags = sys::DB_DBT_USERMEM;
    dbt
}

/// A DBT Berkeley DB fills with memory from malloc.
pub(super) fn allocated() -> sys::DBT {
    // SAFETY: as in `input`.
    let mut dbt: sys::DBT = unsafe { std::mem::zeroed() };
    dbt.flags = sys::DB_DBT_MALLOC;
    dbt
}

/// Copies out and frees a DB_DBT_MALLOC result.
pub(super) fn take_allocated(dbt: &sys::DBT) -> Vec<u8> {
    if dbt.data.is_null() {
        return Vec::new();
    }
    // SAFETY: Berkeley DB filled `size` bytes at `data` with malloc'd memory
    // that the caller owns and frees here exactly once.
    unsafe {
        let bytes = std::slice::from_raw_parts(dbt.data as *const u8, dbt.size as usize).to_vec();
        libc::free(dbt.data);
        bytes
    }
}

impl<T> DbHandle<T> {
    pub(super) fn as_ptr(&self) -> *mut sys::DB {
        self.ptr.as_ptr()
    }
}

impl<T: Threading> DbHandle<T> {
    pub(super) fn create(env: &Env<T>) -> Result<DbHandle<T>> {
        let mut raw = ptr::null_mut();
        // SAFETY: a live environment; db_create writes a new handle.
        check(unsafe { sys::db_create(&mut raw, env.as_ptr(), 0) })?;
        Ok(DbHandle {
            ptr: non_null(raw)?,
            env: env.clone(),
        })
    }

    /// DB->open of `file` as `kind` with `flags`, plus DB_THREAD when `T`
    /// is [`Threaded`]; the only way to a [`Database`]. `mode` is for the
    /// files DB_CREATE makes.
    pub(super) fn open(
        self,
        txn: Option<&Txn<'_>>,
        file: &[u8],
        kind: sys::DBTYPE,
        flags: u32,
        mode: i32,
    ) -> Result<Database<T>> {
        let name = c_string(file)?;
        let txn = txn.map_or(ptr::null_mut(), |txn| txn.as_ptr_in(&self.env));
        // SAFETY: a live, unopened handle; on failure `self` is dropped,
        // which closes it as Berkeley DB requires.
        check(unsafe {
            method!(
                self.as_ptr(),
                open,
                txn,
                name.as_ptr(),
                ptr::null(),
                kind,
                flags | T::DB_OPEN_FLAG,
                mode
            )
        })?;
        Ok(Database(self))
    }
}

impl<T> Database<T> {
    pub(super) fn as_ptr(&self) -> *mut sys::DB {
        self.0.ptr.as_ptr()
    }

    /// The environment it was opened in.
    fn env(&self) -> &Env<T> {
        &self.0.env
    }

    /// A cursor over every key/data pair in key order, outside any
    /// transaction.
    pub fn cursor(&self) -> Result<Cursor<'_>> {
        let mut raw = ptr::null_mut();
        // SAFETY: an open handle; cursor writes a new cursor handle.
        check(unsafe { method!(self.as_ptr(), cursor, ptr::null_mut(), &mut raw, 0) })?;
        Ok(Cursor {
            ptr: non_null(raw)?,
            done: false,
            _db: PhantomData,
        })
    }
}

impl Database {
    /// Opens `file` as `kind` in the server's environment: inside `txn`,
    /// or in a transaction of its own.
    fn open_in(
        db: DbHandle<Threaded>,
        txn: Option<&Txn<'_>>,
        file: &[u8],
        kind: sys::DBTYPE,
        missing: IfMissing,
    ) -> Result<Database> {
        let mut flags = 0;
        if missing == IfMissing::Create {
            flags |= sys::DB_CREATE;
        }
        if txn.is_none() {
            flags |= sys::DB_AUTO_COMMIT;
        }
        db.open(txn, file, kind, flags, 0o664)
    }

    /// Opens the DB_QUEUE database `file`; a missing one is made with
    /// `format` if `missing` says so (an existing file keeps its own
    /// format).
    pub fn open_queue(
        env: &Env,
        txn: Option<&Txn<'_>>,
        file: &[u8],
        format: QueueFormat,
        missing: IfMissing,
    ) -> Result<Database> {
        let db = DbHandle::create(env)?;
        let p = db.as_ptr();
        // SAFETY: setters allowed on an unopened handle.
        unsafe {
            check(method!(p, set_re_len, format.record_len))?;
            check(method!(p, set_pagesize, format.page_size))?;
            if format.extent_pages > 0 {
                check(method!(p, set_q_extentsize, format.extent_pages))?;
            }
        }
        Database::open_in(db, txn, file, sys::DB_QUEUE, missing)
    }

    /// Opens (creating if missing) the DB_BTREE database `file`.
    pub fn open_btree(env: &Env, file: &[u8]) -> Result<Database> {
        Database::open_in(
            DbHandle::create(env)?,
            None,
            file,
            sys::DB_BTREE,
            IfMissing::Create,
        )
    }

    /// The fixed record length of a queue database.
    pub fn record_len(&self) -> Result<u32> {
        let mut len = 0;
        // SAFETY: an open handle; `len` outlives the call.
        check(unsafe { method!(self.as_ptr(), get_re_len, &mut len) })?;
        Ok(len)
    }

    /// The page size of the database.
    pub fn page_size(&self) -> Result<u32> {
        let mut size = 0;
        // SAFETY: an open handle; `size` outlives the call.
        check(unsafe { method!(self.as_ptr(), get_pagesize, &mut size) })?;
        Ok(size)
    }

    /// The pages per extent file of a queue database (0: no extents).
    pub fn extent_pages(&self) -> Result<u32> {
        let mut pages = 0;
        // SAFETY: an open handle; `pages` outlives the call.
        check(unsafe { method!(self.as_ptr(), get_q_extentsize, &mut pages) })?;
        Ok(pages)
    }

    /// Appends `record` to a queue; returns its record number.
    pub fn append(&self, txn: &Txn<'_>, record: &[u8]) -> Result<u32> {
        let mut recno: u32 = 0;
        let mut key = output(bytes_of_mut(&mut recno));
        let mut data = input(record);
        // SAFETY: an open handle and live transaction; the DBTs point at
        // memory that outlives the call.
        check(unsafe {
            method!(
                self.as_ptr(),
                put,
                txn.as_ptr_in(self.env()),
                &mut key,
                &mut data,
                sys::DB_APPEND
            )
        })?;
        Ok(recno)
    }

    /// Takes the oldest record off a queue into `buf` (sized to the record
    /// length); returns its record number, `None` when the queue is empty.
    pub fn consume(&self, txn: &Txn<'_>, buf: &mut [u8]) -> Result<Option<u32>> {
        let mut recno: u32 = 0;
        let mut key = output(bytes_of_mut(&mut recno));
        let mut data = output(buf);
        // SAFETY: as in `append`; Berkeley DB writes at most `ulen` bytes.
        let rc = unsafe {
            method!(
                self.as_ptr(),
                get,
                txn.as_ptr_in(self.env()),
                &mut key,
                &mut data,
                sys::DB_CONSUME
            )
        };
        match check(rc) {
            Ok(()) => Ok(Some(recno)),
            Err(Error::NotFound) | Err(Error::KeyEmpty) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads into `buf` the oldest record of a queue that is not open,
    /// leaving it in place; returns its record number, `None` when there is
    /// none. `last_open_from(recno)` tells, for an open record, the last
    /// record of the run of consecutive open records it starts (`None`:
    /// not open). The walk jumps to the end of each run and steps past it,
    /// so it reads and read-locks (until `txn` ends) two records per run of
    /// open ones, not each of them.
    pub fn first_not_open(
        &self,
        txn: &Txn<'_>,
        buf: &mut [u8],
        mut last_open_from: impl FnMut(u32) -> Option<u32>,
    ) -> Result<Option<u32>> {
        let mut raw = ptr::null_mut();
        // SAFETY: an open handle and live transaction; cursor writes a new
        // cursor handle, closed below before returning.
        check(unsafe {
            method!(
                self.as_ptr(),
                cursor,
                txn.as_ptr_in(self.env()),
                &mut raw,
                0
            )
        })?;
        let cursor = non_null(raw)?;
        let mut flag = sys::DB_FIRST;
        let mut target = 0;
        let mut jumps = true;
        let found = loop {
            let mut recno: u32 = target;
            let mut key = output(bytes_of_mut(&mut recno));
            if flag == sys::DB_SET {
                key.size = key.ulen;
            }
            let mut data = output(buf);
            // SAFETY: a live cursor; the DBTs point at memory that outlives
            // the call, and Berkeley DB writes at most `ulen` bytes.
            let rc = unsafe { method!(cursor.as_ptr(), get, &mut key, &mut data, flag) };
            match check(rc) {
                Ok(()) => match last_open_from(recno) {
                    None => break Ok(Some(recno)),
                    Some(last) if jumps && last > recno => {
                        target = last;
                        flag = sys::DB_SET;
                    }
                    Some(_) => flag = sys::DB_NEXT,
                },
                // An open record is never deleted, so a jump always lands;
                // should one not, walk record by record from the start.
                Err(Error::NotFound | Error::KeyEmpty) if flag == sys::DB_SET => {
                    jumps = false;
                    flag = sys::DB_FIRST;
                }
                Err(Error::NotFound) => break Ok(None),
                Err(e) => break Err(e),
            }
        };
        // SAFETY: the live cursor, closed exactly once.
        let closed = check(unsafe { method!(cursor.as_ptr(), close) });
        let found = found?;
        closed?;
        Ok(found)
    }

    /// Deletes record `recno` of a queue; `Ok(false)` when it was not there.
    pub fn delete_record(&self, txn: &Txn<'_>, recno: u32) -> Result<bool> {
        match self.delete(txn, &recno.to_ne_bytes()) {
            Err(Error::KeyEmpty) => Ok(false),
            other => other,
        }
    }

    /// Deletes every record; returns how many there were.
    pub fn truncate(&self, txn: &Txn<'_>) -> Result<u32> {
        let mut count: u32 = 0;
        // SAFETY: an open handle, no cursor open on it, a live transaction.
        check(unsafe {
            method!(
                self.as_ptr(),
                truncate,
                txn.as_ptr_in(self.env()),
                &mut count,
                0
            )
        })?;
        Ok(count)
    }

    /// Stores `data` under `key`, replacing any previous value.
    pub fn put(&self, txn: &Txn<'_>, key: &[u8], data: &[u8]) -> Result<()> {
        let (mut k, mut d) = (input(key), input(data));
        // SAFETY: as in `append`.
        check(unsafe {
            method!(
                self.as_ptr(),
                put,
                txn.as_ptr_in(self.env()),
                &mut k,
                &mut d,
                0
            )
        })
    }

    /// Deletes `key`; `Ok(false)` when it was not there.
    pub fn delete(&self, txn: &Txn<'_>, key: &[u8]) -> Result<bool> {
        let mut k = input(key);
        // SAFETY: as in `append`.
        match check(unsafe { method!(self.as_ptr(), del, txn.as_ptr_in(self.env()), &mut k, 0) }) {
            Ok(()) => Ok(true),
            Err(Error::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn bytes_of_mut(n: &mut u32) -> &mut [u8] {
    // SAFETY: a u32 is 4 initialised bytes, any bit pattern is valid.
    unsafe { std::slice::from_raw_parts_mut(n as *mut u32 as *mut u8, 4) }
}

/// A cursor walking a database from its first key/data pair to its last
/// (DB_NEXT); it cannot outlive its database. As an iterator it yields
/// each pair, or the error that ended the walk, and then nothing.
pub struct Cursor<'db> {
    ptr: NonNull<sys::DBC>,
    /// Set once the walk passed the last pair or failed.
    done: bool,
    /// Borrows the database it walks, whatever its `Database<T>`.
    _db: PhantomData<&'db ()>,
}

impl Iterator for Cursor<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let (mut key, mut data) = (allocated(), allocated());
        // SAFETY: a live cursor; the DBTs ask for malloc'd results, which
        // take_allocated frees.
        let rc = unsafe { method!(self.ptr.as_ptr(), get, &mut key, &mut data, sys::DB_NEXT) };
        match check(rc) {
            Ok(()) => Some(Ok((take_allocated(&key), take_allocated(&data)))),
            Err(e) => {
                self.done = true;
                (e != Error::NotFound).then_some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Cursor<'_> {}

impl Drop for Cursor<'_> {
    fn drop(&mut self) {
        // SAFETY: a live cursor, closed exactly once.
        if let Err(e) = check(unsafe { method!(self.ptr.as_ptr(), close) }) {
            log::error!("closing a cursor failed: {e}");
        }
    }
}
