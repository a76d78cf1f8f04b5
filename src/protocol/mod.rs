//! The memcache text protocol subset MemcacheQ speaks (docs/PROTOCOL.md).
//! This module does no I/O: `parse` turns buffered bytes into commands and
//! `reply` encodes every answer.

mod command;
mod key;
mod numbers;
mod parse;
pub mod reply;
pub mod udp;

pub use command::{Command, Refusal};
pub use key::{GetKey, ReadOptions};
pub use parse::{Frame, Parser, MAX_GET_LINE, MAX_LINE};
pub use reply::Reply;
