//! The handle structs' method pointers are callable: open a transactional
//! environment, store and read back a record, close everything.

// These tests call the raw C API, which is all unsafe.
#![allow(unsafe_code)]

use libdb_sys::*;
use std::ffi::CString;
use std::path::PathBuf;
use std::ptr;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("libdb-sys-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn c_path(&self) -> CString {
        CString::new(self.0.to_str().unwrap()).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A DBT pointing at `bytes` (read-only use by libdb).
fn dbt(bytes: &[u8]) -> DBT {
    DBT {
        data: bytes.as_ptr() as *mut _,
        size: bytes.len() as u32,
        ..DBT::default()
    }
}

const ENV_FLAGS: u32 = DB_CREATE | DB_INIT_MPOOL | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG;

#[test]
fn environment_opens_and_closes() {
    let dir = TempDir::new("env");
    let home = dir.c_path();
    let mut env: *mut DB_ENV = ptr::null_mut();
    // SAFETY: the env pointer comes from db_env_create and is used only
    // until close, which frees it whatever it returns.
    unsafe {
        assert_eq!(db_env_create(&mut env, 0), 0);
        assert!(!env.is_null());
        let e = &*env;
        assert_eq!(e.set_cachesize.unwrap()(env, 0, 1 << 20, 1), 0);
        assert_eq!(e.set_lk_max_locks.unwrap()(env, 1000), 0);
        assert_eq!(e.open.unwrap()(env, home.as_ptr(), ENV_FLAGS, 0o600), 0);
        assert_eq!(e.close.unwrap()(env, 0), 0);
    }
}

#[test]
fn transactional_put_and_get() {
    let dir = TempDir::new("db");
    let home = dir.c_path();
    let file = CString::new("queue.db").unwrap();
    let mut env: *mut DB_ENV = ptr::null_mut();
    let mut db: *mut DB = ptr::null_mut();
    let mut txn: *mut DB_TXN = ptr::null_mut();
    // SAFETY: every handle comes from its constructor, is used while open
    // and closed (or committed) exactly once; DBTs point at live buffers.
    unsafe {
        assert_eq!(db_env_create(&mut env, 0), 0);
        assert_eq!(
            (*env).open.unwrap()(env, home.as_ptr(), ENV_FLAGS, 0o600),
            0
        );

        assert_eq!(db_create(&mut db, env, 0), 0);
        let open_flags = DB_CREATE | DB_AUTO_COMMIT;
        let rc = (*db).open.unwrap()(
            db,
            ptr::null_mut(),
            file.as_ptr(),
            ptr::null(),
            DB_BTREE,
            open_flags,
            0o600,
        );
        assert_eq!(rc, 0);

        assert_eq!(
            (*env).txn_begin.unwrap()(env, ptr::null_mut(), &mut txn, 0),
            0
        );
        let (mut key, mut value) = (dbt(b"key"), dbt(b"value"));
        assert_eq!((*db).put.unwrap()(db, txn, &mut key, &mut value, 0), 0);
        assert_eq!((*txn).commit.unwrap()(txn, 0), 0);

        let mut found = DBT::default();
        assert_eq!(
            (*db).get.unwrap()(db, ptr::null_mut(), &mut key, &mut found, 0),
            0
        );
        let bytes = std::slice::from_raw_parts(found.data as *const u8, found.size as usize);
        assert_eq!(bytes, b"value");

        let mut missing = dbt(b"missing");
        let mut out = DBT::default();
        let rc = (*db).get.unwrap()(db, ptr::null_mut(), &mut missing, &mut out, 0);
        assert_eq!(rc, DB_NOTFOUND);

        assert_eq!((*db).close.unwrap()(db, 0), 0);
        assert_eq!((*env).close.unwrap()(env, 0), 0);
    }
}
