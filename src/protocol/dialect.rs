//! How a request was framed, so that its answer goes back the same way.
//! Every command runs and answers in text; a request that came in binary
//! or meta framing has its text answer re-encoded on the way out.

use super::{binary, meta};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Dialect {
    /// The classic text protocol: the answer as it is.
    #[default]
    Text,
    /// memcached's binary protocol.
    Binary(Box<binary::Request>),
    /// memcached's meta commands (`mg`, `ms`, `md`, `mn`).
    Meta(Box<meta::Request>),
}

impl Dialect {
    /// The bytes to send for `text`, the answer in the text protocol.
    pub fn encode(&self, text: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Dialect::Text => return text,
            Dialect::Binary(request) => binary::encode(request, &text, &mut out),
            Dialect::Meta(request) => meta::encode(request, &text, &mut out),
        }
        out
    }
}
