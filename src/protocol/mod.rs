//! The memcache protocols MemcacheQ speaks (docs/PROTOCOL.md): the text
//! protocol, memcached's meta commands and its binary protocol. This module
//! does no I/O: `parse` (and `binary`) turn buffered bytes into commands,
//! `reply` encodes every answer in text, and `dialect` re-encodes it for a
//! request that came in meta or binary framing.

mod answer;
pub mod binary;
mod command;
mod dialect;
mod key;
mod meta;
mod numbers;
mod parse;
pub mod reply;
pub mod udp;

pub use command::{Command, Refusal};
pub use dialect::Dialect;
pub use key::{GetKey, ReadOptions};
pub use parse::{Frame, Parser, MAX_GET_LINE, MAX_LINE};
pub use reply::Reply;
