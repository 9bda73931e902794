//! Object ids: a type prefix (`resp`, `msg`, `fc`, `conv` …) and a UUID v7 in hex, so ids sort by creation time
//! (stores and lists order by them) while keeping 74 random bits.

/// A new id such as `resp_019ad3c1e2b47c39a1f0c2d4e6f80a1b` (32 hex digits after the prefix).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_distinct_and_time_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_id("resp")).collect();
        assert!(ids.iter().all(|id| id.starts_with("resp_") && id.len() == 37), "{ids:?}");
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "ids are distinct and sort in the order they were made");
    }
}
