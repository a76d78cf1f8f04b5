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
    /// A message: `VALUE <name> <flags> <bytes>[ <cas>]`, then its data.
    Value {
        message: &'a Message<'a>,
        /// The cas unique `gets` adds.
        cas: Option<u64>,
    },
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
pub const MULTI_PACKET: Reply = Reply::ServerError("multi-packet request not supported");

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
            Reply::Value { message, cas } => return value(out, message, cas),
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
fn value(out: &mut Vec<u8>, message: &Message<'_>, cas: Option<u64>) {
    let flags_and_len = message
        .suffix
        .strip_suffix(b"\r\n")
        .unwrap_or(message.suffix);
    let cas = cas.map(|cas| format!(" {cas}"));
    line(
        out,
        &[
            b"VALUE ",
            message.name,
            flags_and_len,
            cas.as_deref().unwrap_or_default().as_bytes(),
        ],
    );
    out.extend_from_slice(message.data_crlf);
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
            cas: None,
        };
        assert_eq!(plain.to_vec(), b"VALUE jobs 7 3\r\nabc\r\n");
        let with_cas = Reply::Value {
            message: &message,
            cas: Some(42),
        };
        assert_eq!(with_cas.to_vec(), b"VALUE jobs 7 3 42\r\nabc\r\n");
    }
}
