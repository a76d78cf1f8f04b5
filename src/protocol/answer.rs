//! Reads back the text replies the executor makes, one answer at a time,
//! so that the binary and meta protocols can say the same thing in their
//! own framing. The executor, the waiting requests and the replication
//! checks all answer in text; only the last step, on the way to the
//! client, differs by protocol.

/// One answer of a text reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// `VALUE <key> <flags> <bytes>[ <cas>]` and its data.
    Value {
        key: &'a [u8],
        /// The flags as the text reply shows them (signed, as stored).
        flags: &'a [u8],
        cas: Option<&'a [u8]>,
        data: &'a [u8],
    },
    /// `STAT <name>[ <value>]` (the value is empty in the names-only
    /// `stats queue` format).
    Stat { name: &'a [u8], value: &'a [u8] },
    /// `VERSION <version>`.
    Version(&'a [u8]),
    /// `CLIENT_ERROR <why>`.
    ClientError(&'a [u8]),
    /// `SERVER_ERROR <why>`.
    ServerError(&'a [u8]),
    /// Any other line: `STORED`, `END`, `DELETED`, `NOT_FOUND`, `ERROR`...
    Word(&'a [u8]),
}

/// A number of a text answer (flags come back signed, as the original
/// stores them: `-1` reads as 4294967295 once cut to 32 bits).
pub fn number(digits: &[u8]) -> u64 {
    let text = std::str::from_utf8(digits).unwrap_or_default();
    text.parse::<u64>()
        .or_else(|_| text.parse::<i64>().map(|v| v as u64))
        .unwrap_or(0)
}

/// The answers of `text`, in order.
pub fn answers(text: &[u8]) -> Answers<'_> {
    Answers { rest: text }
}

/// An iterator over the answers of a text reply.
pub struct Answers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Answers<'a> {
    type Item = Answer<'a>;

    fn next(&mut self) -> Option<Answer<'a>> {
        let end = self.rest.windows(2).position(|w| w == b"\r\n")?;
        let line = &self.rest[..end];
        self.rest = &self.rest[end + 2..];
        let (word, tail) = match line.iter().position(|&b| b == b' ') {
            Some(space) => (&line[..space], &line[space + 1..]),
            None => (line, &b""[..]),
        };
        Some(match word {
            b"VALUE" => {
                let mut fields = tail.split(|&b| b == b' ');
                let key = fields.next().unwrap_or_default();
                let flags = fields.next().unwrap_or_default();
                let len = fields
                    .next()
                    .and_then(|len| std::str::from_utf8(len).ok()?.parse::<usize>().ok())
                    .unwrap_or(0)
                    .min(self.rest.len());
                let cas = fields.next();
                let data = &self.rest[..len];
                self.rest = self.rest[len..].strip_prefix(b"\r\n").unwrap_or_default();
                Answer::Value {
                    key,
                    flags,
                    cas,
                    data,
                }
            }
            b"STAT" => match tail.iter().position(|&b| b == b' ') {
                Some(space) => Answer::Stat {
                    name: &tail[..space],
                    value: &tail[space + 1..],
                },
                None => Answer::Stat {
                    name: tail,
                    value: b"",
                },
            },
            b"VERSION" => Answer::Version(tail),
            b"CLIENT_ERROR" => Answer::ClientError(tail),
            b"SERVER_ERROR" => Answer::ServerError(tail),
            _ => Answer::Word(line),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stats_and_lines() {
        let text = b"VALUE jobs/open 7 5 42\r\nab\r\nc\r\nEND\r\n";
        let got: Vec<Answer> = answers(text).collect();
        assert_eq!(
            got,
            [
                Answer::Value {
                    key: b"jobs/open",
                    flags: b"7",
                    cas: Some(b"42"),
                    data: b"ab\r\nc"
                },
                Answer::Word(b"END")
            ]
        );
        let got: Vec<Answer> = answers(b"STAT pid 7\r\nSTAT jobs\r\nEND\r\n").collect();
        assert_eq!(
            got,
            [
                Answer::Stat {
                    name: b"pid",
                    value: b"7"
                },
                Answer::Stat {
                    name: b"jobs",
                    value: b""
                },
                Answer::Word(b"END")
            ]
        );
        let got: Vec<Answer> = answers(b"SERVER_ERROR out of disk space\r\n").collect();
        assert_eq!(got, [Answer::ServerError(b"out of disk space")]);
        assert_eq!(answers(b"").next(), None);
    }
}
