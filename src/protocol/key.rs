//! The key of a `get`: a queue name, then Kestrel's options, each behind a
//! `/` (docs/PROTOCOL.md, "Reliable and blocking reads"). Queue names never
//! contain `/`, so a plain key is a queue name and nothing else.

use std::time::Duration;

/// What a `get` key asks for beyond taking the oldest message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// `/open`: hand out the oldest free message and lease it.
    pub open: bool,
    /// `/close`: delete this connection's open message first.
    pub close: bool,
    /// `/abort`: give this connection's open message back.
    pub abort: bool,
    /// `/peek`: return the oldest free message, neither taken nor leased.
    pub peek: bool,
    /// `/t=<ms>`: wait this long for a message when there is none.
    pub wait: Option<Duration>,
}

impl ReadOptions {
    /// Whether the key is a plain queue name.
    pub fn is_plain(&self) -> bool {
        *self == ReadOptions::default()
    }

    /// Whether the key only looks (`/peek`, perhaps with `/t=`): nothing
    /// taken, leased, closed or given back.
    pub fn is_peek_only(&self) -> bool {
        self.peek && !(self.open || self.close || self.abort)
    }

    /// Whether a message is handed out without being taken off: `/open`
    /// or `/peek`.
    pub fn keeps_message(&self) -> bool {
        self.open || self.peek
    }

    /// Whether a message is handed out at all (`/close` or `/abort`
    /// alone hand out nothing).
    pub fn hands_out(&self) -> bool {
        self.open || self.peek || !(self.close || self.abort)
    }
}

/// One key of a `get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetKey {
    /// The key as the client sent it, echoed in the `VALUE` line.
    pub key: Vec<u8>,
    /// The length of the queue name at its start.
    name_len: usize,
    /// The options after the name.
    pub options: ReadOptions,
}

/// Why a key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// An unknown option, or a `t=` that is not milliseconds.
    BadOption,
    /// Options that contradict each other (`/peek/open`, `/abort/close`).
    Conflict,
}

impl GetKey {
    /// A plain key: the queue name alone.
    pub fn plain(name: &[u8]) -> GetKey {
        GetKey {
            key: name.to_vec(),
            name_len: name.len(),
            options: ReadOptions::default(),
        }
    }

    /// Splits `key` into its queue name and options.
    pub fn parse(key: &[u8]) -> Result<GetKey, KeyError> {
        let mut parts = key.split(|&b| b == b'/');
        let name = parts.next().unwrap_or_default();
        let mut options = ReadOptions::default();
        for option in parts {
            match option {
                b"open" => options.open = true,
                b"close" => options.close = true,
                b"abort" => options.abort = true,
                b"peek" => options.peek = true,
                _ => {
                    let ms = option.strip_prefix(b"t=").ok_or(KeyError::BadOption)?;
                    options.wait = Some(Duration::from_millis(milliseconds(ms)?));
                }
            }
        }
        let conflict = (options.peek && (options.open || options.close || options.abort))
            || (options.abort && (options.open || options.close));
        if conflict {
            return Err(KeyError::Conflict);
        }
        Ok(GetKey {
            key: key.to_vec(),
            name_len: name.len(),
            options,
        })
    }

    /// The queue this key reads.
    pub fn queue(&self) -> &[u8] {
        &self.key[..self.name_len]
    }
}

/// A `t=` value: 1 to 10 decimal digits.
fn milliseconds(digits: &[u8]) -> Result<u64, KeyError> {
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(KeyError::BadOption);
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(KeyError::BadOption)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_are_queue_names() {
        let k = GetKey::parse(b"jobs").unwrap();
        assert_eq!((k.queue(), k.options.is_plain()), (&b"jobs"[..], true));
        assert!(k.options.hands_out() && !k.options.keeps_message());
    }

    #[test]
    fn options_in_any_order() {
        let k = GetKey::parse(b"jobs/t=500/open").unwrap();
        assert_eq!(k.queue(), b"jobs");
        assert_eq!(k.key, b"jobs/t=500/open");
        assert!(k.options.open && !k.options.close);
        assert_eq!(k.options.wait, Some(Duration::from_millis(500)));
        let k = GetKey::parse(b"jobs/open/close").unwrap();
        assert!(k.options.open && k.options.close && k.options.hands_out());
        let k = GetKey::parse(b"jobs/close").unwrap();
        assert!(!k.options.hands_out());
    }

    #[test]
    fn conflicts_and_unknown_options_are_refused() {
        for bad in [
            &b"q/peek/open"[..],
            b"q/close/peek",
            b"q/abort/open",
            b"q/abort/close",
        ] {
            assert_eq!(GetKey::parse(bad), Err(KeyError::Conflict));
        }
        for bad in [
            &b"q/opne"[..],
            b"q/t=",
            b"q/t=5s",
            b"q/t=-1",
            b"q/",
            b"q/t=99999999999",
        ] {
            assert_eq!(GetKey::parse(bad), Err(KeyError::BadOption));
        }
    }
}
