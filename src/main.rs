//! The `memcacheq` binary: parse the command line, set up logging, serve.

use std::process::ExitCode;

use memcacheq::config::{self, Invocation};

const HELP: &str = "memcacheq (Rust) 0.2.1 compatible
-p <num>      TCP port number to listen on (default: 22201)
-U <num>      UDP port number to listen on (default: 0, off)
-s <file>     unix socket path to listen on (disables network support)
-a <mask>     access mask for unix socket, in octal (default 0700)
-l <ip_addr>  interface to listen on, default is INDRR_ANY
-d            run as a daemon
-r            maximize core file limit
-u <username> assume identity of <username> (only when run as root)
-c <num>      max simultaneous connections, default is 1024
-v            verbose (print errors/warnings while in event loop)
-vv           very verbose (also print client commands/reponses)
-h            print this help and exit
-i            print license info
-P <file>     save PID in <file>, only used with -d option
-t <num>      number of threads to use, default 4 or cores - 1 if fewer (socket I/O)
-m <num>      in-memmory cache size of BerkeleyDB in megabytes, default is 64MB
-A <num>      underlying page size in bytes, default is 4096, (512B ~ 64KB, power-of-two)
-H <dir>      env home of database, default is '/data1/memcacheq'
-L <num>      log buffer size in kbytes, default is 32KB
-C <num>      do checkpoint every <num> seconds, 0 for disable, default is 5 minutes
-T <num>      do memp_trickle every <num> seconds, 0 for disable, default is 30 seconds
-S <num>      do queue stats dump every <num> seconds, 0 for disable, default is 30 seconds
-e <num>      percent of the pages in the cache that should be clean, default is 60%
-E <num>      how many pages in a single db file, default is 16*1024, 0 for disable
-B <num>      specify the message body length in bytes, default is 1024
-D <num>      do deadlock detecting every <num> millisecond, 0 for disable, default is 100ms
-N            enable DB_TXN_NOSYNC to gain big performance improved, default is off
-R            automatically remove log files that are no longer needed, default is off
-Z            list queue names only in 'stats queue', as MemcacheQ 0.1.x (for Zend_Queue)
--lease-timeout <secs>   give back a message opened by 'get <q>/open' and not
              closed within <secs> seconds, default 0 (never)
--max-deliveries <num>   move a message opened <num> times and never closed
              to the queue '<q>.dead', default 0 (unlimited)
--report-version <ver>   answer 'version' and 'stats' with <ver> instead of
              0.2.1, for clients that refuse 0.2.1 (libmemcached)
--rep-listen <host:port> replicate: this site's address in its replication
              group (README, \"Replication\"); off by default
--rep-peer <host:port>   another member to contact at start (repeatable);
              a site started without peers creates the group
--rep-priority <num>     election priority, default 100; 0 never masters
--rep-ack <policy>       none, one, quorum (default) or all: sites that must
              hold a commit on disk before its reply is sent
--rep-ack-timeout <ms>   how long a reply waits for them, default 1000
--metrics-listen <host:port>  serve Prometheus metrics at GET /metrics
              there; off by default
";

const LICENSE: &str = "memcacheq (Rust): a MemcacheQ 0.2.1 compatible message queue.
Licensed under the BSD 3-Clause license; see the README of the source tree.
It links Oracle Berkeley DB, which is distributed under its own license.
";

fn init_logging(verbosity: usize) {
    let level = match verbosity {
        0 => log::LevelFilter::Error,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_env("RUST_LOG")
        .init();
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match config::parse(&args) {
        Ok(Invocation::Serve(c)) => *c,
        Ok(Invocation::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::License) => {
            print!("{LICENSE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(config.verbosity);
    match memcacheq::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
