//! The command line of MemcacheQ 0.2.1 (README.md, "Flags"), parsed with getopts.

use std::fmt;
use std::path::PathBuf;

use crate::bdb::{SiteAddress, QUEUE_PAGE_HEADER};

/// Everything the command line decides, with the original's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// TCP port (-p).
    pub port: u16,
    /// UDP port (-U); 0 means off.
    pub udp_port: u16,
    /// Unix socket path (-s); disables TCP and UDP.
    pub socket_path: Option<PathBuf>,
    /// Octal permission mask of the unix socket (-a).
    pub socket_mask: u32,
    /// Interface to bind (-l); `None` binds every interface.
    pub listen_addr: Option<String>,
    /// Run as a daemon (-d).
    pub daemonize: bool,
    /// Raise the core-file limit (-r).
    pub max_core: bool,
    /// User to switch to when started as root (-u).
    pub user: Option<String>,
    /// Maximum simultaneous client connections (-c).
    pub max_connections: usize,
    /// Verbosity: 0 quiet, 1 errors and warnings, 2 every command (-v, -vv).
    pub verbosity: usize,
    /// Pid file written in daemon mode (-P).
    pub pid_file: Option<PathBuf>,
    /// Threads doing socket work, the reactor included (-t); `None`: the
    /// default, see [`default_threads`].
    pub threads: Option<u32>,
    /// Berkeley DB cache size in megabytes (-m).
    pub cache_mb: u64,
    /// Page size of queue databases in bytes (-A).
    pub page_size: u32,
    /// Environment home (-H).
    pub home: PathBuf,
    /// Log buffer size in kilobytes (-L).
    pub log_buffer_kb: u32,
    /// Seconds between checkpoints (-C); 0 is off.
    pub checkpoint_secs: u64,
    /// Seconds between memp_trickle calls (-T); 0 is off.
    pub trickle_secs: u64,
    /// Seconds between queue counter dumps (-S); 0 is off.
    pub stats_dump_secs: u64,
    /// memp_trickle target percentage of clean pages (-e).
    pub trickle_percent: i32,
    /// Pages per queue extent file (-E); 0 means no extents.
    pub extent_pages: u32,
    /// Fixed record length of queue databases (-B).
    pub record_len: u32,
    /// Milliseconds between deadlock detections (-D); 0 is off.
    pub deadlock_ms: u64,
    /// Commit without flushing the log (-N).
    pub nosync: bool,
    /// Remove log files no longer needed (-R).
    pub auto_remove_logs: bool,
    /// Serve the names-only `stats queue` listing of MemcacheQ 0.1.x (-Z).
    pub names_only_stats: bool,
    /// Seconds an open message (`get <q>/open`) stays leased before it is
    /// given back (--lease-timeout); 0 is never.
    pub lease_timeout_secs: u64,
    /// Times a message may be handed out by `/open` without being closed
    /// before it moves to `<q>.dead` (--max-deliveries); 0 is unlimited.
    pub max_deliveries: u32,
    /// What `version` and `stats` report (--report-version), for clients
    /// that refuse 0.2.1, such as libmemcached; `None` is 0.2.1.
    pub report_version: Option<String>,
    /// Replication (--rep-*); `None`: this server stands alone.
    pub replication: Option<RepOptions>,
    /// Where the Prometheus page is served (--metrics-listen HOST:PORT);
    /// `None` is off.
    pub metrics_listen: Option<String>,
}

/// How many other sites must confirm a commit before its replies leave
/// (--rep-ack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPolicy {
    /// None: the local commit is enough.
    None,
    /// Any one other site.
    One,
    /// A majority of the group, this site included.
    Quorum,
    /// Every other site of the group.
    All,
}

/// The --rep-* options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepOptions {
    /// --rep-listen: this site's replication address.
    pub listen: SiteAddress,
    /// --rep-peer: members to contact at start; none creates the group.
    pub peers: Vec<SiteAddress>,
    /// --rep-priority: 0 never becomes master.
    pub priority: u32,
    /// --rep-ack.
    pub ack: AckPolicy,
    /// --rep-ack-timeout, in milliseconds.
    pub ack_timeout_ms: u64,
}

/// The default --rep-ack: a majority holds every acknowledged commit, and
/// any master a majority can elect has it.
pub const DEFAULT_ACK: AckPolicy = AckPolicy::Quorum;
/// The default --rep-ack-timeout.
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 1000;

/// Threads doing socket work when -t is not given: the original's 4, but
/// never more than the cores less one. The load's clients, the log flush
/// and Berkeley DB's chores need a core too, and I/O threads that must
/// wait for a core make every turn wait for them: on 2 cores the reactor
/// alone is faster (README, "I/O threads").
pub fn default_threads() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores.saturating_sub(1)).clamp(1, 4) as u32
}

impl Default for Config {
    fn default() -> Config {
        Config {
            port: 22201,
            udp_port: 0,
            socket_path: None,
            socket_mask: 0o700,
            listen_addr: None,
            daemonize: false,
            max_core: false,
            user: None,
            max_connections: 1024,
            verbosity: 0,
            pid_file: None,
            threads: None,
            cache_mb: 64,
            page_size: 4096,
            home: PathBuf::from("/data1/memcacheq"),
            log_buffer_kb: 32,
            checkpoint_secs: 300,
            trickle_secs: 30,
            stats_dump_secs: 30,
            trickle_percent: 60,
            extent_pages: 16384,
            record_len: 1024,
            deadlock_ms: 100,
            nosync: false,
            auto_remove_logs: false,
            names_only_stats: false,
            lease_timeout_secs: 0,
            max_deliveries: 0,
            report_version: None,
            replication: None,
            metrics_listen: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the server.
    Serve(Box<Config>),
    /// Print the help text and exit 0 (-h).
    Help,
    /// Print the license and exit 0 (-i).
    License,
}

/// A command line the server refuses; printed to stderr before exiting 1.
#[derive(Debug, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn options() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.parsing_style(getopts::ParsingStyle::StopAtFirstFree);
    for (flag, hint) in [
        ("a", "MASK"),
        ("U", "PORT"),
        ("p", "PORT"),
        ("s", "FILE"),
        ("c", "NUM"),
        ("l", "ADDR"),
        ("u", "USER"),
        ("P", "FILE"),
        ("t", "NUM"),
        ("H", "DIR"),
        ("m", "MB"),
        ("A", "BYTES"),
        ("L", "KB"),
        ("C", "SECS"),
        ("T", "SECS"),
        ("S", "SECS"),
        ("e", "PERCENT"),
        ("D", "MSECS"),
        ("E", "PAGES"),
        ("B", "BYTES"),
    ] {
        o.optopt(flag, "", "", hint);
    }
    for flag in ["h", "i", "d", "r", "N", "R", "Z"] {
        o.optflag(flag, "", "");
    }
    o.optflagmulti("v", "", "");
    o.optopt("", "lease-timeout", "", "SECS");
    o.optopt("", "max-deliveries", "", "NUM");
    o.optopt("", "report-version", "", "VERSION");
    o.optopt("", "rep-listen", "", "HOST:PORT");
    o.optmulti("", "rep-peer", "", "HOST:PORT");
    o.optopt("", "rep-priority", "", "NUM");
    o.optopt("", "rep-ack", "", "none|one|quorum|all");
    o.optopt("", "rep-ack-timeout", "", "MSECS");
    o.optopt("", "metrics-listen", "", "HOST:PORT");
    o
}

/// A `HOST:PORT` of a --rep-* option.
fn site_address(flag: &str, value: &str) -> Result<SiteAddress, ConfigError> {
    let bad = || {
        ConfigError(format!(
            "Illegal argument \"{flag}\": '{value}' is not HOST:PORT"
        ))
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(bad)?;
    if host.is_empty() || host.contains('\0') {
        return Err(bad());
    }
    Ok(SiteAddress {
        host: host.to_string(),
        port,
    })
}

/// The --rep-* options; `None` without --rep-listen (the others then may
/// not be given).
fn rep_options(m: &getopts::Matches) -> Result<Option<RepOptions>, ConfigError> {
    let Some(listen) = m.opt_str("rep-listen") else {
        for flag in ["rep-peer", "rep-priority", "rep-ack", "rep-ack-timeout"] {
            if m.opt_present(flag) {
                return Err(ConfigError(format!(
                    "Illegal argument \"{flag}\": replication needs --rep-listen"
                )));
            }
        }
        return Ok(None);
    };
    let number = |flag: &str, default: u64, max: u64| -> Result<u64, ConfigError> {
        match m.opt_str(flag) {
            None => Ok(default),
            Some(s) => s.parse::<u64>().ok().filter(|v| *v <= max).ok_or_else(|| {
                ConfigError(format!(
                    "Illegal argument \"{flag}\": '{s}' is not a number up to {max}"
                ))
            }),
        }
    };
    let ack = match m.opt_str("rep-ack").as_deref() {
        None => DEFAULT_ACK,
        Some("none") => AckPolicy::None,
        Some("one") => AckPolicy::One,
        Some("quorum") => AckPolicy::Quorum,
        Some("all") => AckPolicy::All,
        Some(other) => {
            return Err(ConfigError(format!(
                "Illegal argument \"rep-ack\": '{other}' is not none, one, quorum or all"
            )))
        }
    };
    Ok(Some(RepOptions {
        listen: site_address("rep-listen", &listen)?,
        peers: m
            .opt_strs("rep-peer")
            .iter()
            .map(|p| site_address("rep-peer", p))
            .collect::<Result<_, _>>()?,
        priority: number("rep-priority", 100, u64::from(u32::MAX))? as u32,
        ack,
        ack_timeout_ms: number("rep-ack-timeout", DEFAULT_ACK_TIMEOUT_MS, 3_600_000)?,
    }))
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Invocation, ConfigError> {
    let m = options().parse(args).map_err(|e| {
        let flag = match &e {
            getopts::Fail::UnrecognizedOption(o)
            | getopts::Fail::ArgumentMissing(o)
            | getopts::Fail::OptionDuplicated(o) => o.trim_start_matches('-').to_string(),
            other => other.to_string(),
        };
        ConfigError(format!("{e}\nIllegal argument \"{flag}\""))
    })?;
    if let Some(extra) = m.free.first() {
        return Err(ConfigError(format!("Illegal argument \"{extra}\"")));
    }
    if m.opt_present("h") {
        return Ok(Invocation::Help);
    }
    if m.opt_present("i") {
        return Ok(Invocation::License);
    }
    let mut c = Config::default();
    let num = |flag: &str| -> Result<Option<u64>, ConfigError> {
        match m.opt_str(flag) {
            None => Ok(None),
            Some(s) => s.parse::<u64>().map(Some).map_err(|_| {
                ConfigError(format!(
                    "Illegal argument \"{flag}\": '{s}' is not a number"
                ))
            }),
        }
    };
    let ranged = |flag: &str, max: u64| -> Result<Option<u64>, ConfigError> {
        match num(flag)? {
            Some(v) if v > max => Err(ConfigError(format!(
                "Illegal argument \"{flag}\": {v} is larger than {max}"
            ))),
            v => Ok(v),
        }
    };
    if let Some(v) = ranged("p", 65535)? {
        c.port = v as u16;
    }
    if let Some(v) = ranged("U", 65535)? {
        c.udp_port = v as u16;
    }
    c.socket_path = m.opt_str("s").map(PathBuf::from);
    if let Some(s) = m.opt_str("a") {
        c.socket_mask = u32::from_str_radix(&s, 8)
            .ok()
            .filter(|v| *v <= 0o777)
            .ok_or_else(|| {
                ConfigError(format!(
                    "Illegal argument \"a\": '{s}' is not an octal mask"
                ))
            })?;
    }
    c.listen_addr = m.opt_str("l");
    c.daemonize = m.opt_present("d");
    c.max_core = m.opt_present("r");
    c.user = m.opt_str("u");
    if let Some(v) = ranged("c", 1 << 20)? {
        c.max_connections = v as usize;
    }
    c.verbosity = m.opt_count("v");
    c.pid_file = m.opt_str("P").map(PathBuf::from);
    if let Some(v) = ranged("t", 1024)? {
        if v == 0 {
            return Err(ConfigError(
                "Number of threads must be greater than 0".into(),
            ));
        }
        c.threads = Some(v as u32);
    }
    if let Some(v) = ranged("m", 1 << 30)? {
        c.cache_mb = v;
    }
    if let Some(v) = num("A")? {
        if !(512..=65536).contains(&v) || !v.is_power_of_two() {
            return Err(ConfigError(format!(
                "Illegal argument \"A\": page size {v} must be a power of two from 512 to 65536"
            )));
        }
        c.page_size = v as u32;
    }
    if let Some(h) = m.opt_str("H") {
        c.home = PathBuf::from(h);
    }
    if let Some(v) = ranged("L", 1 << 20)? {
        c.log_buffer_kb = v as u32;
    }
    if let Some(v) = num("C")? {
        c.checkpoint_secs = v;
    }
    if let Some(v) = num("T")? {
        c.trickle_secs = v;
    }
    if let Some(v) = num("S")? {
        c.stats_dump_secs = v;
    }
    if let Some(v) = num("e")? {
        if v > 100 {
            return Err(ConfigError(format!(
                "Illegal argument \"e\": trickle percent {v} must be from 0 to 100"
            )));
        }
        c.trickle_percent = v as i32;
    }
    if let Some(v) = ranged("E", u32::MAX as u64)? {
        c.extent_pages = v as u32;
    }
    if let Some(v) = ranged("B", 1 << 24)? {
        if v < 64 {
            return Err(ConfigError(format!(
                "Illegal argument \"B\": record length {v} is smaller than 64"
            )));
        }
        c.record_len = v as u32;
    }
    // A DB_QUEUE page holds its header and records of 1 + -B bytes.
    let max_record = c.page_size - (QUEUE_PAGE_HEADER + 1);
    if c.record_len > max_record {
        return Err(ConfigError(format!(
            "Illegal argument \"B\": records of {} bytes do not fit a {}-byte page (-A); at most {max_record}",
            c.record_len, c.page_size
        )));
    }
    if let Some(v) = num("D")? {
        c.deadlock_ms = v;
    }
    c.nosync = m.opt_present("N");
    c.auto_remove_logs = m.opt_present("R");
    c.names_only_stats = m.opt_present("Z");
    if let Some(v) = ranged("lease-timeout", 1 << 32)? {
        c.lease_timeout_secs = v;
    }
    if let Some(v) = ranged("max-deliveries", u32::MAX as u64)? {
        c.max_deliveries = v as u32;
    }
    if let Some(v) = m.opt_str("report-version") {
        // One token of printable ASCII, or the reply line would break.
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError(format!(
                "Illegal argument \"report-version\": '{v}' must be one word of printable characters"
            )));
        }
        c.report_version = Some(v);
    }
    c.replication = rep_options(&m)?;
    if let Some(addr) = m.opt_str("metrics-listen") {
        // Resolved when it is bound; port 0 lets the kernel choose.
        let port = addr
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
            return Err(ConfigError(format!(
                "Illegal argument \"metrics-listen\": '{addr}' is not HOST:PORT"
            )));
        }
        c.metrics_listen = Some(addr);
    }
    Ok(Invocation::Serve(Box::new(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn replication_options_are_parsed_with_their_defaults() {
        let Invocation::Serve(c) = parse(&args(
            "--rep-listen 10.0.0.2:22301 --rep-peer 10.0.0.1:22301 --rep-peer h:1",
        ))
        .unwrap() else {
            panic!()
        };
        let rep = c.replication.expect("replication on");
        assert_eq!(rep.listen.to_string(), "10.0.0.2:22301");
        let peers: Vec<String> = rep.peers.iter().map(ToString::to_string).collect();
        assert_eq!(peers, ["10.0.0.1:22301", "h:1"]);
        assert_eq!(rep.priority, 100);
        assert_eq!(rep.ack, AckPolicy::Quorum);
        assert_eq!(rep.ack_timeout_ms, 1000);
        let Invocation::Serve(c) = parse(&[]).unwrap() else {
            panic!()
        };
        assert!(c.replication.is_none());
    }

    #[test]
    fn defaults_match_the_original() {
        let Invocation::Serve(c) = parse(&[]).unwrap() else {
            panic!()
        };
        assert_eq!((c.port, c.record_len, c.page_size), (22201, 1024, 4096));
        assert_eq!(
            (c.extent_pages, c.deadlock_ms, c.threads),
            (16384, 100, None)
        );
    }

    #[test]
    fn seeds_command_line_parses() {
        let a = args("-d -r -u nobody -p 21201 -c 1024 -H /data/memcacheq -N -R -v -L 1024 -B 1024 -P /var/run/mcq.pid");
        let Invocation::Serve(c) = parse(&a).unwrap() else {
            panic!()
        };
        assert!(c.daemonize && c.max_core && c.nosync && c.auto_remove_logs);
        assert_eq!((c.port, c.log_buffer_kb, c.verbosity), (21201, 1024, 1));
    }

    #[test]
    fn reliable_read_options_are_long_options() {
        let a = args("--lease-timeout 30 --max-deliveries 5 -p 1");
        let Invocation::Serve(c) = parse(&a).unwrap() else {
            panic!()
        };
        assert_eq!((c.lease_timeout_secs, c.max_deliveries, c.port), (30, 5, 1));
    }

    #[test]
    fn vv_counts_twice_and_bad_values_are_refused() {
        let Invocation::Serve(c) = parse(&args("-vv")).unwrap() else {
            panic!()
        };
        assert_eq!(c.verbosity, 2);
        assert!(parse(&args("-t 0")).is_err());
        assert!(parse(&args("-e 101")).is_err());
        assert!(parse(&args("-A 1000")).is_err());
        assert!(parse(&args("-B 4068")).is_err());
        assert!(parse(&args("-B 4067")).is_ok());
        assert!(parse(&args("-A 8192 -B 4096")).is_ok());
        assert!(parse(&args("--max-deliveries x")).is_err());
        assert!(parse(&args("--report-version 1.4.0")).is_ok());
        assert!(parse(&args("--report-version")).is_err());
        assert!(parse(&args("--metrics-listen 127.0.0.1:9150")).is_ok());
        assert!(parse(&args("--metrics-listen 9150")).is_err());
        assert!(parse(&args("--metrics-listen :9150")).is_err());
        assert!(parse(&args("--metrics-listen [::1]:0")).is_ok());
        for bad in [
            "--rep-peer 10.0.0.1:22301",
            "--rep-listen 10.0.0.1",
            "--rep-listen 10.0.0.1:0",
            "--rep-listen :22301",
            "--rep-listen 10.0.0.1:22301 --rep-ack some",
            "--rep-listen 10.0.0.1:22301 --rep-priority -1",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
        assert!(parse(&args("-x"))
            .unwrap_err()
            .0
            .contains("Illegal argument \"x\""));
    }
}
