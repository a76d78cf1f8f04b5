//! Build script of libdb-sys: find Berkeley DB, tell cargo how to link it,
//! and put the Rust bindings in `OUT_DIR/bindings.rs`.
//!
//! * `settings` reads the environment variables (and nothing else does).
//! * `locate` finds the library to link and the `db.h` to bind, in the fixed
//!   order `LIBDB_*` variables → pkg-config → standard paths → `vendor/`.
//! * `link` prints the link lines and the `links = "db"` metadata.
//! * `bindings` copies the checked-in `src/bindings_5_3.rs`; with the
//!   `generate-bindings` feature, `generate` runs bindgen on the header
//!   instead (the only part that needs libclang, compiled only then).
//!
//! Nothing is downloaded here; `vendor/fetch-libdb.sh` does that on request.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let settings = settings::Settings::from_env();
    let found = locate::find(&settings);
    link::emit(&found.library, &settings);
    if let Some(header) = &found.header {
        println!("cargo:include={}", header.include_dir.display());
    }
    let bindings_version = bindings::write(found.header.as_ref(), &settings);
    locate::warn_on_version_mismatch(&found.library, bindings_version);
}

/// Stops the build with a message for the user (no panic backtrace).
fn fail(message: &str) -> ! {
    eprintln!("\nerror: libdb-sys: {message}\n");
    std::process::exit(1);
}

/// The environment of the build: what the user asked for, and where things are.
mod settings {
    use std::env;
    use std::path::PathBuf;

    /// Reads one variable and asks cargo to rerun when it changes; empty
    /// counts as unset.
    pub fn var(name: &str) -> Option<String> {
        println!("cargo:rerun-if-env-changed={name}");
        env::var(name).ok().filter(|v| !v.is_empty())
    }

    /// Everything the search depends on.
    pub struct Settings {
        /// `LIBDB_DIR`: an install prefix holding `include/` and `lib/`.
        pub prefix: Option<PathBuf>,
        /// `LIBDB_INCLUDE_DIR`: the directory holding `db.h`.
        pub include_dir: Option<PathBuf>,
        /// `LIBDB_LIB_DIR`: the directory holding the library.
        pub lib_dir: Option<PathBuf>,
        /// `LIBDB_STATIC`: link `libdb.a` so no libdb is needed at run time.
        pub static_link: bool,
        /// `<workspace>/vendor/`, watched so that running the fetch script
        /// triggers a new search.
        pub vendor_dir: PathBuf,
        /// The prefix unpacked by `vendor/fetch-libdb.sh`.
        pub vendor_prefix: PathBuf,
        /// Debian's multiarch directory name, e.g. `x86_64-linux-gnu`.
        pub multiarch: String,
        /// Shared library suffix of the target (`so` or `dylib`).
        pub dylib_ext: &'static str,
        /// Whether the target is Linux (pthread and rpath handling).
        pub linux: bool,
        /// This crate's directory (for `src/bindings_5_3.rs`).
        pub manifest_dir: PathBuf,
        /// Cargo's output directory for generated files.
        pub out_dir: PathBuf,
    }

    impl Settings {
        pub fn from_env() -> Settings {
            let manifest_dir = PathBuf::from(cargo_var("CARGO_MANIFEST_DIR"));
            let vendor_dir = manifest_dir.join("..").join("vendor");
            let vendor_dir = vendor_dir.canonicalize().unwrap_or(vendor_dir);
            let os = cargo_var("CARGO_CFG_TARGET_OS");
            Settings {
                prefix: var("LIBDB_DIR").map(PathBuf::from),
                include_dir: var("LIBDB_INCLUDE_DIR").map(PathBuf::from),
                lib_dir: var("LIBDB_LIB_DIR").map(PathBuf::from),
                static_link: var("LIBDB_STATIC").is_some_and(|v| is_true(&v)),
                vendor_prefix: vendor_dir.join("libdb5.3-dev").join("usr"),
                vendor_dir,
                multiarch: multiarch(),
                dylib_ext: if os == "macos" { "dylib" } else { "so" },
                linux: os == "linux",
                manifest_dir,
                out_dir: PathBuf::from(cargo_var("OUT_DIR")),
            }
        }

        /// True when the user named the library's location explicitly.
        pub fn explicit_library(&self) -> bool {
            self.prefix.is_some() || self.lib_dir.is_some()
        }
    }

    /// A variable cargo always sets for build scripts.
    fn cargo_var(name: &str) -> String {
        env::var(name).unwrap_or_else(|_| panic!("cargo did not set {name}"))
    }

    /// `LIBDB_STATIC=1`, `true`, `yes`, `on` all mean yes.
    fn is_true(value: &str) -> bool {
        !matches!(
            value.to_ascii_lowercase().as_str(),
            "0" | "false" | "no" | "off"
        )
    }

    /// The multiarch triple Debian uses for library directories.
    fn multiarch() -> String {
        let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
        let little = env::var("CARGO_CFG_TARGET_ENDIAN").as_deref() == Ok("little");
        match arch.as_str() {
            "x86" => "i386-linux-gnu".to_string(),
            "arm" => "arm-linux-gnueabihf".to_string(),
            "powerpc64" if little => "powerpc64le-linux-gnu".to_string(),
            other => format!("{other}-linux-gnu"),
        }
    }
}

/// Finding the library file and the header.
mod locate {
    use crate::settings::Settings;
    use std::fs;
    use std::path::{Path, PathBuf};

    /// Shared or static linking.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum Linkage {
        Dynamic,
        Static,
    }

    /// The library chosen for linking.
    pub struct Library {
        /// Name for `-l`: `db` or `db-5.3`.
        pub name: String,
        /// Directory holding it; `None` for a bare `-ldb` left to the linker.
        pub dir: Option<PathBuf>,
        pub linkage: Linkage,
        /// (major, minor) read from the file name, when it carries one.
        pub version: Option<(i32, i32)>,
        /// Where it was found, for messages.
        pub origin: &'static str,
    }

    /// The `db.h` chosen for the bindings.
    pub struct Header {
        pub path: PathBuf,
        pub include_dir: PathBuf,
        /// `DB_VERSION_MAJOR`/`DB_VERSION_MINOR` read from the file.
        pub version: Option<(i32, i32)>,
    }

    pub struct Found {
        pub library: Library,
        pub header: Option<Header>,
    }

    /// One library file candidate inside a directory.
    struct Candidate {
        name: String,
        linkage: Linkage,
        version: Option<(i32, i32)>,
        /// `libdb.so`/`libdb.a` rather than `libdb-X.Y.so`.
        unversioned: bool,
    }

    pub fn find(settings: &Settings) -> Found {
        // A re-run is wanted once vendor/fetch-libdb.sh has unpacked a copy
        // (a missing path would make cargo re-run on every build).
        if settings.vendor_dir.is_dir() {
            println!("cargo:rerun-if-changed={}", settings.vendor_dir.display());
        }
        let pkg = if settings.explicit_library() {
            None
        } else {
            pkg_config(settings)
        };
        let header = find_header(settings, pkg.as_ref());
        let want = header.as_ref().and_then(|h| h.version);
        let library = find_library(settings, pkg.as_ref(), want);
        Found { library, header }
    }

    /// What pkg-config says about libdb, when it knows it.
    struct PkgConfig {
        lib_name: String,
        link_paths: Vec<PathBuf>,
        include_paths: Vec<PathBuf>,
    }

    fn pkg_config(settings: &Settings) -> Option<PkgConfig> {
        for package in ["libdb", "db"] {
            let probed = pkg_config::Config::new()
                .cargo_metadata(false)
                .statik(settings.static_link)
                .probe(package);
            let Ok(lib) = probed else { continue };
            let Some(lib_name) = lib.libs.iter().find(|l| is_db_name(l)) else {
                continue;
            };
            return Some(PkgConfig {
                lib_name: lib_name.clone(),
                link_paths: lib.link_paths.clone(),
                include_paths: lib.include_paths.clone(),
            });
        }
        None
    }

    /// `db` or `db-X.Y`, not `db_cxx` and friends.
    fn is_db_name(name: &str) -> bool {
        name == "db"
            || name
                .strip_prefix("db-")
                .is_some_and(|v| parse_version(v).is_some())
    }

    /// `"5.3"` → `(5, 3)`.
    fn parse_version(text: &str) -> Option<(i32, i32)> {
        let (major, minor) = text.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    }

    // ---- header ---------------------------------------------------------

    fn find_header(settings: &Settings, pkg: Option<&PkgConfig>) -> Option<Header> {
        if let Some(dir) = &settings.include_dir {
            let header = header_in(dir);
            if header.is_none() {
                crate::fail(&format!("LIBDB_INCLUDE_DIR={} has no db.h", dir.display()));
            }
            return header;
        }
        if let Some(prefix) = &settings.prefix {
            if let Some(header) = header_in(&prefix.join("include")) {
                return Some(header);
            }
        }
        if settings.explicit_library() {
            // A header from elsewhere could belong to another release.
            println!(
                "cargo:warning=libdb-sys: no db.h next to the library named by LIBDB_DIR/LIBDB_LIB_DIR \
                 (set LIBDB_INCLUDE_DIR); using the checked-in Berkeley DB 5.3 bindings"
            );
            return None;
        }
        let pkg_dirs = pkg.map(|p| p.include_paths.clone()).unwrap_or_default();
        let standard = [
            PathBuf::from("/usr/include"),
            PathBuf::from("/usr/local/include"),
        ];
        let vendor = [settings.vendor_prefix.join("include")];
        pkg_dirs
            .iter()
            .chain(standard.iter())
            .chain(vendor.iter())
            .find_map(|dir| header_in(dir))
    }

    fn header_in(dir: &Path) -> Option<Header> {
        let path = dir.join("db.h");
        let text = fs::read_to_string(&path).ok()?;
        Some(Header {
            version: header_version(&text),
            include_dir: dir.to_path_buf(),
            path,
        })
    }

    /// Reads `#define DB_VERSION_MAJOR n` and `..._MINOR n` from db.h.
    fn header_version(text: &str) -> Option<(i32, i32)> {
        let define = |name: &str| {
            text.lines().find_map(|line| {
                let mut words = line.split_whitespace();
                if words.next()? == "#define" && words.next()? == name {
                    words.next()?.parse::<i32>().ok()
                } else {
                    None
                }
            })
        };
        Some((define("DB_VERSION_MAJOR")?, define("DB_VERSION_MINOR")?))
    }

    // ---- library --------------------------------------------------------

    fn find_library(
        settings: &Settings,
        pkg: Option<&PkgConfig>,
        want: Option<(i32, i32)>,
    ) -> Library {
        let linkage = if settings.static_link {
            Linkage::Static
        } else {
            Linkage::Dynamic
        };

        // a. Explicit locations: the library must be there.
        if let Some(dir) = &settings.lib_dir {
            return library_in(
                std::slice::from_ref(dir),
                settings,
                linkage,
                want,
                "LIBDB_LIB_DIR",
            )
            .unwrap_or_else(|| missing_explicit("LIBDB_LIB_DIR", dir, settings));
        }
        if let Some(prefix) = &settings.prefix {
            let dirs = prefix_lib_dirs(prefix, settings);
            return library_in(&dirs, settings, linkage, want, "LIBDB_DIR")
                .unwrap_or_else(|| missing_explicit("LIBDB_DIR", prefix, settings));
        }

        // b. The system: pkg-config, then the standard directories.
        if let Some(pkg) = pkg {
            if let Some(lib) = from_pkg_config(pkg, settings, linkage) {
                return lib;
            }
        }
        if let Some(lib) = library_in(
            &standard_lib_dirs(settings),
            settings,
            linkage,
            want,
            "system",
        ) {
            return lib;
        }

        // c. The copy unpacked by vendor/fetch-libdb.sh.
        let vendor = prefix_lib_dirs(&settings.vendor_prefix, settings);
        if let Some(lib) = library_in(&vendor, settings, linkage, want, "vendor") {
            return lib;
        }

        if linkage == Linkage::Static {
            crate::fail(
                "LIBDB_STATIC=1 but no static Berkeley DB library (libdb.a or libdb-X.Y.a) \
                 was found.\nRun `vendor/fetch-libdb.sh` (it unpacks Debian's libdb5.3-dev \
                 into vendor/libdb5.3-dev/), or set LIBDB_DIR to a prefix whose lib/ holds \
                 libdb.a.",
            );
        }
        println!(
            "cargo:warning=libdb-sys: no libdb.so or libdb-X.Y.so found; trying a bare -ldb \
             (install Debian's libdb5.3 or set LIBDB_DIR)"
        );
        Library {
            name: "db".to_string(),
            dir: None,
            linkage,
            version: None,
            origin: "bare -ldb",
        }
    }

    fn missing_explicit(var: &str, dir: &Path, settings: &Settings) -> ! {
        let what = if settings.static_link {
            "libdb.a or libdb-X.Y.a"
        } else {
            "libdb.so, libdb-X.Y.so, libdb.a or libdb-X.Y.a"
        };
        let hint = if settings.static_link {
            " Run `vendor/fetch-libdb.sh` for a static copy."
        } else {
            ""
        };
        crate::fail(&format!("{var}={} holds no {what}.{hint}", dir.display()));
    }

    /// `lib`, `lib64` and `lib/<multiarch>` under an install prefix.
    fn prefix_lib_dirs(prefix: &Path, settings: &Settings) -> Vec<PathBuf> {
        vec![
            prefix.join("lib"),
            prefix.join("lib64"),
            prefix.join("lib").join(&settings.multiarch),
        ]
    }

    /// Directories the dynamic linker searches without being told.
    pub fn standard_lib_dirs(settings: &Settings) -> Vec<PathBuf> {
        vec![
            Path::new("/usr/lib").join(&settings.multiarch),
            Path::new("/lib").join(&settings.multiarch),
            PathBuf::from("/usr/lib64"),
            PathBuf::from("/lib64"),
            PathBuf::from("/usr/lib"),
            PathBuf::from("/lib"),
        ]
    }

    fn from_pkg_config(pkg: &PkgConfig, settings: &Settings, linkage: Linkage) -> Option<Library> {
        let ext = match linkage {
            Linkage::Static => "a",
            Linkage::Dynamic => settings.dylib_ext,
        };
        let file = format!("lib{}.{ext}", pkg.lib_name);
        let mut dirs = pkg.link_paths.clone();
        dirs.extend(standard_lib_dirs(settings));
        let dir = dirs.into_iter().find(|d| d.join(&file).exists());
        if dir.is_none() && linkage == Linkage::Static {
            return None; // keep looking for a libdb.a
        }
        Some(Library {
            version: pkg.lib_name.strip_prefix("db-").and_then(parse_version),
            name: pkg.lib_name.clone(),
            dir,
            linkage,
            origin: "pkg-config",
        })
    }

    /// The best library in the first of `dirs` that has one. A dynamic link
    /// accepts a static library when that is all a directory holds; a static
    /// link never accepts a shared one.
    fn library_in(
        dirs: &[PathBuf],
        settings: &Settings,
        linkage: Linkage,
        want: Option<(i32, i32)>,
        origin: &'static str,
    ) -> Option<Library> {
        for dir in dirs {
            let candidates = candidates_in(dir, settings);
            let pick = best(&candidates, linkage, want).or_else(|| match linkage {
                Linkage::Dynamic => best(&candidates, Linkage::Static, want),
                Linkage::Static => None,
            });
            if let Some(c) = pick {
                if c.linkage != linkage {
                    println!(
                        "cargo:warning=libdb-sys: {} holds only a static libdb; linking it statically",
                        dir.display()
                    );
                }
                return Some(Library {
                    name: c.name.clone(),
                    dir: Some(dir.clone()),
                    linkage: c.linkage,
                    version: c.version,
                    origin,
                });
            }
        }
        None
    }

    /// Prefer the release of the header, then the unversioned name, then the
    /// newest release.
    fn best(
        candidates: &[Candidate],
        linkage: Linkage,
        want: Option<(i32, i32)>,
    ) -> Option<&Candidate> {
        let of_kind = || candidates.iter().filter(move |c| c.linkage == linkage);
        of_kind()
            .find(|c| !c.unversioned && want.is_some() && c.version == want)
            .or_else(|| of_kind().find(|c| c.unversioned))
            .or_else(|| of_kind().max_by_key(|c| c.version))
    }

    /// Every usable `libdb*.so` / `libdb*.a` in `dir`; dangling symlinks
    /// (a dev package's `libdb.so` without the runtime) are skipped.
    fn candidates_in(dir: &Path, settings: &Settings) -> Vec<Candidate> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            let Some((name, linkage)) = library_name(file, settings.dylib_ext) else {
                continue;
            };
            if !path.exists() {
                continue;
            }
            let unversioned = name == "db";
            let version = if unversioned {
                // libdb.so -> libdb-5.3.so tells the release.
                fs::canonicalize(&path).ok().and_then(|real| {
                    let real = real.file_name()?.to_str()?.to_string();
                    let (name, _) = library_name(&real, settings.dylib_ext)?;
                    parse_version(name.strip_prefix("db-")?)
                })
            } else {
                name.strip_prefix("db-").and_then(parse_version)
            };
            found.push(Candidate {
                name,
                linkage,
                version,
                unversioned,
            });
        }
        found
    }

    /// `libdb-5.3.so` → `("db-5.3", Dynamic)`; `libdb.a` → `("db", Static)`.
    fn library_name(file: &str, dylib_ext: &str) -> Option<(String, Linkage)> {
        let stem = file.strip_prefix("lib")?;
        let (name, linkage) = if let Some(name) = stem.strip_suffix(".a") {
            (name, Linkage::Static)
        } else {
            (
                stem.strip_suffix(&format!(".{dylib_ext}"))?,
                Linkage::Dynamic,
            )
        };
        is_db_name(name).then(|| (name.to_string(), linkage))
    }

    /// Bindings and library of different releases disagree on struct
    /// layouts; the version in the library's file name tells early.
    pub fn warn_on_version_mismatch(lib: &Library, bindings: (i32, i32)) {
        if let Some(version) = lib.version.filter(|v| *v != bindings) {
            println!(
                "cargo:warning=libdb-sys: the {} library is Berkeley DB {}.{} but the bindings \
                 are for {}.{}; the program will refuse to start (check_runtime_version)",
                lib.origin, version.0, version.1, bindings.0, bindings.1
            );
        }
    }
}

/// The `cargo:` lines that link the library.
mod link {
    use crate::locate::{standard_lib_dirs, Library, Linkage};
    use crate::settings::Settings;

    pub fn emit(lib: &Library, settings: &Settings) {
        let system_dir = lib
            .dir
            .as_ref()
            .is_some_and(|d| standard_lib_dirs(settings).contains(d));
        if let Some(dir) = &lib.dir {
            // rustc must see the directory to bundle a static archive; a
            // standard directory is searched by the linker anyway.
            if lib.linkage == Linkage::Static || !system_dir {
                println!("cargo:rustc-link-search=native={}", dir.display());
            }
            println!("cargo:lib_dir={}", dir.display());
        }
        match lib.linkage {
            Linkage::Static => {
                println!("cargo:rustc-link-lib=static={}", lib.name);
                // libdb calls pthread_*; glibc < 2.34 keeps them in libpthread.
                if settings.linux {
                    println!("cargo:rustc-link-lib=dylib=pthread");
                }
            }
            Linkage::Dynamic => {
                println!("cargo:rustc-link-lib=dylib={}", lib.name);
                // This crate's own tests must find a libdb outside the
                // standard directories at run time; dependents read the
                // metadata below and do the same in their build.rs.
                if let (Some(dir), false, true) = (&lib.dir, system_dir, settings.linux) {
                    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
                }
            }
        }
        let flag = |b: bool| if b { "1" } else { "0" };
        println!("cargo:static={}", flag(lib.linkage == Linkage::Static));
        println!("cargo:system_lib_dir={}", flag(system_dir));
    }
}

/// Copying the checked-in bindings, or generating them (feature
/// `generate-bindings`).
mod bindings {
    use crate::locate::Header;
    use crate::settings::Settings;
    use std::fs;
    use std::path::Path;

    /// The release `src/bindings_5_3.rs` was generated from.
    pub const CHECKED_IN_VERSION: (i32, i32) = (5, 3);
    const CHECKED_IN: &str = "src/bindings_5_3.rs";

    /// Writes `OUT_DIR/bindings.rs`; returns the release it describes.
    pub fn write(header: Option<&Header>, settings: &Settings) -> (i32, i32) {
        let checked_in = settings.manifest_dir.join(CHECKED_IN);
        println!("cargo:rerun-if-changed={}", checked_in.display());
        if let Some(header) = header {
            println!("cargo:rerun-if-changed={}", header.path.display());
        }
        let out = settings.out_dir.join("bindings.rs");
        let (source, version) = produce(header, &checked_in, &out);
        println!("cargo:rustc-env=LIBDB_SYS_BINDINGS_SOURCE={source}");
        version
    }

    /// Without the `generate-bindings` feature: the checked-in 5.3
    /// bindings, always.
    #[cfg(not(feature = "generate-bindings"))]
    fn produce(header: Option<&Header>, checked_in: &Path, out: &Path) -> (String, (i32, i32)) {
        if let Some((major, minor)) = header.and_then(|h| h.version) {
            if (major, minor) != CHECKED_IN_VERSION {
                println!(
                    "cargo:warning=libdb-sys: db.h is Berkeley DB {major}.{minor} but the \
                     checked-in bindings are for 5.3; build with the libdb-sys feature \
                     `generate-bindings` to generate bindings for that release"
                );
            }
        }
        fs::copy(checked_in, out).expect("copying src/bindings_5_3.rs to OUT_DIR");
        (format!("checked-in {CHECKED_IN}"), CHECKED_IN_VERSION)
    }

    /// With the `generate-bindings` feature: bindings generated from the
    /// header found, or a failed build saying what is missing.
    #[cfg(feature = "generate-bindings")]
    fn produce(header: Option<&Header>, _checked_in: &Path, out: &Path) -> (String, (i32, i32)) {
        let Some(header) = header else {
            crate::fail(
                "the `generate-bindings` feature generates the bindings from a db.h, and none \
                 was found; set LIBDB_INCLUDE_DIR or LIBDB_DIR, or run vendor/fetch-libdb.sh",
            );
        };
        match crate::generate::bindings(header) {
            Ok(code) => {
                fs::write(out, code).expect("writing OUT_DIR/bindings.rs");
                let version = header.version.unwrap_or(CHECKED_IN_VERSION);
                (format!("generated from {}", header.path.display()), version)
            }
            Err(why) => crate::fail(&format!(
                "cannot generate bindings from {}: {why}",
                header.path.display()
            )),
        }
    }
}

/// Running bindgen on `db.h`; compiled only with the `generate-bindings`
/// feature, so a default build neither builds bindgen nor looks for libclang.
#[cfg(feature = "generate-bindings")]
mod generate {
    use crate::locate::Header;
    use bindgen::callbacks::{IntKind, ParseCallbacks};

    /// Marks freshly generated bindings; regenerate-bindings.sh replaces it
    /// (it holds a local path) with a stable note.
    const GENERATED_MARK: &str = "// Generated by libdb-sys/build.rs with bindgen from";

    /// The bindings for `header` as Rust source.
    pub fn bindings(header: &Header) -> Result<String, String> {
        // Read by clang-sys when it looks for libclang.
        println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");
        libclang_loads()?;
        generate(header)
    }

    /// bindgen panics when it cannot load libclang; ask clang-sys first.
    /// The library stays loaded for this thread, where bindgen reuses it.
    fn libclang_loads() -> Result<(), String> {
        if clang_sys::is_loaded() {
            return Ok(());
        }
        clang_sys::load().map_err(|e| {
            if e.contains("(invalid: [])") {
                // Plainly absent: clang-sys's long pattern list adds nothing.
                "libclang not found; install libclang-dev or set LIBCLANG_PATH".to_string()
            } else {
                format!("libclang cannot be loaded: {e}")
            }
        })
    }

    fn generate(header: &Header) -> Result<String, String> {
        let path = header.path.to_string_lossy();
        let bindings = bindgen::Builder::default()
            .header(path.clone())
            .raw_line(format!("{GENERATED_MARK} {path}"))
            // The entry points and version/error functions.
            .allowlist_function("db_.*")
            // The handles, record/key type and statistics structs; the
            // types they mention come along.
            .allowlist_type("DB_ENV|DB|DB_TXN|DBC|DBT|DB_LSN|DBTYPE|DB_.*STAT.*|db_.*_t")
            .allowlist_var("DB_.*")
            .parse_callbacks(Box::new(IntMacros))
            // C enums (DBTYPE, ...) become plain constants named as in C.
            .default_enum_style(bindgen::EnumVariation::Consts)
            .prepend_enum_name(false)
            .derive_default(true)
            .layout_tests(true)
            .generate()
            .map_err(|e| format!("bindgen failed: {e}"))?;
        Ok(bindings.to_string())
    }

    /// Integer macros get the Rust type they are used with: return codes
    /// and version numbers are `int` in C (`i32`), flags are `u_int32_t`.
    #[derive(Debug)]
    struct IntMacros;

    impl ParseCallbacks for IntMacros {
        fn int_macro(&self, name: &str, value: i64) -> Option<IntKind> {
            if !name.starts_with("DB_") {
                return None;
            }
            let int_typed = name.starts_with("DB_VERSION_");
            if value < 0 || int_typed {
                i32::try_from(value).ok().map(|_| IntKind::I32)
            } else {
                u32::try_from(value).ok().map(|_| IntKind::U32)
            }
        }
    }
}
