//! AAGUID → friendly authenticator name.
//!
//! A built-in table covers the authenticators lab rigs meet most (Microsoft Authenticator, the big
//! platform passkey providers; shared/notes/entra-and-field-facts.md). A user-supplied FIDO
//! Metadata Service (MDS3) blob extends it offline: either the signed JWT as downloaded
//! (`header.payload.signature`, payload = base64url JSON) or the bare payload JSON.
//!
//! The MDS3 JWT signature is **not** verified here: the blob supplies display names and the
//! attestation roots a lab *chooses* to trust by passing it (`--mds FILE`); names from it are
//! shown as "from metadata, unverified". Each entry's `attestationRootCertificates` (base64 DER)
//! is kept per AAGUID for [`super::chain::verify_x5c`].
//!
//! An all-zero AAGUID is reported as such ("no AAGUID (all zero)"): phones over hybrid
//! (Google Play Services) send it, and guessing a name would mislead.

use base64::Engine as _;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// A 16-byte authenticator attestation GUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Aaguid(pub [u8; 16]);

impl Aaguid {
    /// The all-zero AAGUID sent by authenticators that do not identify their model.
    pub const ZERO: Aaguid = Aaguid([0; 16]);

    /// Whether this is the all-zero AAGUID.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Display for Aaguid {
    /// The canonical 8-4-4-4-12 lower-case form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(f, "{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }
}

impl fmt::Debug for Aaguid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Aaguid({self})")
    }
}

impl FromStr for Aaguid {
    type Err = MdsError;
    /// Accepts the dashed form or 32 hex digits, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let compact: String = s.chars().filter(|c| *c != '-').collect();
        let bytes = hex::decode(&compact).map_err(|_| MdsError::BadAaguid(s.to_owned()))?;
        let arr: [u8; 16] = bytes.try_into().map_err(|_| MdsError::BadAaguid(s.to_owned()))?;
        Ok(Aaguid(arr))
    }
}

/// Where a name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// The built-in table.
    BuiltIn,
    /// A user-supplied MDS3 blob (signature not verified).
    Metadata,
}

/// Errors loading a metadata blob.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdsError {
    /// Not JSON, and not a JWT whose payload is JSON.
    NotMetadata(String),
    /// The JSON has no `entries` array.
    NoEntries,
    /// An AAGUID string that is not 16 bytes of hex.
    BadAaguid(String),
    /// An `attestationRootCertificates` item that is not base64.
    BadRoot {
        /// The entry's AAGUID.
        aaguid: String,
        /// Which item.
        index: usize,
    },
}

impl fmt::Display for MdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MdsError::NotMetadata(why) => {
                write!(f, "metadata blob is neither MDS3 JSON nor an MDS3 JWT: {why}")
            }
            MdsError::NoEntries => write!(f, "metadata blob has no \"entries\" array"),
            MdsError::BadAaguid(s) => write!(f, "not an AAGUID: {s:?}"),
            MdsError::BadRoot { aaguid, index } => {
                write!(f, "entry {aaguid}: attestationRootCertificates[{index}] is not base64 DER")
            }
        }
    }
}

impl std::error::Error for MdsError {}

/// Built-in names (shared/notes/entra-and-field-facts.md).
const BUILT_IN: &[(&str, &str)] = &[
    ("de1e552d-db1d-4423-a619-566b625cdc84", "Microsoft Authenticator (Android)"),
    ("90a3ccdf-635c-4729-a248-9b709135078f", "Microsoft Authenticator (iOS)"),
    ("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4", "Google Password Manager"),
    ("fbfc3007-154e-4ecc-8c0b-6e020557d7bd", "iCloud Keychain"),
    ("08987058-cadc-4b81-b6e1-30de50dcbe96", "Windows Hello"),
    ("9ddd1817-af5a-4672-a2b9-3e3dd95000a9", "Windows Hello"),
    ("6028b017-b1d4-4c02-b4b3-afcdafc96bb2", "Windows Hello"),
    ("bada5566-a7aa-401f-bd96-45619a55120d", "1Password"),
    ("d548826e-79b4-db40-a3d8-11116f7e8349", "Bitwarden"),
    ("adce0002-35bc-c60a-648b-0b25f1f05503", "Chrome on Mac"),
];

/// The lookup table: built-in names, optionally extended by metadata.
#[derive(Debug, Clone)]
pub struct AaguidTable {
    names: HashMap<Aaguid, (String, NameSource)>,
    /// DER attestation root certificates per AAGUID, from metadata only.
    roots: HashMap<Aaguid, Vec<Vec<u8>>>,
}

impl Default for AaguidTable {
    fn default() -> Self {
        Self::built_in()
    }
}

impl AaguidTable {
    /// The built-in table only.
    pub fn built_in() -> Self {
        let mut names = HashMap::new();
        for (id, name) in BUILT_IN {
            if let Ok(a) = id.parse::<Aaguid>() {
                names.insert(a, ((*name).to_owned(), NameSource::BuiltIn));
            }
        }
        Self { names, roots: HashMap::new() }
    }

    /// Adds every entry of an MDS3 blob (JWT or payload JSON): names and attestation roots.
    /// Built-in names win on conflict: they were checked against the vendors' documentation;
    /// roots are always taken (the built-in table has none). Returns how many names were added.
    pub fn extend_from_mds(&mut self, blob: &[u8]) -> Result<usize, MdsError> {
        let json = mds_payload(blob)?;
        let entries = json.get("entries").and_then(|e| e.as_array()).ok_or(MdsError::NoEntries)?;
        let mut added = 0;
        for entry in entries {
            let Some(id) = entry.get("aaguid").and_then(|a| a.as_str()) else {
                continue; // U2F/UAF entries carry AAIDs or key identifiers, not AAGUIDs.
            };
            let aaguid: Aaguid = id.parse()?;
            let statement = entry.get("metadataStatement");
            let roots = statement
                .and_then(|m| m.get("attestationRootCertificates"))
                .and_then(|r| r.as_array())
                .map(Vec::as_slice)
                .unwrap_or_default();
            for (index, root) in roots.iter().enumerate() {
                // MDS3 §3.2: base64 (not base64url) of the DER certificate.
                let der = root
                    .as_str()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
                    .ok_or_else(|| MdsError::BadRoot { aaguid: aaguid.to_string(), index })?;
                let list = self.roots.entry(aaguid).or_default();
                if !list.contains(&der) {
                    list.push(der);
                }
            }
            let Some(desc) = statement.and_then(|m| m.get("description")).and_then(|d| d.as_str())
            else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(v) = self.names.entry(aaguid) {
                v.insert((desc.to_owned(), NameSource::Metadata));
                added += 1;
            }
        }
        Ok(added)
    }

    /// The attestation root certificates (DER) metadata gave for `aaguid`; empty when none.
    pub fn roots(&self, aaguid: &Aaguid) -> &[Vec<u8>] {
        self.roots.get(aaguid).map(Vec::as_slice).unwrap_or_default()
    }

    /// Checks a packed statement's `x5c` against the roots for `aaguid`.
    pub fn verify_chain(&self, aaguid: &Aaguid, x5c: &[Vec<u8>]) -> super::chain::ChainStatus {
        super::chain::verify_x5c(x5c, self.roots(aaguid))
    }

    /// The friendly name and where it came from; `None` when unknown or all-zero.
    pub fn lookup(&self, aaguid: &Aaguid) -> Option<(&str, NameSource)> {
        self.names.get(aaguid).map(|(n, s)| (n.as_str(), *s))
    }

    /// A human description that never guesses: the name, "no AAGUID (all zero)", or "unknown".
    pub fn describe(&self, aaguid: &Aaguid) -> String {
        if aaguid.is_zero() {
            return "no AAGUID (all zero; typical of phones over hybrid)".to_owned();
        }
        match self.lookup(aaguid) {
            Some((name, NameSource::BuiltIn)) => name.to_owned(),
            Some((name, NameSource::Metadata)) => format!("{name} (from metadata, unverified)"),
            None => format!("unknown authenticator {aaguid}"),
        }
    }
}

fn mds_payload(blob: &[u8]) -> Result<serde_json::Value, MdsError> {
    let text = std::str::from_utf8(blob).map_err(|_| MdsError::NotMetadata("not UTF-8".into()))?;
    let text = text.trim();
    if text.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| MdsError::NotMetadata(e.to_string()));
    }
    let mut parts = text.split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MdsError::NotMetadata("expected JSON or a three-part JWT".into()));
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| MdsError::NotMetadata(format!("JWT payload is not base64url: {e}")))?;
    serde_json::from_slice(&raw).map_err(|e| MdsError::NotMetadata(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_both_forms() {
        let a: Aaguid = "DE1E552DDB1D4423A619566B625CDC84".parse().unwrap();
        assert_eq!(a.to_string(), "de1e552d-db1d-4423-a619-566b625cdc84");
        assert!("de1e552d".parse::<Aaguid>().is_err());
        assert!("zz1e552d-db1d-4423-a619-566b625cdc84".parse::<Aaguid>().is_err());
    }

    #[test]
    fn built_in_names_and_zero() {
        let t = AaguidTable::built_in();
        let ms: Aaguid = "90a3ccdf-635c-4729-a248-9b709135078f".parse().unwrap();
        assert_eq!(t.describe(&ms), "Microsoft Authenticator (iOS)");
        assert!(t.describe(&Aaguid::ZERO).contains("all zero"));
        assert!(t.lookup(&Aaguid::ZERO).is_none());
        let other = Aaguid([7; 16]);
        assert_eq!(
            t.describe(&other),
            "unknown authenticator 07070707-0707-0707-0707-070707070707"
        );
    }

    #[test]
    fn mds_json_and_jwt_extend_without_overriding_built_ins() {
        let payload = r#"{"no":1,"entries":[
            {"aaguid":"cb69481e-8ff7-4039-93ec-0a2729a154a8","metadataStatement":{"description":"YubiKey 5 Series"}},
            {"aaguid":"de1e552d-db1d-4423-a619-566b625cdc84","metadataStatement":{"description":"spoofed"}},
            {"aaid":"4e4e#4005","metadataStatement":{"description":"UAF thing"}}]}"#;
        let mut t = AaguidTable::built_in();
        assert_eq!(t.extend_from_mds(payload.as_bytes()), Ok(1));
        let yk: Aaguid = "cb69481e-8ff7-4039-93ec-0a2729a154a8".parse().unwrap();
        assert_eq!(t.describe(&yk), "YubiKey 5 Series (from metadata, unverified)");
        let ms: Aaguid = "de1e552d-db1d-4423-a619-566b625cdc84".parse().unwrap();
        assert_eq!(t.lookup(&ms), Some(("Microsoft Authenticator (Android)", NameSource::BuiltIn)));

        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        let jwt = format!("eyJhbGciOiJSUzI1NiJ9.{b64}.c2ln");
        let mut t2 = AaguidTable::built_in();
        assert_eq!(t2.extend_from_mds(jwt.as_bytes()), Ok(1));
    }

    #[test]
    fn mds_errors_are_typed() {
        let mut t = AaguidTable::built_in();
        assert!(matches!(t.extend_from_mds(b"a.b"), Err(MdsError::NotMetadata(_))));
        assert_eq!(t.extend_from_mds(b"{}"), Err(MdsError::NoEntries));
        assert!(matches!(
            t.extend_from_mds(br#"{"entries":[{"aaguid":"xyz"}]}"#),
            Err(MdsError::BadAaguid(_))
        ));
        assert!(matches!(t.extend_from_mds(&[0xff, 0xfe]), Err(MdsError::NotMetadata(_))));
    }
}
