//! The `-Q` overview: for each queue named in `queue.list`, its counters,
//! what `DB->stat` says of its records, and the bytes its files take; and
//! `--peek`, the first messages of one queue read with a cursor (nothing is
//! consumed).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::bdb::{Database, Env, QueueStat, Unthreaded};
use crate::item;
use crate::storage::queue_list::{self, Counts};

/// One queue's line.
#[derive(Debug)]
pub struct QueueLine {
    /// The queue name (also its file name).
    pub name: Vec<u8>,
    /// Its `queue.list` counters.
    pub counts: Counts,
    /// `DB->stat` of its DB_QUEUE database.
    pub stat: QueueStat,
    /// Size of the queue file plus its extent files.
    pub bytes: u64,
}

/// Every `queue.list` entry as (name, counters), in key order.
fn list_entries(env: &Env<Unthreaded>) -> Result<Vec<(Vec<u8>, Counts)>, String> {
    let list = Database::open_readonly(env, queue_list::FILE_NAME.as_bytes())
        .map_err(|e| format!("DB->open: queue.list: {e}"))?;
    queue_list::entries(&list).map_err(|e| format!("queue.list: {e}"))
}

/// Bytes of `home/name` and every `home/__dbq.<name>.<n>` extent file.
fn bytes_on_disk(home: &Path, name: &[u8]) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let dir = if home.as_os_str().is_empty() {
        Path::new(".")
    } else {
        home
    };
    let mut prefix = b"__dbq.".to_vec();
    prefix.extend_from_slice(name);
    prefix.push(b'.');
    let mut total = fs::metadata(dir.join(std::ffi::OsStr::from_bytes(name)))
        .map(|m| m.len())
        .unwrap_or(0);
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.as_bytes();
            let is_extent = file
                .strip_prefix(prefix.as_slice())
                .is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit));
            if is_extent {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// Collects the overview lines, for every queue or only `only`.
pub fn collect(
    env: &Env<Unthreaded>,
    home: &Path,
    only: Option<&str>,
) -> Result<Vec<QueueLine>, String> {
    let mut lines = Vec::new();
    for (name, counts) in list_entries(env)? {
        if only.is_some_and(|q| q.as_bytes() != name.as_slice()) {
            continue;
        }
        let shown = String::from_utf8_lossy(&name).into_owned();
        let db =
            Database::open_readonly(env, &name).map_err(|e| format!("DB->open: {shown}: {e}"))?;
        let stat = db
            .queue_stat()
            .map_err(|e| format!("DB->stat: {shown}: {e}"))?;
        lines.push(QueueLine {
            bytes: bytes_on_disk(home, &name),
            name,
            counts,
            stat,
        });
    }
    if let Some(q) = only {
        if lines.is_empty() {
            return Err(format!("no queue {q:?} in queue.list"));
        }
    }
    Ok(lines)
}

/// A byte string as a JSON string literal. Valid UTF-8 is kept; each byte
/// of an invalid sequence becomes U+FFFD, as `from_utf8_lossy` does.
pub fn json_string(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A byte string for the text output: printable ASCII as is, everything
/// else (and space and backslash) as `\xNN`, so one name is one word.
pub fn text_word(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The `-Q` text: a header, then one aligned line per queue.
pub fn format_text(lines: &[QueueLine]) -> String {
    let mut out = format!(
        "{:<24} {:>10} {:>12} {:>12} {:>10} {:>10} {:>12}\n",
        "queue", "waiting", "set", "get", "first", "next", "bytes"
    );
    for l in lines {
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>12} {:>12} {:>10} {:>10} {:>12}",
            text_word(&l.name),
            l.stat.nkeys,
            l.counts.set,
            l.counts.get,
            l.stat.first_recno,
            l.stat.cur_recno,
            l.bytes
        );
    }
    out
}

/// The `-Q --json` text: one object per line.
pub fn format_json(lines: &[QueueLine]) -> String {
    let mut out = String::new();
    for l in lines {
        let _ = writeln!(
            out,
            "{{\"queue\":{},\"waiting\":{},\"set\":{},\"get\":{},\"first\":{},\"next\":{},\"bytes\":{},\"record_len\":{}}}",
            json_string(&l.name),
            l.stat.nkeys,
            l.counts.set,
            l.counts.get,
            l.stat.first_recno,
            l.stat.cur_recno,
            l.bytes,
            l.stat.re_len
        );
    }
    out
}

/// One message seen by `--peek`.
#[derive(Debug)]
pub struct Peeked {
    /// Its record number.
    pub recno: u32,
    /// Flags as stored (signed decimal, as `get` returns them).
    pub flags: String,
    /// The body without its `\r\n`; `None` when the record does not decode.
    pub body: Option<Vec<u8>>,
}

/// The first `n` records of queue `name`, read with a cursor.
pub fn peek(env: &Env<Unthreaded>, name: &str, n: usize) -> Result<Vec<Peeked>, String> {
    let db = Database::open_readonly(env, name.as_bytes())
        .map_err(|e| format!("DB->open: {name}: {e}"))?;
    let cursor = db.cursor().map_err(|e| format!("{name}: {e}"))?;
    let mut out = Vec::new();
    for entry in cursor.take(n) {
        let (key, data) = entry.map_err(|e| format!("{name}: {e}"))?;
        let recno = key
            .get(..4)
            .map(|k| u32::from_ne_bytes(k.try_into().expect("4 bytes")))
            .unwrap_or(0);
        let (flags, body) = match item::decode(&data) {
            Some(m) => {
                let suffix = String::from_utf8_lossy(m.suffix);
                let flags = suffix.split_whitespace().next().unwrap_or("?").to_string();
                let body = m.data_crlf[..m.data_crlf.len() - 2].to_vec();
                (flags, Some(body))
            }
            None => ("?".to_string(), None),
        };
        out.push(Peeked { recno, flags, body });
    }
    Ok(out)
}

/// `--peek` as text: `#<recno> flags <f> length <n> <escaped body>`.
pub fn format_peek_text(peeked: &[Peeked]) -> String {
    let mut out = String::new();
    for p in peeked {
        match &p.body {
            Some(body) => {
                let _ = writeln!(
                    out,
                    "#{} flags {} length {} {}",
                    p.recno,
                    p.flags,
                    body.len(),
                    body.escape_ascii()
                );
            }
            None => {
                let _ = writeln!(out, "#{} undecodable record", p.recno);
            }
        }
    }
    out
}

/// `--peek --json`: one object per message; the body as a JSON string
/// (lossy for non-UTF-8) and as hex (exact).
pub fn format_peek_json(peeked: &[Peeked]) -> String {
    let mut out = String::new();
    for p in peeked {
        let body = p.body.as_deref().unwrap_or_default();
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(
            out,
            "{{\"recno\":{},\"flags\":{},\"length\":{},\"body\":{},\"body_hex\":\"{hex}\",\"decoded\":{}}}",
            p.recno,
            json_string(p.flags.as_bytes()),
            body.len(),
            json_string(body),
            p.body.is_some()
        );
    }
    out
}

/// Prints the overview (and the peek, if asked).
pub fn run(
    env: &Env<Unthreaded>,
    home: &Path,
    only: Option<&str>,
    peek_n: Option<usize>,
    json: bool,
) -> Result<(), String> {
    let lines = collect(env, home, only)?;
    let mut text = if json {
        format_json(&lines)
    } else {
        format_text(&lines)
    };
    if let (Some(q), Some(n)) = (only, peek_n) {
        let peeked = peek(env, q, n)?;
        text.push_str(&if json {
            format_peek_json(&peeked)
        } else {
            format_peek_text(&peeked)
        });
    }
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json_string(b"\x00\x1f\n"), r#""\u0000\u001f\n""#);
        assert_eq!(json_string("é".as_bytes()), "\"é\"");
        assert_eq!(json_string(b"\xff"), "\"\u{fffd}\"");
    }

    #[test]
    fn text_words_have_no_spaces() {
        assert_eq!(text_word(b"bin.q-1"), "bin.q-1");
        assert_eq!(text_word(b"a b\\"), "a\\x20b\\x5c");
    }
}
