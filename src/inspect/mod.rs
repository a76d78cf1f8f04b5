//! `memcacheq-stat`: db_stat's own reports on a home (through Berkeley DB's
//! stat-print calls), plus a per-queue overview (`-Q`) and a non-consuming
//! peek at the head of a queue.
//!
//! Opening a home the way `db_stat` does: first join the running
//! environment (its `__db.NNN` region files) without creating anything and
//! without recovery, so a live server is not disturbed. When that fails, only
//! the reports that read files (`-d`, `-l`, and our `-Q`) go on, in a private
//! environment whose regions live in this process's memory and leave no
//! files behind; the environment-wide reports (`-e`, `-c`, `-m`, `-t`) need
//! a running environment and fail, as db_stat's do.
//!
//! - `overview`: the `-Q` table or JSON lines, and `--peek`.
//! - `upgrade`: `memcacheq-upgrade`, moving a home to this Berkeley DB release.

mod overview;
pub mod upgrade;

use std::ffi::CStr;
use std::io::Write;
use std::path::{Path, PathBuf};

use getopts::Options;

use crate::bdb::{self, Database, Env, EnvReport, Subsystems, Unthreaded};

/// Prefix of Berkeley DB's own error messages, as db_stat uses its name.
const PROGRAM: &CStr = c"memcacheq-stat";

/// What one run prints.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    /// `-V`: the library version.
    Version,
    /// `-d FILE`: one database's statistics.
    Database(String),
    /// `-e`, `-c`, `-l`, `-m`, `-t`.
    Env(EnvReport),
    /// `-Q`: every queue, or only `-d QUEUE`; with `--peek N` its first N
    /// messages as well.
    Queues {
        /// `-d QUEUE`.
        only: Option<String>,
        /// `--peek N`.
        peek: Option<usize>,
    },
}

/// The parsed command line.
#[derive(Debug)]
struct Args {
    /// `-h HOME`; the current directory (or $DB_HOME) when absent.
    home: PathBuf,
    /// What to print.
    request: Request,
    /// `-f`: DB_FAST_STAT for `-d`.
    fast: bool,
    /// `-j` / `--json`: JSON lines for `-Q`.
    json: bool,
}

fn options() -> Options {
    let mut o = Options::new();
    o.optopt("h", "", "environment home directory", "HOME");
    o.optopt(
        "d",
        "",
        "database statistics (with -Q: only this queue)",
        "FILE",
    );
    o.optflag("e", "", "environment statistics");
    o.optflag("c", "", "lock statistics");
    o.optflag("l", "", "log statistics");
    o.optflag("m", "", "memory pool statistics");
    o.optflag("t", "", "transaction statistics");
    o.optflag(
        "r",
        "",
        "replication statistics (a site of a replication group)",
    );
    o.optflag("f", "", "fast database statistics (no page walk)");
    o.optflag("V", "", "print the Berkeley DB version and exit");
    o.optflag(
        "Q",
        "",
        "one line per queue: waiting, set, get, first, next, bytes",
    );
    o.optflag("j", "json", "with -Q: JSON lines");
    o.optopt(
        "",
        "peek",
        "with -Q -d QUEUE: print its first N messages",
        "N",
    );
    o.optflag("", "help", "this help");
    o
}

fn usage() -> String {
    options().usage(
        "usage: memcacheq-stat [-h HOME] (-d FILE [-f] | -e | -c | -l | -m | -t | -r | -V | \
         -Q [-d QUEUE [--peek N]] [--json])",
    )
}

fn parse(argv: &[String]) -> Result<Option<Args>, String> {
    let m = options().parse(argv).map_err(|e| e.to_string())?;
    if m.opt_present("help") {
        return Ok(None);
    }
    if !m.free.is_empty() {
        return Err(format!("unexpected argument {:?}", m.free[0]));
    }
    let file = m.opt_str("d");
    let mut chosen = Vec::new();
    if m.opt_present("V") {
        chosen.push(Request::Version);
    }
    if m.opt_present("Q") {
        let peek = match m.opt_str("peek") {
            Some(n) => Some(
                n.parse()
                    .map_err(|_| format!("--peek {n:?}: not a count"))?,
            ),
            None => None,
        };
        if peek.is_some() && file.is_none() {
            return Err("--peek needs -d QUEUE".into());
        }
        chosen.push(Request::Queues {
            only: file.clone(),
            peek,
        });
    } else {
        if m.opt_present("peek") {
            return Err("--peek needs -Q -d QUEUE".into());
        }
        if let Some(f) = &file {
            chosen.push(Request::Database(f.clone()));
        }
    }
    for (flag, report) in [
        ("e", EnvReport::Environment),
        ("c", EnvReport::Locks),
        ("l", EnvReport::Log),
        ("m", EnvReport::Mpool),
        ("t", EnvReport::Txn),
        ("r", EnvReport::Replication),
    ] {
        if m.opt_present(flag) {
            chosen.push(Request::Env(report));
        }
    }
    if chosen.len() != 1 {
        return Err("give exactly one of -d, -e, -c, -l, -m, -t, -r, -V, -Q".into());
    }
    Ok(Some(Args {
        home: m.opt_str("h").map(PathBuf::from).unwrap_or_default(),
        request: chosen.remove(0),
        fast: m.opt_present("f"),
        json: m.opt_present("j"),
    }))
}

/// Joins the running environment in `home`, or, if there is none and
/// `private` names what the request needs, opens a private one.
fn open_env(home: &Path, private: Option<Subsystems>) -> Result<Env<Unthreaded>, String> {
    let shown = if home.as_os_str().is_empty() {
        Path::new(".")
    } else {
        home
    };
    match Env::join(shown, PROGRAM) {
        Ok(env) => Ok(env),
        Err(join_err) => match private {
            Some(subsystems) => Env::open_private(shown, subsystems, PROGRAM)
                .map_err(|e| format!("DB_ENV->open: {}: {e}", shown.display())),
            None => Err(format!("DB_ENV->open: {}: {join_err}", shown.display())),
        },
    }
}

/// An environment in which database files can be opened (-d, -Q).
fn open_for_databases(home: &Path) -> Result<Env<Unthreaded>, String> {
    let subsystems = Subsystems {
        mpool: true,
        log: false,
    };
    open_env(home, Some(subsystems))
}

/// Runs `memcacheq-stat` with `argv` (without the program name); returns
/// the exit status.
pub fn stat_main(argv: &[String]) -> i32 {
    let args = match parse(argv) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{}", usage());
            return 0;
        }
        Err(e) => {
            eprintln!("memcacheq-stat: {e}\n{}", usage());
            return 2;
        }
    };
    match run(&args) {
        Ok(()) => 0,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("memcacheq-stat: {e}");
            1
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    match &args.request {
        Request::Version => {
            println!("{}", bdb::version());
            Ok(())
        }
        Request::Env(report) => {
            let private = (*report == EnvReport::Log).then_some(Subsystems {
                log: true,
                mpool: false,
            });
            let env = open_env(&args.home, private)?;
            // db_stat -e includes every subsystem's report after the
            // environment's own.
            let flags = if *report == EnvReport::Environment {
                libdb_sys::DB_STAT_SUBSYSTEM
            } else {
                0
            };
            env.print_report(*report, flags)
                .map_err(|e| format!("{report:?} statistics: {e}"))
        }
        Request::Database(file) => {
            let env = open_for_databases(&args.home)?;
            let db = Database::open_readonly(&env, file.as_bytes())
                .map_err(|e| format!("DB->open: {file}: {e}"))?;
            let flags = if args.fast {
                libdb_sys::DB_FAST_STAT
            } else {
                0
            };
            db.print_stats(flags)
                .map_err(|e| format!("DB->stat_print: {file}: {e}"))
        }
        Request::Queues { only, peek } => {
            let env = open_for_databases(&args.home)?;
            overview::run(&env, &args.home, only.as_deref(), *peek, args.json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Args>, String> {
        let v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        parse(&v)
    }

    #[test]
    fn db_stat_flags_parse() {
        let a = args("-h /x -d jobs").unwrap().unwrap();
        assert_eq!(a.home, PathBuf::from("/x"));
        assert_eq!(a.request, Request::Database("jobs".into()));
        let a = args("-h /x -l").unwrap().unwrap();
        assert_eq!(a.request, Request::Env(EnvReport::Log));
        let a = args("-Q -d jobs --peek 3 --json").unwrap().unwrap();
        assert_eq!(
            a.request,
            Request::Queues {
                only: Some("jobs".into()),
                peek: Some(3)
            }
        );
        assert!(a.json);
    }

    #[test]
    fn one_request_at_a_time() {
        assert!(args("-e -l").is_err());
        assert!(args("").is_err());
        assert!(args("-Q --peek 2").is_err());
        assert!(args("-d jobs --peek 2").is_err());
    }
}
