//! The fixed reply lines. Only three error forms exist: `ERROR`,
//! `CLIENT_ERROR <why>` and `SERVER_ERROR <why>`.

pub const STORED: &[u8] = b"STORED\r\n";
pub const NOT_STORED: &[u8] = b"NOT_STORED\r\n";
pub const END: &[u8] = b"END\r\n";
pub const DELETED: &[u8] = b"DELETED\r\n";
pub const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";
pub const OK: &[u8] = b"OK\r\n";
pub const RESET: &[u8] = b"RESET\r\n";
pub const ERROR: &[u8] = b"ERROR\r\n";
pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
pub const BAD_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
pub const NAME_TOO_LONG_FOR_EXTENTS: &[u8] =
    b"CLIENT_ERROR queue name too long for its extent file names\r\n";
pub const LINE_TOO_LONG: &[u8] = b"CLIENT_ERROR line too long\r\n";
pub const TOO_LARGE: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
pub const DELETE_FAILED: &[u8] = b"SERVER_ERROR while delete a item\r\n";
pub const TOO_MANY_CONNECTIONS: &[u8] = b"SERVER_ERROR too many open connections\r\n";
pub const STORAGE_FAILED: &[u8] = b"SERVER_ERROR storage failure\r\n";
pub const NO_SPACE: &[u8] = b"SERVER_ERROR out of disk space\r\n";
pub const MULTI_PACKET: &[u8] = b"SERVER_ERROR multi-packet request not supported\r\n";
