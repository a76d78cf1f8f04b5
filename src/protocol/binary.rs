//! memcached's binary protocol (docs/PROTOCOL.md, "The binary protocol"):
//! 24-byte request headers framed into the same commands as text, and
//! text answers re-encoded as binary responses. A connection speaks it
//! when its first byte is the request magic.

use super::answer::{answers, number, Answer};
use super::command::{Command, Refusal};
use super::dialect::Dialect;
use super::parse::{Frame, Parser};
use super::reply::{self, Reply};
use crate::queue_name::MAX_KEY_LEN;

/// The first byte of every request.
pub const REQUEST_MAGIC: u8 = 0x80;
const RESPONSE_MAGIC: u8 = 0x81;
const HEADER_LEN: usize = 24;
/// Longest body of a request that carries no value: extras and a key.
const MAX_SMALL_BODY: u64 = 255 + MAX_KEY_LEN as u64;
/// Longest body any request may announce: a `set` of the largest data
/// length the text protocol takes, its extras and key. Beyond it the
/// stream cannot be trusted, and the connection closes.
const MAX_BODY: u64 = super::numbers::MAX_DATA_LEN + MAX_SMALL_BODY;

/// The opcodes this server runs or answers.
mod op {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const QUIT: u8 = 0x07;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const QUITQ: u8 = 0x17;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
}

/// Response status codes.
mod status {
    pub const OK: u16 = 0x0000;
    pub const KEY_NOT_FOUND: u16 = 0x0001;
    pub const KEY_EXISTS: u16 = 0x0002;
    pub const VALUE_TOO_LARGE: u16 = 0x0003;
    pub const INVALID_ARGUMENTS: u16 = 0x0004;
    pub const NOT_STORED: u16 = 0x0005;
    pub const UNKNOWN_COMMAND: u16 = 0x0081;
    pub const OUT_OF_MEMORY: u16 = 0x0082;
    pub const INTERNAL_ERROR: u16 = 0x0084;
    pub const BUSY: u16 = 0x0085;
}

/// What a binary response must echo of its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub opcode: u8,
    pub opaque: u32,
    /// The key, kept only where a miss echoes it (`GetK`).
    pub key: Vec<u8>,
}

impl Request {
    /// Quiet opcodes answer nothing on success (`GetQ`, `GetKQ`: nothing
    /// on a miss either).
    fn quiet(&self) -> bool {
        matches!(
            self.opcode,
            op::GETQ
                | op::GETKQ
                | op::SETQ
                | op::DELETEQ
                | op::QUITQ
                | op::ADDQ
                | op::REPLACEQ
                | op::APPENDQ
                | op::PREPENDQ
        )
    }
}

/// A request header's fields.
struct Header {
    opcode: u8,
    key_len: usize,
    extras_len: usize,
    body_len: u64,
    opaque: u32,
    cas: u64,
}

impl Header {
    fn read(h: &[u8]) -> Header {
        let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Header {
            opcode: h[1],
            key_len: u16::from_be_bytes([h[2], h[3]]) as usize,
            extras_len: h[4] as usize,
            body_len: u64::from(be32(8)),
            opaque: be32(12),
            cas: (u64::from(be32(16)) << 32) | u64::from(be32(20)),
        }
    }
}

/// The first request in `buf`, or `None` when more bytes are needed.
pub fn parse(parser: &Parser, buf: &[u8]) -> Option<Frame> {
    let first = *buf.first()?;
    if first != REQUEST_MAGIC {
        // No header to echo: the answer names no request (`Noop`).
        let request = Request {
            opcode: op::NOOP,
            opaque: 0,
            key: Vec::new(),
        };
        return Some(close(request, reply::BAD_MAGIC, buf.len()));
    }
    if buf.len() < HEADER_LEN {
        return None;
    }
    let h = Header::read(buf);
    let mut request = Request {
        opcode: h.opcode,
        opaque: h.opaque,
        key: Vec::new(),
    };
    if h.body_len > MAX_BODY {
        return Some(close(request, reply::BODY_TOO_LARGE, buf.len()));
    }
    if (h.key_len + h.extras_len) as u64 > h.body_len {
        return Some(close(request, reply::BAD_HEADER, buf.len()));
    }
    // From here the frame is well formed: whatever is refused, its body is
    // skipped as it arrives and the connection goes on.
    let skip = |request: Request, answer: Reply<'static>| {
        Some(Frame {
            command: Command::Refused(Refusal::Reply(answer)),
            noreply: false,
            consumed: HEADER_LEN,
            discard: h.body_len,
            dialect: Dialect::Binary(Box::new(request)),
        })
    };
    let storing = matches!(h.opcode, op::SET | op::SETQ);
    match h.opcode {
        op::ADD
        | op::REPLACE
        | op::APPEND
        | op::PREPEND
        | op::ADDQ
        | op::REPLACEQ
        | op::APPENDQ
        | op::PREPENDQ => return skip(request, Reply::NotStored),
        op::GET
        | op::GETQ
        | op::GETK
        | op::GETKQ
        | op::SET
        | op::SETQ
        | op::DELETE
        | op::DELETEQ
        | op::NOOP
        | op::VERSION
        | op::QUIT
        | op::QUITQ
        | op::STAT => {}
        _ => return skip(request, Reply::Error),
    }
    if h.key_len > MAX_KEY_LEN {
        return skip(request, reply::BAD_FORMAT);
    }
    if storing {
        if h.extras_len != 8 {
            return skip(request, reply::BAD_FORMAT);
        }
        if h.cas != 0 {
            // Compare-and-swap has nothing to compare in a queue.
            return skip(request, Reply::NotStored);
        }
        let data_len = (h.body_len - 8 - h.key_len as u64) as usize;
        if !parser.fits(h.key_len, data_len) {
            return skip(request, reply::TOO_LARGE);
        }
    } else if h.body_len > MAX_SMALL_BODY {
        return skip(request, reply::BAD_FORMAT);
    }
    let frame_len = HEADER_LEN + h.body_len as usize;
    if buf.len() < frame_len {
        return None;
    }
    let extras = &buf[HEADER_LEN..HEADER_LEN + h.extras_len];
    let key_start = HEADER_LEN + h.extras_len;
    let key = &buf[key_start..key_start + h.key_len];
    let value = &buf[key_start + h.key_len..frame_len];
    let command = match h.opcode {
        op::GET | op::GETQ | op::GETK | op::GETKQ => {
            if h.opcode == op::GETK {
                request.key = key.to_vec();
            }
            parser.get_one(key, true)
        }
        op::SET | op::SETQ => {
            let flags = u32::from_be_bytes([extras[0], extras[1], extras[2], extras[3]]);
            parser.store_one(key, flags, value)
        }
        op::DELETE | op::DELETEQ => parser.delete_one(key),
        op::NOOP => Command::Noop,
        op::VERSION => Command::Version,
        op::QUIT | op::QUITQ => Command::Quit,
        _ => match key {
            b"" => Command::Stats,
            b"queue" => Command::StatsQueue,
            b"reset" => Command::StatsReset,
            b"replication" => Command::StatsReplication,
            _ => Command::Refused(Refusal::Reply(Reply::Error)),
        },
    };
    Some(Frame {
        command,
        noreply: false,
        consumed: frame_len,
        discard: 0,
        dialect: Dialect::Binary(Box::new(request)),
    })
}

/// A frame that cannot be trusted: answered, then the connection closes.
fn close(request: Request, answer: Reply<'static>, consumed: usize) -> Frame {
    Frame {
        command: Command::Refused(Refusal::ReplyAndClose(answer)),
        noreply: false,
        consumed,
        discard: 0,
        dialect: Dialect::Binary(Box::new(request)),
    }
}

/// Appends the binary responses saying what `text` says.
pub fn encode(request: &Request, text: &[u8], out: &mut Vec<u8>) {
    let quiet = request.quiet();
    if request.opcode == op::STAT {
        for answer in answers(text) {
            match answer {
                Answer::Stat { name, value } => {
                    response(out, request, status::OK, b"", name, value, 0)
                }
                Answer::Word(b"END") | Answer::Word(b"RESET") => break,
                other => return failure(out, request, other),
            }
        }
        // An empty response ends the stats.
        return response(out, request, status::OK, b"", b"", b"", 0);
    }
    let Some(answer) = answers(text).next() else {
        // `Noop` and `Quit` run nothing and say nothing in text.
        if !quiet {
            response(out, request, status::OK, b"", b"", b"", 0);
        }
        return;
    };
    match answer {
        Answer::Value {
            key,
            flags,
            cas,
            data,
        } => {
            let flags = number(flags) as u32;
            let cas = cas.map_or(0, number);
            let key: &[u8] = match request.opcode {
                op::GETK | op::GETKQ => key,
                _ => b"",
            };
            response(
                out,
                request,
                status::OK,
                &flags.to_be_bytes(),
                key,
                data,
                cas,
            );
        }
        Answer::Word(b"END") if matches!(request.opcode, op::GETQ | op::GETKQ) => {}
        Answer::Word(b"END") | Answer::Word(b"NOT_FOUND") => {
            let key = request.key.as_slice();
            response(
                out,
                request,
                status::KEY_NOT_FOUND,
                b"",
                key,
                b"Not found",
                0,
            );
        }
        Answer::Word(b"STORED") | Answer::Word(b"DELETED") if quiet => {}
        Answer::Word(b"STORED") | Answer::Word(b"DELETED") | Answer::Word(b"OK") => {
            response(out, request, status::OK, b"", b"", b"", 0)
        }
        Answer::Version(version) => response(out, request, status::OK, b"", b"", version, 0),
        other => failure(out, request, other),
    }
}

/// An error response for a text answer that is not a success.
fn failure(out: &mut Vec<u8>, request: &Request, answer: Answer<'_>) {
    let (code, why): (u16, &[u8]) = match answer {
        // As memcached answers a store whose condition fails: an `add`
        // (or a `set` with a cas) finds the key there, a `replace` finds
        // none; clients take both as "not stored".
        Answer::Word(b"NOT_STORED") => match request.opcode {
            op::ADD | op::ADDQ | op::SET | op::SETQ => (status::KEY_EXISTS, b"Data exists for key"),
            op::REPLACE | op::REPLACEQ => (status::KEY_NOT_FOUND, b"Not found"),
            _ => (status::NOT_STORED, b"Not stored"),
        },
        Answer::Word(b"ERROR") => (status::UNKNOWN_COMMAND, b"Unknown command"),
        Answer::ClientError(why) => (status::INVALID_ARGUMENTS, why),
        Answer::ServerError(why) => (server_error_status(why), why),
        _ => (status::INTERNAL_ERROR, b"Internal error"),
    };
    response(out, request, code, b"", b"", why, 0);
}

/// The status closest to a `SERVER_ERROR`'s meaning.
fn server_error_status(why: &[u8]) -> u16 {
    let matches = |r: Reply<'_>| matches!(r, Reply::ServerError(w) if w.as_bytes() == why);
    if matches(reply::TOO_LARGE) {
        status::VALUE_TOO_LARGE
    } else if matches(reply::NO_SPACE) {
        status::OUT_OF_MEMORY
    } else if matches(reply::TOO_MANY_CONNECTIONS) {
        status::BUSY
    } else {
        status::INTERNAL_ERROR
    }
}

/// Appends one response packet.
fn response(
    out: &mut Vec<u8>,
    request: &Request,
    status: u16,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
    cas: u64,
) {
    let body = extras.len() + key.len() + value.len();
    out.push(RESPONSE_MAGIC);
    out.push(request.opcode);
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.push(extras.len() as u8);
    out.push(0);
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&request.opaque.to_be_bytes());
    out.extend_from_slice(&cas.to_be_bytes());
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue_name::NameRules;

    fn parser() -> Parser {
        Parser::new(NameRules::new(1024, 4096, 16384), 1024)
    }

    fn request(opcode: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
        let body = extras.len() + key.len() + value.len();
        let mut r = vec![REQUEST_MAGIC, opcode];
        r.extend_from_slice(&(key.len() as u16).to_be_bytes());
        r.push(extras.len() as u8);
        r.extend_from_slice(&[0, 0, 0]);
        r.extend_from_slice(&(body as u32).to_be_bytes());
        r.extend_from_slice(&opaque.to_be_bytes());
        r.extend_from_slice(&[0; 8]);
        r.extend_from_slice(extras);
        r.extend_from_slice(key);
        r.extend_from_slice(value);
        r
    }

    #[test]
    fn a_set_waits_for_its_whole_frame() {
        let set = request(op::SET, &[0, 0, 0, 7, 0, 0, 0, 0], b"jobs", b"abc", 9);
        for cut in 0..set.len() {
            assert_eq!(parse(&parser(), &set[..cut]), None, "cut at {cut}");
        }
        let frame = parse(&parser(), &set).unwrap();
        assert_eq!(frame.consumed, set.len());
        let Command::Set { queue, record } = frame.command else {
            panic!("{:?}", frame.command)
        };
        assert_eq!(queue, b"jobs");
        assert_eq!(&record[8..], b"jobs\0 7 3\r\nabc\r\n");
    }

    #[test]
    fn unsupported_opcodes_skip_their_body() {
        let add = request(op::ADD, &[0; 8], b"q", b"xyz", 1);
        let frame = parse(&parser(), &add[..HEADER_LEN]).unwrap();
        assert_eq!((frame.consumed, frame.discard), (HEADER_LEN, 12));
        assert_eq!(
            frame.command,
            Command::Refused(Refusal::Reply(Reply::NotStored))
        );
        let incr = request(0x05, &[0; 20], b"q", b"", 1);
        let frame = parse(&parser(), &incr).unwrap();
        assert_eq!(
            frame.command,
            Command::Refused(Refusal::Reply(Reply::Error))
        );
    }

    #[test]
    fn bad_headers_close() {
        let mut bad = request(op::GET, b"", b"q", b"", 1);
        bad[0] = 0x81;
        let frame = parse(&parser(), &bad).unwrap();
        assert_eq!(
            frame.command,
            Command::Refused(Refusal::ReplyAndClose(reply::BAD_MAGIC))
        );
        let mut lying = request(op::GET, b"", b"q", b"", 1);
        lying[2..4].copy_from_slice(&9u16.to_be_bytes());
        let frame = parse(&parser(), &lying).unwrap();
        assert_eq!(
            frame.command,
            Command::Refused(Refusal::ReplyAndClose(reply::BAD_HEADER))
        );
    }

    #[test]
    fn answers_become_responses() {
        let getk = Request {
            opcode: op::GETK,
            opaque: 5,
            key: b"q".to_vec(),
        };
        let mut out = Vec::new();
        encode(&getk, b"VALUE q -1 2 77\r\nhi\r\nEND\r\n", &mut out);
        let mut want = vec![0x81, op::GETK, 0, 1, 4, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 5];
        want.extend_from_slice(&77u64.to_be_bytes());
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, b'q', b'h', b'i']);
        assert_eq!(out, want);
        let getq = Request {
            opcode: op::GETQ,
            ..getk
        };
        out.clear();
        encode(&getq, b"END\r\n", &mut out);
        assert!(out.is_empty());
        let setq = Request {
            opcode: op::SETQ,
            opaque: 1,
            key: Vec::new(),
        };
        encode(&setq, b"STORED\r\n", &mut out);
        assert!(out.is_empty());
        encode(&setq, b"SERVER_ERROR out of disk space\r\n", &mut out);
        assert_eq!(&out[6..8], &status::OUT_OF_MEMORY.to_be_bytes());
    }
}
