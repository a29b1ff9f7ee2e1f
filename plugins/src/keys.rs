//! Client keys and their lookup by secret.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Glob;

/// A key a client presents to ezrouter. Only the SHA-256 of its secret is kept.
#[derive(Debug)]
pub struct ClientKey {
    /// A stable, non-secret id for logs, metrics and usage records.
    pub id: Arc<str>,
    pub secret_sha256: [u8; 32],
    /// Models this key may use; empty means none.
    pub models: Vec<Glob>,
}

impl ClientKey {
    pub fn allows(&self, model: &str) -> bool {
        self.models.iter().any(|g| g.matches(model))
    }
}

pub fn sha256(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// All client keys of a config snapshot, indexed by a prefix of their secret's hash.
///
/// A presented secret is hashed, the prefix picks a bucket, and the full hashes are compared in
/// constant time. The bucket choice can leak timing only about the hash, which reveals nothing
/// usable about any secret.
#[derive(Debug, Default)]
pub struct KeyStore {
    buckets: HashMap<u64, Vec<Arc<ClientKey>>>,
}

fn prefix(hash: &[u8; 32]) -> u64 {
    u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"))
}

impl KeyStore {
    pub fn new(keys: impl IntoIterator<Item = ClientKey>) -> Self {
        let mut buckets: HashMap<u64, Vec<Arc<ClientKey>>> = HashMap::new();
        for key in keys {
            buckets
                .entry(prefix(&key.secret_sha256))
                .or_default()
                .push(Arc::new(key));
        }
        KeyStore { buckets }
    }

    pub fn find(&self, secret: &[u8]) -> Option<&Arc<ClientKey>> {
        let hash = sha256(secret);
        self.buckets
            .get(&prefix(&hash))?
            .iter()
            .find(|k| bool::from(k.secret_sha256.ct_eq(&hash)))
    }

    pub fn len(&self) -> usize {
        self.buckets.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_secret_only() {
        let store = KeyStore::new([
            ClientKey {
                id: "a".into(),
                secret_sha256: sha256(b"sk-a"),
                models: vec![],
            },
            ClientKey {
                id: "b".into(),
                secret_sha256: sha256(b"sk-b"),
                models: vec![Glob::Any],
            },
        ]);
        assert_eq!(&*store.find(b"sk-b").unwrap().id, "b");
        assert!(store.find(b"sk-c").is_none());
        assert!(!store.find(b"sk-a").unwrap().allows("m"));
        assert_eq!(store.len(), 2);
    }
}
