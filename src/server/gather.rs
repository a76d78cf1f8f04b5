//! Taking a connection's commands for a turn: read what arrived, frame it
//! into commands, and stop where the protocol says (the connection's share
//! of the turn, its output limit, a request that waits, a slice of a long
//! `get`, a command that closes). It touches the connection alone, so it
//! runs on the reactor or on an I/O thread alike.

use std::time::Instant;

use super::command_class::class_of;
use super::connection::{Connection, Phase, ReadState};
use super::executor::{Entry, Origin, ReplyBounds};
use super::waiting::Wait;
use crate::protocol::Parser;

/// Reply bytes a connection may be owed (unsent, or reserved by commands
/// in flight) before no more of its commands are taken, even within a turn:
/// a client that sends but never reads holds at most this much memory,
/// plus one command's (or one `get` slice's) reply.
pub const OUTPUT_BACKLOG: usize = 1 << 20;

/// What a turn allows each connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Commands it may take, so a pipelining client cannot starve the
    /// others; the rest wait for the next turn.
    pub commands: usize,
    /// Unparsed bytes it may hold: the longest possible frame plus a read.
    pub read_limit: usize,
    pub bounds: ReplyBounds,
}

/// What a connection needs after gathering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until its socket reports again.
    Done,
    /// Another turn: input or parsed commands are left over.
    Again,
    /// Close it now.
    Gone,
}

/// Reads connection `index`'s input and appends its commands of this turn
/// to `entries`; returns what it needs next and the bytes read. The
/// connection is neither closing nor waiting behind a request.
pub fn gather(
    index: usize,
    conn: &mut Connection,
    parser: &Parser,
    limits: &Limits,
    entries: &mut Vec<Entry>,
) -> (Next, usize) {
    if conn.owed_output() > OUTPUT_BACKLOG {
        conn.phase = Phase::Throttled;
        return (Next::Done, 0);
    }
    let (read, state) = match conn.read(limits.read_limit) {
        Ok(read) => read,
        Err(e) => {
            log::debug!("connection {index}: read failed: {e}");
            return (Next::Gone, 0);
        }
    };
    let keys_per_slice = limits.bounds.keys_per_get_slice();
    let mut count = 0;
    while count < limits.commands {
        if conn.owed_output() > OUTPUT_BACKLOG {
            // The rest waits, parsed or not, until the client reads.
            conn.phase = Phase::Throttled;
            return (Next::Done, read);
        }
        let Some(taken) = conn.next_command(parser, keys_per_slice) else {
            break;
        };
        count += 1;
        let class = class_of(&taken.command);
        let waits = class.wait.is_some();
        let reserved = limits.bounds.of(class.reply);
        conn.in_flight += 1;
        conn.reserved += reserved;
        entries.push(Entry {
            noreply: taken.noreply,
            reserved,
            wait: if waits {
                Wait::from(Instant::now())
            } else {
                Wait::default()
            },
            slice: taken.slice,
            dialect: taken.dialect,
            ..Entry::new(Origin::Conn { index, id: conn.id }, taken.command)
        });
        if class.closes {
            conn.phase = Phase::Closing;
            return (Next::Done, read);
        }
        if waits || taken.slice.is_some() {
            // Its later commands (or slices) wait until it is answered; a
            // FIN read with it is remembered for then.
            conn.phase = Phase::Awaiting;
            if state == ReadState::Closed {
                conn.eof_reported = true;
            }
            return (Next::Done, read);
        }
    }
    if count == limits.commands && conn.has_unparsed() {
        // More complete commands may wait, after the client's FIN too.
        return (Next::Again, read);
    }
    let next = match state {
        ReadState::Closed => {
            // Every command the client sent before its FIN has been taken;
            // what is left is a command it can never finish. Close once
            // the taken ones are answered.
            conn.phase = Phase::Closing;
            if conn.finished() {
                Next::Gone
            } else {
                Next::Done
            }
        }
        ReadState::BufferFull => Next::Again,
        ReadState::Drained => Next::Done,
    };
    (next, read)
}
