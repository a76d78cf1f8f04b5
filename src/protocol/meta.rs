//! memcached's meta commands (docs/PROTOCOL.md, "Meta commands"): `mg`,
//! `ms`, `md` and `mn` lines framed into the same commands as text, and
//! their text answers re-encoded as meta replies (`VA`, `HD`, `EN`, `NS`,
//! `NF`, `MN`) with the flags the request asked back.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::answer::{answers, number, Answer};
use super::command::Command;
use super::dialect::Dialect;
use super::key::GetKey;
use super::numbers;
use super::parse::{refused, Frame, Parser};
use super::reply::{self, Reply};

/// Longest opaque token memcached takes.
const MAX_OPAQUE: usize = 32;

/// Flags each command accepts. Those about caching (TTLs, recache, stale
/// items, hit and access times) have no meaning for a queue and are
/// accepted and ignored; the ones that would change what is done are
/// refused (see `Flags::read`).
const GET_FLAGS: &[u8] = b"bcfhklOqstvENRTu";
const SET_FLAGS: &[u8] = b"bcCEFIkOqsSTMN";
const DELETE_FLAGS: &[u8] = b"bCEIkOqTx";
const ARITHMETIC_FLAGS: &[u8] = b"bcCDEJkMNOqtTv";

/// Whether `name` is a meta command.
pub fn is_meta(name: &[u8]) -> bool {
    matches!(name, b"mg" | b"ms" | b"md" | b"mn" | b"me" | b"ma")
}

/// What the reply must say of its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    kind: Kind,
    /// The flags to return, in the order asked: letters among `f t s c k O`.
    returns: Vec<u8>,
    /// `q`: no reply for the expected outcome (see `encode`).
    quiet: bool,
    /// `b`: the key is base64, and is echoed so.
    base64: bool,
    opaque: Vec<u8>,
    /// The key as the client sent it.
    key: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `mg`; `value` when it asked for the message (`v`).
    Get {
        value: bool,
    },
    Set,
    Delete,
    Noop,
    /// `ma` and `me`: a queue holds no counters and no cache items, so
    /// they run nothing and answer as memcached does for a missing key.
    Missing {
        code: &'static str,
    },
}

/// The flags of one meta command.
#[derive(Default)]
struct Flags {
    returns: Vec<u8>,
    quiet: bool,
    base64: bool,
    opaque: Vec<u8>,
    value: bool,
    cas: bool,
    client_flags: u32,
    /// Valid, but asking what a queue cannot do: answered `NS` (`ms`).
    not_stored: bool,
}

impl Flags {
    fn read(tokens: &[&[u8]], allowed: &[u8], kind: Kind) -> Result<Flags, Reply<'static>> {
        let mut flags = Flags::default();
        for token in tokens {
            let (&flag, arg) = token.split_first().ok_or(reply::INVALID_FLAG)?;
            if !allowed.contains(&flag) {
                return Err(reply::INVALID_FLAG);
            }
            // `ma` and `me` run nothing: of their flags only those that
            // shape the reply count.
            if matches!(kind, Kind::Missing { .. }) && !b"bkOq".contains(&flag) {
                continue;
            }
            match flag {
                b'b' => flags.base64 = true,
                b'q' => flags.quiet = true,
                b'v' => flags.value = true,
                b'O' if arg.len() > MAX_OPAQUE => return Err(reply::INVALID_FLAG),
                b'O' => {
                    flags.opaque = arg.to_vec();
                    flags.returns.push(flag);
                }
                b'k' => flags.returns.push(flag),
                b'c' if kind != Kind::Set => {
                    flags.cas = true;
                    flags.returns.push(flag);
                }
                b'f' | b't' | b's' if matches!(kind, Kind::Get { .. }) => flags.returns.push(flag),
                b'F' => flags.client_flags = numbers::flags(arg).ok_or(reply::BAD_FORMAT)?,
                // Only plain `set` mode appends; add, append, prepend and
                // replace have no meaning for a queue.
                b'M' => match arg {
                    b"S" | b"s" => {}
                    b"E" | b"e" | b"A" | b"a" | b"P" | b"p" | b"R" | b"r" => {
                        flags.not_stored = true
                    }
                    _ => return Err(reply::INVALID_FLAG),
                },
                // Compare-and-swap has nothing to compare in a queue.
                b'C' if kind == Kind::Set => flags.not_stored = true,
                // Deleting by cas, or emptying a key's value in place.
                b'C' | b'x' => return Err(reply::NOT_FOR_QUEUES),
                _ => {}
            }
        }
        Ok(flags)
    }

    fn request(self, kind: Kind, key: &[u8]) -> Request {
        Request {
            kind,
            returns: self.returns,
            quiet: self.quiet,
            base64: self.base64,
            opaque: self.opaque,
            key: key.to_vec(),
        }
    }

    /// The queue key: the token itself, or its base64 decoding (`b`).
    fn key(&self, token: &[u8]) -> Result<Vec<u8>, Reply<'static>> {
        if self.base64 {
            BASE64.decode(token).map_err(|_| reply::BAD_FORMAT)
        } else {
            Ok(token.to_vec())
        }
    }
}

/// The frame of meta command `name` with `args`, whose line is the first
/// `line_len` bytes of `buf`; `None` while an `ms` data block is incomplete.
pub fn parse(
    parser: &Parser,
    name: &[u8],
    args: &[&[u8]],
    buf: &[u8],
    line_len: usize,
) -> Option<Frame> {
    let answered = |command: Command, request: Request| Frame {
        dialect: Dialect::Meta(Box::new(request)),
        ..Frame::new(command, line_len)
    };
    let (kind, allowed) = match name {
        b"mn" => {
            return Some(answered(
                Command::Noop,
                Flags::default().request(Kind::Noop, b""),
            ))
        }
        b"mg" => (Kind::Get { value: false }, GET_FLAGS),
        b"ms" => (Kind::Set, SET_FLAGS),
        b"md" => (Kind::Delete, DELETE_FLAGS),
        b"ma" => (Kind::Missing { code: "NF" }, ARITHMETIC_FLAGS),
        _ => (Kind::Missing { code: "EN" }, &b"b"[..]),
    };
    let Some((&token, rest)) = args.split_first() else {
        return Some(Frame::new(refused(reply::BAD_FORMAT), line_len));
    };
    if kind == Kind::Set {
        return set(parser, token, rest, buf, line_len);
    }
    let flags = match Flags::read(rest, allowed, kind) {
        Ok(flags) => flags,
        Err(answer) => return Some(Frame::new(refused(answer), line_len)),
    };
    let kind = match kind {
        Kind::Get { .. } => Kind::Get { value: flags.value },
        other => other,
    };
    let command = match flags.key(token) {
        Err(answer) => refused(answer),
        Ok(_) if matches!(kind, Kind::Missing { .. }) => Command::Noop,
        Ok(key) if kind == Kind::Delete => parser.delete_one(&key),
        Ok(key) if flags.value => parser.get_one(&key, flags.cas),
        Ok(key) => match looking_key(key) {
            Some(key) => parser.get_one(&key, flags.cas),
            None => refused(reply::BAD_FORMAT),
        },
    };
    Some(answered(command, flags.request(kind, token)))
}

/// The key an `mg` without `v` reads: it hands nothing out, so it looks
/// (`/peek`), or only closes or aborts; an `/open` is refused, as it would
/// lease a message the client never sees.
fn looking_key(key: Vec<u8>) -> Option<Vec<u8>> {
    let options = GetKey::parse(&key).ok()?.options;
    if options.open {
        None
    } else if options.close || options.abort || options.peek {
        Some(key)
    } else {
        Some([&key[..], b"/peek"].concat())
    }
}

/// `ms <key> <datalen> <flags>*`, then the data block.
fn set(
    parser: &Parser,
    token: &[u8],
    rest: &[&[u8]],
    buf: &[u8],
    line_len: usize,
) -> Option<Frame> {
    let Some(len) = rest.first().and_then(|len| numbers::data_len(len)) else {
        // Without a valid length the block's end is unknown: read nothing.
        return Some(Frame::new(refused(reply::BAD_FORMAT), line_len));
    };
    let (flags, refusal) = match Flags::read(&rest[1..], SET_FLAGS, Kind::Set) {
        Ok(flags) => (flags, None),
        Err(answer) => (Flags::default(), Some(answer)),
    };
    let key = flags.key(token);
    let refusal = refusal.or_else(|| match &key {
        Err(answer) => Some(*answer),
        Ok(_) if flags.not_stored => Some(Reply::NotStored),
        Ok(key) => parser
            .too_large(key, flags.client_flags, len)
            .then_some(reply::TOO_LARGE),
    });
    let frame = match parser.data_block(buf, line_len, len, refusal)? {
        Ok(data) => {
            let key = key.unwrap_or_default();
            let command = parser.store_one(&key, flags.client_flags, data);
            Frame::new(command, line_len + data.len() + 2)
        }
        Err(frame) => frame,
    };
    Some(Frame {
        dialect: Dialect::Meta(Box::new(flags.request(Kind::Set, token))),
        ..frame
    })
}

/// Appends the meta reply saying what `text` says.
pub fn encode(request: &Request, text: &[u8], out: &mut Vec<u8>) {
    let answer = answers(text).next();
    let (code, always) = match (request.kind, answer) {
        (Kind::Noop, _) => return out.extend_from_slice(b"MN\r\n"),
        (
            Kind::Get { value },
            Some(Answer::Value {
                flags, cas, data, ..
            }),
        ) => {
            let code = if value { "VA" } else { "HD" };
            out.extend_from_slice(code.as_bytes());
            if value {
                out.extend_from_slice(format!(" {}", data.len()).as_bytes());
            }
            let found = Found { flags, cas, data };
            request.write_returns(out, Some(&found));
            out.extend_from_slice(b"\r\n");
            if value {
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            return;
        }
        (Kind::Get { .. }, Some(Answer::Word(b"END"))) => ("EN", false),
        (Kind::Set, Some(Answer::Word(b"STORED"))) => ("HD", false),
        (Kind::Set, Some(Answer::Word(b"NOT_STORED"))) => ("NS", true),
        (Kind::Delete, Some(Answer::Word(b"DELETED"))) => ("HD", false),
        (Kind::Delete, Some(Answer::Word(b"NOT_FOUND"))) => ("NF", false),
        (Kind::Missing { code }, None) => (code, true),
        // Errors are the same lines in both.
        _ => return out.extend_from_slice(text),
    };
    // `q` hides the outcome a pipeline expects; a refusal is always told.
    if request.quiet && !always {
        return;
    }
    out.extend_from_slice(code.as_bytes());
    request.write_returns(out, None);
    out.extend_from_slice(b"\r\n");
}

/// What an `mg` found.
struct Found<'a> {
    flags: &'a [u8],
    cas: Option<&'a [u8]>,
    data: &'a [u8],
}

impl Request {
    /// Appends the flags asked back, each after a space; those about a
    /// message only when one was `found`.
    fn write_returns(&self, out: &mut Vec<u8>, found: Option<&Found<'_>>) {
        for &flag in &self.returns {
            let text = match (flag, found) {
                (b'O', _) => [&b" O"[..], &self.opaque].concat(),
                (b'k', _) if self.base64 => [&b" k"[..], &self.key, b" b"].concat(),
                (b'k', _) => [&b" k"[..], &self.key].concat(),
                (b'f', Some(m)) => format!(" f{}", number(m.flags) as u32).into_bytes(),
                (b's', Some(m)) => format!(" s{}", m.data.len()).into_bytes(),
                (b'c', Some(m)) => format!(" c{}", m.cas.map_or(0, number)).into_bytes(),
                // Messages never expire.
                (b't', Some(_)) => b" t-1".to_vec(),
                _ => continue,
            };
            out.extend_from_slice(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue_name::NameRules;

    fn parser() -> Parser {
        Parser::new(NameRules::new(1024, 4096, 16384), 1024)
    }

    fn reply_to(line: &[u8], text: &[u8]) -> Vec<u8> {
        let frame = parser().parse(line).expect("a frame");
        frame.dialect.encode(text.to_vec())
    }

    #[test]
    fn mg_with_v_takes_and_returns_the_flags_asked() {
        let frame = parser().parse(b"mg jobs v f t s k Oab c\r\n").unwrap();
        assert_eq!(
            frame.command,
            Command::Get {
                keys: vec![GetKey::plain(b"jobs")],
                cas: true
            }
        );
        let text = b"VALUE jobs -1 2 9\r\nhi\r\nEND\r\n".to_vec();
        assert_eq!(
            frame.dialect.encode(text),
            b"VA 2 f4294967295 t-1 s2 kjobs Oab c9\r\nhi\r\n"
        );
        assert_eq!(
            reply_to(b"mg jobs v Oab k\r\n", b"END\r\n"),
            b"EN Oab kjobs\r\n"
        );
        assert_eq!(reply_to(b"mg jobs v q\r\n", b"END\r\n"), b"");
    }

    #[test]
    fn mg_without_v_looks_only() {
        let frame = parser().parse(b"mg jobs s\r\n").unwrap();
        let Command::Get { keys, .. } = &frame.command else {
            panic!()
        };
        assert!(keys[0].options.is_peek_only());
        let text = b"VALUE jobs/peek 0 2\r\nhi\r\nEND\r\n".to_vec();
        assert_eq!(frame.dialect.encode(text), b"HD s2\r\n");
        let open = parser().parse(b"mg jobs/open\r\n").unwrap();
        assert_eq!(open.command, refused(reply::BAD_FORMAT));
    }

    #[test]
    fn ms_stores_with_its_flags_and_refuses_other_modes() {
        let frame = parser().parse(b"ms jobs 2 F7 T0 q\r\nhi\r\n").unwrap();
        assert_eq!(frame.consumed, 23);
        let Command::Set { record, .. } = &frame.command else {
            panic!()
        };
        assert_eq!(&record[8..], b"jobs\0 7 2\r\nhi\r\n");
        assert_eq!(frame.dialect.encode(b"STORED\r\n".to_vec()), b"");
        let add = parser().parse(b"ms jobs 2 ME\r\n").unwrap();
        assert_eq!((add.command, add.discard), (refused(Reply::NotStored), 4));
        assert_eq!(
            reply_to(b"ms jobs 2 MA Ox\r\nhi\r\n", b"NOT_STORED\r\n"),
            b"NS Ox\r\n"
        );
        assert_eq!(parser().parse(b"ms jobs 2 F7"), None);
    }

    #[test]
    fn base64_keys_md_and_mn() {
        let frame = parser().parse(b"md am9icw== b k q\r\n").unwrap();
        assert_eq!(
            frame.command,
            Command::Delete {
                queue: b"jobs".to_vec()
            }
        );
        assert_eq!(frame.dialect.encode(b"NOT_FOUND\r\n".to_vec()), b"");
        assert_eq!(reply_to(b"md jobs k\r\n", b"DELETED\r\n"), b"HD kjobs\r\n");
        assert_eq!(reply_to(b"mn\r\n", b""), b"MN\r\n");
        let bad = parser().parse(b"mg jobs v Z\r\n").unwrap();
        assert_eq!(bad.command, refused(reply::INVALID_FLAG));
        assert_eq!(reply_to(b"ma jobs q O1\r\n", b""), b"NF O1\r\n");
        assert_eq!(reply_to(b"ma jobs MD C5 N0 J1 D2\r\n", b""), b"NF\r\n");
        assert_eq!(reply_to(b"me jobs\r\n", b""), b"EN\r\n");
    }
}
