//! Password hashes as RabbitMQ stores them, so a definitions export from RabbitMQ logs in
//! here unchanged: `base64(salt ++ H(salt ++ password))` with a 4-byte salt, H being
//! SHA-256 (`rabbit_password_hashing_sha256`, the default) or SHA-512.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256, Sha512};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// RabbitMQ's name for the default algorithm.
pub(crate) const SHA256: &str = "rabbit_password_hashing_sha256";
const SHA512: &str = "rabbit_password_hashing_sha512";

/// A stored credential: never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswordHash {
    /// `rabbit_password_hashing_sha256` or `..._sha512`.
    pub(crate) algorithm: String,
    /// salt ++ digest; empty for a user without a password (cannot log in with one).
    pub(crate) bytes: Vec<u8>,
}

impl PasswordHash {
    /// A fresh salted SHA-256 hash of `password`.
    pub(crate) fn new(password: &str) -> PasswordHash {
        let salt = salt();
        let mut bytes = salt.to_vec();
        bytes.extend(digest(SHA256, &salt, password.as_bytes()).unwrap_or_default());
        PasswordHash {
            algorithm: SHA256.into(),
            bytes,
        }
    }

    /// No password at all: RabbitMQ's `password_hash: ""`.
    pub(crate) fn none() -> PasswordHash {
        PasswordHash {
            algorithm: SHA256.into(),
            bytes: Vec::new(),
        }
    }

    /// From a definitions file's `password_hash` and `hashing_algorithm`.
    pub(crate) fn parse(encoded: &str, algorithm: Option<&str>) -> Result<PasswordHash, String> {
        let algorithm = algorithm.unwrap_or(SHA256);
        if algorithm != SHA256 && algorithm != SHA512 {
            return Err(format!(
                "unsupported hashing_algorithm '{algorithm}' (use {SHA256} or {SHA512})"
            ));
        }
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("password_hash is not base64: {e}"))?;
        Ok(PasswordHash {
            algorithm: algorithm.into(),
            bytes,
        })
    }

    /// The `password_hash` field as RabbitMQ shows it.
    pub(crate) fn encoded(&self) -> String {
        STANDARD.encode(&self.bytes)
    }

    /// Does `password` match? Compared without an early exit so timing reveals nothing.
    pub(crate) fn verify(&self, password: &str) -> bool {
        if self.bytes.len() <= 4 {
            return false;
        }
        let (salt, want) = self.bytes.split_at(4);
        let Some(got) = digest(&self.algorithm, salt, password.as_bytes()) else {
            return false;
        };
        got.len() == want.len() && got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

fn digest(algorithm: &str, salt: &[u8], password: &[u8]) -> Option<Vec<u8>> {
    match algorithm {
        SHA256 => Some(
            Sha256::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
        ),
        SHA512 => Some(
            Sha512::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
        ),
        _ => None,
    }
}

/// Four unpredictable bytes: a randomly keyed SipHash of a counter and the clock. A salt
/// only has to differ between hashes, so this needs no cryptographic generator.
fn salt() -> [u8; 4] {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    let v = h.finish().to_le_bytes();
    [v[0], v[1], v[2], v[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_its_own_hashes_and_salts_each() {
        let a = PasswordHash::new("s3cret");
        let b = PasswordHash::new("s3cret");
        assert!(a.verify("s3cret"));
        assert!(!a.verify("s3cret "));
        assert_ne!(a.bytes, b.bytes, "each hash has its own salt");
        assert!(!PasswordHash::none().verify(""));
    }

    #[test]
    fn verifies_a_hash_exported_by_rabbitmq() {
        // `rabbitmqctl add_user bob secret` on RabbitMQ 3.10, then GET /api/users/bob.
        let h =
            PasswordHash::parse("lXS3bqSeWTe8YOBgX7qA1xZ0+Y/QbhWV05qzFGlzvUCtIXGX", None).unwrap();
        assert!(h.verify("secret"));
        assert!(!h.verify("Secret"));
        assert!(PasswordHash::parse("x", Some("rabbit_password_hashing_md5")).is_err());
    }
}
