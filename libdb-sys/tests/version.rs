//! The linked libdb is the release the bindings describe.

// These tests call the raw C API, which is all unsafe.
#![allow(unsafe_code)]

use std::ffi::CStr;

#[test]
fn db_version_matches_the_bindings() {
    let (major, minor, patch) = libdb_sys::runtime_version();
    assert_eq!((major, minor), libdb_sys::BINDINGS_VERSION);
    assert!(patch >= 0);
    assert_eq!(libdb_sys::check_runtime_version(), Ok(()));
}

#[test]
fn db_version_string_names_the_release() {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: valid out-pointers; the result is a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(libdb_sys::db_version(&mut major, &mut minor, &mut patch)) };
    let text = text.to_str().expect("version string is ASCII");
    assert!(text.contains(&format!("{major}.{minor}.{patch}")), "{text}");
}

#[test]
fn error_codes_are_negative_ints_with_messages() {
    let codes: [i32; 6] = [
        libdb_sys::DB_NOTFOUND,
        libdb_sys::DB_KEYEMPTY,
        libdb_sys::DB_KEYEXIST,
        libdb_sys::DB_LOCK_DEADLOCK,
        libdb_sys::DB_LOCK_NOTGRANTED,
        libdb_sys::DB_RUNRECOVERY,
    ];
    for code in codes {
        assert!(code < 0);
        // SAFETY: db_strerror returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(libdb_sys::db_strerror(code)) };
        assert!(!text.to_bytes().is_empty());
    }
}
