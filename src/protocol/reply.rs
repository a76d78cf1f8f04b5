//! Every reply the server sends, and the one place their bytes are made
//! (docs/PROTOCOL.md, "All reply lines"). Only three error forms exist:
//! `ERROR`, `CLIENT_ERROR <why>` and `SERVER_ERROR <why>`.

use crate::item::Message;

/// One reply line, or one `VALUE` block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reply<'a> {
    Stored,
    NotStored,
    End,
    Deleted,
    NotFound,
    Ok,
    Reset,
    /// `ERROR`: a command we do not know or do not run.
    Error,
    /// `CLIENT_ERROR <why>`: the request was wrong.
    ClientError(&'static str),
    /// `SERVER_ERROR <why>`: the server could not do it.
    ServerError(&'static str),
    /// `VERSION <version>`.
    Version(&'a str),
    /// `STAT <name> <value>`: a line of `stats`.
    Stat(&'a str, &'a str),
    /// `STAT <queue> <set>/<get>`, or `STAT <queue>` for the names-only
    /// format of MemcacheQ 0.1.x (-Z): a line of `stats queue`.
    QueueStat {
        name: &'a [u8],
        counts: Option<(i64, i64)>,
    },
    /// A message: `VALUE <key> <flags> <bytes>[ <cas>]`, then its data.
    Value {
        message: &'a Message<'a>,
        /// The key as the client sent it, options included; `None` echoes
        /// the name stored in the record, as the original does.
        key: Option<&'a [u8]>,
        /// The cas unique `gets` adds.
        cas: Option<u64>,
    },
    /// One queue's block of `dump_stats`.
    QueueDump(&'a QueueDump<'a>),
}

/// What `dump_stats` reports of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDump<'a> {
    pub name: &'a [u8],
    /// Messages waiting, not open.
    pub items: u64,
    /// Bytes those messages occupy in their records.
    pub bytes: u64,
    /// Messages ever stored (the set count).
    pub total_items: u64,
    /// Open messages.
    pub open: u64,
    /// Requests waiting with `/t=`.
    pub waiters: u64,
    /// Milliseconds since the oldest waiting message was stored.
    pub age_ms: u64,
    /// Messages handed out again since the server started.
    pub redelivered: u64,
    /// Messages moved to `<q>.dead` since the server started.
    pub dead_lettered: u64,
}

pub const BAD_FORMAT: Reply = Reply::ClientError("bad command line format");
pub const BAD_CHUNK: Reply = Reply::ClientError("bad data chunk");
pub const NAME_TOO_LONG_FOR_EXTENTS: Reply =
    Reply::ClientError("queue name too long for its extent file names");
pub const LINE_TOO_LONG: Reply = Reply::ClientError("line too long");
pub const TOO_LARGE: Reply = Reply::ServerError("out of memory storing object");
pub const DELETE_FAILED: Reply = Reply::ServerError("while delete a item");
pub const TOO_MANY_CONNECTIONS: Reply = Reply::ServerError("too many open connections");
pub const STORAGE_FAILED: Reply = Reply::ServerError("storage failure");
pub const NO_SPACE: Reply = Reply::ServerError("out of disk space");
pub const SUPERSEDED: Reply =
    Reply::ServerError("not acknowledged: another site is master now; nothing was done");
pub const NOT_ACKNOWLEDGED: Reply =
    Reply::ServerError("not acknowledged by enough replicas; it may still be delivered");
pub const MULTI_PACKET: Reply = Reply::ServerError("multi-packet request not supported");
pub const UDP_REPLY_TOO_LARGE: Reply = Reply::ServerError("reply too large for UDP");
pub const CONFLICTING_OPTIONS: Reply = Reply::ClientError("conflicting options");
pub const CLOSE_FIRST: Reply = Reply::ClientError("close current item first");
pub const BAD_MAGIC: Reply = Reply::ClientError("bad magic byte");
pub const BAD_HEADER: Reply = Reply::ClientError("key and extras longer than the body");
pub const BODY_TOO_LARGE: Reply = Reply::ClientError("body too large");
pub const INVALID_FLAG: Reply = Reply::ClientError("invalid flag");
pub const NOT_FOR_QUEUES: Reply = Reply::ClientError("not supported by a queue");

impl Reply<'_> {
    /// Appends the reply's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let word: &[u8] = match *self {
            Reply::Stored => b"STORED",
            Reply::NotStored => b"NOT_STORED",
            Reply::End => b"END",
            Reply::Deleted => b"DELETED",
            Reply::NotFound => b"NOT_FOUND",
            Reply::Ok => b"OK",
            Reply::Reset => b"RESET",
            Reply::Error => b"ERROR",
            Reply::ClientError(why) => return line(out, &[b"CLIENT_ERROR ", why.as_bytes()]),
            Reply::ServerError(why) => return line(out, &[b"SERVER_ERROR ", why.as_bytes()]),
            Reply::Version(version) => return line(out, &[b"VERSION ", version.as_bytes()]),
            Reply::Stat(name, value) => {
                return line(out, &[b"STAT ", name.as_bytes(), b" ", value.as_bytes()])
            }
            Reply::QueueStat { name, counts } => {
                let counts = counts.map(|(set, get)| format!(" {set}/{get}"));
                let counts = counts.as_deref().unwrap_or_default();
                return line(out, &[b"STAT ", name, counts.as_bytes()]);
            }
            Reply::Value { message, key, cas } => return value(out, message, key, cas),
            Reply::QueueDump(dump) => return queue_dump(out, dump),
        };
        line(out, &[word]);
    }

    /// The reply's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Appends `parts` and the line end.
fn line(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

/// A `VALUE` block, with the flags and length exactly as stored.
fn value(out: &mut Vec<u8>, message: &Message<'_>, key: Option<&[u8]>, cas: Option<u64>) {
    let flags_and_len = message
        .suffix
        .strip_suffix(b"\r\n")
        .unwrap_or(message.suffix);
    let cas = cas.map(|cas| format!(" {cas}"));
    line(
        out,
        &[
            b"VALUE ",
            key.unwrap_or(message.name),
            flags_and_len,
            cas.as_deref().unwrap_or_default().as_bytes(),
        ],
    );
    out.extend_from_slice(message.data_crlf);
}

/// A queue's `dump_stats` block, in Kestrel's layout.
fn queue_dump(out: &mut Vec<u8>, d: &QueueDump<'_>) {
    line(out, &[b"queue '", d.name, b"' {"]);
    for (name, value) in [
        ("items", d.items),
        ("bytes", d.bytes),
        ("total_items", d.total_items),
        ("open_transactions", d.open),
        ("waiters", d.waiters),
        ("age", d.age_ms),
        ("redelivered", d.redelivered),
        ("dead_lettered", d.dead_lettered),
    ] {
        line(
            out,
            &[b"  ", name.as_bytes(), b"=", value.to_string().as_bytes()],
        );
    }
    line(out, &[b"}"]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item;

    #[test]
    fn lines_and_errors() {
        assert_eq!(Reply::Stored.to_vec(), b"STORED\r\n");
        assert_eq!(
            BAD_FORMAT.to_vec(),
            b"CLIENT_ERROR bad command line format\r\n"
        );
        assert_eq!(NO_SPACE.to_vec(), b"SERVER_ERROR out of disk space\r\n");
        assert_eq!(Reply::Version("0.2.1").to_vec(), b"VERSION 0.2.1\r\n");
        assert_eq!(Reply::Stat("pid", "7").to_vec(), b"STAT pid 7\r\n");
    }

    #[test]
    fn queue_dump_blocks() {
        let dump = QueueDump {
            name: b"jobs",
            items: 2,
            bytes: 2048,
            total_items: 5,
            open: 1,
            waiters: 0,
            age_ms: 12,
            redelivered: 3,
            dead_lettered: 0,
        };
        let want = "queue 'jobs' {\r\n  items=2\r\n  bytes=2048\r\n  total_items=5\r\n  open_transactions=1\r\n  waiters=0\r\n  age=12\r\n  redelivered=3\r\n  dead_lettered=0\r\n}\r\n";
        assert_eq!(
            String::from_utf8(Reply::QueueDump(&dump).to_vec()).unwrap(),
            want
        );
    }

    #[test]
    fn queue_stat_lines_with_and_without_counters() {
        let with = Reply::QueueStat {
            name: b"jobs",
            counts: Some((50, 10)),
        };
        assert_eq!(with.to_vec(), b"STAT jobs 50/10\r\n");
        let names_only = Reply::QueueStat {
            name: b"jobs",
            counts: None,
        };
        assert_eq!(names_only.to_vec(), b"STAT jobs\r\n");
    }

    #[test]
    fn value_blocks_with_and_without_cas() {
        let mut record = Vec::new();
        item::encode(&mut record, b"jobs", 7, b"abc");
        let message = item::decode(&record).unwrap();
        let plain = Reply::Value {
            message: &message,
            key: None,
            cas: None,
        };
        assert_eq!(plain.to_vec(), b"VALUE jobs 7 3\r\nabc\r\n");
        let with_cas = Reply::Value {
            message: &message,
            key: None,
            cas: Some(42),
        };
        assert_eq!(with_cas.to_vec(), b"VALUE jobs 7 3 42\r\nabc\r\n");
        let echoed = Reply::Value {
            message: &message,
            key: Some(b"jobs/t=5/open"),
            cas: None,
        };
        assert_eq!(echoed.to_vec(), b"VALUE jobs/t=5/open 7 3\r\nabc\r\n");
    }
}
