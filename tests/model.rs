//! The queue against a model (issue 14): random sequences of commands over
//! several connections, sent with random write boundaries (one command per
//! write, many in one write, writes split inside a command), with
//! disconnects of every kind and server restarts, run against the real
//! server; every reply byte, and every `stats queue` and `dump_stats`
//! count, must be what a small reference model of the queue says.
//!
//! The model (`Model`) is the documented semantics (docs/PROTOCOL.md,
//! "Reliable and blocking reads"), written without looking at how the
//! server does it: FIFO per queue, one lease per connection and queue,
//! `/abort` and a lost connection give a message back in its place,
//! `/close` deletes it, `/peek` takes nothing, delivery counts survive
//! restarts and move a message to `<q>.dead` at the limit.
//!
//! The three connections speak the three framings (issue 17): the first
//! text, the second meta commands (`ms`, `mg ... v f k`, `md`, text for the
//! rest), the third the binary protocol (`Set`, `GetK`, `Get`, `GetKQ`s and
//! a `Noop` for a multi-get, `Delete`, `Stat queue`; it sends no `flush` or
//! `dump_stats`, which binary cannot say). The model answers in text;
//! `framing` rewrites each request and its expected answer as that
//! connection's framing says them (docs/PROTOCOL.md).
//!
//! Connections take turns: a step sends one connection's commands and
//! reads all their replies before the next step, so the order of commands
//! is the order of the steps, whatever turns the server split them into.
//!
//! proptest generates the steps and, on a failure, shrinks them to the
//! shortest sequence that still fails; the panic message carries it and
//! the seed. `MEMCACHEQ_MODEL_CASES` (default 24) sets how many sequences
//! run, `MEMCACHEQ_MODEL_STEPS` (default 60) their longest length, and
//! `MEMCACHEQ_MODEL_SEED` replays one seed.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// The queues commands name: two queues and the first one's dead letters.
const QUEUES: [&str; 3] = ["a", "b", "a.dead"];
/// Connections the steps use.
const CONNECTIONS: usize = 3;
/// --max-deliveries of the server under test.
const MAX_DELIVERIES: u32 = 2;
/// The record length (-B default): what `dump_stats`'s `bytes` counts.
const RECORD: u64 = 1024;
/// How long a `/t=` read waits on an empty queue.
const WAIT_MS: u64 = 30;
/// How long one reply may take before the step fails.
const REPLY_WAIT: Duration = Duration::from_secs(5);

/// Options of a one-key `get`, as the key's suffix.
#[derive(Debug, Clone, Copy)]
enum Opts {
    Plain,
    Open,
    Close,
    Abort,
    Peek,
    CloseOpen,
    Wait,
    WaitOpen,
}

impl Opts {
    fn suffix(self) -> String {
        match self {
            Opts::Plain => String::new(),
            Opts::Open => "/open".into(),
            Opts::Close => "/close".into(),
            Opts::Abort => "/abort".into(),
            Opts::Peek => "/peek".into(),
            Opts::CloseOpen => "/close/open".into(),
            Opts::Wait => format!("/t={WAIT_MS}"),
            Opts::WaitOpen => format!("/t={WAIT_MS}/open"),
        }
    }
    fn open(self) -> bool {
        matches!(self, Opts::Open | Opts::CloseOpen | Opts::WaitOpen)
    }
    fn close(self) -> bool {
        matches!(self, Opts::Close | Opts::CloseOpen)
    }
    fn peek(self) -> bool {
        matches!(self, Opts::Peek)
    }
    fn hands_out(self) -> bool {
        !matches!(self, Opts::Close | Opts::Abort)
    }
}

/// One command; queues are indexes into `QUEUES`.
#[derive(Debug, Clone)]
enum Op {
    Set(usize),
    Get(usize, Opts),
    Gets(usize),
    MultiGet(Vec<usize>),
    Delete(usize),
    Flush(usize),
    StatsQueue,
    DumpStats,
}

/// One step of a sequence.
#[derive(Debug, Clone)]
enum Step {
    /// Connection `conn` (connected first if it is not) sends `ops`, in
    /// writes cut at `cuts` (per mille of the bytes), pausing a moment
    /// between writes when `pause`; then all replies are read.
    Send {
        conn: usize,
        ops: Vec<Op>,
        cuts: Vec<u16>,
        pause: bool,
    },
    /// `quit`, then the server's close is awaited.
    Quit(usize),
    /// The client shuts down its side (as `nc -N`); the server's close is
    /// awaited.
    HalfClose(usize),
    /// The client resets the connection and is gone.
    Vanish(usize),
    /// SIGTERM and a new server on the same home.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let queue = 0..QUEUES.len();
    let read = prop_oneof![
        3 => Just(Opts::Plain),
        4 => Just(Opts::Open),
        2 => Just(Opts::Close),
        2 => Just(Opts::Abort),
        1 => Just(Opts::Peek),
        3 => Just(Opts::CloseOpen),
        1 => Just(Opts::Wait),
        1 => Just(Opts::WaitOpen),
    ];
    prop_oneof![
        8 => queue.clone().prop_map(Op::Set),
        12 => (queue.clone(), read).prop_map(|(q, r)| Op::Get(q, r)),
        1 => queue.clone().prop_map(Op::Gets),
        1 => proptest::collection::vec(queue.clone(), 2..4).prop_map(Op::MultiGet),
        1 => queue.clone().prop_map(Op::Delete),
        1 => queue.prop_map(Op::Flush),
        1 => Just(Op::StatsQueue),
        1 => Just(Op::DumpStats),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let conn = 0..CONNECTIONS;
    prop_oneof![
        30 => (
            conn.clone(),
            proptest::collection::vec(op(), 1..7),
            proptest::collection::vec(0u16..1000, 0..4),
            any::<bool>()
        )
            .prop_map(|(conn, ops, cuts, pause)| Step::Send { conn, ops, cuts, pause }),
        1 => conn.clone().prop_map(Step::Quit),
        1 => conn.clone().prop_map(Step::HalfClose),
        1 => conn.prop_map(Step::Vanish),
        1 => Just(Step::Restart),
    ]
}

/// One message of the model.
#[derive(Debug, Clone)]
struct Message {
    flags: u32,
    body: Vec<u8>,
    /// Times handed out by `/open` (kept on disk by the server).
    deliveries: u32,
    /// The connection holding it open.
    holder: Option<u64>,
}

#[derive(Debug, Default)]
struct Queue {
    messages: Vec<Message>,
    set: u64,
    get: u64,
    redelivered: u64,
    dead_lettered: u64,
}

/// The reference model.
#[derive(Debug, Default)]
struct Model {
    queues: BTreeMap<String, Queue>,
    /// Bodies are numbered, so every message is told apart.
    next_body: u64,
}

/// What a command should answer.
enum Expect {
    Exact(Vec<u8>),
    /// Binary responses: exact except the CAS field of each.
    Binary(Vec<u8>),
    /// `gets`: exact except the cas unique of each `VALUE` line.
    Gets(Vec<u8>),
    /// `dump_stats`: exact except the digits of each `age=`.
    Dump(Vec<u8>),
}

impl Model {
    /// The request bytes of `op` and its reply, applying it to the model
    /// as connection `conn` sent it.
    fn run(&mut self, conn: u64, op: &Op) -> (Vec<u8>, Expect) {
        match op {
            Op::Set(q) => {
                self.next_body += 1;
                let body = format!("m{}", self.next_body).into_bytes();
                let flags = (self.next_body % 5) as u32;
                let queue = self.queues.entry(QUEUES[*q].to_string()).or_default();
                append(queue, flags, body.clone());
                let mut request =
                    format!("set {} {flags} 0 {}\r\n", QUEUES[*q], body.len()).into_bytes();
                request.extend_from_slice(&body);
                request.extend_from_slice(b"\r\n");
                (request, Expect::Exact(STORED.to_vec()))
            }
            Op::Get(q, read) => {
                let key = format!("{}{}", QUEUES[*q], read.suffix());
                let reply = self.get(conn, &[(*q, *read)], false);
                (format!("get {key}\r\n").into_bytes(), Expect::Exact(reply))
            }
            Op::Gets(q) => {
                let reply = self.get(conn, &[(*q, Opts::Plain)], true);
                (
                    format!("gets {}\r\n", QUEUES[*q]).into_bytes(),
                    Expect::Gets(reply),
                )
            }
            Op::MultiGet(qs) => {
                let keys: Vec<(usize, Opts)> = qs.iter().map(|&q| (q, Opts::Plain)).collect();
                let reply = self.get(conn, &keys, false);
                let names: Vec<&str> = qs.iter().map(|&q| QUEUES[q]).collect();
                (
                    format!("get {}\r\n", names.join(" ")).into_bytes(),
                    Expect::Exact(reply),
                )
            }
            Op::Delete(q) => {
                let reply: &[u8] = if self.queues.remove(QUEUES[*q]).is_some() {
                    b"DELETED\r\n"
                } else {
                    b"NOT_FOUND\r\n"
                };
                (
                    format!("delete {}\r\n", QUEUES[*q]).into_bytes(),
                    Expect::Exact(reply.to_vec()),
                )
            }
            Op::Flush(q) => {
                if let Some(queue) = self.queues.get_mut(QUEUES[*q]) {
                    queue.get += queue.messages.len() as u64;
                    queue.messages.clear();
                }
                (
                    format!("flush {}\r\n", QUEUES[*q]).into_bytes(),
                    Expect::Exact(END.to_vec()),
                )
            }
            Op::StatsQueue => (
                b"stats queue\r\n".to_vec(),
                Expect::Exact(self.stats_queue()),
            ),
            Op::DumpStats => (b"dump_stats\r\n".to_vec(), Expect::Dump(self.dump_stats())),
        }
    }

    /// A `get`/`gets` of `keys`, as connection `conn`.
    fn get(&mut self, conn: u64, keys: &[(usize, Opts)], cas: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for &(q, read) in keys {
            let name = QUEUES[q];
            let key = format!("{name}{}", read.suffix());
            let held = self
                .queues
                .get(name)
                .and_then(|queue| queue.messages.iter().position(|m| m.holder == Some(conn)));
            if read.close() {
                if let Some(at) = held {
                    let queue = self.queues.get_mut(name).expect("held in it");
                    queue.messages.remove(at);
                    queue.get += 1;
                }
            } else if matches!(read, Opts::Abort) {
                if let Some(at) = held {
                    self.queues.get_mut(name).expect("held in it").messages[at].holder = None;
                }
            } else if read.open() && held.is_some() {
                return b"CLIENT_ERROR close current item first\r\n".to_vec();
            }
            if read.hands_out() {
                self.hand_out(conn, name, &key, read, cas, &mut out);
            }
        }
        out.extend_from_slice(END);
        out
    }

    /// Hands out the oldest message nobody holds, moving the ones at the
    /// delivery limit to the dead-letter queue on the way.
    fn hand_out(
        &mut self,
        conn: u64,
        name: &str,
        key: &str,
        read: Opts,
        cas: bool,
        out: &mut Vec<u8>,
    ) {
        loop {
            let Some(queue) = self.queues.get_mut(name) else {
                return;
            };
            let Some(at) = queue.messages.iter().position(|m| m.holder.is_none()) else {
                return;
            };
            let message = &mut queue.messages[at];
            if message.deliveries >= MAX_DELIVERIES && !read.peek() {
                let moved = queue.messages.remove(at);
                queue.get += 1;
                queue.dead_lettered += 1;
                let dead = self.queues.entry(format!("{name}.dead")).or_default();
                append(dead, moved.flags, moved.body);
                continue;
            }
            out.extend_from_slice(
                format!("VALUE {key} {} {}", message.flags, message.body.len()).as_bytes(),
            );
            if cas {
                // Record numbers are not the model's business (an aborted
                // attempt uses some up, a flush starts them again): only
                // that there is one is compared.
                out.extend_from_slice(b" N");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&message.body);
            out.extend_from_slice(b"\r\n");
            if read.open() {
                if message.deliveries > 0 {
                    queue.redelivered += 1;
                }
                message.deliveries += 1;
                message.holder = Some(conn);
            } else if !read.peek() {
                queue.messages.remove(at);
                queue.get += 1;
            }
            return;
        }
    }

    /// Connection `conn` is gone: what it held is given back.
    fn disconnect(&mut self, conn: u64) {
        for queue in self.queues.values_mut() {
            for m in &mut queue.messages {
                if m.holder == Some(conn) {
                    m.holder = None;
                }
            }
        }
    }

    /// A restart: every connection is gone, and the counters of what
    /// happened since the start begin again.
    fn restart(&mut self) {
        for queue in self.queues.values_mut() {
            for m in &mut queue.messages {
                m.holder = None;
            }
            queue.redelivered = 0;
            queue.dead_lettered = 0;
        }
    }

    fn open_count(&self, name: &str) -> u64 {
        self.queues.get(name).map_or(0, |q| {
            q.messages.iter().filter(|m| m.holder.is_some()).count() as u64
        })
    }

    fn stats_queue(&self) -> Vec<u8> {
        let mut out = String::new();
        for (name, q) in &self.queues {
            out.push_str(&format!("STAT {name} {}/{}\r\n", q.set, q.get));
        }
        out.push_str("END\r\n");
        out.into_bytes()
    }

    fn dump_stats(&self) -> Vec<u8> {
        let mut out = String::new();
        for (name, q) in &self.queues {
            let open = self.open_count(name);
            let items = q.messages.len() as u64 - open;
            out.push_str(&format!(
                "queue '{name}' {{\r\n  items={items}\r\n  bytes={}\r\n  total_items={}\r\n  \
                 open_transactions={open}\r\n  waiters=0\r\n  age=N\r\n  redelivered={}\r\n  \
                 dead_lettered={}\r\n}}\r\n",
                items * RECORD,
                q.set,
                q.redelivered,
                q.dead_lettered
            ));
        }
        out.push_str("END\r\n");
        out.into_bytes()
    }
}

fn append(queue: &mut Queue, flags: u32, body: Vec<u8>) {
    queue.messages.push(Message {
        flags,
        body,
        deliveries: 0,
        holder: None,
    });
    queue.set += 1;
}

/// `dump_stats` bytes with the digits of every `age=` line replaced by `N`.
fn mask_ages(reply: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(reply);
    let lines: Vec<String> = text
        .split("\r\n")
        .map(|l| match l.strip_prefix("  age=") {
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => "  age=N".into(),
            _ => l.to_string(),
        })
        .collect();
    lines.join("\r\n").into_bytes()
}

/// A `gets` reply with the cas unique of its `VALUE` line replaced by `N`.
fn mask_cas(reply: &[u8]) -> Vec<u8> {
    let Some(eol) = find(reply, b"\r\n") else {
        return reply.to_vec();
    };
    let line = &reply[..eol];
    if !line.starts_with(b"VALUE ") {
        return reply.to_vec();
    }
    let mut tokens: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    if let Some(last) = tokens.last_mut() {
        if !last.is_empty() && last.iter().all(u8::is_ascii_digit) {
            *last = b"N";
        }
    }
    [tokens.join(&b' ').as_slice(), &reply[eol..]].concat()
}

/// A client connection of the driver.
struct Conn {
    stream: TcpStream,
    /// The model's name for it: unique over the whole run.
    id: u64,
    input: Vec<u8>,
}

impl Conn {
    fn connect(port: u16, id: u64) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Conn {
            stream,
            id,
            input: Vec::new(),
        }
    }

    /// Reads until `done` says the input holds a whole reply (returning its
    /// length), or fails after `REPLY_WAIT`.
    fn read_reply(&mut self, done: impl Fn(&[u8]) -> Option<usize>) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            if let Some(n) = done(&self.input) {
                return Ok(self.input.drain(..n).collect());
            }
            if Instant::now() > deadline {
                return Err(format!("no whole reply; got {}", show(&self.input)));
            }
            let mut buf = [0u8; 16384];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(format!("closed; got {}", show(&self.input))),
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(format!("read failed: {e}; got {}", show(&self.input))),
            }
        }
    }

    /// Waits for the server to close the connection, with no more bytes.
    fn expect_close(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + REPLY_WAIT;
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => return Err(format!("read failed: {e}")),
            }
            if Instant::now() > deadline {
                return Err("the server did not close the connection".into());
            }
        }
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "unexpected bytes before close: {}",
                show(&self.input)
            ))
        }
    }
}

/// The length of a whole `dump_stats` reply at the start of `input`.
fn listing_len(input: &[u8]) -> Option<usize> {
    let end = if input.starts_with(END) {
        Some(0)
    } else {
        find(input, b"\r\nEND\r\n").map(|n| n + 2)
    };
    end.map(|n| n + END.len())
}

/// Splits `bytes` at the per-mille positions `cuts`.
fn pieces<'a>(bytes: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    split_at_fractions(bytes, cuts, 1000)
}

/// The framing each connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Text,
    Meta,
    Binary,
}

const FRAMINGS: [Framing; CONNECTIONS] = [Framing::Text, Framing::Meta, Framing::Binary];

/// The model's text requests and answers, said in meta or binary framing.
mod framing {
    use super::{Expect, Framing, Op, QUEUES};
    use crate::common::binary_frames;

    /// `QuitQ`: the connection closes without a response.
    pub const QUITQ: [u8; 24] = [
        0x80, 0x17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    /// Whether a connection of `framing` can send `op`.
    pub fn says(framing: Framing, op: &Op) -> bool {
        framing != Framing::Binary || !matches!(op, Op::Flush(_) | Op::DumpStats)
    }

    /// `op`'s request and answer (`text`, `expect`, from the model) as a
    /// connection of `framing` sends and receives them.
    pub fn rewrite(framing: Framing, op: &Op, text: Vec<u8>, expect: Expect) -> (Vec<u8>, Expect) {
        let Expect::Exact(answer) = &expect else {
            // `gets` and `dump_stats`: text on meta connections; a binary
            // `gets` is below.
            return match (framing, op) {
                (Framing::Binary, Op::Gets(q)) => {
                    binary_get(GET, QUEUES[*q], &expect_bytes(&expect))
                }
                _ => (text, expect),
            };
        };
        match (framing, op) {
            (Framing::Text, _) => (text, expect),
            (Framing::Meta, Op::Set(q)) => {
                let (flags, body) = set_parts(&text);
                let mut request =
                    format!("ms {} {} F{flags}\r\n", QUEUES[*q], body.len()).into_bytes();
                request.extend_from_slice(&body);
                request.extend_from_slice(b"\r\n");
                (request, Expect::Exact(meta_answer(answer, "")))
            }
            (Framing::Meta, Op::Get(q, read)) => {
                let key = format!("{}{}", QUEUES[*q], read.suffix());
                let request = format!("mg {key} v f k\r\n").into_bytes();
                (request, Expect::Exact(meta_answer(answer, &key)))
            }
            (Framing::Meta, Op::Delete(q)) => {
                let request = format!("md {}\r\n", QUEUES[*q]).into_bytes();
                (request, Expect::Exact(meta_answer(answer, "")))
            }
            (Framing::Meta, _) => (text, expect),
            (Framing::Binary, Op::Set(q)) => {
                let (flags, body) = set_parts(&text);
                let mut extras = flags.to_be_bytes().to_vec();
                extras.extend_from_slice(&[0; 4]);
                let request = binary_frames::request(SET, &extras, QUEUES[*q].as_bytes(), &body, 0);
                (request, Expect::Binary(response(SET, 0, b"", b"", b"")))
            }
            (Framing::Binary, Op::Get(q, read)) => {
                let key = format!("{}{}", QUEUES[*q], read.suffix());
                binary_get(GETK, &key, answer)
            }
            (Framing::Binary, Op::MultiGet(qs)) => {
                let mut request = Vec::new();
                for q in qs {
                    request.extend(binary_frames::request(
                        GETKQ,
                        b"",
                        QUEUES[*q].as_bytes(),
                        b"",
                        0,
                    ));
                }
                request.extend(binary_frames::request(NOOP, b"", b"", b"", 0));
                let mut want = Vec::new();
                for value in values(answer) {
                    want.extend(response(
                        GETKQ,
                        0,
                        &value.1.to_be_bytes(),
                        &value.0,
                        &value.2,
                    ));
                }
                want.extend(response(NOOP, 0, b"", b"", b""));
                (request, Expect::Binary(want))
            }
            (Framing::Binary, Op::Delete(q)) => {
                let request = binary_frames::request(DELETE, b"", QUEUES[*q].as_bytes(), b"", 0);
                let want = match answer.as_slice() {
                    b"DELETED\r\n" => response(DELETE, 0, b"", b"", b""),
                    _ => response(DELETE, 1, b"", b"", b"Not found"),
                };
                (request, Expect::Binary(want))
            }
            (Framing::Binary, Op::StatsQueue) => {
                let request = binary_frames::request(STAT, b"", b"queue", b"", 0);
                let mut want = Vec::new();
                for line in String::from_utf8_lossy(answer).split("\r\n") {
                    if let Some((name, counts)) =
                        line.strip_prefix("STAT ").and_then(|l| l.split_once(' '))
                    {
                        want.extend(response(STAT, 0, b"", name.as_bytes(), counts.as_bytes()));
                    }
                }
                want.extend(response(STAT, 0, b"", b"", b""));
                (request, Expect::Binary(want))
            }
            (Framing::Binary, _) => unreachable!("{op:?} is not sent in binary"),
        }
    }

    const GET: u8 = 0x00;
    const SET: u8 = 0x01;
    const DELETE: u8 = 0x04;
    const NOOP: u8 = 0x0a;
    const GETK: u8 = 0x0c;
    const GETKQ: u8 = 0x0d;
    const STAT: u8 = 0x10;

    fn expect_bytes(expect: &Expect) -> Vec<u8> {
        match expect {
            Expect::Exact(b) | Expect::Gets(b) | Expect::Dump(b) | Expect::Binary(b) => b.clone(),
        }
    }

    /// A `GetK` (or `Get`) of `key` and its responses for the text answer.
    fn binary_get(opcode: u8, key: &str, answer: &[u8]) -> (Vec<u8>, Expect) {
        let request = binary_frames::request(opcode, b"", key.as_bytes(), b"", 0);
        let echo: &[u8] = if opcode == GETK { key.as_bytes() } else { b"" };
        let want = if let Some(why) = answer.strip_prefix(b"CLIENT_ERROR ") {
            response(opcode, 4, b"", b"", &why[..why.len() - 2])
        } else if let Some((_, flags, body)) = values(answer).into_iter().next() {
            response(opcode, 0, &flags.to_be_bytes(), echo, &body)
        } else {
            response(opcode, 1, b"", echo, b"Not found")
        };
        (request, Expect::Binary(want))
    }

    /// The (key, flags, body) of each `VALUE` of a text answer.
    fn values(answer: &[u8]) -> Vec<(Vec<u8>, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = answer;
        while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            rest = &rest[line_end + 2..];
            let fields: Vec<&str> = line.split(' ').collect();
            if fields[0] != "VALUE" {
                continue;
            }
            let len: usize = fields[3].parse().expect("a length");
            out.push((
                fields[1].as_bytes().to_vec(),
                fields[2].parse().expect("flags"),
                rest[..len].to_vec(),
            ));
            rest = &rest[len + 2..];
        }
        out
    }

    /// The flags and body of the model's `set` request.
    fn set_parts(text: &[u8]) -> (u32, Vec<u8>) {
        let line_end = text.windows(2).position(|w| w == b"\r\n").expect("a line");
        let line = String::from_utf8_lossy(&text[..line_end]).into_owned();
        let fields: Vec<&str> = line.split(' ').collect();
        let body = text[line_end + 2..text.len() - 2].to_vec();
        (fields[2].parse().expect("flags"), body)
    }

    /// A text answer in meta form, for `mg ... v f k` of `key`, `ms`, `md`.
    fn meta_answer(answer: &[u8], key: &str) -> Vec<u8> {
        match answer {
            b"STORED\r\n" | b"DELETED\r\n" => b"HD\r\n".to_vec(),
            b"NOT_FOUND\r\n" => b"NF\r\n".to_vec(),
            b"END\r\n" => format!("EN k{key}\r\n").into_bytes(),
            _ => match values(answer).into_iter().next() {
                Some((_, flags, body)) => {
                    let mut out = format!("VA {} f{flags} k{key}\r\n", body.len()).into_bytes();
                    out.extend_from_slice(&body);
                    out.extend_from_slice(b"\r\n");
                    out
                }
                // Errors are the same lines.
                None => answer.to_vec(),
            },
        }
    }

    fn response(opcode: u8, status: u16, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
        binary_frames::response(opcode, status, extras, key, value, 0, 0)
    }

    /// Binary responses with each CAS field zeroed: record numbers are not
    /// the model's business (see `Model::hand_out`).
    pub fn mask_binary_cas(bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        let mut at = 0;
        while at + 24 <= out.len() {
            let body = u32::from_be_bytes([out[at + 8], out[at + 9], out[at + 10], out[at + 11]]);
            out[at + 16..at + 24].fill(0);
            at += 24 + body as usize;
        }
        out
    }
}

/// Server flags of the run.
const FLAGS: [&str; 2] = ["--max-deliveries", "2"];

/// The driver: a server, its connections and the model.
struct Run {
    home: Home,
    server: Option<Server>,
    conns: Vec<Option<Conn>>,
    next_id: u64,
    model: Model,
}

impl Run {
    fn new() -> Run {
        let home = Home::new();
        let server = home.start(&FLAGS);
        Run {
            home,
            server: Some(server),
            conns: (0..CONNECTIONS).map(|_| None).collect(),
            next_id: 0,
            model: Model::default(),
        }
    }

    fn port(&self) -> u16 {
        self.server.as_ref().expect("running").port
    }

    fn conn(&mut self, index: usize) -> &mut Conn {
        if self.conns[index].is_none() {
            self.next_id += 1;
            self.conns[index] = Some(Conn::connect(self.port(), self.next_id));
        }
        self.conns[index].as_mut().expect("connected")
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Send {
                conn,
                ops,
                cuts,
                pause,
            } => self.send(*conn, ops, cuts, *pause),
            Step::Quit(i) | Step::HalfClose(i) => {
                let Some(mut c) = self.conns[*i].take() else {
                    return Ok(());
                };
                if matches!(step, Step::Quit(_)) {
                    let quit: &[u8] = match FRAMINGS[*i] {
                        Framing::Binary => &framing::QUITQ,
                        _ => b"quit\r\n",
                    };
                    c.stream.write_all(quit).map_err(|e| e.to_string())?;
                } else {
                    c.stream
                        .shutdown(Shutdown::Write)
                        .map_err(|e| e.to_string())?;
                }
                c.expect_close()?;
                // The server gives back what a connection held before it
                // closes the socket.
                self.model.disconnect(c.id);
                Ok(())
            }
            Step::Vanish(i) => {
                let Some(c) = self.conns[*i].take() else {
                    return Ok(());
                };
                set_linger_zero(&c.stream);
                drop(c.stream);
                self.model.disconnect(c.id);
                self.await_leases()
            }
            Step::Restart => {
                self.conns.iter_mut().for_each(|c| *c = None);
                if let Some(server) = self.server.take() {
                    server.stop();
                }
                self.server = Some(self.home.start(&FLAGS));
                self.model.restart();
                Ok(())
            }
        }
    }

    fn send(&mut self, index: usize, ops: &[Op], cuts: &[u16], pause: bool) -> Result<(), String> {
        let id = self.conn(index).id;
        let framing = FRAMINGS[index];
        let mut request = Vec::new();
        let mut expected = Vec::new();
        for op in ops.iter().filter(|op| framing::says(framing, op)) {
            let (bytes, expect) = self.model.run(id, op);
            let (bytes, expect) = framing::rewrite(framing, op, bytes, expect);
            request.extend_from_slice(&bytes);
            expected.push((op, expect));
        }
        let conn = self.conn(index);
        for piece in pieces(&request, cuts) {
            conn.stream
                .write_all(piece)
                .map_err(|e| format!("write: {e}"))?;
            if pause {
                thread::sleep(Duration::from_millis(2));
            }
        }
        for (op, expect) in expected {
            match expect {
                Expect::Exact(want) => {
                    let have =
                        conn.read_reply(|input| (input.len() >= want.len()).then_some(want.len()))?;
                    if have != want {
                        return Err(format!(
                            "{op:?} on connection {index} (request {}):\n  server: {}\n  model:  {}",
                            show(&request),
                            show(&have),
                            show(&want)
                        ));
                    }
                }
                Expect::Gets(want) => {
                    let have =
                        conn.read_reply(|input| find(input, b"END\r\n").map(|n| n + END.len()))?;
                    let have = mask_cas(&have);
                    if have != want {
                        return Err(format!(
                            "{op:?} on connection {index}:\n  server: {}\n  model:  {}",
                            show(&have),
                            show(&want)
                        ));
                    }
                }
                Expect::Binary(want) => {
                    let have =
                        conn.read_reply(|input| (input.len() >= want.len()).then_some(want.len()))?;
                    if framing::mask_binary_cas(&have) != framing::mask_binary_cas(&want) {
                        return Err(format!(
                            "{op:?} on binary connection {index}:\n  server: {}\n  model:  {}",
                            show(&have),
                            show(&want)
                        ));
                    }
                }
                Expect::Dump(want) => {
                    let have = conn.read_reply(listing_len)?;
                    let have = mask_ages(&have);
                    if have != want {
                        return Err(format!(
                            "dump_stats on connection {index}:\n  server: {}\n  model:  {}",
                            show(&have),
                            show(&want)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// After a reset connection: the server notices it on a later turn, so
    /// wait until its open messages agree with the model.
    fn await_leases(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + REPLY_WAIT;
        let want = self.model.dump_stats();
        loop {
            let mut control = Conn::connect(self.port(), 0);
            control
                .stream
                .write_all(b"dump_stats\r\n")
                .map_err(|e| e.to_string())?;
            let have = control.read_reply(listing_len)?;
            let have = mask_ages(&have);
            if have == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "after a reset connection:\n  server: {}\n  model:  {}",
                    show(&have),
                    show(&want)
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The end of a sequence: every connection leaves, and the queues must
    /// hold what the model holds, message by message.
    fn finish(&mut self) -> Result<(), String> {
        for i in 0..CONNECTIONS {
            self.step(&Step::Quit(i))?;
        }
        let names: Vec<String> = self.model.queues.keys().cloned().collect();
        for name in names {
            self.send(0, &[Op::DumpStats], &[], false)?;
            let q = QUEUES.iter().position(|&n| n == name);
            if let Some(q) = q {
                let left = self.model.queues[&name].messages.len();
                let ops = vec![Op::Get(q, Opts::Plain); left + 1];
                self.send(0, &ops, &[], false)?;
            }
        }
        self.send(0, &[Op::StatsQueue], &[], false)
    }
}

#[test]
fn the_queue_behaves_as_its_model() {
    let cases = env_number("MEMCACHEQ_MODEL_CASES", 24) as u32;
    let steps = env_number("MEMCACHEQ_MODEL_STEPS", 60) as usize;
    let (mut runner, seed) = seeded_runner("MEMCACHEQ_MODEL_SEED", cases, 400);
    eprintln!("model test: seed {seed}, {cases} sequences of up to {steps} steps (MEMCACHEQ_MODEL_SEED={seed} replays it)");
    let sequences = proptest::collection::vec(step(), 1..=steps);
    let result = runner.run(&sequences, |sequence| {
        let mut run = Run::new();
        for (n, step) in sequence.iter().enumerate() {
            run.step(step)
                .map_err(|e| TestCaseError::fail(format!("step {n} ({step:?}): {e}")))?;
        }
        run.finish()
            .map_err(|e| TestCaseError::fail(format!("at the end: {e}")))?;
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, sequence)) => panic!(
            "the server differs from the model (seed {seed}; MEMCACHEQ_MODEL_SEED={seed} replays it).\n\
             Shortest sequence found that still fails ({} steps):\n{sequence:#?}\n{why}",
            sequence.len()
        ),
        Err(e) => panic!("model test (seed {seed}): {e}"),
    }
}

/// The model's own answers for one sequence the issue reported, so the
/// model is known to say what the documentation says.
#[test]
fn the_model_answers_the_reported_sequence() {
    let mut m = Model::default();
    for _ in 0..2 {
        m.run(1, &Op::Set(0));
    }
    let reply = |m: &mut Model, op: Op| match m.run(1, &op).1 {
        Expect::Exact(bytes) => String::from_utf8(bytes).expect("utf-8"),
        Expect::Gets(_) | Expect::Dump(_) | Expect::Binary(_) => unreachable!(),
    };
    assert_eq!(
        reply(&mut m, Op::Get(0, Opts::Open)),
        "VALUE a/open 1 2\r\nm1\r\nEND\r\n"
    );
    assert_eq!(reply(&mut m, Op::Get(0, Opts::Abort)), "END\r\n");
    assert_eq!(
        reply(&mut m, Op::Get(0, Opts::CloseOpen)),
        "VALUE a/close/open 1 2\r\nm1\r\nEND\r\n"
    );
    assert_eq!(reply(&mut m, Op::StatsQueue), "STAT a 2/0\r\nEND\r\n");
    m.disconnect(1);
    assert_eq!(m.open_count("a"), 0);
}
