//! `memcacheq-upgrade`: moves a home written with an older Berkeley DB
//! release (the original MemcacheQ was often built on 4.x) to the release we
//! link, or explains why it will not.
//!
//! The rules, in order:
//! 1. The home must hold `queue.list`, and no process may have its
//!    environment open: no server holds the home's lock (which we then
//!    hold to the end), and no process maps its `__db.NNN` region files,
//!    checked in `/proc/*/maps`.
//! 2. Every `log.NNNNNNNNNN` starts with a header record whose payload is the
//!    log magic (0x40988) and the log version: 16 for Berkeley DB 4.8, 19
//!    for 5.3. A version newer than ours is refused.
//! 3. The home was shut down cleanly when the last record of transactional
//!    work in its log is a commit (`__txn_regop`) and after it come only
//!    bookkeeping records that a clean stop writes once the pages are on
//!    disk: a checkpoint (`__txn_ckp`) or database closes
//!    (`__dbreg_register` CLOSE). A killed server leaves its last commit, or
//!    unfinished work, at the end of the log: the data files may lack
//!    changes only the log holds, so recovery is needed, and recovery of an
//!    old log can only be run by the old release. (4.8 logs no closes but
//!    checkpoints on close; 5.3 logs the closes.)
//! 4. Old version and clean: `DB->upgrade` and `DB_ENV->lsn_reset` on
//!    `queue.list` and every queue it names, then the old log and region
//!    files are removed. Our server then starts a fresh 5.3 log.
//! 5. Current version: nothing to do (an unclean 5.3 home is recovered by
//!    the server itself, which opens with DB_RECOVER).

use std::ffi::CStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use getopts::Options;

use crate::bdb::{self, Database, Env, Subsystems, LOG_MAGIC, LOG_VERSION};
use crate::storage::queue_list;
use crate::storage::{HomeLock, HomeLockError};

const PROGRAM: &CStr = c"memcacheq-upgrade";

/// Log record type of a checkpoint (`__txn_ckp`).
const REC_TXN_CKP: u32 = 11;
/// Log record type of a file registration (`__dbreg_register`).
const REC_DBREG_REGISTER: u32 = 2;
/// Log record type of a transaction's commit (`__txn_regop`).
const REC_TXN_REGOP: u32 = 10;
/// `__dbreg_register` opcode written when a database is closed.
const DBREG_CLOSE: u32 = 2;

/// Which Berkeley DB release wrote a given log version.
fn release_of(log_version: u32) -> &'static str {
    match log_version {
        13 => "4.6",
        14 => "4.7",
        15 => "4.8 (early)",
        16 => "4.8",
        17 => "5.0",
        18 => "5.1",
        19 => "5.2 or 5.3",
        20.. => "a release newer than 5.3",
        _ => "a release older than 4.6",
    }
}

/// What was found in a home.
#[derive(Debug)]
pub struct Survey {
    /// The home directory.
    pub home: PathBuf,
    /// Log files, sorted, with the version in each header.
    pub logs: Vec<(String, u32)>,
    /// Region files (`__db.NNN`).
    pub regions: Vec<String>,
    /// Whether the log ends cleanly (rule 3).
    pub clean: bool,
    /// Why it is not clean, for the message.
    pub dirty_reason: String,
}

/// Names in `dir` that satisfy `keep`, sorted.
fn names(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some(n) = e.file_name().to_str() {
            if keep(n) {
                out.push(n.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn is_log_file(n: &str) -> bool {
    n.strip_prefix("log.")
        .is_some_and(|d| d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()))
}

fn is_region_file(n: &str) -> bool {
    n.strip_prefix("__db.")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The (magic, version) of a log file's header record: after the 12-byte
/// record header (prev offset, length, checksum) come the magic number and
/// the version, in the byte order of the machine that wrote it.
fn log_header(path: &Path) -> Result<(u32, u32), String> {
    let mut head = [0u8; 20];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let word = |at: usize| u32::from_ne_bytes(head[at..at + 4].try_into().expect("4 bytes"));
    let (magic, version) = (word(12), word(16));
    if magic == LOG_MAGIC {
        Ok((magic, version))
    } else if magic.swap_bytes() == LOG_MAGIC {
        Ok((magic.swap_bytes(), version.swap_bytes()))
    } else {
        Err(format!(
            "{}: not a Berkeley DB log file (magic {magic:#x})",
            path.display()
        ))
    }
}

/// Processes that map one of `home`'s region files.
fn processes_using(home: &Path) -> Vec<u32> {
    let Ok(home) = home.canonicalize() else {
        return Vec::new();
    };
    let needle = format!("{}/__db.", home.display());
    let own = std::process::id();
    let mut pids = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return pids;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == own {
            continue;
        }
        if let Ok(maps) = fs::read_to_string(p.path().join("maps")) {
            if maps.lines().any(|l| l.contains(&needle)) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Looks at `home` without changing anything.
pub fn survey(home: &Path) -> Result<Survey, String> {
    if !home.join(queue_list::FILE_NAME).is_file() {
        return Err(format!(
            "{} has no queue.list: not a memcacheq home",
            home.display()
        ));
    }
    let pids = processes_using(home);
    if !pids.is_empty() {
        return Err(format!(
            "process(es) {pids:?} have the environment in {} open; stop the server first",
            home.display()
        ));
    }
    let mut logs = Vec::new();
    for name in names(home, is_log_file)? {
        let (_, version) = log_header(&home.join(&name))?;
        logs.push((name, version));
    }
    let regions = names(home, is_region_file)?;
    let (clean, dirty_reason) = if logs.is_empty() {
        (true, String::new())
    } else {
        log_ends_cleanly(home)?
    };
    Ok(Survey {
        home: home.to_path_buf(),
        logs,
        regions,
        clean,
        dirty_reason,
    })
}

/// A log record's type and, for `__dbreg_register`, its opcode.
fn record_kind(head: &[u8]) -> (u32, u32) {
    let word = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
            .unwrap_or(0)
    };
    // Fields: type, transaction id, previous LSN (8 bytes), then for a
    // registration its opcode.
    (word(0), word(16))
}

/// Rule 3, read through a log cursor in a private environment (which reads
/// old log versions too, and writes nothing): after the last commit comes
/// a checkpoint or the closing of databases, and no transaction's work.
fn log_ends_cleanly(home: &Path) -> Result<(bool, String), String> {
    let env = Env::open_private(
        home,
        Subsystems {
            log: true,
            mpool: false,
        },
        PROGRAM,
    )
    .map_err(|e| format!("reading the log in {}: {e}", home.display()))?;
    let records = env
        .log_records(20)
        .map_err(|e| format!("reading the log in {}: {e}", home.display()))?;
    if records.is_empty() {
        return Ok((true, String::new()));
    }
    let kinds: Vec<(u32, u32)> = records.iter().map(|r| record_kind(&r.2)).collect();
    let is_bookkeeping = |k: &(u32, u32)| k.0 == REC_TXN_CKP || k.0 == REC_DBREG_REGISTER;
    let tail_start = kinds
        .iter()
        .rposition(|k| !is_bookkeeping(k))
        .map_or(0, |i| i + 1);
    if let Some(last) = tail_start.checked_sub(1) {
        let (file, offset, _) = &records[last];
        if kinds[last].0 != REC_TXN_REGOP {
            return Ok((
                false,
                format!(
                    "the last transaction record, at [{file}][{offset}] (type {}), is not a commit",
                    kinds[last].0
                ),
            ));
        }
    }
    let tail = &kinds[tail_start..];
    let closed = tail
        .iter()
        .any(|k| k.0 == REC_TXN_CKP || (k.0 == REC_DBREG_REGISTER && k.1 == DBREG_CLOSE));
    if closed {
        Ok((true, String::new()))
    } else {
        let (file, offset, _) = &records[tail_start.saturating_sub(1)];
        Ok((
            false,
            format!(
                "the log ends at [{file}][{offset}] with a commit that no checkpoint or database close follows"
            ),
        ))
    }
}

/// The plan for a survey: `Ok(None)` when nothing needs doing, the steps
/// otherwise; `Err` with the explanation when we must not touch the home.
pub fn plan(s: &Survey) -> Result<Option<Vec<String>>, String> {
    let oldest = s.logs.iter().map(|l| l.1).min();
    let newest = s.logs.iter().map(|l| l.1).max();
    if let Some(v) = newest.filter(|&v| v > LOG_VERSION) {
        return Err(format!(
            "the log was written by Berkeley DB {} (log version {v}); this program links {} (log version {LOG_VERSION}) and cannot downgrade it",
            release_of(v),
            bdb::version()
        ));
    }
    let Some(oldest) = oldest.filter(|&v| v < LOG_VERSION) else {
        return Ok(None);
    };
    if !s.clean {
        return Err(format!(
            "{home} was not shut down cleanly: {reason}.\n\
             Its log (version {oldest}, Berkeley DB {rel}) must be recovered by that release before it can be upgraded; \
             {ours} cannot replay it.\n\
             Do this: run Berkeley DB {rel}'s db_recover on it (e.g. `db{rel}_recover -h {home}` or `db_recover -h {home}` of that release), \
             or start the old memcacheq on its old Berkeley DB on this home and stop it with SIGTERM; \
             then run memcacheq-upgrade again. Nothing was changed.",
            home = s.home.display(),
            reason = s.dirty_reason,
            rel = release_of(oldest).trim_end_matches(" (early)"),
            ours = bdb::version(),
        ));
    }
    let mut steps = Vec::new();
    steps.push("DB->upgrade and DB_ENV->lsn_reset on queue.list".to_string());
    steps.push("DB->upgrade and DB_ENV->lsn_reset on every queue named in queue.list".to_string());
    for r in &s.regions {
        steps.push(format!("remove old region file {r}"));
    }
    for (l, v) in &s.logs {
        steps.push(format!(
            "remove old log file {l} (log version {v}, Berkeley DB {})",
            release_of(*v)
        ));
    }
    Ok(Some(steps))
}

/// Runs the upgrade steps; returns the queue names handled.
fn apply(s: &Survey) -> Result<Vec<String>, String> {
    let home = &s.home;
    let mut done = Vec::new();
    {
        let env = Env::open_private(
            home,
            Subsystems {
                mpool: true,
                log: false,
            },
            PROGRAM,
        )
        .map_err(|e| format!("DB_ENV->open: {}: {e}", home.display()))?;
        let file_step = |file: &[u8]| -> Result<(), String> {
            let shown = String::from_utf8_lossy(file);
            Database::upgrade_file(&env, file).map_err(|e| format!("DB->upgrade: {shown}: {e}"))?;
            env.lsn_reset(file)
                .map_err(|e| format!("DB_ENV->lsn_reset: {shown}: {e}"))
        };
        file_step(queue_list::FILE_NAME.as_bytes())?;
        let list = Database::open_readonly(&env, queue_list::FILE_NAME.as_bytes())
            .map_err(|e| format!("DB->open: queue.list: {e}"))?;
        let entries = queue_list::entries(&list).map_err(|e| format!("queue.list: {e}"))?;
        drop(list);
        for (name, _) in entries {
            file_step(&name)?;
            done.push(String::from_utf8_lossy(&name).into_owned());
        }
    }
    for r in &s.regions {
        fs::remove_file(home.join(r)).map_err(|e| format!("remove {r}: {e}"))?;
    }
    for (l, _) in &s.logs {
        fs::remove_file(home.join(l)).map_err(|e| format!("remove {l}: {e}"))?;
    }
    Ok(done)
}

fn options() -> Options {
    let mut o = Options::new();
    o.optopt("H", "", "the memcacheq home directory", "DIR");
    o.optflag("n", "dry-run", "only report what would be done");
    o.optflag("h", "help", "this help");
    o
}

/// Runs `memcacheq-upgrade` with `argv` (without the program name);
/// returns the exit status: 0 done or nothing to do, 1 refused or failed,
/// 2 bad usage.
pub fn upgrade_main(argv: &[String]) -> i32 {
    let usage = options().usage("usage: memcacheq-upgrade -H DIR [--dry-run]");
    let m = match options().parse(argv) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("memcacheq-upgrade: {e}\n{usage}");
            return 2;
        }
    };
    if m.opt_present("h") {
        print!("{usage}");
        return 0;
    }
    let Some(home) = m.opt_str("H").map(PathBuf::from) else {
        eprintln!("memcacheq-upgrade: -H DIR is required\n{usage}");
        return 2;
    };
    let dry = m.opt_present("n");
    // Held to the end, so no server opens (and recovers) the home while its
    // files change. The /proc maps check of `survey` still catches
    // processes that do not take this lock (the original, db_* tools).
    let _lock = match HomeLock::acquire(&home) {
        Ok(lock) => Some(lock),
        Err(e @ HomeLockError::InUse { .. }) => {
            eprintln!("memcacheq-upgrade: refusing: {e}; stop it first. Nothing was changed.");
            return 1;
        }
        // A missing or unreadable home: `survey` says what is wrong.
        Err(HomeLockError::Io { .. }) => None,
    };
    let survey = match survey(&home) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("memcacheq-upgrade: {e}");
            return 1;
        }
    };
    match plan(&survey) {
        Err(e) => {
            eprintln!("memcacheq-upgrade: refusing: {e}");
            1
        }
        Ok(None) => {
            let how = if survey.clean {
                "it was shut down cleanly"
            } else {
                "it was not shut down cleanly; memcacheq recovers it when it starts (it opens with DB_RECOVER)"
            };
            println!(
                "{}: already in {} format (log version {LOG_VERSION}); {how}. Nothing to do.",
                home.display(),
                bdb::version()
            );
            0
        }
        Ok(Some(steps)) => {
            println!(
                "{}: shut down cleanly, written by an older Berkeley DB; upgrade to {}{}:",
                home.display(),
                bdb::version(),
                if dry { " would" } else { "" }
            );
            for s in &steps {
                println!("  - {s}");
            }
            if dry {
                println!("Dry run: nothing was changed.");
                return 0;
            }
            match apply(&survey) {
                Ok(queues) => {
                    println!(
                        "Upgraded queue.list and {} queue(s): {}. The home is ready for memcacheq.",
                        queues.len(),
                        queues.join(", ")
                    );
                    0
                }
                Err(e) => {
                    eprintln!(
                        "memcacheq-upgrade: failed: {e}\nRestore the copy of the home you made before upgrading."
                    );
                    1
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_kinds() {
        assert!(is_log_file("log.0000000001"));
        assert!(!is_log_file("log.1"));
        assert!(is_region_file("__db.001"));
        assert!(!is_region_file("__dbq.jobs.0"));
        assert!(!is_region_file("__db.register"));
    }

    #[test]
    fn releases_by_log_version() {
        assert_eq!(release_of(16), "4.8");
        assert_eq!(release_of(19), "5.2 or 5.3");
    }
}
