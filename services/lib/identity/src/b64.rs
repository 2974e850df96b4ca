//! Base64url without padding, strict: one canonical encoding per byte string.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes `bytes` as base64url without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical base64url without padding into exactly `N` bytes.
///
/// The engine rejects padding and non-zero trailing bits, so every byte string has one
/// accepted text form.
pub(crate) fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let bytes = [0xffu8; 32];
        let text = encode(&bytes);
        assert_eq!(text.len(), 43);
        assert_eq!(decode_exact::<32>(&text), Some(bytes));
        assert_eq!(decode_exact::<32>(&format!("{text}=")), None);
        assert_eq!(decode_exact::<31>(&text), None);
        // Same length but non-zero trailing bits: not canonical.
        let mut other = text.clone();
        other.pop();
        other.push('_');
        assert_eq!(decode_exact::<32>(&other), None);
        assert_eq!(decode_exact::<32>(&text.replace('_', "/")), None);
    }
}
