//! One blocking connection: sends a request, reads and checks its reply.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A reply line longer than this is garbage, not a memcache reply.
const MAX_LINE: u64 = 1024;
/// A `VALUE` block longer than this is garbage, not a queue message.
const MAX_DATA: usize = 64 << 20;

/// The byte at `offset` of every message body this tool sends. A fixed
/// pattern, independent of the size, lets a `get` check what it received
/// even when the message was left by an earlier run with another size.
pub fn pattern_byte(offset: usize) -> u8 {
    b'a' + (offset % 26) as u8
}

/// The prebuilt requests for one queue.
pub struct Queue {
    /// The queue name, to check the key echoed in `VALUE`.
    name: Vec<u8>,
    /// `set <name> 0 0 <size>\r\n<data>\r\n`, written in one call.
    set: Vec<u8>,
    /// `get <name>\r\n`.
    get: Vec<u8>,
}

impl Queue {
    pub fn new(name: &str, value_size: usize) -> Queue {
        let mut set = format!("set {name} 0 0 {value_size}\r\n").into_bytes();
        set.extend((0..value_size).map(pattern_byte));
        set.extend_from_slice(b"\r\n");
        Queue {
            name: name.as_bytes().to_vec(),
            set,
            get: format!("get {name}\r\n").into_bytes(),
        }
    }
}

/// How a request went wrong.
#[derive(Debug)]
pub enum RequestError {
    /// The socket failed or timed out.
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// The reply was not what the protocol allows for this request.
    Protocol(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Io(e) if is_timeout(e) => write!(f, "timed out: {e}"),
            RequestError::Io(e) => write!(f, "I/O error: {e}"),
            RequestError::Closed => f.write_str("server closed the connection"),
            RequestError::Protocol(what) => f.write_str(what),
        }
    }
}

impl From<io::Error> for RequestError {
    fn from(e: io::Error) -> RequestError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            RequestError::Closed
        } else {
            RequestError::Io(e)
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What a successful `get` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetOutcome {
    /// A message came back.
    Hit,
    /// `END` alone: the queue was empty.
    Miss,
}

/// A connection with one request in flight at most.
pub struct Client {
    /// Replies are read through a buffer: a `get` reply takes several reads.
    reader: BufReader<TcpStream>,
    /// The same socket, for writing requests.
    writer: TcpStream,
    /// The last reply line, kept to reuse its allocation.
    line: Vec<u8>,
    /// The last `VALUE` data, kept to reuse its allocation.
    data: Vec<u8>,
}

impl Client {
    /// Connects with TCP_NODELAY, and `timeout` on connect, reads and writes.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client {
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(16 * 1024, stream),
            line: Vec::with_capacity(128),
            data: Vec::new(),
        })
    }

    /// Appends a message to `queue`; only `STORED` is a success.
    pub fn set(&mut self, queue: &Queue) -> Result<(), RequestError> {
        self.writer.write_all(&queue.set)?;
        self.read_line()?;
        if self.line != b"STORED\r\n" {
            return Err(unexpected("set", &self.line));
        }
        Ok(())
    }

    /// Takes a message off `queue` (memcached merely reads it). Accepts
    /// `END`, or one `VALUE` for this queue with a well-formed body, then `END`.
    pub fn get(&mut self, queue: &Queue) -> Result<GetOutcome, RequestError> {
        self.writer.write_all(&queue.get)?;
        self.read_line()?;
        if self.line == b"END\r\n" {
            return Ok(GetOutcome::Miss);
        }
        let size = self
            .value_size(&queue.name)
            .ok_or_else(|| unexpected("get", &self.line))?;
        self.data.resize(size + 2, 0);
        self.reader.read_exact(&mut self.data)?;
        if !self.data.ends_with(b"\r\n") {
            return Err(RequestError::Protocol(
                "get: data block does not end in \\r\\n".into(),
            ));
        }
        let body = &self.data[..size];
        if let Some(offset) = (0..size).find(|&i| body[i] != pattern_byte(i)) {
            return Err(RequestError::Protocol(format!(
                "get: message body differs from what was set at byte {offset}"
            )));
        }
        self.read_line()?;
        if self.line != b"END\r\n" {
            return Err(unexpected("get (after VALUE)", &self.line));
        }
        Ok(GetOutcome::Hit)
    }

    /// Reads one line, `\r\n` included, into `self.line`.
    fn read_line(&mut self) -> Result<(), RequestError> {
        self.line.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)?;
        if read == 0 {
            return Err(RequestError::Closed);
        }
        if !self.line.ends_with(b"\n") {
            if (read as u64) < MAX_LINE {
                return Err(RequestError::Closed);
            }
            return Err(RequestError::Protocol(format!(
                "reply line longer than {MAX_LINE} bytes"
            )));
        }
        Ok(())
    }

    /// Parses `VALUE <key> <flags> <bytes>\r\n` in `self.line` and returns
    /// the size, if the line is one and names `key`.
    fn value_size(&self, key: &[u8]) -> Option<usize> {
        let line = self.line.strip_suffix(b"\r\n")?;
        let mut tokens = line.split(|&b| b == b' ');
        if tokens.next()? != b"VALUE" || tokens.next()? != key {
            return None;
        }
        let flags = std::str::from_utf8(tokens.next()?).ok()?;
        flags.parse::<i64>().ok()?;
        let size: usize = std::str::from_utf8(tokens.next()?).ok()?.parse().ok()?;
        if tokens.next().is_some() || size > MAX_DATA {
            return None;
        }
        Some(size)
    }
}

/// A protocol error quoting (the start of) the offending reply.
fn unexpected(request: &str, reply: &[u8]) -> RequestError {
    let text: String = String::from_utf8_lossy(reply)
        .escape_debug()
        .take(100)
        .collect();
    RequestError::Protocol(format!("{request}: unexpected reply \"{text}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-connection server that answers each request line with the next
    /// canned reply (a set's data line is answered too, with nothing).
    fn canned(replies: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut replies = replies.into_iter();
            let mut line = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                    return;
                }
                if line.starts_with(b"set ") {
                    line.clear();
                    reader.read_until(b'\n', &mut line).unwrap();
                }
                match replies.next() {
                    Some(reply) => writer.write_all(reply).unwrap(),
                    None => return,
                }
            }
        });
        addr
    }

    #[test]
    fn accepts_valid_replies() {
        let addr = canned(vec![
            b"STORED\r\n",
            b"VALUE q1 0 5\r\nabcde\r\nEND\r\n",
            b"END\r\n",
            b"VALUE q1 -1 0\r\n\r\nEND\r\n",
        ]);
        let q = Queue::new("q1", 5);
        let mut c = Client::connect(addr, Duration::from_secs(5)).unwrap();
        c.set(&q).unwrap();
        assert_eq!(c.get(&q).unwrap(), GetOutcome::Hit);
        assert_eq!(c.get(&q).unwrap(), GetOutcome::Miss);
        assert_eq!(c.get(&q).unwrap(), GetOutcome::Hit);
    }

    #[test]
    fn rejects_invalid_replies() {
        let q = Queue::new("q1", 5);
        let cases: [(&'static [u8], bool); 7] = [
            (b"NOT_STORED\r\n", true),
            (b"SERVER_ERROR out of memory storing object\r\n", true),
            (b"VALUE q2 0 5\r\nabcde\r\nEND\r\n", false),
            (b"VALUE q1 0 5\r\nabcdX\r\nEND\r\n", false),
            (b"VALUE q1 0 5\r\nabcde\r\nXND\r\n", false),
            (b"VALUE q1 0 3\r\nabcde\r\nEND\r\n", false),
            (b"ERROR\r\n", false),
        ];
        for (reply, is_set) in cases {
            let addr = canned(vec![reply]);
            let mut c = Client::connect(addr, Duration::from_secs(5)).unwrap();
            let result = if is_set {
                c.set(&q).map(|_| GetOutcome::Miss)
            } else {
                c.get(&q)
            };
            assert!(result.is_err(), "{}", String::from_utf8_lossy(reply));
        }
    }

    #[test]
    fn reports_a_closed_connection() {
        let addr = canned(vec![]);
        let mut c = Client::connect(addr, Duration::from_secs(5)).unwrap();
        let q = Queue::new("q1", 5);
        assert!(matches!(c.get(&q), Err(RequestError::Closed)));
    }
}
