//! A `get` naming many keys runs a slice of keys at a time, so that no
//! single command makes the server hold its whole reply: a line of up to
//! 512 KiB can name about 260,000 queues. Each slice is one command of its
//! turn, and the next is taken only once the one before is answered and
//! the client's unread replies are back under the connection's limit.

use crate::protocol::{Command, GetKey};

/// Where an entry stands in a `get` served in slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetSlice {
    /// The first: its error, if it fails, is the whole get's reply.
    First,
    /// Neither first nor last: its values only.
    Middle,
    /// The last: its values and the `END` of the whole get.
    Last,
}

impl GetSlice {
    /// Whether this slice's reply ends the get (`END`).
    pub fn ends_reply(self) -> bool {
        self == GetSlice::Last
    }
}

/// The keys of a sliced `get` not yet taken.
pub struct RestOfGet {
    keys: std::vec::IntoIter<GetKey>,
    cas: bool,
}

impl RestOfGet {
    /// The next slice of at most `per_slice` keys, and whether it is the
    /// last (then nothing is left).
    pub fn next(&mut self, per_slice: usize) -> (Command, GetSlice) {
        let keys: Vec<GetKey> = self.keys.by_ref().take(per_slice).collect();
        let slice = if self.keys.len() == 0 {
            GetSlice::Last
        } else {
            GetSlice::Middle
        };
        let command = Command::Get {
            keys,
            cas: self.cas,
        };
        (command, slice)
    }
}

/// Splits a `get` of more than `per_slice` keys into its first slice and
/// the rest; any other command comes back whole.
pub fn split(command: Command, per_slice: usize) -> (Command, Option<(GetSlice, RestOfGet)>) {
    match command {
        Command::Get { keys, cas } if keys.len() > per_slice => {
            let mut keys = keys.into_iter();
            let first: Vec<GetKey> = keys.by_ref().take(per_slice).collect();
            let rest = RestOfGet { keys, cas };
            (
                Command::Get { keys: first, cas },
                Some((GetSlice::First, rest)),
            )
        }
        command => (command, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(n: usize) -> Command {
        let keys = (0..n)
            .map(|i| GetKey::plain(format!("q{i}").as_bytes()))
            .collect();
        Command::Get { keys, cas: true }
    }

    fn names(command: &Command) -> Vec<String> {
        match command {
            Command::Get { keys, cas: true } => keys
                .iter()
                .map(|k| String::from_utf8_lossy(&k.key).into_owned())
                .collect(),
            other => panic!("not a gets: {other}"),
        }
    }

    #[test]
    fn a_short_get_stays_whole() {
        let (command, rest) = split(get(3), 3);
        assert_eq!(names(&command), ["q0", "q1", "q2"]);
        assert!(rest.is_none());
    }

    #[test]
    fn a_long_get_runs_in_order_in_slices() {
        let (first, rest) = split(get(7), 3);
        assert_eq!(names(&first), ["q0", "q1", "q2"]);
        let (slice, mut rest) = rest.expect("sliced");
        assert_eq!(slice, GetSlice::First);
        let (middle, slice) = rest.next(3);
        assert_eq!(
            (names(&middle), slice),
            (
                vec!["q3".into(), "q4".into(), "q5".into()],
                GetSlice::Middle
            )
        );
        let (last, slice) = rest.next(3);
        assert_eq!(
            (names(&last), slice),
            (vec!["q6".to_string()], GetSlice::Last)
        );
        assert!(slice.ends_reply() && !GetSlice::Middle.ends_reply());
    }
}
