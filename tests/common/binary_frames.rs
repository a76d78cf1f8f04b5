//! memcached binary protocol packets as tests write and expect them
//! (docs/PROTOCOL.md, "The binary protocol").

/// A request packet: 24-byte header (magic 0x80), then extras, key, value.
pub fn request(opcode: u8, extras: &[u8], key: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
    packet(0x80, opcode, 0, extras, key, value, opaque, 0)
}

/// A response packet (magic 0x81) as the server must send it.
pub fn response(
    opcode: u8,
    status: u16,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
    opaque: u32,
    cas: u64,
) -> Vec<u8> {
    packet(0x81, opcode, status, extras, key, value, opaque, cas)
}

#[allow(clippy::too_many_arguments)]
fn packet(
    magic: u8,
    opcode: u8,
    status: u16,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
    opaque: u32,
    cas: u64,
) -> Vec<u8> {
    let body = extras.len() + key.len() + value.len();
    let mut p = vec![magic, opcode];
    p.extend_from_slice(&(key.len() as u16).to_be_bytes());
    p.push(extras.len() as u8);
    p.push(0);
    p.extend_from_slice(&status.to_be_bytes());
    p.extend_from_slice(&(body as u32).to_be_bytes());
    p.extend_from_slice(&opaque.to_be_bytes());
    p.extend_from_slice(&cas.to_be_bytes());
    p.extend_from_slice(extras);
    p.extend_from_slice(key);
    p.extend_from_slice(value);
    p
}
