//! Number parsing with the original's C semantics (`strtoul`, `strtol`)
//! where docs/PROTOCOL.md ("Numbers") keeps them, and strict parsing where we
//! differ on purpose.

/// Sign and leading decimal digits of `tok`, as `strtol` reads them
/// (after C's white space, which a token can hold as tabs). `None` when the
/// digits overflow 64 bits, where C reports `ERANGE`.
fn leading_number(tok: &[u8]) -> Option<(bool, u64)> {
    let start = tok
        .iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        .unwrap_or(tok.len());
    let tok = &tok[start..];
    let (negative, digits) = match tok.first() {
        Some(b'-') => (true, &tok[1..]),
        Some(b'+') => (false, &tok[1..]),
        _ => (false, tok),
    };
    let mut value: u64 = 0;
    for &b in digits.iter().take_while(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some((negative, value))
}

/// What C's `strtoul` returns for `tok` on a 64-bit machine: a negative
/// number wraps around; `None` where it reports `ERANGE`.
fn strtoul(tok: &[u8]) -> Option<u64> {
    let (negative, v) = leading_number(tok)?;
    Some(if negative { v.wrapping_neg() } else { v })
}

/// Flags, as the original reads them: `strtoul` kept in 32 bits, so `-5`
/// is stored as 4294967291 (echoed `-5`) and 4294967296 as 0; non-numeric
/// text counts as 0. Only what `strtoul` itself refuses is refused.
pub fn flags(tok: &[u8]) -> Option<u32> {
    strtoul(tok).map(|v| v as u32)
}

/// `verbosity <level>`: accepted unless `strtoul` refuses the number.
pub fn verbosity(tok: &[u8]) -> Option<u64> {
    strtoul(tok)
}

/// Expiry time: ignored, but out-of-range values are refused like `strtol`.
pub fn exptime(tok: &[u8]) -> Option<i64> {
    let (negative, v) = leading_number(tok)?;
    if negative {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// Largest data length: the original keeps `length + 2` in a C `int`.
pub const MAX_DATA_LEN: u64 = i32::MAX as u64 - 2;

/// Data length: decimal digits only, at most `MAX_DATA_LEN`.
pub fn data_len(tok: &[u8]) -> Option<u64> {
    if tok.is_empty() || tok.len() > 10 || !tok.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = std::str::from_utf8(tok).ok()?.parse::<u64>().ok()?;
    (v <= MAX_DATA_LEN).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_strtoul_kept_in_32_bits() {
        assert_eq!(flags(b"4294967295"), Some(u32::MAX));
        assert_eq!(flags(b"4294967296"), Some(0));
        assert_eq!(flags(b"abc"), Some(0));
        assert_eq!(flags(b"12abc"), Some(12));
        assert_eq!(flags(b"\t7"), Some(7));
        assert_eq!(flags(b"-1"), Some(u32::MAX));
        assert_eq!(flags(b"-5"), Some(-5i32 as u32));
        assert_eq!(flags(b"18446744073709551615"), Some(u32::MAX));
        assert_eq!(flags(b"18446744073709551616"), None);
        assert_eq!(flags(b"99999999999999999999999"), None);
    }

    #[test]
    fn verbosity_refuses_only_what_strtoul_refuses() {
        assert_eq!(verbosity(b"1"), Some(1));
        assert_eq!(verbosity(b"x"), Some(0));
        assert_eq!(verbosity(b"-1"), Some(u64::MAX));
        assert_eq!(verbosity(b"18446744073709551616"), None);
    }

    #[test]
    fn lengths_are_strict() {
        assert_eq!(data_len(b"3"), Some(3));
        assert_eq!(data_len(b"-1"), None);
        assert_eq!(data_len(b"3x"), None);
        assert_eq!(data_len(b""), None);
        assert_eq!(data_len(b"2147483645"), Some(MAX_DATA_LEN));
        assert_eq!(data_len(b"2147483646"), None);
        assert_eq!(data_len(b"4294967296"), None);
    }

    #[test]
    fn exptime_follows_strtol() {
        assert_eq!(exptime(b"-5"), Some(-5));
        assert_eq!(exptime(b"x"), Some(0));
        assert_eq!(exptime(b"9223372036854775808"), None);
    }
}
