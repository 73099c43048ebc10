//! `android-key` (WebAuthn §8.4): the leaf key signs authData ‖ clientDataHash and is the
//! credential key; the leaf's Android Key Attestation extension (1.3.6.1.4.1.11129.2.1.17,
//! `KeyDescription`) has attestationChallenge = clientDataHash, no `allApplications` in either
//! authorization list, and (in the union of the software and TEE lists, as the spec allows)
//! origin = KM_ORIGIN_GENERATED and purpose containing KM_PURPOSE_SIGN.
//!
//! ```text
//! KeyDescription ::= SEQUENCE { attestationVersion INTEGER, attestationSecurityLevel ENUMERATED,
//!   keymasterVersion INTEGER, keymasterSecurityLevel ENUMERATED, attestationChallenge OCTET
//!   STRING, uniqueId OCTET STRING, softwareEnforced AuthorizationList, teeEnforced ... }
//! AuthorizationList ::= SEQUENCE { purpose [1] EXPLICIT SET OF INTEGER OPTIONAL, ...,
//!   allApplications [600] EXPLICIT NULL OPTIONAL, ..., origin [702] EXPLICIT INTEGER OPTIONAL }
//! ```

use serde_json::{json, Map, Value};

use super::crypto::{self, PublicKey};
use super::der::{self, Tlv};
use super::{
    fail, required_x5c, stmt_alg, stmt_bytes, AttestationType, Check, Fail, Input, Verified,
};

const OID_KEY_DESCRIPTION: &str = "1.3.6.1.4.1.11129.2.1.17";
const TAG_PURPOSE: u32 = 1;
const TAG_ALL_APPLICATIONS: u32 = 600;
const TAG_ORIGIN: u32 = 702;
const KM_ORIGIN_GENERATED: i64 = 0;
const KM_PURPOSE_SIGN: i64 = 2;

pub(super) fn verify(input: &Input<'_>, facts: &mut Map<String, Value>) -> Result<Verified, Fail> {
    let alg = stmt_alg(input)?;
    let sig = stmt_bytes(input, "sig")?;
    let x5c = required_x5c(input)?;
    let leaf = crypto::parse_certificate(&x5c[0], "x5c[0]").map_err(|e| (Check::Certificate, e))?;
    let key = PublicKey::from_certificate(&leaf).map_err(|e| (Check::Certificate, e))?;
    // The key match first (the spec checks it after the signature): a swapped credential key
    // is then named as such, not as a bad signature.
    let credential = PublicKey::from_cose(&input.credential.public_key)
        .map_err(|e| (Check::CredentialKey, e))?;
    if !crypto::same_key(&credential, &key) {
        return fail(Check::CredentialKey, "the credential key is not the leaf certificate's key");
    }
    key.verify(alg, &input.to_be_signed(), sig).map_err(|e| (Check::Signature, e))?;
    let (value, _) = crypto::extension(&leaf, OID_KEY_DESCRIPTION).ok_or((
        Check::CertificateRequirements,
        format!("the leaf has no key description extension {OID_KEY_DESCRIPTION}"),
    ))?;
    let desc = KeyDescription::parse(value)
        .map_err(|e| (Check::CertificateRequirements, format!("key description: {e}")))?;
    facts.insert(
        "android_key".to_owned(),
        json!({
            "attestation_version": desc.attestation_version,
            "attestation_security_level": security_level(desc.attestation_security_level),
            "keymaster_security_level": security_level(desc.keymaster_security_level),
        }),
    );
    if desc.challenge != input.client_data_hash.as_slice() {
        return fail(Check::AttestationChallenge, "attestationChallenge is not the clientDataHash");
    }
    let lists = [&desc.software_enforced, &desc.tee_enforced];
    if lists.iter().any(|l| l.all_applications) {
        return fail(Check::AuthorizationList, "allApplications is present");
    }
    let origins: Vec<i64> = lists.iter().filter_map(|l| l.origin).collect();
    if !origins.contains(&KM_ORIGIN_GENERATED) {
        return fail(
            Check::AuthorizationList,
            format!("origin {origins:?} is not KM_ORIGIN_GENERATED"),
        );
    }
    if !lists.iter().any(|l| l.purposes.contains(&KM_PURPOSE_SIGN)) {
        return fail(Check::AuthorizationList, "purpose does not include KM_PURPOSE_SIGN");
    }
    Ok(Verified { kind: AttestationType::Basic, alg: Some(alg) })
}

fn security_level(level: i64) -> &'static str {
    match level {
        0 => "software",
        1 => "trusted_environment",
        2 => "strongbox",
        _ => "unknown",
    }
}

#[derive(Debug, Default)]
struct AuthorizationList {
    purposes: Vec<i64>,
    all_applications: bool,
    origin: Option<i64>,
}

impl AuthorizationList {
    fn parse(seq: &Tlv<'_>) -> Result<Self, &'static str> {
        let mut list = AuthorizationList::default();
        for item in der::children(seq.value)? {
            if item.class != 2 {
                continue;
            }
            match item.number {
                TAG_PURPOSE => {
                    let set = der::read_only(item.value, der::SET)?;
                    for p in der::children(set.value)? {
                        list.purposes.push(der::small_int(&p)?);
                    }
                }
                TAG_ALL_APPLICATIONS => list.all_applications = true,
                TAG_ORIGIN => {
                    list.origin = Some(der::small_int(&der::read_only(item.value, der::INTEGER)?)?)
                }
                _ => {}
            }
        }
        Ok(list)
    }
}

#[derive(Debug)]
struct KeyDescription<'a> {
    attestation_version: i64,
    attestation_security_level: i64,
    keymaster_security_level: i64,
    challenge: &'a [u8],
    software_enforced: AuthorizationList,
    tee_enforced: AuthorizationList,
}

impl<'a> KeyDescription<'a> {
    fn parse(value: &'a [u8]) -> Result<Self, &'static str> {
        let seq = der::read_only(value, der::SEQUENCE)?;
        let items = der::children(seq.value)?;
        let [version, att_level, _km_version, km_level, challenge, _unique, sw, tee, ..] =
            items.as_slice()
        else {
            return Err("fewer than 8 elements");
        };
        if sw.number != der::SEQUENCE || tee.number != der::SEQUENCE {
            return Err("the authorization lists are not SEQUENCEs");
        }
        if challenge.number != der::OCTET_STRING {
            return Err("attestationChallenge is not an OCTET STRING");
        }
        Ok(KeyDescription {
            attestation_version: der::small_int(version)?,
            attestation_security_level: der::small_int(att_level)?,
            keymaster_security_level: der::small_int(km_level)?,
            challenge: challenge.value,
            software_enforced: AuthorizationList::parse(sw)?,
            tee_enforced: AuthorizationList::parse(tee)?,
        })
    }
}
