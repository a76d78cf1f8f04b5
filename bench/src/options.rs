//! Command-line options and their checks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use getopts::Options;

/// MemcacheQ's default port.
const DEFAULT_PORT: u16 = 22201;
/// Measurement time when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION: f64 = 10.0;
/// Time limit of a `--requests` run without `--duration`: the run must stop
/// by itself even when the server stalls.
const REQUESTS_TIME_LIMIT: f64 = 600.0;
/// One thread per connection: keep that within reason.
const MAX_CONNECTIONS: usize = 1024;
/// Larger values would not be a queue message any more.
const MAX_VALUE_SIZE: usize = 1 << 20;
/// The protocol's key length limit.
const MAX_KEY_LEN: usize = 250;
/// A day; longer runs are surely a typo.
const MAX_SECONDS: f64 = 86_400.0;
/// The `/t=` of blocking reads when `--wait-ms` is not given.
const DEFAULT_WAIT_MS: u64 = 1000;
/// Requests per pipelined write in backlog mode, when `--batch` is not
/// given.
const DEFAULT_BATCH: usize = 500;
/// Batches larger than this could make the server stop reading (it owes a
/// connection at most 1 MiB of replies) while this tool still writes.
const MAX_BATCH: usize = 700;
/// The reply timeout of a backlog run: a server writing out its cache may
/// rightly stall for seconds.
const BACKLOG_TIMEOUT: f64 = 60.0;

/// Which requests each connection sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// `set` then `get` on the same queue, over and over.
    SetGet,
    /// Only `set`: queues grow.
    Set,
    /// Only `get`: drains queues, then measures empty replies.
    Get,
}

impl Mix {
    pub fn name(self) -> &'static str {
        match self {
            Mix::SetGet => "set-get",
            Mix::Set => "set",
            Mix::Get => "get",
        }
    }

    fn parse(text: &str) -> Option<Mix> {
        [Mix::SetGet, Mix::Set, Mix::Get]
            .into_iter()
            .find(|mix| mix.name() == text)
    }
}

/// How a `get` asks for a message (docs/PROTOCOL.md, "Reliable and
/// blocking reads").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// `get <q>`: the message is taken off at once.
    Plain,
    /// `get <q>/close/open` (`get <q>/open` when nothing is open): each
    /// request acknowledges the message opened by the previous one and
    /// leases the next.
    Reliable,
    /// `get <q>/t=<ms>`: an empty queue makes the server wait for a
    /// message rather than answer `END` at once.
    Blocking,
}

impl Read {
    pub fn name(self) -> &'static str {
        match self {
            Read::Plain => "plain",
            Read::Reliable => "reliable",
            Read::Blocking => "blocking",
        }
    }

    fn parse(text: &str) -> Option<Read> {
        [Read::Plain, Read::Reliable, Read::Blocking]
            .into_iter()
            .find(|read| read.name() == text)
    }
}

/// Which parts of a backlog run to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Store the messages.
    Fill,
    /// Take them off again.
    Drain,
    /// Fill, then drain.
    Both,
}

impl Phase {
    fn parse(text: &str) -> Option<Phase> {
        match text {
            "fill" => Some(Phase::Fill),
            "drain" => Some(Phase::Drain),
            "both" => Some(Phase::Both),
            _ => None,
        }
    }

    pub fn fills(self) -> bool {
        matches!(self, Phase::Fill | Phase::Both)
    }

    pub fn drains(self) -> bool {
        matches!(self, Phase::Drain | Phase::Both)
    }
}

/// `--backlog`: fill one queue with many messages as fast as pipelining
/// allows, then drain it the same way (see `backlog`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backlog {
    /// Messages to store, then to take.
    pub messages: u64,
    /// Requests per write: each connection writes this many, then reads
    /// their replies.
    pub batch: usize,
    pub phase: Phase,
}

/// Everything a run needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// The server under test: always a loopback address.
    pub addr: SocketAddr,
    /// How many connections, each with its own thread and one request in
    /// flight (a closed loop).
    pub connections: usize,
    /// Unmeasured time before measuring, to fill caches and queues.
    pub warmup: Duration,
    /// Measured time; with `requests` an upper bound.
    pub duration: Duration,
    /// Measured requests over all connections, if the run is bounded by
    /// count rather than only by time.
    pub requests: Option<u64>,
    /// Bytes of data in each `set`.
    pub value_size: usize,
    /// How many queue names the connections spread over.
    pub queues: usize,
    /// Queue names are this followed by a number.
    pub queue_prefix: String,
    pub mix: Mix,
    /// How every `get` is sent.
    pub read: Read,
    /// The `/t=` of blocking reads, in milliseconds (never beyond the end
    /// of the run, see `worker`).
    pub wait_ms: u64,
    /// With the `set-get` mix, how many connections only `set` (the first
    /// ones); the others only `get`. 0: every connection does both in turn.
    pub producers: usize,
    /// Longest wait for a connect, a write or a reply (a blocking read gets
    /// `wait_ms` more, see [`Config::read_timeout`]).
    pub timeout: Duration,
    /// Print a JSON line after the text line.
    pub json: bool,
    /// Backlog mode instead of the closed loop, if asked for.
    pub backlog: Option<Backlog>,
    /// The server's process, whose CPU time per operation is reported.
    pub server_pid: Option<u32>,
}

impl Config {
    /// Connections that only `get`, when the roles are split.
    pub fn consumers(&self) -> usize {
        if self.producers == 0 {
            0
        } else {
            self.connections - self.producers
        }
    }

    /// How long a reply may take: a blocking read may rightly wait for
    /// `wait_ms` before the server even starts answering.
    pub fn read_timeout(&self) -> Duration {
        match self.read {
            Read::Blocking => self.timeout + Duration::from_millis(self.wait_ms),
            Read::Plain | Read::Reliable => self.timeout,
        }
    }

    /// Whether this run is one of the kinds that existed before `--read`
    /// and `--producers`, whose result line keeps its old form.
    pub fn is_classic(&self) -> bool {
        self.read == Read::Plain && self.producers == 0
    }
}

/// What the command line asks for.
pub enum Parsed {
    Run(Config),
    /// `--help`: the usage text to print.
    Help(String),
}

fn options() -> Options {
    let mut opts = Options::new();
    opts.optopt(
        "",
        "host",
        "loopback address of the server (127.0.0.1); localhost means 127.0.0.1",
        "ADDR",
    );
    opts.optopt("p", "port", "server port (22201)", "PORT");
    opts.optopt(
        "c",
        "connections",
        "concurrent connections, one thread each (1)",
        "N",
    );
    opts.optopt(
        "d",
        "duration",
        "measured seconds (10); with --requests a time limit (600)",
        "SECS",
    );
    opts.optopt(
        "n",
        "requests",
        "stop after N measured requests over all connections",
        "N",
    );
    opts.optopt(
        "w",
        "warmup",
        "unmeasured seconds before measuring (1)",
        "SECS",
    );
    opts.optopt("s", "value-size", "bytes of data per set (100)", "BYTES");
    opts.optopt(
        "q",
        "queues",
        "queue names to spread over (default: one per connection, or per \
         producer or consumer, whichever are fewer, with --producers)",
        "N",
    );
    opts.optopt(
        "",
        "queue-prefix",
        "queue names are PREFIX0, PREFIX1, ... (bench)",
        "PREFIX",
    );
    opts.optopt(
        "m",
        "mix",
        "set-get (alternate set and get on a queue), set or get (set-get)",
        "MIX",
    );
    opts.optopt(
        "r",
        "read",
        "how gets are sent: plain (get q), reliable (get q/close/open) or \
         blocking (get q/t=MS) (plain)",
        "READ",
    );
    opts.optopt(
        "",
        "wait-ms",
        "the t= of blocking reads, in milliseconds (1000)",
        "MS",
    );
    opts.optopt(
        "",
        "producers",
        "with set-get, the first N connections only set and the others only \
         get; 0 means each connection does both in turn (0)",
        "N",
    );
    opts.optopt(
        "t",
        "timeout",
        "seconds to wait for a connect or a reply before counting an error; \
         a blocking read gets --wait-ms more (5)",
        "SECS",
    );
    opts.optopt(
        "",
        "backlog",
        "backlog mode: fill one queue with N messages, pipelined, then drain \
         it; prints the rate of every tenth of N",
        "N",
    );
    opts.optopt(
        "",
        "batch",
        "backlog mode: requests per pipelined write (500)",
        "N",
    );
    opts.optopt(
        "",
        "phase",
        "backlog mode: fill, drain or both (both)",
        "PHASE",
    );
    opts.optopt(
        "",
        "server-pid",
        "the server's process id: also report the CPU time it spent per \
         operation in the measured window, whole and in its busiest thread",
        "PID",
    );
    opts.optflag("j", "json", "also print the result as one JSON line");
    opts.optflag("h", "help", "print this help");
    opts
}

fn usage(opts: &Options) -> String {
    let brief = "Usage: memcacheq-bench [options]\n\n\
        Closed-loop load for a MemcacheQ (or memcached) server over the \
        memcache text protocol.\nPrints one line of key=value results; exits \
        1 if any request failed or none succeeded.";
    opts.usage(brief)
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Parsed, String> {
    let opts = options();
    let matches = opts.parse(args).map_err(|e| e.to_string())?;
    if matches.opt_present("help") {
        return Ok(Parsed::Help(usage(&opts)));
    }
    if let Some(extra) = matches.free.first() {
        return Err(format!("unexpected argument {extra:?}"));
    }

    let host = matches.opt_str("host");
    let ip = loopback(host.as_deref().unwrap_or("127.0.0.1"))?;
    let port = number(matches.opt_str("port"), "--port", DEFAULT_PORT)?;
    if port == 0 {
        return Err("--port must not be 0".into());
    }

    let connections = number(matches.opt_str("connections"), "--connections", 1usize)?;
    if !(1..=MAX_CONNECTIONS).contains(&connections) {
        return Err(format!("--connections must be 1..={MAX_CONNECTIONS}"));
    }

    let backlog = backlog(&matches)?;
    let requests = match matches.opt_str("requests") {
        None => None,
        Some(text) => Some(number(Some(text), "--requests", 0u64)?),
    };
    if requests == Some(0) {
        return Err("--requests must be at least 1".into());
    }
    let default_duration = if backlog.is_some() {
        MAX_SECONDS
    } else if requests.is_some() {
        REQUESTS_TIME_LIMIT
    } else {
        DEFAULT_DURATION
    };
    let duration = seconds(matches.opt_str("duration"), "--duration", default_duration)?;
    if duration.is_zero() {
        return Err("--duration must be more than 0".into());
    }
    let warmup = seconds(matches.opt_str("warmup"), "--warmup", 1.0)?;
    let default_timeout = if backlog.is_some() {
        BACKLOG_TIMEOUT
    } else {
        5.0
    };
    let timeout = seconds(matches.opt_str("timeout"), "--timeout", default_timeout)?;
    if timeout < Duration::from_millis(1) {
        return Err("--timeout must be at least 0.001".into());
    }

    let value_size = number(matches.opt_str("value-size"), "--value-size", 100usize)?;
    if value_size > MAX_VALUE_SIZE {
        return Err(format!("--value-size must be at most {MAX_VALUE_SIZE}"));
    }

    let mix = match matches.opt_str("mix") {
        None => Mix::SetGet,
        Some(text) => Mix::parse(&text)
            .ok_or_else(|| format!("--mix must be set-get, set or get, not {text:?}"))?,
    };
    let read = match matches.opt_str("read") {
        None => Read::Plain,
        Some(text) => Read::parse(&text)
            .ok_or_else(|| format!("--read must be plain, reliable or blocking, not {text:?}"))?,
    };
    let wait_ms = match matches.opt_str("wait-ms") {
        None => DEFAULT_WAIT_MS,
        Some(_) if read != Read::Blocking => {
            return Err("--wait-ms needs --read blocking".into());
        }
        Some(text) => number(Some(text), "--wait-ms", 0u64)?,
    };
    if !(1..=MAX_SECONDS as u64 * 1000).contains(&wait_ms) {
        return Err(format!(
            "--wait-ms must be 1..={} milliseconds",
            MAX_SECONDS as u64 * 1000
        ));
    }
    let producers = number(matches.opt_str("producers"), "--producers", 0usize)?;
    if producers > 0 {
        if mix != Mix::SetGet {
            return Err("--producers needs --mix set-get".into());
        }
        if producers >= connections {
            return Err("--producers must leave at least one connection to get".into());
        }
    }

    let default_queues = if backlog.is_some() {
        1
    } else if producers > 0 {
        producers.min(connections - producers)
    } else {
        connections
    };
    let queues = number(matches.opt_str("queues"), "--queues", default_queues)?;
    if queues == 0 {
        return Err("--queues must be at least 1".into());
    }
    let queue_prefix = matches
        .opt_str("queue-prefix")
        .unwrap_or_else(|| "bench".into());
    check_prefix(&queue_prefix, queues, option_len(read, wait_ms))?;

    Ok(Parsed::Run(Config {
        addr: SocketAddr::new(ip, port),
        connections,
        warmup,
        duration,
        requests,
        value_size,
        queues,
        queue_prefix,
        mix,
        read,
        wait_ms,
        producers,
        timeout,
        json: matches.opt_present("json"),
        backlog,
        server_pid: match matches.opt_str("server-pid") {
            Some(text) => Some(number(Some(text), "--server-pid", 0u32)?),
            None => None,
        },
    }))
}

/// The backlog options, checked against the closed loop's.
fn backlog(matches: &getopts::Matches) -> Result<Option<Backlog>, String> {
    let Some(text) = matches.opt_str("backlog") else {
        for name in ["batch", "phase"] {
            if matches.opt_present(name) {
                return Err(format!("--{name} needs --backlog"));
            }
        }
        return Ok(None);
    };
    let messages = number(Some(text), "--backlog", 0u64)?;
    if messages == 0 {
        return Err("--backlog must be at least 1".into());
    }
    for name in [
        "requests",
        "mix",
        "read",
        "producers",
        "queues",
        "warmup",
        "json",
    ] {
        if matches.opt_present(name) {
            return Err(format!("--{name} does not go with --backlog"));
        }
    }
    let batch = number(matches.opt_str("batch"), "--batch", DEFAULT_BATCH)?;
    if !(1..=MAX_BATCH).contains(&batch) {
        return Err(format!("--batch must be 1..={MAX_BATCH}"));
    }
    let phase = match matches.opt_str("phase") {
        None => Phase::Both,
        Some(text) => Phase::parse(&text)
            .ok_or_else(|| format!("--phase must be fill, drain or both, not {text:?}"))?,
    };
    Ok(Some(Backlog {
        messages,
        batch,
        phase,
    }))
}

/// The benchmark only ever talks to this machine.
fn loopback(host: &str) -> Result<IpAddr, String> {
    if host == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let text = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("--host must be a loopback IP address, not {host:?}"))?;
    if !ip.is_loopback() {
        return Err(format!(
            "--host {host} is not a loopback address; this tool only loads the local machine"
        ));
    }
    Ok(ip)
}

fn number<T: std::str::FromStr>(text: Option<String>, name: &str, default: T) -> Result<T, String> {
    match text {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{name} needs a whole number, not {text:?}")),
    }
}

fn seconds(text: Option<String>, name: &str, default: f64) -> Result<Duration, String> {
    let value = match text {
        None => default,
        Some(text) => text
            .parse::<f64>()
            .map_err(|_| format!("{name} needs a number of seconds, not {text:?}"))?,
    };
    if !(0.0..=MAX_SECONDS).contains(&value) {
        return Err(format!("{name} must be 0..={MAX_SECONDS} seconds"));
    }
    Ok(Duration::from_secs_f64(value))
}

/// The longest options a `get` key carries after the queue name.
fn option_len(read: Read, wait_ms: u64) -> usize {
    match read {
        Read::Plain => 0,
        Read::Reliable => "/close/open".len(),
        Read::Blocking => "/t=".len() + wait_ms.to_string().len(),
    }
}

/// Every queue name must be a valid key that MemcacheQ accepts as a file
/// name: printable, no space or slash, at most 250 bytes with the options
/// (`extra` bytes) a `get` puts after it.
fn check_prefix(prefix: &str, queues: usize, extra: usize) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("--queue-prefix must not be empty".into());
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err("--queue-prefix must be printable ASCII without space or '/'".into());
    }
    let longest = prefix.len() + (queues - 1).to_string().len() + extra;
    if longest > MAX_KEY_LEN {
        return Err(format!("queue names would exceed {MAX_KEY_LEN} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args)? {
            Parsed::Run(config) => Ok(config),
            Parsed::Help(_) => Err("help".into()),
        }
    }

    #[test]
    fn defaults() {
        let c = run(&[]).unwrap();
        assert_eq!(c.addr, "127.0.0.1:22201".parse().unwrap());
        assert_eq!((c.connections, c.queues, c.value_size), (1, 1, 100));
        assert_eq!(c.duration, Duration::from_secs(10));
        assert_eq!(c.mix, Mix::SetGet);
        let c = run(&["-c", "16", "--requests", "100"]).unwrap();
        assert_eq!((c.queues, c.requests), (16, Some(100)));
        assert_eq!(c.duration, Duration::from_secs(600));
        assert_eq!((c.read, c.producers, c.consumers()), (Read::Plain, 0, 0));
        assert!(c.is_classic());
        assert_eq!(c.backlog, None);
    }

    #[test]
    fn backlog() {
        let c = run(&["--backlog", "1000", "-c", "4"]).unwrap();
        let want = Backlog {
            messages: 1000,
            batch: 500,
            phase: Phase::Both,
        };
        assert_eq!((c.backlog, c.queues), (Some(want), 1));
        assert_eq!(c.timeout, Duration::from_secs(60));
        let c = run(&["--backlog", "10", "--batch", "7", "--phase", "drain"]).unwrap();
        let b = c.backlog.unwrap();
        assert_eq!(
            (b.batch, b.phase.fills(), b.phase.drains()),
            (7, false, true)
        );
        for args in [
            &["--backlog", "0"][..],
            &["--backlog", "10", "--batch", "0"],
            &["--backlog", "10", "--batch", "701"],
            &["--backlog", "10", "--phase", "all"],
            &["--backlog", "10", "--mix", "set"],
            &["--backlog", "10", "--requests", "5"],
            &["--batch", "10"],
            &["--phase", "fill"],
        ] {
            assert!(run(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn reads_and_roles() {
        let c = run(&["-c", "16", "--read", "reliable", "--producers", "8"]).unwrap();
        assert_eq!(
            (c.read, c.producers, c.consumers(), c.queues),
            (Read::Reliable, 8, 8, 8)
        );
        assert!(!c.is_classic());
        assert_eq!(c.read_timeout(), c.timeout);
        let c = run(&["-c", "5", "--read", "blocking", "--producers", "1"]).unwrap();
        assert_eq!((c.wait_ms, c.consumers(), c.queues), (1000, 4, 1));
        assert_eq!(c.read_timeout(), Duration::from_secs(6));
        let c = run(&["--read", "blocking", "--wait-ms", "20", "-t", "1"]).unwrap();
        assert_eq!(c.read_timeout(), Duration::from_millis(1020));
        // The options count against the 250-byte key.
        let long = "p".repeat(238);
        assert!(run(&["--queue-prefix", &long, "--read", "reliable"]).is_ok());
        assert!(run(&["--queue-prefix", &format!("{long}p"), "--read", "reliable"]).is_err());
    }

    #[test]
    fn only_loopback() {
        assert!(run(&["--host", "10.0.0.1"]).is_err());
        assert!(run(&["--host", "example.com"]).is_err());
        assert!(run(&["--host", "::1"]).is_ok());
        assert!(run(&["--host", "127.0.0.2"]).is_ok());
    }

    #[test]
    fn rejects_nonsense() {
        for args in [
            &["-c", "0"][..],
            &["--duration", "0"],
            &["--duration", "-1"],
            &["--mix", "get-set"],
            &["--queue-prefix", "a/b"],
            &["--queues", "0"],
            &["--requests", "0"],
            &["--read", "peek"],
            &["--wait-ms", "100"],
            &["--read", "blocking", "--wait-ms", "0"],
            &["-c", "2", "--producers", "2"],
            &["-c", "2", "--producers", "1", "--mix", "get"],
            &["stray"],
        ] {
            assert!(run(args).is_err(), "{args:?}");
        }
    }
}
