use std::ptr::NonNull;

use libdb_sys as sys;

use super::error::{check, Result};
use super::{method, Env};

/// What identifies a committed transaction in every site of a replication
/// group (DB_TXN_TOKEN): its generation and log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitToken(pub [u8; 20]);

/// A transaction. Berkeley DB frees the handle on commit or abort, whatever
/// the result, so both consume it; dropping an unfinished one aborts it.
pub struct Txn<'env> {
    /// `None` once committed or aborted.
    ptr: Option<NonNull<sys::DB_TXN>>,
    /// Filled in by Berkeley DB at commit, in a replicated environment
    /// (DB_TXN->set_commit_token); boxed, as it must stay put until then.
    token: Option<Box<sys::DB_TXN_TOKEN>>,
    /// The environment it was begun in: it must not outlive it, and is
    /// used only with it and its databases.
    env: &'env Env,
}

impl<'env> Txn<'env> {
    /// Wraps a handle fresh from `txn_begin` on `env`.
    pub(super) fn from_raw(env: &'env Env, ptr: NonNull<sys::DB_TXN>) -> Txn<'env> {
        Txn {
            ptr: Some(ptr),
            token: None,
            env,
        }
    }

    /// The handle, to pass to a call on `env` or one of its databases.
    ///
    /// # Panics
    ///
    /// When `env` is not the environment the transaction was begun in:
    /// Berkeley DB's behaviour with a transaction of another environment is
    /// undefined, and it is a bug in the caller.
    pub(super) fn as_ptr_in<T>(&self, env: &Env<T>) -> *mut sys::DB_TXN {
        assert!(
            self.env.as_ptr() == env.as_ptr(),
            "a transaction used with another Berkeley DB environment than its own"
        );
        self.ptr.map_or(std::ptr::null_mut(), NonNull::as_ptr)
    }

    /// Commits, flushing the log unless the environment is in no-sync mode.
    pub fn commit(self) -> Result<()> {
        self.finish_commit(0)
    }

    /// Commits without flushing the log: the commit is durable only once
    /// [`Env::flush_log`] has run after it.
    pub fn commit_no_flush(self) -> Result<()> {
        self.finish_commit(sys::DB_TXN_NOSYNC)
    }

    fn finish_commit(mut self, flags: u32) -> Result<()> {
        let ptr = self.ptr.take().expect("live transaction");
        if self.env.is_replicated() {
            // Asked for only now: a transaction that removed a database
            // fails the removal with EINVAL when it was asked for before.
            let mut token = Box::new(sys::DB_TXN_TOKEN { buf: [0; 20] });
            // SAFETY: a live transaction; the boxed token outlives the
            // commit, which writes it. A replica refuses: its
            // transactions only read, and are confirmed by nobody.
            if unsafe { method!(ptr.as_ptr(), set_commit_token, &mut *token) } == 0 {
                self.token = Some(token);
            }
        }
        // SAFETY: `ptr` is a live transaction; commit frees it whatever the
        // result, and `take` makes sure it is never used again.
        check(unsafe { method!(ptr.as_ptr(), commit, flags) })?;
        if let Some(token) = &self.token {
            self.env.committed(CommitToken(token.buf));
        }
        Ok(())
    }

    /// Aborts, undoing everything done in the transaction.
    pub fn abort(mut self) -> Result<()> {
        let ptr = self.ptr.take().expect("live transaction");
        // SAFETY: as in `commit`.
        check(unsafe { method!(ptr.as_ptr(), abort) })
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        if let Some(ptr) = self.ptr.take() {
            // SAFETY: a live transaction nobody committed or aborted.
            let rc = unsafe { method!(ptr.as_ptr(), abort) };
            if let Err(e) = check(rc) {
                log::error!("aborting an abandoned transaction failed: {e}");
            }
        }
    }
}
