//! Object ids: a type prefix (`resp`, `msg`, `rs` …) and 192 random bits in hex.

use std::fmt::Write;

/// A new unguessable id such as `resp_3f9c…` (48 hex digits after the prefix).
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 24] = rand::random();
    let mut id = String::with_capacity(prefix.len() + 49);
    id.push_str(prefix);
    id.push('_');
    for byte in bytes {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = super::new_id("resp");
        let b = super::new_id("resp");
        assert!(a.starts_with("resp_") && a.len() == 53, "{a}");
        assert_ne!(a, b);
    }
}
