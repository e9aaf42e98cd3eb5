//! Random ids of records (instances, pools, policies): a prefix and lowercase hex digits,
//! so they are safe as file names and easy to tell apart.

use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
#[error("cannot draw random bytes for an id: {0}")]
pub struct RandomError(String);

/// `prefix` followed by `bytes` random bytes in hex, e.g. `random_id("i-", 8)` →
/// `i-3f0c…` (16 digits).
pub fn random_id(prefix: &str, bytes: usize) -> Result<String, RandomError> {
    let mut random = vec![0u8; bytes];
    getrandom::fill(&mut random).map_err(|e| RandomError(e.to_string()))?;
    let mut id = String::with_capacity(prefix.len() + 2 * bytes);
    id.push_str(prefix);
    for b in random {
        let _ = write!(id, "{b:02x}");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_and_hex_digits() {
        let a = random_id("pol-", 8).unwrap();
        assert_eq!(a.len(), 4 + 16);
        assert!(a.strip_prefix("pol-").unwrap().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(a, random_id("pol-", 8).unwrap());
    }
}
