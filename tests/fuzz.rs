//! Fuzzing the framing, bounded in time so that it runs in CI (issue 19):
//! random mixes of well-formed commands, near-misses (bad lengths, stray
//! arguments, long lines, hostile names) and raw garbage, in text and meta
//! commands, and in binary frames (issue 17) with lying lengths, unknown
//! opcodes and garbage after them.
//!
//! - In process, against the parser: it never panics, every frame uses at
//!   least one byte and no more than it was given, and the frames do not
//!   depend on how the bytes were split into reads (the connection buffers
//!   what it has and parses again as more comes).
//! - Against a real server, sent with random write boundaries and
//!   sometimes a half-close: the server stays up, a message stored before
//!   is still there afterwards, and a new client is served normally.
//!
//! `MEMCACHEQ_FUZZ_CASES` (default 256 for the parser, a quarter of that
//! for the server) sets how many inputs run; `MEMCACHEQ_FUZZ_SEED` replays
//! one seed.

mod common;

use common::*;
use memcacheq::protocol::{binary, Command, Parser, Refusal, MAX_LINE};
use memcacheq::queue_name::NameRules;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

const RECORD_LEN: u32 = 1024;

fn runner(cases: u32) -> (TestRunner, u64) {
    let (runner, seed) = seeded_runner("MEMCACHEQ_FUZZ_SEED", cases, 200);
    eprintln!("fuzz: seed {seed}, {cases} inputs (MEMCACHEQ_FUZZ_SEED={seed} replays it)");
    (runner, seed)
}

/// One piece of input.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("q".to_string()),
        Just("fz".to_string()),
        Just("../x".to_string()),
        Just("queue.list".to_string()),
        "[a-z]{1,3}",
        "[ -~]{0,12}",
    ];
    let option = prop_oneof![
        Just(""),
        Just("/open"),
        Just("/close"),
        Just("/abort"),
        Just("/peek"),
        Just("/t=0"),
        Just("/t=x"),
        Just("/open/peek"),
    ];
    let line_end = prop_oneof![Just("\r\n"), Just("\n"), Just(" noreply\r\n"), Just("\r")];
    prop_oneof![
        // A set whose length may not match its block.
        (
            name.clone(),
            0u32..70000,
            any::<u16>(),
            0usize..40,
            line_end.clone()
        )
            .prop_map(|(name, flags, len, body, end)| {
                let len = if len % 3 == 0 {
                    body as u32
                } else {
                    u32::from(len)
                };
                let mut out = format!("set {name} {flags} 0 {len}{end}").into_bytes();
                out.extend(std::iter::repeat_n(b'x', body));
                out.extend_from_slice(b"\r\n");
                out
            }),
        (
            proptest::collection::vec((name.clone(), option), 0..4),
            any::<bool>(),
            line_end
        )
            .prop_map(|(keys, cas, end)| {
                let verb = if cas { "gets" } else { "get" };
                let keys: Vec<String> = keys.into_iter().map(|(n, o)| format!("{n}{o}")).collect();
                format!("{verb} {}{end}", keys.join(" ")).into_bytes()
            }),
        name.clone()
            .prop_map(|n| format!("delete {n}\r\n").into_bytes()),
        prop_oneof![
            Just(&b"stats\r\n"[..]),
            Just(&b"stats queue\r\n"[..]),
            Just(&b"version\r\n"[..]),
            Just(&b"dump_stats\r\n"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"set\r\n"[..]),
            Just(&b"set q 0 0 -1\r\n"[..]),
            Just(&b"set q 0 0 99999999999999999999\r\n"[..]),
            Just(&b"incr q 1\r\n"[..]),
        ]
        .prop_map(<[u8]>::to_vec),
        // A meta command with flags, sensible or not.
        (
            prop_oneof![
                Just("mg"),
                Just("ms"),
                Just("md"),
                Just("mn"),
                Just("ma"),
                Just("me")
            ],
            name.clone(),
            proptest::collection::vec("[vqkbfstcOFMCETZx][0-9A-Za-z=]{0,3}", 0..5),
            0usize..6,
        )
            .prop_map(|(verb, name, flags, body)| {
                let len = if verb == "ms" {
                    format!(" {body}")
                } else {
                    String::new()
                };
                let mut out = format!("{verb} {name}{len} {}\r\n", flags.join(" ")).into_bytes();
                if verb == "ms" {
                    out.extend(std::iter::repeat_n(b'y', body));
                    out.extend_from_slice(b"\r\n");
                }
                out
            }),
        // A line longer than any line may be.
        (0usize..3).prop_map(|n| vec![b'g'; MAX_LINE + n]),
        proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b' '), Just(0u8), any::<u8>()],
            0..48
        ),
    ]
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(piece(), 1..12).prop_map(|pieces| pieces.concat())
}

/// One binary request: a known or random opcode, extras, key and value of
/// random sizes, and a body length that is sometimes a lie.
fn binary_piece() -> impl Strategy<Value = Vec<u8>> {
    let opcode = prop_oneof![
        Just(0x00u8),
        Just(0x01),
        Just(0x04),
        Just(0x09),
        Just(0x0a),
        Just(0x0d),
        Just(0x10),
        Just(0x11),
        Just(0x07),
        any::<u8>(),
    ];
    let key = prop_oneof![
        Just(b"q".to_vec()),
        Just(b"fz/open".to_vec()),
        Just(b"queue".to_vec()),
        Just(b"a b".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..6),
    ];
    (
        opcode,
        prop_oneof![Just(0usize), Just(8), 0usize..24],
        key,
        0usize..40,
        prop_oneof![Just(0i64), Just(0i64), -3i64..3, Just(1 << 31)],
        any::<u32>(),
    )
        .prop_map(|(opcode, extras, key, value, lie, opaque)| {
            let body = (extras + key.len() + value) as i64 + lie;
            let mut out = vec![0x80, opcode];
            out.extend_from_slice(&(key.len() as u16).to_be_bytes());
            out.push(extras as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&(body.clamp(0, u32::MAX.into()) as u32).to_be_bytes());
            out.extend_from_slice(&opaque.to_be_bytes());
            out.extend_from_slice(&[0; 8]);
            out.extend(std::iter::repeat_n(0u8, extras));
            out.extend_from_slice(&key);
            out.extend(std::iter::repeat_n(b'v', value));
            out
        })
}

/// Binary requests, now and then followed by garbage.
fn binary_input() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(binary_piece(), 1..10),
        proptest::collection::vec(any::<u8>(), 0..3),
    )
        .prop_map(|(pieces, garbage)| [pieces.concat(), garbage].concat())
}

/// Where to split an input into reads: cut points as fractions.
fn cuts() -> impl Strategy<Value = Vec<u16>> {
    proptest::collection::vec(any::<u16>(), 0..8)
}

fn parser() -> Parser {
    Parser::new(NameRules::new(RECORD_LEN, 4096, 16), RECORD_LEN)
}

/// The frames of `input` as a connection sees them when the bytes come in
/// `reads`: each read is appended, then every complete frame is parsed and
/// the bytes of a refused block are thrown away as they come. Stops at a
/// frame that closes the connection.
fn frames(parser: &Parser, reads: &[&[u8]], binary: bool) -> Result<Vec<String>, TestCaseError> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut discard = 0u64;
    let mut out = Vec::new();
    for read in reads {
        buffer.extend_from_slice(read);
        loop {
            let skip = discard.min(buffer.len() as u64);
            buffer.drain(..skip as usize);
            discard -= skip;
            if discard > 0 {
                break;
            }
            // The connection's framing is fixed by its first byte.
            let frame = match binary {
                true => binary::parse(parser, &buffer),
                false => parser.parse(&buffer),
            };
            let Some(frame) = frame else {
                break;
            };
            prop_assert!(
                frame.consumed > 0 && frame.consumed <= buffer.len(),
                "a frame used {} of {} bytes",
                frame.consumed,
                buffer.len()
            );
            buffer.drain(..frame.consumed);
            discard = frame.discard;
            let closes = matches!(frame.command, Command::Refused(Refusal::ReplyAndClose(_)));
            out.push(format!(
                "{:?} noreply={} {:?}",
                frame.command, frame.noreply, frame.dialect
            ));
            if closes {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// `input` split at `cuts` (fractions of its length, in 65,535ths).
fn split_at<'a>(input: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    split_at_fractions(input, cuts, usize::from(u16::MAX))
}

#[test]
fn the_parser_frames_any_input_the_same_however_it_is_split() {
    let cases = env_number("MEMCACHEQ_FUZZ_CASES", 256) as u32;
    let (mut runner, seed) = runner(cases);
    let parser = parser();
    let inputs = prop_oneof![
        input().prop_map(|i| (i, false)),
        binary_input().prop_map(|i| (i, true))
    ];
    let result = runner.run(&(inputs, cuts()), |((input, binary), cuts)| {
        let whole = frames(&parser, &[&input], binary)?;
        let split = frames(&parser, &split_at(&input, &cuts), binary)?;
        prop_assert_eq!(whole, split);
        Ok(())
    });
    if let Err(e) = result {
        panic!("parser fuzz (MEMCACHEQ_FUZZ_SEED={seed}): {e}");
    }
}

/// Sends `input` in the pieces `cuts` makes, optionally half-closes, and
/// reads whatever comes back until the server closes or goes quiet.
fn throw_at(port: u16, input: &[u8], cuts: &[u16], half_close: bool) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    for piece in split_at(input, cuts) {
        if stream.write_all(piece).is_err() {
            return;
        }
    }
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return,
            Err(_) => return,
        }
    }
}

#[test]
fn the_server_survives_any_input_and_keeps_what_it_stored() {
    let cases = (env_number("MEMCACHEQ_FUZZ_CASES", 256) / 4).max(1) as u32;
    let (mut runner, seed) = runner(cases);
    let (_home, mut server) = start(&["-N"]);
    let mut keeper = server.client();
    keeper.set("keep", 7, b"kept through the fuzz");
    let port = server.port;
    let inputs = prop_oneof![input(), binary_input()];
    let result = runner.run(&(inputs, cuts(), any::<bool>()), |(input, cuts, half)| {
        throw_at(port, &input, &cuts, half);
        Ok(())
    });
    server.assert_running();
    if let Err(e) = result {
        panic!("server fuzz (MEMCACHEQ_FUZZ_SEED={seed}): {e}");
    }
    let mut fresh = server.client();
    fresh.call(b"version\r\n", b"VERSION 0.2.1\r\n");
    fresh.call(
        b"get keep\r\n",
        &[
            &value_reply(b"keep", "7", b"kept through the fuzz")[..],
            END,
        ]
        .concat(),
    );
    fresh.set("after", 0, b"still serving");
    assert_eq!(
        fresh.get("after").map(|m| m.body),
        Some(b"still serving".to_vec())
    );
}
