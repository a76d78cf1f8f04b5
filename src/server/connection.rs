//! One client connection: its buffers and where it stands in the protocol.

use std::io::{self, Read, Write};

use super::get_slices::{self, GetSlice, RestOfGet};
use super::socket::Stream;
use crate::protocol::{binary, Command, Dialect, Parser};

/// Bytes asked of the socket per read call.
const READ_CHUNK: usize = 16 * 1024;

/// What reading found.
#[derive(Debug, PartialEq)]
pub enum ReadState {
    /// The socket has nothing more for now.
    Drained,
    /// The input buffer is full; more may be waiting in the socket.
    BufferFull,
    /// The client closed its side.
    Closed,
}

/// Where a connection stands in taking commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Its commands are taken as they come.
    Reading,
    /// The replies it is owed reached its limit: none of its commands is
    /// taken until it reads enough of them.
    Throttled,
    /// A request of it is not answered yet, and its later commands wait
    /// behind it: a `get <q>/t=<ms>`, or a slice of a long `get` (the next
    /// slice waits for the one before).
    Awaiting,
    /// Nothing more of its input will run (`quit`, a fatal client error,
    /// or its end of input): it closes once every command already taken
    /// is answered and the answers are written.
    Closing,
}

/// A command taken from a connection.
pub struct Taken {
    pub command: Command,
    /// The client asked for no reply.
    pub noreply: bool,
    /// Which slice of a long `get` it is, if it is one.
    pub slice: Option<GetSlice>,
    /// How its reply goes back.
    pub dialect: Dialect,
}

/// The framing a connection speaks, fixed by its first byte as memcached
/// does: binary requests start with their magic, text (and meta) never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Text,
    Binary,
}

pub struct Connection {
    pub stream: Stream,
    /// Unique for the server's lifetime, unlike the slot it occupies.
    pub id: u64,
    /// Bytes received and not yet parsed are `input[parsed..filled]`; the
    /// rest of `input` is zeroed room for the next read, kept so that reads
    /// do not clear memory each time.
    input: Vec<u8>,
    parsed: usize,
    filled: usize,
    /// Bytes of a refused data block still to be thrown away as they come.
    discard: u64,
    /// Known once the first byte has arrived.
    framing: Option<Framing>,
    /// Replies not yet written start at `output[written..]`.
    output: Vec<u8>,
    written: usize,
    /// Where the connection stands in taking commands.
    pub phase: Phase,
    /// The poller reported the peer's end of input: read on to the end of
    /// the stream even after a short read, or the FIN would go unseen (no
    /// new edge comes for it).
    pub eof_reported: bool,
    /// Commands taken from this connection whose replies are not yet
    /// queued (they wait for their turn's commit and log flush).
    pub in_flight: usize,
    /// Reply bytes reserved by the commands in flight (upper bounds).
    pub reserved: usize,
    /// The keys of a long `get` not taken yet (see `get_slices`).
    rest_of_get: Option<RestOfGet>,
    /// Whether the poller is asked for writability.
    pub wants_writable: bool,
    /// Whether the connection is already in the reactor's ready list.
    pub queued: bool,
}

impl Connection {
    pub fn new(stream: Stream, id: u64) -> Connection {
        Connection {
            stream,
            id,
            input: Vec::new(),
            parsed: 0,
            filled: 0,
            discard: 0,
            framing: None,
            output: Vec::new(),
            written: 0,
            phase: Phase::Reading,
            eof_reported: false,
            in_flight: 0,
            reserved: 0,
            rest_of_get: None,
            wants_writable: false,
            queued: false,
        }
    }

    fn unparsed(&self) -> usize {
        self.filled - self.parsed
    }

    /// Reads until the socket is drained or `limit` unparsed bytes are
    /// buffered; returns the bytes read and the state.
    pub fn read(&mut self, limit: usize) -> io::Result<(usize, ReadState)> {
        self.compact_input();
        let mut total = 0;
        while self.unparsed() < limit {
            if self.input.len() - self.filled < READ_CHUNK {
                self.input.resize(self.filled + READ_CHUNK, 0);
            }
            let room = self.input.len() - self.filled;
            let result = self.stream.read(&mut self.input[self.filled..]);
            if let Ok(n) = result {
                self.filled += n;
            }
            match result {
                Ok(0) => return Ok((total, ReadState::Closed)),
                // A short read emptied the socket buffer: any later data
                // raises a new edge, so the extra read that would only say
                // WouldBlock is skipped (one system call per turn saved).
                Ok(n) if n < room && !self.eof_reported => {
                    return Ok((total + n, ReadState::Drained))
                }
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((total, ReadState::Drained))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok((total, ReadState::BufferFull))
    }

    fn compact_input(&mut self) {
        if self.parsed > 0 {
            self.input.copy_within(self.parsed..self.filled, 0);
            self.filled -= self.parsed;
            self.parsed = 0;
        }
    }

    /// The next command to run: the next slice of a long `get` in
    /// progress, else the next complete request in the input (its bytes
    /// are consumed).
    pub fn next_command(&mut self, parser: &Parser, keys_per_slice: usize) -> Option<Taken> {
        if let Some(rest) = &mut self.rest_of_get {
            let (command, slice) = rest.next(keys_per_slice);
            if slice == GetSlice::Last {
                self.rest_of_get = None;
            }
            return Some(Taken {
                command,
                noreply: false,
                slice: Some(slice),
                dialect: Dialect::Text,
            });
        }
        if self.discard > 0 {
            let n = self.discard.min(self.unparsed() as u64);
            self.parsed += n as usize;
            self.discard -= n;
            if self.discard > 0 {
                return None;
            }
        }
        let unparsed = &self.input[self.parsed..self.filled];
        let framing = *self.framing.get_or_insert(match unparsed.first()? {
            &binary::REQUEST_MAGIC => Framing::Binary,
            _ => Framing::Text,
        });
        let frame = match framing {
            Framing::Text => parser.parse(unparsed)?,
            Framing::Binary => binary::parse(parser, unparsed)?,
        };
        self.parsed += frame.consumed;
        self.discard = frame.discard;
        let (command, sliced) = get_slices::split(frame.command, keys_per_slice);
        let slice = sliced.map(|(slice, rest)| {
            self.rest_of_get = Some(rest);
            slice
        });
        Some(Taken {
            command,
            noreply: frame.noreply,
            slice,
            dialect: frame.dialect,
        })
    }

    /// A slice of a long `get` failed: nothing of it was taken, and the
    /// rest of its keys will not run.
    pub fn drop_rest_of_get(&mut self) {
        self.rest_of_get = None;
    }

    /// Whether unparsed bytes remain (a partial command, or more commands).
    pub fn has_unparsed(&self) -> bool {
        self.unparsed() > 0
    }

    pub fn queue_reply(&mut self, reply: &[u8]) {
        self.output.extend_from_slice(reply);
    }

    /// Bytes of reply waiting to be written.
    pub fn pending_output(&self) -> usize {
        self.output.len() - self.written
    }

    /// Reply bytes the client is owed: written out or still to come.
    pub fn owed_output(&self) -> usize {
        self.pending_output() + self.reserved
    }

    /// Whether the connection has nothing left to do: no more input will
    /// run, and everything taken has been answered and written.
    pub fn finished(&self) -> bool {
        self.phase == Phase::Closing && self.in_flight == 0 && self.pending_output() == 0
    }

    /// Writes as much pending output as the socket takes; returns the bytes
    /// written.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut total = 0;
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
        }
        Ok(total)
    }
}
