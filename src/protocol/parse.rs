//! Turns the bytes a client sent into commands, one frame at a time.

use super::command::{Command, Refusal};
use super::dialect::Dialect;
use super::key::{GetKey, KeyError};
use super::meta;
use super::numbers;
use super::reply::{self, Reply};
use crate::item;
use crate::queue_name::{NameRules, MAX_KEY_LEN};

/// Longest command line other than `get` and `gets` (docs/PROTOCOL.md,
/// "Lines and tokens").
pub const MAX_LINE: usize = 8 * 1024;
/// Longest `get` line: hundreds of keys of up to 250 bytes.
pub const MAX_GET_LINE: usize = 512 * 1024;

/// One complete request found at the start of the buffer.
#[derive(Debug, PartialEq)]
pub struct Frame {
    /// What to execute or answer.
    pub command: Command,
    /// The client ended the line with memcached's `noreply`: the command
    /// runs as without it, and no reply line is sent, not even an error.
    pub noreply: bool,
    /// Bytes of the buffer this frame used.
    pub consumed: usize,
    /// Bytes of a refused data block still to be discarded after `consumed`,
    /// as they arrive (a block may be far larger than any buffer we keep).
    pub discard: u64,
    /// How the reply goes back: text, or the meta or binary framing the
    /// request came in.
    pub dialect: Dialect,
}

impl Frame {
    pub(super) fn new(command: Command, consumed: usize) -> Frame {
        Frame {
            command,
            noreply: false,
            consumed,
            discard: 0,
            dialect: Dialect::Text,
        }
    }
}

/// Commands whose last token may be memcached's `noreply`. The ones we do
/// not support are listed too, so that a client which sent `noreply` and
/// reads nothing is never handed a stale `ERROR` for its next request.
const TAKES_NOREPLY: [&[u8]; 12] = [
    b"set",
    b"add",
    b"replace",
    b"append",
    b"prepend",
    b"cas",
    b"delete",
    b"verbosity",
    b"incr",
    b"decr",
    b"touch",
    b"flush_all",
];

/// Storage commands other than `set`: `<cmd> <key> <flags> <exptime>
/// <bytes>` (`cas` adds `<cas unique>`), each followed by a data block.
const UNSUPPORTED_STORAGE: [&[u8]; 5] = [b"add", b"replace", b"append", b"prepend", b"cas"];

/// Parses requests under the storage configuration's limits.
#[derive(Debug, Clone, Copy)]
pub struct Parser {
    /// Which queue names are allowed.
    names: NameRules,
    /// Fixed record length: the largest message a queue can hold.
    record_len: usize,
}

impl Parser {
    pub fn new(names: NameRules, record_len: u32) -> Parser {
        Parser {
            names,
            record_len: record_len as usize,
        }
    }

    /// The first frame in `buf`, or `None` when more bytes are needed.
    pub fn parse(&self, buf: &[u8]) -> Option<Frame> {
        let limit = if buf.starts_with(b"get ") || buf.starts_with(b"gets ") {
            MAX_GET_LINE
        } else {
            MAX_LINE
        };
        let Some(newline) = memchr(b'\n', &buf[..buf.len().min(limit + 1)]) else {
            return (buf.len() > limit).then(|| {
                Frame::new(
                    Command::Refused(Refusal::ReplyAndClose(reply::LINE_TOO_LONG)),
                    buf.len(),
                )
            });
        };
        let consumed = newline + 1;
        let mut line = &buf[..newline];
        if let Some(nul) = memchr(0, line) {
            line = &line[..nul];
        }
        if line.len() > 1 && line.ends_with(b"\r") {
            line = &line[..line.len() - 1];
        }
        let tokens: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .collect();
        let Some((&name, args)) = tokens.split_first() else {
            return Some(Frame::new(refused(Reply::Error), consumed));
        };
        let noreply = TAKES_NOREPLY.contains(&name) && args.last() == Some(&&b"noreply"[..]);
        let args = if noreply {
            &args[..args.len() - 1]
        } else {
            args
        };
        let mut frame = self.parse_command(name, args, buf, consumed)?;
        frame.noreply = noreply;
        Some(frame)
    }

    /// The frame of command `name` with `args` (without `noreply`), whose
    /// line is the first `consumed` bytes of `buf`.
    fn parse_command(
        &self,
        name: &[u8],
        args: &[&[u8]],
        buf: &[u8],
        consumed: usize,
    ) -> Option<Frame> {
        let command = match (name, args.len()) {
            (b"get", 1..) => self.get(args, false),
            (b"gets", 1..) => self.get(args, true),
            (b"set", 4) => return self.set(args, buf, consumed),
            (b"set", _) => return Some(refuse_storage(Reply::Error, args, consumed)),
            (name, _) if UNSUPPORTED_STORAGE.contains(&name) => {
                return Some(refuse_storage(Reply::NotStored, args, consumed))
            }
            (b"delete", 1..=2) => self.delete(args[0]),
            (b"stats", 0) => Command::Stats,
            (b"stats", _) => match args[0] {
                b"queue" => Command::StatsQueue,
                b"reset" => Command::StatsReset,
                b"replication" => Command::StatsReplication,
                _ => refused(Reply::Error),
            },
            (b"version", 0) => Command::Version,
            (b"verbosity", 1) => match numbers::verbosity(args[0]) {
                Some(_) => Command::Verbosity,
                None => refused(reply::BAD_FORMAT),
            },
            (b"quit", 0) => Command::Quit,
            (b"db_checkpoint", 0) => Command::Checkpoint,
            (b"db_archive", 0) => Command::Archive,
            (b"dump_stats", 0) => Command::DumpStats,
            (name, _) if meta::is_meta(name) => {
                return meta::parse(self, name, args, buf, consumed)
            }
            (b"flush", 1) => match self.valid_key(args[0]) {
                true => Command::Flush {
                    queue: args[0].to_vec(),
                },
                false => refused(reply::BAD_FORMAT),
            },
            _ => refused(Reply::Error),
        };
        Some(Frame::new(command, consumed))
    }

    /// Whether `key` may name a queue here. Names that may not be created
    /// (control bytes, too long for extent files) still pass: they are
    /// refused when a `set` would create them, and looked up otherwise.
    fn valid_key(&self, key: &[u8]) -> bool {
        self.names.is_safe(key)
    }

    /// Every key is checked before anything runs, so a bad key late in the
    /// line cannot leave earlier messages consumed and unanswered.
    fn get(&self, keys: &[&[u8]], cas: bool) -> Command {
        let mut parsed = Vec::with_capacity(keys.len());
        for &key in keys {
            let key = match GetKey::parse(key) {
                Ok(key) => key,
                Err(KeyError::Conflict) => return refused(reply::CONFLICTING_OPTIONS),
                Err(KeyError::BadOption) => return refused(reply::BAD_FORMAT),
            };
            if !self.valid_key(key.queue()) || key.key.len() > MAX_KEY_LEN {
                return refused(reply::BAD_FORMAT);
            }
            parsed.push(key);
        }
        // A wait holds the connection for one queue; several keys would
        // each need their own.
        if parsed.len() > 1 && parsed.iter().any(|k| k.options.wait.is_some()) {
            return refused(reply::BAD_FORMAT);
        }
        Command::Get { keys: parsed, cas }
    }

    fn delete(&self, key: &[u8]) -> Command {
        if !self.valid_key(key) {
            return refused(reply::BAD_FORMAT);
        }
        Command::Delete {
            queue: key.to_vec(),
        }
    }

    /// `set <queue> <flags> <exptime> <bytes>`: `line_len` bytes of line,
    /// then a data block of `<bytes>` and `\r\n`.
    fn set(&self, args: &[&[u8]], buf: &[u8], line_len: usize) -> Option<Frame> {
        let (key, flags, exptime, len) = (args[0], args[1], args[2], args[3]);
        // Without a valid length the block's end is unknown: read nothing.
        let Some(len) = numbers::data_len(len) else {
            return Some(Frame::new(refused(reply::BAD_FORMAT), line_len));
        };
        let refusal = match numbers::flags(flags) {
            Some(flags) if self.valid_key(key) && numbers::exptime(exptime).is_some() => {
                self.too_large(key, flags, len).then_some(reply::TOO_LARGE)
            }
            _ => Some(reply::BAD_FORMAT),
        };
        let flags = numbers::flags(flags).unwrap_or_default();
        match self.data_block(buf, line_len, len, refusal)? {
            Ok(data) => Some(Frame::new(
                self.store(key, flags, data),
                line_len + data.len() + 2,
            )),
            Err(frame) => Some(frame),
        }
    }

    /// The data block of `len` bytes and `\r\n` that follows a storage
    /// command's line of `line_len` bytes: `Ok` with the data once it is all
    /// in `buf`, or the frame that answers without storing (the `refusal`
    /// given, or a bad block end). A refused block is skipped as it
    /// arrives, never buffered.
    pub(super) fn data_block<'b>(
        &self,
        buf: &'b [u8],
        line_len: usize,
        len: u64,
        refusal: Option<Reply<'static>>,
    ) -> Option<Result<&'b [u8], Frame>> {
        if let Some(answer) = refusal {
            return Some(Err(Frame {
                discard: len + 2,
                ..Frame::new(refused(answer), line_len)
            }));
        }
        let len = len as usize;
        let end = line_len + len + 2;
        if buf.len() < end {
            return None;
        }
        if &buf[end - 2..end] != b"\r\n" {
            return Some(Err(Frame::new(
                Command::Refused(Refusal::BadDataChunk),
                end,
            )));
        }
        Some(Ok(&buf[line_len..line_len + len]))
    }

    /// Whether a message of `len` bytes with `flags` is too large for a
    /// record of queue `key`.
    pub(super) fn too_large(&self, key: &[u8], flags: u32, len: u64) -> bool {
        let len = len as usize;
        item::encoded_len(key, &item::suffix(flags, len), len) > self.record_len
    }

    /// Whether a message of `data_len` bytes, with flags `0` and a name of
    /// `key_len` bytes (beside the name's own bytes, for a name not read
    /// yet), could fit a record at all.
    pub(super) fn fits(&self, key_len: usize, data_len: usize) -> bool {
        let suffix = item::suffix(0, data_len);
        item::encoded_len(&[], &suffix, data_len) + key_len <= self.record_len
    }

    /// The command that appends `data` with `flags` to queue `key`, or
    /// answers why it cannot.
    fn store(&self, key: &[u8], flags: u32, data: &[u8]) -> Command {
        if !self.valid_key(key) {
            return refused(reply::BAD_FORMAT);
        }
        let suffix = item::suffix(flags, data.len());
        if item::encoded_len(key, &suffix, data.len()) > self.record_len {
            return refused(reply::TOO_LARGE);
        }
        let mut record = Vec::new();
        item::encode(&mut record, key, flags, data);
        Command::Set {
            queue: key.to_vec(),
            record,
        }
    }

    /// A `store` of a key that came without a text line (see `get_one`).
    pub(super) fn store_one(&self, key: &[u8], flags: u32, data: &[u8]) -> Command {
        match line_safe(key) {
            true => self.store(key, flags, data),
            false => refused(reply::BAD_FORMAT),
        }
    }

    /// A `get` of one key that came without a text line around it (binary
    /// and meta): refused if it holds a byte no text line could carry, as
    /// queue names must read back in `stats queue`.
    pub(super) fn get_one(&self, key: &[u8], cas: bool) -> Command {
        match line_safe(key) {
            true => self.get(&[key], cas),
            false => refused(reply::BAD_FORMAT),
        }
    }

    /// A `delete` of a key that came without a text line (see `get_one`).
    pub(super) fn delete_one(&self, key: &[u8]) -> Command {
        match line_safe(key) {
            true => self.delete(key),
            false => refused(reply::BAD_FORMAT),
        }
    }
}

/// Whether `key` could be a token of a text command line.
fn line_safe(key: &[u8]) -> bool {
    !key.iter().any(|&b| matches!(b, b' ' | b'\r' | b'\n' | 0))
}

/// A storage command that is not run (`set` with the wrong number of
/// arguments answers `ERROR`; `add`, `cas`, ... answer `NOT_STORED`, which
/// every client library takes as "not stored" and carries on, where PHP's
/// memcache marks the server failed on `ERROR`). When its length (the
/// fourth argument) is valid, its data block is read and thrown away, so
/// the message body never runs as a command and the client gets one line.
/// Without a valid length nothing more is read and the answer is `ERROR`,
/// as the original's.
fn refuse_storage(answer: Reply<'static>, args: &[&[u8]], line_len: usize) -> Frame {
    match args.get(3).and_then(|len| numbers::data_len(len)) {
        Some(len) => Frame {
            discard: len + 2,
            ..Frame::new(refused(answer), line_len)
        },
        None => Frame::new(refused(Reply::Error), line_len),
    }
}

/// A request answered with `reply` and nothing run.
pub(super) fn refused(reply: Reply<'static>) -> Command {
    Command::Refused(Refusal::Reply(reply))
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser() -> Parser {
        Parser::new(NameRules::new(1024, 4096, 16384), 1024)
    }

    fn one(input: &[u8]) -> Frame {
        parser().parse(input).expect("a complete frame")
    }

    #[test]
    fn set_waits_for_its_block_then_encodes_the_record() {
        assert_eq!(parser().parse(b"set jobs 0 0 3\r\nab"), None);
        let f = one(b"set jobs 0 0 3\r\nabc\r\nget jobs\r\n");
        assert_eq!(f.consumed, 21);
        let Command::Set { queue, record } = f.command else {
            panic!()
        };
        assert_eq!(queue, b"jobs");
        assert_eq!(&record[8..], b"jobs\0 0 3\r\nabc\r\n");
    }

    #[test]
    fn a_bad_chunk_consumes_the_block() {
        let f = one(b"set q 0 0 3\r\nabcde\r\n");
        assert_eq!(
            (f.command, f.consumed),
            (Command::Refused(Refusal::BadDataChunk), 18)
        );
    }

    #[test]
    fn refused_sets_discard_their_block_unless_the_length_is_bad() {
        let f = one(b"set ../x 0 0 5\r\n");
        assert_eq!((f.command, f.discard), (refused(reply::BAD_FORMAT), 7));
        let f = one(b"set q 0 0 2000\r\n");
        assert_eq!((f.command, f.discard), (refused(reply::TOO_LARGE), 2002));
        let f = one(b"set q 0 0 -1\r\n");
        assert_eq!((f.command, f.discard), (refused(reply::BAD_FORMAT), 0));
        let f = one(b"set q 18446744073709551616 0 1\r\n");
        assert_eq!((f.command, f.discard), (refused(reply::BAD_FORMAT), 3));
    }

    #[test]
    fn line_rules_of_the_original() {
        assert_eq!(one(b"\r\n").command, refused(Reply::Error));
        assert_eq!(one(b"\n").command, refused(Reply::Error));
        assert_eq!(one(b"stats\0queue\r\n").command, Command::Stats);
        assert_eq!(one(b"stats  queue  x\r\n").command, Command::StatsQueue);
        assert_eq!(one(b"set q 0 0\r\n").command, refused(Reply::Error));
        assert_eq!(one(b"get\r\n").command, refused(Reply::Error));
        assert_eq!(one(b"delete q 0\r\n").command, delete_q());
        assert_eq!(one(b"delete q 0 0\r\n").command, refused(Reply::Error));
        assert_eq!(one(b"incr q 1\r\n").command, refused(Reply::Error));
    }

    fn delete_q() -> Command {
        Command::Delete {
            queue: b"q".to_vec(),
        }
    }

    #[test]
    fn noreply_is_taken_off_and_remembered() {
        let f = one(b"delete q noreply\r\n");
        assert_eq!((f.command, f.noreply), (delete_q(), true));
        let f = one(b"delete q 0 noreply\r\n");
        assert_eq!((f.command, f.noreply), (delete_q(), true));
        let f = one(b"set q 0 0 1 noreply\r\nx\r\n");
        assert!(f.noreply && matches!(f.command, Command::Set { .. }));
        let f = one(b"set ../x 0 0 1 noreply\r\n");
        assert_eq!((f.noreply, f.discard), (true, 3));
        let f = one(b"flush_all noreply\r\n");
        assert_eq!((f.command, f.noreply), (refused(Reply::Error), true));
        // `get` takes no noreply: there it is a queue name.
        let f = one(b"get q noreply\r\n");
        assert!(!f.noreply);
        assert_eq!(
            f.command,
            Command::Get {
                keys: vec![GetKey::plain(b"q"), GetKey::plain(b"noreply")],
                cas: false
            }
        );
    }

    #[test]
    fn gets_is_a_get_with_cas() {
        assert_eq!(
            one(b"gets a b\r\n").command,
            Command::Get {
                keys: vec![GetKey::plain(b"a"), GetKey::plain(b"b")],
                cas: true
            }
        );
    }

    #[test]
    fn refused_storage_commands_swallow_a_valid_block() {
        for (line, answer) in [
            (&b"add q 0 0 5\r\n"[..], Reply::NotStored),
            (b"replace q 0 0 5 noreply\r\n", Reply::NotStored),
            (b"append q 0 0 5\r\n", Reply::NotStored),
            (b"prepend q 0 0 5\r\n", Reply::NotStored),
            (b"cas q 0 0 5 77\r\n", Reply::NotStored),
            (b"set q 0 0 5 junk\r\n", Reply::Error),
        ] {
            let f = one(line);
            let shown = String::from_utf8_lossy(line);
            assert_eq!(f.command, refused(answer), "{shown}");
            assert_eq!((f.consumed, f.discard), (line.len(), 7), "{shown}");
        }
        let f = one(b"add q 0 0 x\r\n");
        assert_eq!((f.command, f.discard), (refused(Reply::Error), 0));
    }

    #[test]
    fn tabs_belong_to_keys_and_long_names_can_be_looked_up() {
        let f = one(b"get q\t\r\n");
        assert_eq!(
            f.command,
            Command::Get {
                keys: vec![GetKey::plain(b"q\t")],
                cas: false
            }
        );
        let long = format!("get {}\r\n", "x".repeat(250));
        assert!(matches!(one(long.as_bytes()).command, Command::Get { .. }));
    }

    #[test]
    fn a_bad_key_anywhere_refuses_the_whole_get() {
        let long = format!("get a {} b\r\n", "x".repeat(251));
        assert_eq!(one(long.as_bytes()).command, refused(reply::BAD_FORMAT));
        assert_eq!(one(b"get a ../x b\r\n").command, refused(reply::BAD_FORMAT));
    }

    #[test]
    fn gets_lines_have_the_get_limit() {
        let mut gets = b"gets ".to_vec();
        gets.resize(MAX_LINE * 4, b'k');
        assert_eq!(parser().parse(&gets), None);
    }

    #[test]
    fn long_lines_are_refused() {
        assert_eq!(parser().parse(&[b'a'; MAX_LINE]), None);
        let f = one(&[b'a'; MAX_LINE + 1]);
        assert_eq!(
            f.command,
            Command::Refused(Refusal::ReplyAndClose(reply::LINE_TOO_LONG))
        );
        let mut get = b"get ".to_vec();
        get.resize(MAX_LINE * 4, b'k');
        assert_eq!(parser().parse(&get), None);
    }
}
