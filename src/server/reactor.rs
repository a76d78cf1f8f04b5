//! The event loop: one thread owns every socket and runs every
//! transaction. Each turn reads what arrived on the ready connections (and
//! the UDP socket, `datagrams`), parses it into commands, runs them with
//! one commit for the lot (`executor`), and writes the replies once the
//! commit is durable (`held_turns`). Requests that wait for a message are
//! kept by `waiting`; a long `get` runs in slices (`get_slices`).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::command_class::class_of;
use super::connection::{Connection, Phase};
use super::datagrams::Datagrams;
use super::executor::{Entry, Origin, Outcome};
use super::gather::{Limits, Next, OUTPUT_BACKLOG};
use super::get_slices::GetSlice;
use super::held_turns::HeldTurns;
use super::io_threads::{Done, IoThreads, Job};
use super::metrics::{Counters, Endpoint, EnvProbe, Reason, Scrapes, ServerSample};
use super::site::Site;
use super::socket::{Listener, Listeners, Stream};
use super::waiting::{self, Parked, Waiting};
use super::ServeOptions;
use crate::log_limit;
use crate::protocol::{reply, Dialect, Parser, Reply, MAX_GET_LINE, MAX_LINE};
use crate::stats::Stats;

const LISTENER: Token = Token(usize::MAX - 1);
const STOP: Token = Token(usize::MAX - 2);
/// The poll's one waker: the log flusher settled turns, replication
/// changed role, or the metrics endpoint asks for a snapshot.
const FLUSHED: Token = Token(usize::MAX - 3);
const UDP: Token = Token(usize::MAX - 4);

/// Commands one connection may run per turn, so a pipelining client cannot
/// starve the others; the rest wait for the next turn.
const COMMANDS_PER_CONNECTION: usize = 256;
/// Commands per turn: bounds one transaction's locks (the environment has
/// 40000) and the latency of the turn.
const COMMANDS_PER_TURN: usize = 4096;
/// How long a stopping server goes on writing replies it owes to clients
/// that read slowly.
const SHUTDOWN_WRITE_TIME: Duration = Duration::from_secs(2);

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

pub struct Reactor {
    poll: Poll,
    listener: Listener,
    /// The UDP socket (-U), if any.
    udp: Option<Datagrams>,
    /// Turns readable when serving must stop: the process's signal pipe
    /// (a byte per stop signal), or whatever the caller of `serve` chose.
    stop: UnixStream,
    /// Connection slots, indexed by token.
    conns: Vec<Option<Connection>>,
    /// Accepting stopped on an error such as EMFILE; retried on close.
    accept_paused: bool,
    /// Number given to the last accepted connection.
    next_conn_id: u64,
    /// Free slots in `conns`.
    free: Vec<usize>,
    /// Connections with input to read or parse in the next turn.
    ready: Vec<usize>,
    parser: Parser,
    /// Socket work of the turn, on I/O threads (-t) or here.
    io: IoThreads,
    /// The queues, and what this site may do with them.
    site: Site,
    stats: Stats,
    /// -c.
    max_connections: usize,
    /// Unparsed bytes a connection may hold: the longest possible frame
    /// plus a read chunk.
    read_limit: usize,
    /// The turn's commands, reused between turns.
    entries: Vec<Entry>,
    /// Committed turns whose replies wait for the log flush.
    held: HeldTurns,
    /// Requests waiting for a message (`get <q>/t=<ms>`).
    waiting: Waiting,
    /// Commands and refusals, for the metrics page.
    counters: Counters,
    /// Scrapes of the metrics page (--metrics-listen), if it is served.
    scrapes: Option<Scrapes>,
    /// The metrics page's HTTP thread; stopped when the reactor stops.
    /// Declared after `scrapes`, so dropped after them: a scrape waiting
    /// for a snapshot is let go before the thread is joined.
    endpoint: Option<Endpoint>,
}

impl Reactor {
    /// A reactor serving `listeners` with the queues of `site` until
    /// `stop` turns readable.
    pub fn new(
        listeners: Listeners,
        stop: UnixStream,
        site: Site,
        options: &ServeOptions,
    ) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), FLUSHED)?);
        if let Some(replication) = site.replication() {
            replication.set_waker(waker.clone());
        }
        let env = site.env().clone();
        let (endpoint, scrapes) = match listeners.metrics {
            Some(listener) => {
                let probe = EnvProbe {
                    env: env.clone(),
                    home: site.settings().home.clone(),
                    replication: site.replication().cloned(),
                };
                let (endpoint, asked) = Endpoint::start(listener, waker.clone(), probe)?;
                (Some(endpoint), Some(Scrapes::new(asked)))
            }
            None => (None, None),
        };
        let held = HeldTurns::start(env, waker, options.durability, site.replication().cloned())?;
        let settings = site.settings();
        let record_len = settings.format.record_len;
        let parser = Parser::new(settings.names, record_len);
        let mut reactor = Reactor {
            poll,
            listener: listeners.stream,
            udp: listeners.udp.map(Datagrams::new),
            stop,
            conns: Vec::new(),
            free: Vec::new(),
            next_conn_id: 0,
            accept_paused: false,
            ready: Vec::new(),
            parser,
            io: IoThreads::start(options.threads as usize, parser)?,
            site,
            stats: match &options.report_version {
                Some(version) => Stats::new(options.threads).with_version(version),
                None => Stats::new(options.threads),
            },
            max_connections: options.max_connections,
            read_limit: MAX_GET_LINE.max(MAX_LINE + record_len as usize) + 64 * 1024,
            entries: Vec::new(),
            held,
            waiting: Waiting::default(),
            counters: Counters::default(),
            scrapes,
            endpoint,
        };
        let registry = reactor.poll.registry();
        registry.register(&mut reactor.listener, LISTENER, Interest::READABLE)?;
        registry.register(&mut reactor.stop, STOP, Interest::READABLE)?;
        if let Some(udp) = &mut reactor.udp {
            registry.register(udp.socket_mut(), UDP, Interest::READABLE)?;
        }
        Ok(reactor)
    }

    /// Serves until `stop` turns readable; the turn in progress finishes.
    pub fn run(mut self) -> io::Result<Site> {
        let mut events = Events::with_capacity(1024);
        let mut stopping = false;
        while !stopping {
            let udp_ready = self.udp.as_ref().is_some_and(|u| u.ready);
            let collecting = self.scrapes.as_ref().is_some_and(Scrapes::collecting);
            let idle =
                self.ready.is_empty() && !udp_ready && !self.waiting.has_woken() && !collecting;
            let timeout = if idle {
                self.next_timer()
                    .map(|at| at.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    STOP => stopping = true,
                    FLUSHED => {
                        self.release_durable();
                        if let Some(scrapes) = &mut self.scrapes {
                            scrapes.take_asked();
                        }
                    }
                    UDP => {
                        if let Some(udp) = &mut self.udp {
                            udp.ready = true;
                        }
                    }
                    Token(i) => {
                        if event.is_read_closed() || event.is_error() {
                            self.eof_reported(i);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.mark_ready(i);
                        }
                        if event.is_writable() {
                            self.write_ready(i);
                        }
                    }
                }
            }
            self.site.follow_role();
            self.timers();
            self.turn();
            self.collect_metrics();
        }
        log::info!("stop signal received, shutting down");
        // Its thread holds the environment, which must close after serving;
        // a scrape waiting for a snapshot is let go first (answered 503).
        self.scrapes = None;
        drop(self.endpoint.take());
        for entries in self.held.stop() {
            self.deliver(entries);
        }
        self.answer_waiters();
        self.write_out(&mut events);
        Ok(self.site)
    }

    /// Samples the next slice of queues for a scrape, and answers it once
    /// every queue is in.
    fn collect_metrics(&mut self) {
        let Some(scrapes) = &mut self.scrapes else {
            return;
        };
        let (site, stats, waiting) = (&mut self.site, &self.stats, &self.waiting);
        let done = scrapes.step(|slice, out| {
            site.sample_queues(slice, out, stats, &|queue| waiting.count(queue))
        });
        if done {
            scrapes.finish(ServerSample {
                connections: stats.curr_connections,
                connections_total: stats.total_connections,
                read_bytes: stats.bytes_read,
                written_bytes: stats.bytes_written,
                counters: self.counters.clone(),
                commit: self.held.latency().clone(),
                uptime: stats.started().elapsed(),
            });
        }
    }

    /// At shutdown: every waiting request, parked or woken and not yet
    /// run, is answered `END`, taking nothing.
    fn answer_waiters(&mut self) {
        let ended = self
            .waiting
            .take_all()
            .into_iter()
            .map(waiting::answer_end)
            .collect();
        self.deliver(ended);
    }

    /// At shutdown: writes what is owed to clients that read, for at most
    /// `SHUTDOWN_WRITE_TIME`.
    fn write_out(&mut self, events: &mut Events) {
        let deadline = Instant::now() + SHUTDOWN_WRITE_TIME;
        loop {
            let owed = self
                .conns
                .iter()
                .any(|c| c.as_ref().is_some_and(|c| c.pending_output() > 0));
            let left = deadline.saturating_duration_since(Instant::now());
            if !owed || left.is_zero() {
                return;
            }
            match self.poll.poll(events, Some(left)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
            let writable: Vec<usize> = events
                .iter()
                .filter(|e| e.is_writable())
                .filter_map(|e| (e.token().0 < self.conns.len()).then_some(e.token().0))
                .collect();
            for index in writable {
                self.send(index);
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok(stream) => self.admit(stream),
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Typically EMFILE: the rest wait in the backlog, and
                    // accepting resumes when a connection closes (no new
                    // edge would come for connections already waiting).
                    log_limit::error!("accept", "accept failed: {e}");
                    self.accept_paused = true;
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: Stream) {
        self.next_conn_id += 1;
        let mut conn = Connection::new(stream, self.next_conn_id);
        if self.stats.curr_connections as usize >= self.max_connections {
            conn.queue_reply(&reply::TOO_MANY_CONNECTIONS.to_vec());
            let _ = conn.flush();
            self.counters.refused(Reason::TooManyConnections);
            log::warn!("refused a connection: -c {} reached", self.max_connections);
            return;
        }
        let index = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.stats.connection_structures += 1;
            self.conns.len() - 1
        });
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut conn.stream, Token(index), Interest::READABLE)
        {
            log::error!("registering a connection failed: {e}");
            self.free.push(index);
            return;
        }
        self.conns[index] = Some(conn);
        self.stats.curr_connections += 1;
        self.stats.total_connections += 1;
        self.mark_ready(index);
    }

    fn eof_reported(&mut self, index: usize) {
        if let Some(Some(conn)) = self.conns.get_mut(index) {
            conn.eof_reported = true;
        }
    }

    fn mark_ready(&mut self, index: usize) {
        if let Some(Some(conn)) = self.conns.get_mut(index) {
            if !conn.queued {
                conn.queued = true;
                self.ready.push(index);
            }
        }
    }

    fn write_ready(&mut self, index: usize) {
        self.send(index);
    }

    /// When a waiting request's time or a lease runs out next.
    fn next_timer(&self) -> Option<Instant> {
        let waiter = self.waiting.next_deadline();
        let lease = self.site.next_lease_expiry();
        waiter.into_iter().chain(lease).min()
    }

    /// Leases that ran out give their messages back; waiting requests
    /// whose time is up are answered `END`, as a plain `get` would be.
    fn timers(&mut self) {
        let now = Instant::now();
        if self.site.next_lease_expiry().is_some_and(|at| at <= now) {
            self.site.expire_leases(now);
            self.wake();
        }
        let due = self.waiting.expired(now);
        if !due.is_empty() {
            let due = due.into_iter().map(waiting::answer_end).collect();
            self.deliver(due);
        }
    }

    /// Wakes the requests waiting on queues that got messages, as many per
    /// queue as messages came; they run first next turn.
    fn wake(&mut self) {
        self.waiting.supplied(self.site.take_supplied());
    }

    /// The live connection an entry came from, if it is still there.
    fn connection_of(&self, origin: Origin) -> Option<&Connection> {
        match origin {
            Origin::Conn { index, id } => match self.conns.get(index) {
                Some(Some(conn)) if conn.id == id => Some(conn),
                _ => None,
            },
            Origin::Udp { .. } => None,
        }
    }

    /// Whether the client of `origin` closed its side (or is gone).
    fn client_left(&self, origin: Origin) -> bool {
        match origin {
            Origin::Conn { index, id } => !matches!(
                self.conns.get(index),
                Some(Some(conn)) if conn.id == id && !conn.eof_reported
            ),
            Origin::Udp { .. } => false,
        }
    }

    /// One turn: gather commands from ready connections, run them in one
    /// transaction, then send every reply.
    fn turn(&mut self) {
        // Woken waiters arrived first: they run first (unless their
        // connection is gone: nothing may be taken or leased for it).
        let mut ended = Vec::new();
        for entry in self.waiting.take_woken() {
            if self.connection_of(entry.origin).is_none() {
                continue;
            }
            // A client that closed its side since it was woken takes
            // nothing: `END`, as a plain get on an empty queue.
            if self.client_left(entry.origin) {
                ended.push(waiting::answer_end(entry));
            } else {
                self.entries.push(entry);
            }
        }
        if !ended.is_empty() {
            self.deliver(ended);
        }
        // What arrives from here on is new (woken requests were counted
        // when they first came).
        let arrived = self.entries.len();
        if let Some(udp) = self.udp.as_mut().filter(|u| u.ready) {
            udp.gather(
                &self.parser,
                self.site.reply_bounds(),
                &mut self.entries,
                COMMANDS_PER_TURN,
                &mut self.stats,
            );
        }
        self.gather_ready();
        for entry in &self.entries[arrived..] {
            // A long get is counted once, at its first slice.
            if entry.slice.is_none_or(|s| s == GetSlice::First) {
                self.counters.command(&entry.command);
            }
        }
        if self.entries.is_empty() {
            return;
        }
        let mut entries = std::mem::take(&mut self.entries);
        let waiting = &self.waiting;
        self.site
            .run(&mut entries, &mut self.stats, &|queue| waiting.count(queue));
        self.waiting.found_nothing(&mut entries);
        self.wake();
        // A turn of reads only (stats, peeks; every read of a replica)
        // has nothing of its own to make durable.
        let wrote = self.site.writes() && entries.iter().any(|e| class_of(&e.command).changes_data);
        if let Some(entries) = self.held.committed(entries, wrote) {
            self.deliver(entries);
        }
    }

    /// Sends the replies of every turn the log flusher is done with.
    fn release_durable(&mut self) {
        for entries in self.held.settled() {
            self.deliver(entries);
        }
    }

    /// Queues a committed turn's replies and writes them.
    fn deliver(&mut self, mut entries: Vec<Entry>) {
        let mut touched = Vec::new();
        let mut resume = Vec::new();
        let mut datagram_reply: Option<(Origin, Vec<u8>)> = None;
        for entry in entries.drain(..) {
            let mut entry = if entry.outcome == Outcome::Waiting {
                let client_left = self.client_left(entry.origin);
                match self.waiting.park(entry, client_left, Instant::now()) {
                    Parked::AnswerNow(entry) => waiting::answer_end(entry),
                    Parked::Waiting => continue,
                }
            } else {
                entry
            };
            if log::log_enabled!(log::Level::Debug) {
                let first_line = entry
                    .reply
                    .split(|&b| b == b'\n')
                    .next()
                    .unwrap_or_default();
                log::debug!(
                    "{:?}: {} -> {}",
                    entry.origin,
                    entry.command,
                    String::from_utf8_lossy(first_line).trim_end()
                );
            }
            if entry.outcome == Outcome::Failed {
                self.counters.failed(&entry.reply);
            }
            if entry.noreply {
                entry.reply.clear();
            } else if !matches!(entry.dialect, Dialect::Text) {
                entry.reply = entry.dialect.encode(std::mem::take(&mut entry.reply));
            }
            if let Some((origin, reply)) = datagram_reply.take() {
                if origin == entry.origin {
                    datagram_reply = Some((origin, [reply, entry.reply].concat()));
                    continue;
                }
                self.send_datagrams(origin, &reply);
            }
            let (index, id) = match entry.origin {
                Origin::Conn { index, id } => (index, id),
                udp => {
                    datagram_reply = Some((udp, entry.reply));
                    continue;
                }
            };
            let Some(Some(conn)) = self.conns.get_mut(index) else {
                continue;
            };
            if conn.id != id {
                continue;
            }
            conn.in_flight -= 1;
            conn.reserved -= entry.reserved;
            if conn.phase == Phase::Awaiting
                && (entry.slice.is_some() || class_of(&entry.command).wait.is_some())
            {
                // Its later commands (or slices) waited behind it.
                conn.phase = Phase::Reading;
                resume.push(index);
            }
            if entry.outcome == Outcome::Failed && entry.slice.is_some() {
                // Nothing of the failed slice was taken, and the rest of
                // the get does not run. After values already sent, `END`
                // ends the reply (the failed keys read as empty queues) so
                // that the client keeps those values.
                conn.drop_rest_of_get();
                if entry.slice != Some(GetSlice::First) {
                    entry.reply.clear();
                    Reply::End.encode(&mut entry.reply);
                }
            }
            if !entry.noreply {
                conn.queue_reply(&entry.reply);
            }
            if touched.last() != Some(&index) {
                touched.push(index);
            }
        }
        if let Some((origin, reply)) = datagram_reply {
            self.send_datagrams(origin, &reply);
        }
        if self.entries.capacity() == 0 {
            self.entries = entries;
        }
        self.send_all(touched);
        for index in resume {
            self.mark_ready(index);
        }
    }

    /// Reads the ready connections' input and turns it into commands of
    /// this turn, on the I/O threads.
    fn gather_ready(&mut self) {
        let ready = std::mem::take(&mut self.ready);
        let mut jobs = Vec::with_capacity(ready.len());
        for index in ready {
            let Some(Some(conn)) = self.conns.get_mut(index) else {
                continue;
            };
            conn.queued = false;
            match conn.phase {
                Phase::Closing => continue,
                Phase::Awaiting => {
                    // A client that closed its side while its request
                    // waits gets `END` at once, and nothing is taken.
                    if conn.eof_reported && self.waiting.waits_for(conn.id) {
                        self.end_wait_of(index);
                    }
                    continue;
                }
                Phase::Reading | Phase::Throttled => {}
            }
            if let Some(conn) = self.conns[index].take() {
                jobs.push(Job::Gather(index, conn));
            }
        }
        if jobs.is_empty() {
            return;
        }
        // Each connection's share of the turn's commands.
        let limits = Limits {
            commands: (COMMANDS_PER_TURN / jobs.len()).clamp(1, COMMANDS_PER_CONNECTION),
            read_limit: self.read_limit,
            bounds: self.site.reply_bounds(),
        };
        for done in self.io.run(jobs, &limits) {
            let Done::Gathered {
                index,
                conn,
                next,
                read,
                mut entries,
            } = done
            else {
                continue;
            };
            self.conns[index] = Some(conn);
            self.stats.bytes_read += read as u64;
            self.entries.append(&mut entries);
            match next {
                Next::Done => {}
                Next::Again => self.mark_ready(index),
                Next::Gone => self.close(index),
            }
        }
    }

    fn send_datagrams(&mut self, origin: Origin, reply: &[u8]) {
        if let Some(udp) = &self.udp {
            udp.reply(origin, reply, &mut self.stats);
        }
    }

    /// Writes pending replies; closes when done with a closing connection.
    fn send(&mut self, index: usize) {
        let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let result = conn.flush();
        self.flushed(index, result);
    }

    /// `send` for several connections, on the I/O threads.
    fn send_all(&mut self, indices: Vec<usize>) {
        let jobs: Vec<Job> = indices
            .into_iter()
            .filter_map(|index| {
                let conn = self.conns.get_mut(index).and_then(Option::take)?;
                Some(Job::Flush(index, conn))
            })
            .collect();
        let limits = Limits {
            commands: COMMANDS_PER_CONNECTION,
            read_limit: self.read_limit,
            bounds: self.site.reply_bounds(),
        };
        for done in self.io.run(jobs, &limits) {
            if let Done::Flushed {
                index,
                conn,
                result,
            } = done
            {
                self.conns[index] = Some(conn);
                self.flushed(index, result);
            }
        }
    }

    /// After connection `index` wrote what it could (`result`): asks for
    /// writability while output is left, resumes a throttled connection
    /// whose client read enough, and closes one that is done.
    fn flushed(&mut self, index: usize, result: io::Result<usize>) {
        let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        let pending = conn.pending_output() > 0;
        let finished = conn.finished();
        let resume = conn.phase == Phase::Throttled && conn.owed_output() <= OUTPUT_BACKLOG;
        if resume {
            conn.phase = Phase::Reading;
        }
        let mut interest = None;
        if pending != conn.wants_writable {
            conn.wants_writable = pending;
            interest = Some(if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            });
        }
        let reregistered = match interest {
            Some(i) => self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(index), i),
            None => Ok(()),
        };
        match result {
            Ok(n) => self.stats.bytes_written += n as u64,
            Err(e) => {
                log::debug!("connection {index}: write failed: {e}");
                return self.close(index);
            }
        }
        if finished {
            self.close(index);
        } else if let Err(e) = reregistered {
            log::error!("connection {index}: reregister failed: {e}");
            self.close(index);
        } else if resume {
            self.mark_ready(index);
        }
    }

    /// Ends connection `index`'s waiting request with `END` (its client
    /// closed its side), then goes on with the connection.
    fn end_wait_of(&mut self, index: usize) {
        let Some(Some(conn)) = self.conns.get(index) else {
            return;
        };
        if let Some(entry) = self.waiting.remove_of(conn.id) {
            self.deliver(vec![waiting::answer_end(entry)]);
        }
    }

    fn close(&mut self, index: usize) {
        if let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) {
            // Its waiting request, if any, ends unanswered.
            drop(self.waiting.remove_of(conn.id));
            self.site.release_holder(conn.id);
            self.wake();
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.stats.curr_connections -= 1;
            self.free.push(index);
        }
        if self.accept_paused {
            self.accept_paused = false;
            self.accept_all();
        }
    }
}
