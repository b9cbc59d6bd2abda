//! The audit log's hash chain: each event's hash covers its content and the previous hash, so
//! changing, removing or reordering any event breaks every link after it.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an event: SHA-256 over the previous hash and the event's fields, each length-prefixed
/// so that no two different events serialise alike.
pub fn event_hash(
    prev_hash: &str,
    seq: i64,
    deployment_id: Option<i64>,
    at: i64,
    kind: &str,
    actor: &str,
    data: &str,
) -> String {
    let mut h = Sha256::new();
    let deployment = deployment_id.map(|d| d.to_string()).unwrap_or_default();
    for field in [
        prev_hash,
        &seq.to_string(),
        &deployment,
        &at.to_string(),
        kind,
        actor,
        data,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_changes_the_hash() {
        let base = event_hash(GENESIS_HASH, 1, Some(2), 3, "k", "a", "{}");
        assert_ne!(
            base,
            event_hash(GENESIS_HASH, 2, Some(2), 3, "k", "a", "{}")
        );
        assert_ne!(base, event_hash(GENESIS_HASH, 1, None, 3, "k", "a", "{}"));
        assert_ne!(
            base,
            event_hash(GENESIS_HASH, 1, Some(2), 3, "ka", "", "{}")
        );
        assert_ne!(base, event_hash(&base, 1, Some(2), 3, "k", "a", "{}"));
    }
}
