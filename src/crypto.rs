//! Credentials and secrets: random tokens with their kind prefixes, SHA-256 lookup hashes, and
//! AEAD sealing of the few values the API must show again (docs/limits.md, docs/security.md).
//!
//! Tokens carry 256 random bits from `getrandom`, hex-encoded behind a prefix that tells the
//! server which table to look in (and lets secret scanners recognise them). Only their SHA-256
//! is used for lookup. Sealed values are XChaCha20-Poly1305 boxes (random 24-byte nonce ||
//! ciphertext) under the 32-byte key in `CCJK_SECRET_KEY_FILE`, with the column's name as
//! associated data so a box cannot be moved to another column. The same key also keys the
//! vault's blind index: an HMAC-SHA256 key derived from it once (`BLIND_INDEX_CONTEXT`), so a
//! secret can be looked up by value without being stored. This module never touches the
//! database.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Prefix of a session token (Sessions, Full).
pub const SESSION_PREFIX: &str = "ccs_";
/// Prefix of a refresh token (Full).
pub const REFRESH_PREFIX: &str = "ccr_";
/// Prefix of an API key (Full).
pub const API_KEY_PREFIX: &str = "cck_";
/// Prefix of a device key (Lite, Full, Control).
pub const DEVICE_PREFIX: &str = "ccjk_";
/// Prefix of an app token (KV).
pub const APP_PREFIX: &str = "cca_";

/// `n` random bytes from the OS. Panics only if the OS has no entropy source, which the
/// server checks at start-up by creating its key.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b
}

/// A fresh credential: `prefix` + 64 hex characters (256 bits).
pub fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", hex(&random_bytes::<32>()))
}

/// SHA-256 of a credential, for lookup.
pub fn sha256(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

/// The part of a credential shown in listings: its prefix and the next 8 characters.
pub fn display_prefix(token: &str) -> String {
    let end = token.find('_').map(|i| i + 9).unwrap_or(8).min(token.len());
    token[..end].to_string()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The bytes of a hex string (either case), or `None` for an odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    b.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// What the blind-index key is derived for: `HMAC-SHA256(server key, BLIND_INDEX_CONTEXT)`.
/// Changing it would orphan every stored blind index.
pub const BLIND_INDEX_CONTEXT: &[u8] = b"ccjk vault blind index v1";

/// Seals and opens secrets under the server key, and computes blind-index MACs under a key
/// derived from it. Neither key leaves this struct.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    /// HMAC-SHA256 keyed with the derived blind-index key, cloned for each MAC.
    blind: Hmac<Sha256>,
}

impl Sealer {
    /// Loads the 32-byte key file, creating it (mode 0600, `create_new`) on first start.
    /// Errors: unreadable file, wrong length.
    pub fn load_or_create(path: &Path) -> io::Result<Sealer> {
        let key = match fs::read(path) {
            Ok(k) => {
                let mode = fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    log::warn!(
                        "secret key file {} is readable by group or others (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    );
                }
                k
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let k = random_bytes::<32>().to_vec();
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                f.write_all(&k)?;
                f.sync_all()?;
                log::info!("created secret key file {}", path.display());
                k
            }
            Err(e) => return Err(e),
        };
        Sealer::from_key(&key).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "secret key file {} must hold exactly 32 bytes",
                    path.display()
                ),
            )
        })
    }

    /// A sealer over raw key bytes (32 of them), for tests.
    pub fn from_key(key: &[u8]) -> Option<Sealer> {
        let cipher = XChaCha20Poly1305::new_from_slice(key).ok()?;
        let mut derive = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
        derive.update(BLIND_INDEX_CONTEXT);
        let blind_key = derive.finalize().into_bytes();
        let blind = <Hmac<Sha256> as KeyInit>::new_from_slice(&blind_key).ok()?;
        Some(Sealer { cipher, blind })
    }

    /// The blind index of a value: HMAC-SHA256 under the derived blind-index key over `parts`,
    /// each prefixed with its length (so `("ab", "c")` and `("a", "bc")` differ). Deterministic
    /// for a given server key; reveals nothing about the value without that key.
    pub fn blind_index(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.blind.clone();
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Seals `plaintext`; `ad` names what it is (e.g. `"devices.key_sealed"`).
    pub fn seal(&self, ad: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<24>();
        let nonce = XNonce::from(nonce_bytes);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: ad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory input");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a box made by `seal` with the same `ad`; `None` if it was tampered with, moved to
    /// another column, or sealed under another key.
    pub fn open(&self, ad: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 24 {
            return None;
        }
        let (n, ct) = sealed.split_at(24);
        let nonce = XNonce::try_from(n).ok()?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ct,
                    aad: ad.as_bytes(),
                },
            )
            .ok()
    }

    /// `open` for a sealed UTF-8 string.
    pub fn open_string(&self, ad: &str, sealed: &[u8]) -> Option<String> {
        self.open(ad, sealed)
            .and_then(|v| String::from_utf8(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_prefix_and_256_bits() {
        let t = new_token(DEVICE_PREFIX);
        assert!(t.starts_with("ccjk_"));
        assert_eq!(t.len(), 5 + 64);
        assert_ne!(t, new_token(DEVICE_PREFIX));
        assert_eq!(display_prefix(&t), &t[..13]);
        assert_eq!(sha256(&t).len(), 32);
    }

    #[test]
    fn sealing_binds_key_and_column() {
        let s = Sealer::from_key(&[7u8; 32]).expect("key");
        let boxed = s.seal("devices.key_sealed", b"ccjk_secret");
        assert!(!boxed.windows(11).any(|w| w == b"ccjk_secret"));
        assert_eq!(
            s.open("devices.key_sealed", &boxed).as_deref(),
            Some(&b"ccjk_secret"[..])
        );
        assert_eq!(s.open("sessions.token_sealed", &boxed), None);
        let other = Sealer::from_key(&[8u8; 32]).expect("key");
        assert_eq!(other.open("devices.key_sealed", &boxed), None);
        assert!(Sealer::from_key(&[1u8; 16]).is_none());
    }

    #[test]
    fn blind_index_is_keyed_deterministic_and_framed() {
        let s = Sealer::from_key(&[7u8; 32]).expect("key");
        let a = s.blind_index(&[b"apiKey", b"sk-123"]);
        assert_eq!(a, s.blind_index(&[b"apiKey", b"sk-123"]));
        assert_ne!(
            a,
            s.blind_index(&[b"apiKe", b"ysk-123"]),
            "parts are framed"
        );
        assert_ne!(a, s.blind_index(&[b"apiKey", b"sk-124"]));
        let other = Sealer::from_key(&[8u8; 32]).expect("key");
        assert_ne!(a, other.blind_index(&[b"apiKey", b"sk-123"]), "keyed");
        let mut raw = <Hmac<Sha256> as KeyInit>::new_from_slice(&[7u8; 32]).expect("hmac");
        raw.update(&6u64.to_be_bytes());
        raw.update(b"apiKey");
        raw.update(&6u64.to_be_bytes());
        raw.update(b"sk-123");
        let under_server_key: [u8; 32] = raw.finalize().into_bytes().into();
        assert_ne!(
            a, under_server_key,
            "the server key itself is not the index key"
        );
    }

    #[test]
    fn key_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("ccjk.key");
        let a = Sealer::load_or_create(&p).expect("create");
        let mode = fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = Sealer::load_or_create(&p).expect("reload");
        let boxed = a.seal("x", b"y");
        assert_eq!(b.open("x", &boxed).as_deref(), Some(&b"y"[..]));
    }
}
