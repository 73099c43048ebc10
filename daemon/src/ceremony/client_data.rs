//! `CollectedClientData` and its JSON serialisation (WebAuthn §5.8.1, §5.8.1.1).
//!
//! The JSON is built byte-for-byte in the order §5.8.1.1 ("limited verification algorithm")
//! fixes: `type`, `challenge`, `origin`, `crossOrigin`. Relying parties that verify with that
//! algorithm compare prefixes, so the order and the absence of whitespace matter; a generic
//! JSON serialiser with a map would not guarantee either. Strings are escaped by `serde_json`,
//! which escapes exactly what JSON requires (quote, backslash, control characters).

use sha2::{Digest, Sha256};

use super::b64url;

/// `webauthn.create` or `webauthn.get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientDataType {
    /// Registration.
    Create,
    /// Authentication.
    Get,
}

impl ClientDataType {
    /// The `type` member.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientDataType::Create => "webauthn.create",
            ClientDataType::Get => "webauthn.get",
        }
    }
}

/// The serialised client data and its SHA-256 (the `clientDataHash` CTAP2 signs over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientData {
    json: Vec<u8>,
    hash: [u8; 32],
}

impl ClientData {
    /// Builds the JSON for `challenge` (raw bytes; encoded as base64url) and `origin`.
    pub fn new(kind: ClientDataType, challenge: &[u8], origin: &str) -> Self {
        let json = format!(
            "{{\"type\":{},\"challenge\":{},\"origin\":{},\"crossOrigin\":false}}",
            json_string(kind.as_str()),
            json_string(&b64url(challenge)),
            json_string(origin),
        )
        .into_bytes();
        let hash = Sha256::digest(&json).into();
        ClientData { json, hash }
    }

    /// The exact bytes (what a relying party receives as `clientDataJSON`).
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// SHA-256 of [`Self::json`].
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn exact_bytes_and_hash() {
        let cd =
            ClientData::new(ClientDataType::Create, &[0xfb, 0xff, 0x00], "https://example.com");
        let expected = r#"{"type":"webauthn.create","challenge":"-_8A","origin":"https://example.com","crossOrigin":false}"#;
        assert_eq!(cd.json(), expected.as_bytes());
        let h: [u8; 32] = Sha256::digest(expected.as_bytes()).into();
        assert_eq!(cd.hash(), &h);
        let get = ClientData::new(ClientDataType::Get, b"", "https://a.test");
        assert_eq!(
            get.json(),
            br#"{"type":"webauthn.get","challenge":"","origin":"https://a.test","crossOrigin":false}"#
        );
    }

    #[test]
    fn origin_is_escaped_and_parses_back() {
        let cd = ClientData::new(ClientDataType::Get, &[1; 32], "https://x.test/\"q\\\n");
        let v: serde_json::Value = serde_json::from_slice(cd.json()).unwrap();
        assert_eq!(v["origin"], "https://x.test/\"q\\\n");
        assert_eq!(v["crossOrigin"], false);
    }
}
