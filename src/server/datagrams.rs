//! Serving UDP (-U): each request is one datagram in memcache's UDP
//! framing; its commands join the turn like a connection's, and its
//! replies go back together, in datagrams numbered from 0.

use std::io;

use mio::net::UdpSocket;

use super::command_class::{class_of, ReplySize};
use super::executor::{Entry, Origin, ReplyBounds, LINE_REPLY};
use crate::protocol::{reply, udp, Command, Parser, Refusal};
use crate::stats::Stats;

/// A UDP request's reply may be this many times the request's size, plus
/// one message for a `get` (docs/PROTOCOL.md).
const UDP_REPLY_FACTOR: usize = 8;
/// The largest datagram.
const MAX_DATAGRAM: usize = 65536;

pub struct Datagrams {
    socket: UdpSocket,
    /// Datagrams wait to be read next turn.
    pub ready: bool,
    /// The buffer datagrams are read into.
    buf: Vec<u8>,
}

impl Datagrams {
    pub fn new(socket: UdpSocket) -> Datagrams {
        Datagrams {
            socket,
            ready: false,
            buf: vec![0; MAX_DATAGRAM],
        }
    }

    /// The socket, to register with the poller.
    pub fn socket_mut(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Reads waiting datagrams and turns their commands into `entries`,
    /// until the socket is drained or `entries` holds `limit`.
    /// `bounds` tells the most bytes a reply may take.
    pub fn gather(
        &mut self,
        parser: &Parser,
        bounds: ReplyBounds,
        entries: &mut Vec<Entry>,
        limit: usize,
        stats: &mut Stats,
    ) {
        self.ready = false;
        // Beyond its share, one `get` of one key may bring one message: a
        // message someone had to send, and which the get takes away.
        let message_bound = bounds.of(ReplySize::PerKey(1));
        loop {
            let (len, peer) = match self.socket.recv_from(&mut self.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("udp receive failed: {e}");
                    return;
                }
            };
            stats.bytes_read += len as u64;
            let Some((header, mut payload)) = udp::split(&self.buf[..len]) else {
                continue;
            };
            let origin = Origin::Udp {
                peer,
                request_id: header.request_id,
            };
            if header.total != 1 || header.sequence != 0 {
                send(&self.socket, stats, origin, &reply::MULTI_PACKET.to_vec());
                continue;
            }
            // The reply may not be much larger than the request, so that
            // the server cannot amplify a flood sent with a forged source.
            let mut budget = UDP_REPLY_FACTOR * len;
            let mut one_message = message_bound;
            while let Some(mut frame) = parser.parse(payload) {
                payload = &payload[frame.consumed..];
                let mut class = class_of(&frame.command);
                if class.needs_connection {
                    frame.command = Command::Refused(Refusal::Reply(reply::BAD_FORMAT));
                    class = class_of(&frame.command);
                }
                let bound = bounds.of(class.reply);
                if class.reply == ReplySize::PerKey(1) && bound <= one_message {
                    one_message = 0;
                } else if bound <= budget {
                    budget -= bound;
                } else if budget >= LINE_REPLY {
                    // Refused before it runs: no get takes a message whose
                    // reply could not be sent.
                    budget -= LINE_REPLY;
                    frame.command = Command::Refused(Refusal::Reply(reply::UDP_REPLY_TOO_LARGE));
                } else {
                    // Not even a refusal fits: the rest goes unanswered.
                    break;
                }
                let skip = (frame.discard as usize).min(payload.len());
                payload = &payload[skip..];
                entries.push(Entry {
                    noreply: frame.noreply,
                    dialect: frame.dialect,
                    ..Entry::new(origin, frame.command)
                });
            }
            if entries.len() >= limit {
                // The rest waits in the socket for the next turn.
                self.ready = true;
                return;
            }
        }
    }

    /// Sends the reply of the request from `origin`.
    pub fn reply(&self, origin: Origin, reply: &[u8], stats: &mut Stats) {
        send(&self.socket, stats, origin, reply);
    }
}

/// Sends a UDP reply; a datagram the socket cannot take is dropped, as UDP
/// allows.
fn send(socket: &UdpSocket, stats: &mut Stats, origin: Origin, reply: &[u8]) {
    let Origin::Udp { peer, request_id } = origin else {
        return;
    };
    for datagram in udp::frame_reply(request_id, reply) {
        match socket.send_to(&datagram, peer) {
            Ok(n) => stats.bytes_written += n as u64,
            Err(e) => log::debug!("udp reply to {peer} dropped: {e}"),
        }
    }
}
