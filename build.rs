//! Build script of memcacheq: make the binaries find libdb at run time.
//!
//! libdb-sys (`links = "db"`) reports through its links metadata where the
//! library it linked lives. A shared libdb outside the dynamic linker's
//! standard directories (for example `LIBDB_DIR=/usr/local/BerkeleyDB.4.8`)
//! would not be found when the program starts, so its directory is recorded
//! in the binaries as an rpath. Nothing is needed for a static libdb or a
//! system one.

use std::env;

fn main() {
    // Re-run only for this file; cargo re-runs it anyway when libdb-sys's
    // build script output (and so the metadata below) changes.
    println!("cargo:rerun-if-changed=build.rs");
    // Metadata printed by libdb-sys's build.rs as `cargo:KEY=VALUE`.
    let lib_dir = env::var("DEP_DB_LIB_DIR").ok();
    let is_static = env::var("DEP_DB_STATIC").as_deref() == Ok("1");
    let system_dir = env::var("DEP_DB_SYSTEM_LIB_DIR").as_deref() == Ok("1");
    let linux = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");

    if let (Some(dir), false, false, true) = (lib_dir, is_static, system_dir, linux) {
        // Applies to every target of this package: binaries, tests, benches.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
