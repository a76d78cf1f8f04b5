//! The memcache text protocol subset MemcacheQ speaks (docs/PROTOCOL.md).
//! This module does no I/O: `parse` turns buffered bytes into commands and
//! `reply` holds the fixed answers.

mod command;
mod numbers;
mod parse;
pub mod reply;
pub mod udp;

pub use command::Command;
pub use parse::{Frame, Parser, MAX_GET_LINE, MAX_LINE};
