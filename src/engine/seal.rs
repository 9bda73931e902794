//! Sealing compaction summaries into `encrypted_content`: authenticated encryption (ChaCha20-Poly1305) with the
//! server's key and the tenant as associated data, so a compaction item is opaque to clients, opens on every replica
//! (they share the key), and neither a forged one nor another tenant's opens.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The prefix of every sealed content: its format version.
const VERSION: &str = "tl1.";
/// Bytes of a nonce.
const NONCE: usize = 12;

/// What a compaction item stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The summary the upstream wrote.
    pub text: String,
    /// For a compaction made in a turn of a chain or conversation: how many of its turns, from the first, the summary
    /// replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<u32>,
}

/// The server's sealing key.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// A sealer with the key written as base64 (32 bytes).
    pub fn from_base64(key: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| anyhow::anyhow!("the compaction key is not base64"))?;
        anyhow::ensure!(bytes.len() == 32, "the compaction key must be 32 bytes (it is {})", bytes.len());
        Ok(Self { cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)) })
    }

    /// A new random key, written as base64.
    pub fn generate_key() -> String {
        STANDARD.encode(ChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// `value` (a compaction's summary, a waiting background turn's client key) sealed for `tenant`.
    pub fn seal<T: Serialize>(&self, tenant: &str, value: &T) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Serialising structs of strings cannot fail, and encrypting fails only past 256 GiB.
        let plain = serde_json::to_vec(value).unwrap_or_default();
        let sealed = self.cipher.encrypt(&nonce, Payload { msg: &plain, aad: tenant.as_bytes() }).unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The value `sealed` holds, if it was sealed by this server for `tenant`.
    pub fn open<T: DeserializeOwned>(&self, tenant: &str, sealed: &str) -> Option<T> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(VERSION)?).ok()?;
        if bytes.len() < NONCE {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE);
        let plain =
            self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: tenant.as_bytes() }).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_base64(&Sealer::generate_key()).unwrap()
    }

    #[test]
    fn a_sealed_summary_opens_only_for_its_tenant_and_key() {
        let sealer = sealer();
        let summary = Summary { text: "they talked about tea".into(), through: Some(3) };
        let sealed = sealer.seal("alice", &summary);
        assert!(sealed.starts_with("tl1.") && !sealed.contains("tea"));
        assert_eq!(sealer.open("alice", &sealed), Some(summary.clone()));
        assert_eq!(sealer.open::<Summary>("bob", &sealed), None);
        assert_eq!(self::sealer().open::<Summary>("alice", &sealed), None);
        let mut forged = sealed.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(sealer.open::<Summary>("alice", &String::from_utf8(forged).unwrap()), None);
        for junk in ["", "tl1.", "tl1.AAAA", "hello", "tl1.!!!"] {
            assert_eq!(sealer.open::<Summary>("alice", junk), None);
        }
    }

    #[test]
    fn keys_are_checked() {
        assert!(Sealer::from_base64("not base64 !").is_err());
        assert!(Sealer::from_base64(&STANDARD.encode([1u8; 16])).is_err());
        assert!(Sealer::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
    }
}
