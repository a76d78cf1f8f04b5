//! memcache's UDP framing: every datagram starts with an 8-byte header of
//! four big-endian u16: request id, sequence number, datagram count, and a
//! reserved zero.

/// Largest reply payload per datagram.
pub const MAX_PAYLOAD: usize = 1400;
const HEADER_LEN: usize = 8;

/// The header of a request datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header {
    pub request_id: u16,
    pub sequence: u16,
    pub total: u16,
}

/// Splits a datagram into its header and payload; `None` when too short.
pub fn split(datagram: &[u8]) -> Option<(Header, &[u8])> {
    let h = datagram.get(..HEADER_LEN)?;
    let field = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let header = Header {
        request_id: field(0),
        sequence: field(2),
        total: field(4),
    };
    Some((header, &datagram[HEADER_LEN..]))
}

/// The datagrams carrying `reply` for request `request_id`. The count and
/// sequence fields are 16 bits and must not wrap: a reply is at most
/// `u16::MAX` datagrams, and any more of it is left out (the server caps a
/// UDP reply far below that).
pub fn frame_reply(request_id: u16, reply: &[u8]) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = if reply.is_empty() {
        vec![&[][..]]
    } else {
        reply
            .chunks(MAX_PAYLOAD)
            .take(usize::from(u16::MAX))
            .collect()
    };
    let total = chunks.len() as u16;
    chunks
        .iter()
        .enumerate()
        .map(|(seq, chunk)| {
            let mut d = Vec::with_capacity(HEADER_LEN + chunk.len());
            for field in [request_id, seq as u16, total, 0] {
                d.extend_from_slice(&field.to_be_bytes());
            }
            d.extend_from_slice(chunk);
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_replies_span_numbered_datagrams() {
        let reply = vec![b'x'; 3000];
        let d = frame_reply(7, &reply);
        assert_eq!(d.len(), 3);
        assert_eq!(&d[1][..8], &[0, 7, 0, 1, 0, 3, 0, 0]);
        assert_eq!(d[2].len(), 8 + 200);
        let (h, payload) = split(&d[0]).unwrap();
        assert_eq!((h.request_id, h.sequence, h.total), (7, 0, 3));
        assert_eq!(payload.len(), MAX_PAYLOAD);
    }

    #[test]
    fn counts_and_sequence_numbers_never_wrap() {
        let reply = vec![b'x'; MAX_PAYLOAD * (usize::from(u16::MAX) + 2)];
        let d = frame_reply(1, &reply);
        assert_eq!(d.len(), usize::from(u16::MAX));
        let (h, _) = split(d.last().unwrap()).unwrap();
        assert_eq!((h.sequence, h.total), (u16::MAX - 1, u16::MAX));
    }
}
