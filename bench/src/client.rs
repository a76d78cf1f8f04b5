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

/// A `get` request and the key its `VALUE` line must echo.
struct GetRequest {
    /// `get <key>\r\n`, written in one call.
    bytes: Vec<u8>,
}

impl GetRequest {
    fn new(key: &str) -> GetRequest {
        GetRequest {
            bytes: format!("get {key}\r\n").into_bytes(),
        }
    }

    /// The key: the request without `get ` and `\r\n`. The server echoes
    /// it verbatim, options included.
    fn key(&self) -> &[u8] {
        &self.bytes[4..self.bytes.len() - 2]
    }
}

/// The prebuilt requests for one queue.
pub struct Queue {
    /// The queue name, for the requests built on the fly (`/t=`).
    name: String,
    /// `set <name> 0 0 <size>\r\n<data>\r\n`, written in one call.
    set: Vec<u8>,
    /// `get <name>`.
    get: GetRequest,
    /// `get <name>/open`: lease a message when none is open.
    open: GetRequest,
    /// `get <name>/close/open`: acknowledge the open message, lease the next.
    close_open: GetRequest,
    /// `get <name>/close`: acknowledge the open message, lease nothing.
    close: GetRequest,
}

impl Queue {
    pub fn new(name: &str, value_size: usize) -> Queue {
        let mut set = format!("set {name} 0 0 {value_size}\r\n").into_bytes();
        set.extend((0..value_size).map(pattern_byte));
        set.extend_from_slice(b"\r\n");
        Queue {
            name: name.to_string(),
            set,
            get: GetRequest::new(name),
            open: GetRequest::new(&format!("{name}/open")),
            close_open: GetRequest::new(&format!("{name}/close/open")),
            close: GetRequest::new(&format!("{name}/close")),
        }
    }

    /// `set <name> 0 0 <size>\r\n<data>\r\n`, to pipeline.
    pub fn set_request(&self) -> &[u8] {
        &self.set
    }

    /// `get <name>\r\n`, to pipeline.
    pub fn get_request(&self) -> &[u8] {
        &self.get.bytes
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
    /// The last request built on the fly (`get <q>/t=<ms>`), kept to reuse
    /// its allocation.
    request: Vec<u8>,
}

impl Client {
    /// Connects with TCP_NODELAY, `timeout` on connect and writes, and
    /// `read_timeout` on reads.
    pub fn connect(
        addr: SocketAddr,
        timeout: Duration,
        read_timeout: Duration,
    ) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(read_timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client {
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(16 * 1024, stream),
            line: Vec::with_capacity(128),
            data: Vec::new(),
            request: Vec::with_capacity(64),
        })
    }

    /// Appends a message to `queue`; only `STORED` is a success.
    pub fn set(&mut self, queue: &Queue) -> Result<(), RequestError> {
        self.writer.write_all(&queue.set)?;
        self.read_stored()
    }

    /// Writes `requests` (several, to pipeline them) in one call; their
    /// replies are read with [`Client::read_stored`] and
    /// [`Client::read_got`], in order.
    pub fn send(&mut self, requests: &[u8]) -> Result<(), RequestError> {
        Ok(self.writer.write_all(requests)?)
    }

    /// Reads the reply of a `set`; only `STORED` is a success.
    pub fn read_stored(&mut self) -> Result<(), RequestError> {
        self.read_line()?;
        if self.line != b"STORED\r\n" {
            return Err(unexpected("set", &self.line));
        }
        Ok(())
    }

    /// Reads the reply of a plain `get` of `queue`, as [`Client::get`]
    /// checks it.
    pub fn read_got(&mut self, queue: &Queue) -> Result<GetOutcome, RequestError> {
        self.read_fetched("get", queue.get.key())
    }

    /// Takes a message off `queue` (memcached merely reads it). Accepts
    /// `END`, or one `VALUE` for this queue with a well-formed body, then `END`.
    pub fn get(&mut self, queue: &Queue) -> Result<GetOutcome, RequestError> {
        self.fetch("get", &queue.get)
    }

    /// Leases the oldest message of `queue` that nobody holds: `get
    /// <q>/open`, or with `close_first` `get <q>/close/open`, which first
    /// acknowledges the message this connection holds. `END` means there
    /// was nothing to lease (and, with `close_first`, the held message is
    /// acknowledged all the same).
    pub fn open(&mut self, queue: &Queue, close_first: bool) -> Result<GetOutcome, RequestError> {
        if close_first {
            self.fetch("get/close/open", &queue.close_open)
        } else {
            self.fetch("get/open", &queue.open)
        }
    }

    /// Acknowledges the message this connection holds on `queue`, if any:
    /// `get <q>/close`, whose only right answer is `END`.
    pub fn close(&mut self, queue: &Queue) -> Result<(), RequestError> {
        self.writer.write_all(&queue.close.bytes)?;
        self.read_line()?;
        if self.line != b"END\r\n" {
            return Err(unexpected("get/close", &self.line));
        }
        Ok(())
    }

    /// Takes a message off `queue`, letting the server wait up to `wait_ms`
    /// milliseconds for one: `get <q>/t=<wait_ms>`. `END` means none came.
    pub fn get_wait(&mut self, queue: &Queue, wait_ms: u64) -> Result<GetOutcome, RequestError> {
        let mut request = GetRequest {
            bytes: std::mem::take(&mut self.request),
        };
        request.bytes.clear();
        // Writing into a Vec cannot fail.
        let _ = write!(request.bytes, "get {}/t={wait_ms}\r\n", queue.name);
        let outcome = self.fetch("get/t=", &request);
        self.request = request.bytes;
        outcome
    }

    /// Sends `request` and reads its reply: `END`, or one `VALUE` echoing
    /// the request's key with a well-formed body, then `END`. `what` names
    /// the request in errors.
    fn fetch(&mut self, what: &str, request: &GetRequest) -> Result<GetOutcome, RequestError> {
        self.writer.write_all(&request.bytes)?;
        self.read_fetched(what, request.key())
    }

    /// Reads the reply of a `get` of `key`: `END`, or one `VALUE` echoing
    /// `key` with a well-formed body, then `END`.
    fn read_fetched(&mut self, what: &str, key: &[u8]) -> Result<GetOutcome, RequestError> {
        self.read_line()?;
        if self.line == b"END\r\n" {
            return Ok(GetOutcome::Miss);
        }
        let size = self
            .value_size(key)
            .ok_or_else(|| unexpected(what, &self.line))?;
        self.data.resize(size + 2, 0);
        self.reader.read_exact(&mut self.data)?;
        if !self.data.ends_with(b"\r\n") {
            return Err(RequestError::Protocol(format!(
                "{what}: data block does not end in \\r\\n"
            )));
        }
        let body = &self.data[..size];
        if let Some(offset) = (0..size).find(|&i| body[i] != pattern_byte(i)) {
            return Err(RequestError::Protocol(format!(
                "{what}: message body differs from what was set at byte {offset}"
            )));
        }
        self.read_line()?;
        if self.line != b"END\r\n" {
            return Err(unexpected(&format!("{what} (after VALUE)"), &self.line));
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
    use std::sync::mpsc::{self, Receiver};
    use std::thread;

    fn connect(addr: SocketAddr) -> Client {
        let timeout = Duration::from_secs(5);
        Client::connect(addr, timeout, timeout).unwrap()
    }

    /// A one-connection server that answers each request line with the next
    /// canned reply (a set's data line is answered too, with nothing).
    fn canned(replies: Vec<&'static [u8]>) -> SocketAddr {
        canned_recording(replies).0
    }

    /// [`canned`], also handing over every request line it read.
    fn canned_recording(replies: Vec<&'static [u8]>) -> (SocketAddr, Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (requests, received) = mpsc::channel();
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
                let _ = requests.send(line.clone());
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
        (addr, received)
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
        let mut c = connect(addr);
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
            let mut c = connect(addr);
            let result = if is_set {
                c.set(&q).map(|_| GetOutcome::Miss)
            } else {
                c.get(&q)
            };
            assert!(result.is_err(), "{}", String::from_utf8_lossy(reply));
        }
    }

    #[test]
    fn reliable_reads_echo_their_options() {
        let (addr, requests) = canned_recording(vec![
            b"VALUE q1/open 0 3\r\nabc\r\nEND\r\n",
            b"VALUE q1/close/open 7 3\r\nabc\r\nEND\r\n",
            b"END\r\n",
            b"END\r\n",
        ]);
        let q = Queue::new("q1", 3);
        let mut c = connect(addr);
        assert_eq!(c.open(&q, false).unwrap(), GetOutcome::Hit);
        assert_eq!(c.open(&q, true).unwrap(), GetOutcome::Hit);
        assert_eq!(c.open(&q, true).unwrap(), GetOutcome::Miss);
        c.close(&q).unwrap();
        let sent: Vec<Vec<u8>> = requests.iter().take(4).collect();
        assert_eq!(
            sent,
            [
                &b"get q1/open\r\n"[..],
                b"get q1/close/open\r\n",
                b"get q1/close/open\r\n",
                b"get q1/close\r\n",
            ]
        );
    }

    #[test]
    fn blocking_reads_echo_their_wait() {
        let (addr, requests) = canned_recording(vec![
            b"VALUE q1/t=1000 0 3\r\nabc\r\nEND\r\n",
            b"END\r\n",
            b"VALUE q1/t=25 0 0\r\n\r\nEND\r\n",
        ]);
        let q = Queue::new("q1", 3);
        let mut c = connect(addr);
        assert_eq!(c.get_wait(&q, 1000).unwrap(), GetOutcome::Hit);
        assert_eq!(c.get_wait(&q, 1000).unwrap(), GetOutcome::Miss);
        assert_eq!(c.get_wait(&q, 25).unwrap(), GetOutcome::Hit);
        let sent: Vec<Vec<u8>> = requests.iter().take(3).collect();
        assert_eq!(
            sent,
            [
                &b"get q1/t=1000\r\n"[..],
                b"get q1/t=1000\r\n",
                b"get q1/t=25\r\n",
            ]
        );
    }

    #[test]
    fn option_reads_reject_other_keys_and_errors() {
        type Read = fn(&mut Client, &Queue) -> Result<GetOutcome, RequestError>;
        let open: Read = |c, q| c.open(q, false);
        let close_open: Read = |c, q| c.open(q, true);
        let wait: Read = |c, q| c.get_wait(q, 1000);
        let close: Read = |c, q| c.close(q).map(|()| GetOutcome::Miss);
        let q = Queue::new("q1", 3);
        let cases: [(&'static [u8], Read); 8] = [
            // The plain name where the options should be echoed.
            (b"VALUE q1 0 3\r\nabc\r\nEND\r\n", open),
            (b"VALUE q1/open 0 3\r\nabc\r\nEND\r\n", close_open),
            (b"VALUE q1 0 3\r\nabc\r\nEND\r\n", wait),
            (b"VALUE q1/t=999 0 3\r\nabc\r\nEND\r\n", wait),
            (b"CLIENT_ERROR close current item first\r\n", open),
            (b"CLIENT_ERROR bad command line format\r\n", wait),
            (b"VALUE q1/close 0 3\r\nabc\r\nEND\r\n", close),
            (b"ERROR\r\n", close),
        ];
        for (reply, read) in cases {
            let addr = canned(vec![reply]);
            let mut c = connect(addr);
            assert!(
                read(&mut c, &q).is_err(),
                "{}",
                String::from_utf8_lossy(reply)
            );
        }
    }

    #[test]
    fn reports_a_closed_connection() {
        let addr = canned(vec![]);
        let mut c = connect(addr);
        let q = Queue::new("q1", 5);
        assert!(matches!(c.get(&q), Err(RequestError::Closed)));
    }
}
