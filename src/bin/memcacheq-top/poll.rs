//! Asking a server for its numbers, over the memcache text protocol only
//! (`stats`, then `dump_stats` or, where that is an `ERROR` as in MemcacheQ
//! 0.2.1, `stats queue`), and reading the replies. No terminal here.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long connecting, or waiting for any reply, may take: a server that
/// is alive answers `stats` at once, and the view must not hang on one
/// that is not.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Which reply the per-queue numbers came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Kestrel's `dump_stats` blocks (this server).
    DumpStats,
    /// `STAT <q> <set>/<get>` lines (MemcacheQ 0.2.1), or `STAT <q>` alone
    /// (0.1.x, or our `-Z`).
    StatsQueue,
}

/// One queue's numbers in one poll; `None` where the reply has no such
/// number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCounts {
    pub name: String,
    /// Messages waiting, not open.
    pub ready: Option<u64>,
    /// Messages open (handed out by `/open`, not yet closed).
    pub unacked: Option<u64>,
    /// Messages ever stored: the `in` rate is its difference.
    pub stored: Option<u64>,
    /// Messages ever taken out: the `out` rate is its difference.
    pub taken: Option<u64>,
    /// Requests waiting for a message (`/t=`).
    pub waiters: Option<u64>,
    /// Milliseconds since the oldest ready message was stored.
    pub age_ms: Option<u64>,
}

/// Everything one poll learned.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the replies were read, for rates.
    pub at: Instant,
    /// `stats`, name to value.
    pub stats: BTreeMap<String, String>,
    /// Per queue, in the server's order.
    pub queues: Vec<QueueCounts>,
    pub source: Source,
}

impl Sample {
    /// A `stats` value as a number.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats.get(name)?.parse().ok()
    }
}

/// A connection to one server, made again after any failure.
pub struct Poller {
    /// HOST:PORT as given.
    addr: String,
    /// The open connection, if any.
    conn: Option<BufReader<TcpStream>>,
    /// The server answered `dump_stats` with `ERROR` (it does not know the
    /// command, as MemcacheQ 0.2.1): it never will. Any other error (a
    /// storage failure) is that poll's failure alone.
    legacy: bool,
}

impl Poller {
    pub fn new(addr: &str) -> Poller {
        Poller {
            addr: addr.to_string(),
            conn: None,
            legacy: false,
        }
    }

    /// Asks for `stats` and the per-queue numbers.
    pub fn poll(&mut self) -> Result<Sample, String> {
        let stats = parse_stats(&self.ask(b"stats\r\n")?)?;
        if !self.legacy {
            let reply = self.ask(b"dump_stats\r\n")?;
            if reply != b"ERROR\r\n" {
                return Ok(Sample {
                    at: Instant::now(),
                    stats,
                    queues: parse_dump_stats(&reply)?,
                    source: Source::DumpStats,
                });
            }
            self.legacy = true;
        }
        let queues = parse_stats_queue(&self.ask(b"stats queue\r\n")?)?;
        Ok(Sample {
            at: Instant::now(),
            stats,
            queues,
            source: Source::StatsQueue,
        })
    }

    /// Sends `request` and reads its whole reply. A connection that
    /// failed is not kept: the next request connects afresh.
    fn ask(&mut self, request: &[u8]) -> Result<Vec<u8>, String> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => BufReader::new(connect(&self.addr)?),
        };
        let io_error = |e: io::Error| format!("{}: {e}", self.addr);
        conn.get_mut().write_all(request).map_err(io_error)?;
        let reply = read_reply(&mut conn).map_err(io_error)?;
        self.conn = Some(conn);
        Ok(reply)
    }
}

/// Opens a TCP connection to `addr`, trying each address it resolves to.
fn connect(addr: &str) -> Result<TcpStream, String> {
    let fail = |e: io::Error| format!("cannot connect to {addr}: {e}");
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for sock in addr.to_socket_addrs().map_err(fail)? {
        match TcpStream::connect_timeout(&sock, TIMEOUT) {
            Ok(stream) => {
                stream.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
                stream.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(fail(last))
}

/// Reads lines up to and including `END`, or a single error line.
fn read_reply(conn: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    loop {
        let start = reply.len();
        if conn.read_until(b'\n', &mut reply)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let line = &reply[start..];
        if line == b"END\r\n" || (start == 0 && is_error(line)) {
            return Ok(reply);
        }
    }
}

/// Whether a reply is one of the protocol's three error forms.
fn is_error(reply: &[u8]) -> bool {
    reply == b"ERROR\r\n"
        || reply.starts_with(b"CLIENT_ERROR")
        || reply.starts_with(b"SERVER_ERROR")
}

/// The reply's lines without their line ends, `END` excluded; an error if
/// there is no `END`.
fn lines(reply: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut lines: Vec<&[u8]> = reply
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    // The split leaves an empty piece after the last line end.
    if lines.last() == Some(&&b""[..]) {
        lines.pop();
    }
    match lines.pop() {
        Some(b"END") => Ok(lines),
        _ => Err(format!(
            "unexpected reply: {}",
            String::from_utf8_lossy(reply).trim_end()
        )),
    }
}

fn unexpected(line: &[u8]) -> String {
    format!("unexpected line: {}", String::from_utf8_lossy(line))
}

/// `STAT <name> <value>` lines; a value may hold spaces.
pub fn parse_stats(reply: &[u8]) -> Result<BTreeMap<String, String>, String> {
    lines(reply)?
        .into_iter()
        .map(|line| {
            let text = String::from_utf8_lossy(line);
            let (name, value) = text
                .strip_prefix("STAT ")
                .and_then(|rest| rest.split_once(' '))
                .ok_or_else(|| unexpected(line))?;
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// `dump_stats`: a block per queue, `queue '<q>' {`, `  <key>=<value>`
/// lines, `}`. Keys this view does not show are skipped, so a server may
/// add more.
pub fn parse_dump_stats(reply: &[u8]) -> Result<Vec<QueueCounts>, String> {
    let mut queues = Vec::new();
    let mut current: Option<QueueCounts> = None;
    for line in lines(reply)? {
        if let Some(queue) = current.as_mut() {
            if line == b"}" {
                let mut done = current.take().expect("inside a block");
                done.taken = taken(&done);
                queues.push(done);
                continue;
            }
            let text = String::from_utf8_lossy(line);
            let (key, value) = text
                .trim_start()
                .split_once('=')
                .ok_or_else(|| unexpected(line))?;
            let value = Some(value.parse().map_err(|_| unexpected(line))?);
            match key {
                "items" => queue.ready = value,
                "open_transactions" => queue.unacked = value,
                "total_items" => queue.stored = value,
                "waiters" => queue.waiters = value,
                "age" => queue.age_ms = value,
                _ => {}
            }
        } else {
            let name = line
                .strip_prefix(b"queue '")
                .and_then(|rest| rest.strip_suffix(b"' {"))
                .ok_or_else(|| unexpected(line))?;
            current = Some(QueueCounts::named(name));
        }
    }
    match current {
        Some(open) => Err(format!("queue '{}': block not closed", open.name)),
        None => Ok(queues),
    }
}

/// What has left a queue: what was ever stored less what it holds.
fn taken(q: &QueueCounts) -> Option<u64> {
    Some(q.stored?.saturating_sub(q.ready? + q.unacked?))
}

/// `stats queue`: `STAT <q> <set>/<get>` lines, or `STAT <q>` alone (the
/// names-only form of 0.1.x). What the queue holds is `set - get`, open
/// messages included: there is no telling them apart here.
pub fn parse_stats_queue(reply: &[u8]) -> Result<Vec<QueueCounts>, String> {
    lines(reply)?
        .into_iter()
        .map(|line| {
            let rest = line
                .strip_prefix(b"STAT ")
                .ok_or_else(|| unexpected(line))?;
            let mut words = rest.split(|&b| b == b' ');
            let name = words.next().ok_or_else(|| unexpected(line))?;
            let mut queue = QueueCounts::named(name);
            match (words.next(), words.next()) {
                (None, _) => {}
                (Some(counts), None) => {
                    let counts = String::from_utf8_lossy(counts);
                    let (set, get) = counts
                        .split_once('/')
                        .and_then(|(s, g)| Some((s.parse::<u64>().ok()?, g.parse::<u64>().ok()?)))
                        .ok_or_else(|| unexpected(line))?;
                    queue.stored = Some(set);
                    queue.taken = Some(get);
                    queue.ready = Some(set.saturating_sub(get));
                }
                (Some(_), Some(_)) => return Err(unexpected(line)),
            }
            Ok(queue)
        })
        .collect()
}

impl QueueCounts {
    /// A queue with no numbers yet.
    fn named(name: &[u8]) -> QueueCounts {
        QueueCounts {
            name: String::from_utf8_lossy(name).into_owned(),
            ready: None,
            unacked: None,
            stored: None,
            taken: None,
            waiters: None,
            age_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_become_a_map() {
        let reply = b"STAT pid 12\r\nSTAT uptime 75\r\nSTAT version 0.2.1 extra\r\nEND\r\n";
        let stats = parse_stats(reply).unwrap();
        assert_eq!(stats["uptime"], "75");
        assert_eq!(stats["version"], "0.2.1 extra");
        assert_eq!(stats.len(), 3);
        assert!(parse_stats(b"STAT pid 12\r\n").is_err(), "no END");
        assert!(parse_stats(b"ERROR\r\n").is_err());
    }

    #[test]
    fn dump_stats_blocks() {
        let reply = b"queue 'jobs' {\r\n  items=3\r\n  bytes=300\r\n  total_items=10\r\n  \
            open_transactions=2\r\n  waiters=1\r\n  age=1500\r\n  redelivered=0\r\n  \
            dead_lettered=0\r\n}\r\nqueue 'it''s {x}' {\r\n  items=0\r\n  total_items=0\r\n  \
            open_transactions=0\r\n  waiters=0\r\n  age=0\r\n}\r\nEND\r\n";
        let queues = parse_dump_stats(reply).unwrap();
        assert_eq!(
            queues[0],
            QueueCounts {
                name: "jobs".into(),
                ready: Some(3),
                unacked: Some(2),
                stored: Some(10),
                taken: Some(5),
                waiters: Some(1),
                age_ms: Some(1500),
            }
        );
        assert_eq!(queues[1].name, "it''s {x}");
        assert_eq!(queues[1].taken, Some(0));
        assert_eq!(queues.len(), 2);
        assert_eq!(parse_dump_stats(b"END\r\n").unwrap(), vec![]);
    }

    #[test]
    fn dump_stats_refuses_what_it_cannot_read() {
        for bad in [
            &b"queue 'a' {\r\n  items=3\r\nEND\r\n"[..],
            b"queue 'a' {\r\n  items=x\r\n}\r\nEND\r\n",
            b"queue 'a' {\r\n  items\r\n}\r\nEND\r\n",
            b"hello\r\nEND\r\n",
            b"queue 'a' {\r\n}\r\n",
        ] {
            assert!(parse_dump_stats(bad).is_err(), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn stats_queue_with_counters_and_names_only() {
        let reply = b"STAT jobs 10/4\r\nSTAT mail 2/2\r\nSTAT old\r\nEND\r\n";
        let queues = parse_stats_queue(reply).unwrap();
        let jobs = &queues[0];
        assert_eq!(
            (jobs.ready, jobs.stored, jobs.taken),
            (Some(6), Some(10), Some(4))
        );
        assert_eq!(
            (jobs.unacked, jobs.waiters, jobs.age_ms),
            (None, None, None)
        );
        assert_eq!(queues[1].ready, Some(0));
        assert_eq!(queues[2], QueueCounts::named(b"old"));
        assert!(parse_stats_queue(b"STAT jobs 1/x\r\nEND\r\n").is_err());
        assert!(parse_stats_queue(b"STAT jobs 1/1 2\r\nEND\r\n").is_err());
        assert!(parse_stats_queue(b"jobs 1/1\r\nEND\r\n").is_err());
    }

    #[test]
    fn a_reply_ends_at_end_or_at_an_error() {
        let mut input = &b"STAT a 1/0\r\nEND\r\nERROR\r\nSERVER_ERROR out of memory\r\n"[..];
        assert_eq!(read_reply(&mut input).unwrap(), b"STAT a 1/0\r\nEND\r\n");
        assert_eq!(read_reply(&mut input).unwrap(), b"ERROR\r\n");
        assert_eq!(
            read_reply(&mut input).unwrap(),
            b"SERVER_ERROR out of memory\r\n"
        );
        assert!(read_reply(&mut input).is_err(), "end of input");
        // A queue called END is a line of its own only as `END`.
        let whole = b"queue 'END' {\r\n}\r\nEND\r\n";
        assert_eq!(read_reply(&mut &whole[..]).unwrap(), whole);
    }
}
