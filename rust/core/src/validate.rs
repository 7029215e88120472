//! Limits and the input checks both storages share: names, ids, keys and pools use one short safe
//! alphabet so they can be embedded in Redis key names and URLs without escaping.

use crate::error::{CoreError, CoreResult};

/// Lowest and highest task priority. Higher runs first.
pub const MIN_PRIORITY: i32 = -1000;
pub const MAX_PRIORITY: i32 = 1000;
/// Longest job name, task id or pool name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest idempotency key.
pub const MAX_KEY_LEN: usize = 256;
/// Most retries a task may ask for.
pub const MAX_RETRIES: u32 = 1000;
/// The alphabet, for messages and docs.
pub const NAME_ALPHABET: &str = "letters, digits and _ - . : @";

fn is_allowed(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':' | b'@')
}

fn check(kind: &str, value: &str, max_len: usize) -> CoreResult<()> {
    if value.is_empty() || value.len() > max_len || !value.bytes().all(is_allowed) {
        let shown: String = value.chars().take(40).collect();
        return Err(CoreError::InvalidName(format!(
            "invalid {kind} {shown:?}: use 1 to {max_len} characters from {NAME_ALPHABET}"
        )));
    }
    Ok(())
}

/// Job names, task ids, pool names and schedule ids.
pub fn name(kind: &str, value: &str) -> CoreResult<()> {
    check(kind, value, MAX_NAME_LEN)
}

/// Idempotency keys.
pub fn key(value: &str) -> CoreResult<()> {
    check("idempotency key", value, MAX_KEY_LEN)
}

pub fn priority(value: i32) -> CoreResult<()> {
    if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&value) {
        return Err(CoreError::InvalidOption(format!(
            "priority {value} is out of range: use an integer from {MIN_PRIORITY} to {MAX_PRIORITY} (higher runs first)"
        )));
    }
    Ok(())
}

pub fn max_retries(value: u32) -> CoreResult<()> {
    if value > MAX_RETRIES {
        return Err(CoreError::InvalidOption(format!(
            "max_retries {value} is too large: use 0 to {MAX_RETRIES}"
        )));
    }
    Ok(())
}

pub fn payload(len: usize, cap: usize) -> CoreResult<()> {
    if len > cap {
        return Err(CoreError::InvalidOption(format!(
            "payload of {len} bytes is over the {cap}-byte cap: store large data elsewhere and pass a reference"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("job name", "email_sender").is_ok());
        assert!(name("job name", "a.b:c-d@e_1").is_ok());
        assert!(name("job name", "").is_err());
        assert!(name("job name", "has space").is_err());
        assert!(name("job name", "slash/").is_err());
        assert!(name("job name", "ünï").is_err());
        assert!(name("job name", &"x".repeat(129)).is_err());
        assert!(key(&"x".repeat(256)).is_ok());
        let msg = name("pool name", "a b").unwrap_err().to_string();
        assert!(
            msg.contains("pool name") && msg.contains("letters"),
            "{msg}"
        );
    }

    #[test]
    fn ranges() {
        assert!(priority(1000).is_ok() && priority(-1000).is_ok());
        assert!(priority(1001).is_err() && priority(-1001).is_err());
        assert!(max_retries(1000).is_ok() && max_retries(1001).is_err());
        assert!(payload(10, 10).is_ok() && payload(11, 10).is_err());
    }
}
