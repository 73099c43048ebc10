#!/usr/bin/env python3
"""Cross-check cablebridge's virtual USB key with an independent CTAP2 client: python-fido2.

Usage: python_fido2_udp.py HOST:PORT   (the virtual key's UDP-HID address)

python-fido2's own CTAPHID framing (fido2.hid.CtapHidDevice) runs over a small UDP connection
class (one 64-byte report per datagram, no report-ID byte: the simulator convention), then:
getInfo; makeCredential with packed attestation verified by fido2.attestation.PackedAttestation;
getAssertion with the signature verified against the credential's COSE key; clientPIN set PIN +
getPinUvAuthToken; makeCredential (resident) with pinUvAuthParam; credential management
enumeration. Then python-fido2's WebAuthn client (fido2.client.Fido2Client) with its own
extension processors: prf (hmac-secret-mc at registration, hmac-secret at assertion, PIN/UV
protocol 2), credProtect (userVerificationRequired, enforced), credBlob and largeBlob (read and
write through largeBlobKey + authenticatorLargeBlobs). Then python-fido2's authenticatorConfig
(setMinPINLength with an RP list and the forced PIN change it causes, toggleAlwaysUv,
enableEnterpriseAttestation + an epAtt makeCredential), the minPinLength extension, the
persistent read-only token (pcmr) enumerating credentials, and FPBioEnrollment on the simulated
fingerprint sensor (run the key with --bio). Prints one JSON line with what was checked; any
failure raises (exit 1).
"""

import hashlib
import json
import os
import socket
import sys

from fido2.attestation import PackedAttestation
from fido2.cose import CoseKey
from fido2.ctap2 import ClientPin, Ctap2, CredentialManagement
from fido2.ctap2.bio import FPBioEnrollment
from fido2.ctap2.config import Config
from fido2.ctap2.pin import PinProtocolV2
from fido2.ctap import CtapError
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap2.extensions import (
    CredBlobExtension,
    CredProtectExtension,
    HmacSecretExtension,
    LargeBlobExtension,
)
from fido2.utils import websafe_decode
from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor
from fido2.webauthn import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

REPORT_LEN = 64
TIMEOUT_S = 10.0


class UdpCtapHidConnection(CtapHidConnection):
    """CtapHidConnection over UDP-HID: one report per datagram, no report-ID byte."""

    def __init__(self, host: str, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(TIMEOUT_S)
        self.sock.connect((host, port))

    def read_packet(self) -> bytes:
        data = self.sock.recv(REPORT_LEN + 1)
        if len(data) != REPORT_LEN:
            raise OSError(f"UDP-HID datagram of {len(data)} bytes, expected {REPORT_LEN}")
        return data

    def write_packet(self, data: bytes) -> None:
        # python-fido2 passes exactly report_size_out bytes (no report-ID prefix).
        if self.sock.send(data) != len(data):
            raise OSError("short UDP send")

    def close(self) -> None:
        self.sock.close()


def as_bytes(v):
    """Client extension results come in their JSON form (base64url strings)."""
    return websafe_decode(v) if isinstance(v, str) else bytes(v)


class PinInteraction(UserInteraction):
    """The PIN the first part of the script set; no prompts."""

    def request_pin(self, permissions, rd_id):
        return "4321"

    def request_uv(self, permissions, rd_id):
        return True


def extensions_via_client(device, checked) -> None:
    """python-fido2's WebAuthn client and its own extension processors against our key."""
    client = Fido2Client(
        device,
        DefaultClientDataCollector("https://interop.example"),
        PinInteraction(),
        extensions=[
            HmacSecretExtension(),
            CredProtectExtension(),
            CredBlobExtension(),
            LargeBlobExtension(),
        ],
    )
    rp = PublicKeyCredentialRpEntity(id="interop.example", name="Interop")
    user = PublicKeyCredentialUserEntity(id=b"py-user-ext", name="ext", display_name="Extensions")
    first, second = b"python prf first", b"python prf second"
    reg = client.make_credential(
        PublicKeyCredentialCreationOptions(
            rp=rp,
            user=user,
            challenge=os.urandom(32),
            pub_key_cred_params=[PublicKeyCredentialParameters(type="public-key", alg=-7)],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            extensions={
                "prf": {"eval": {"first": first}},
                "credentialProtectionPolicy": "userVerificationRequired",
                "enforceCredentialProtectionPolicy": True,
                "credBlob": b"py cred blob",
                "largeBlob": {"support": "required"},
            },
        )
    )
    results = reg.client_extension_results
    prf = results["prf"]
    assert prf["enabled"] is True, results
    at_mc = as_bytes(prf["results"]["first"])
    assert len(at_mc) == 32, prf
    assert results["largeBlob"]["supported"] is True, results
    auth_data = reg.response.attestation_object.auth_data
    assert auth_data.extensions.get("credProtect") == 3, auth_data.extensions
    assert auth_data.extensions.get("credBlob") is True, auth_data.extensions
    cred_id = auth_data.credential_data.credential_id
    allow = [PublicKeyCredentialDescriptor(type="public-key", id=cred_id)]
    checked["prf_enabled"] = True
    checked["cred_protect"] = 3

    def get(extensions, uv=UserVerificationRequirement.REQUIRED):
        return client.get_assertion(
            PublicKeyCredentialRequestOptions(
                challenge=os.urandom(32),
                rp_id="interop.example",
                allow_credentials=allow,
                user_verification=uv,
                extensions=extensions,
            )
        ).get_response(0)

    # prf with two inputs: the first equals the registration's output (both with UV).
    a = get({"prf": {"eval": {"first": first, "second": second}}, "getCredBlob": True})
    out = a.client_extension_results["prf"]["results"]
    assert as_bytes(out["first"]) == at_mc, "hmac-secret-mc output = hmac-secret output"
    assert as_bytes(out["second"]) != at_mc and len(as_bytes(out["second"])) == 32
    assert a.response.authenticator_data.extensions.get("credBlob") == b"py cred blob"
    checked["prf_matches_mc"] = True
    checked["cred_blob"] = True

    # largeBlob write, then read back.
    blob = b"python-fido2 large blob " * 8
    w = get({"largeBlob": {"write": blob}})
    assert w.client_extension_results["largeBlob"]["written"] is True, w.client_extension_results
    r = get({"largeBlob": {"read": True}})
    assert as_bytes(r.client_extension_results["largeBlob"]["blob"]) == blob, r.client_extension_results
    checked["large_blob"] = len(blob)

    # credProtect 3: without UV the credential does not exist.
    ctap = Ctap2(device)
    try:
        ctap.get_assertion(
            "interop.example",
            hashlib.sha256(b"no-uv").digest(),
            allow_list=[{"type": "public-key", "id": cred_id}],
        )
        raise AssertionError("credProtect 3 credential returned without UV")
    except Exception as e:  # CtapError NO_CREDENTIALS
        assert "NO_CREDENTIALS" in str(e), e
    checked["cred_protect_enforced"] = True


def main() -> int:
    host, _, port = sys.argv[1].rpartition(":")
    descriptor = HidDescriptor(sys.argv[1], 0, 0, REPORT_LEN, REPORT_LEN, "cablebridge virtual key", None)
    device = CtapHidDevice(descriptor, UdpCtapHidConnection(host, int(port)))
    checked = {"ctaphid_version": device.version, "device_version": list(device.device_version)}
    ctap = Ctap2(device)

    # getInfo
    info = ctap.get_info()
    assert "FIDO_2_1" in info.versions, info.versions
    assert info.options.get("clientPin") is False, info.options
    assert info.options.get("credMgmt") is True, info.options
    checked["aaguid"] = str(info.aaguid)

    # makeCredential, packed attestation verified by python-fido2's own verifier
    rp = {"id": "interop.example", "name": "Interop"}
    user = {"id": b"py-user-1", "name": "py", "displayName": "Python"}
    params = [{"type": "public-key", "alg": -7}]
    cdh = hashlib.sha256(b"interop-make-credential").digest()
    att = ctap.make_credential(cdh, rp, user, params)
    assert att.fmt == "packed", att.fmt
    result = PackedAttestation().verify(att.att_stmt, att.auth_data, cdh)
    checked["attestation"] = result.attestation_type.name
    cred = att.auth_data.credential_data
    assert cred is not None
    assert bytes(cred.aaguid) == bytes(info.aaguid)
    public_key = CoseKey.parse(cred.public_key)

    # getAssertion, signature verified with the credential key
    cdh2 = hashlib.sha256(b"interop-get-assertion").digest()
    assertion = ctap.get_assertion(
        "interop.example", cdh2, allow_list=[{"type": "public-key", "id": cred.credential_id}]
    )
    assertion.verify(cdh2, public_key)
    assert assertion.auth_data.counter >= 1
    checked["assertion_counter"] = assertion.auth_data.counter

    # clientPIN: set a PIN, get a token with mc + credential-management permissions
    protocol = PinProtocolV2()
    client_pin = ClientPin(ctap, protocol)
    client_pin.set_pin("4321")
    assert ctap.get_info().options.get("clientPin") is True
    checked["pin_retries"] = client_pin.get_pin_retries()[0]
    token = client_pin.get_pin_token(
        "4321", ClientPin.PERMISSION.MAKE_CREDENTIAL | ClientPin.PERMISSION.CREDENTIAL_MGMT,
        permissions_rpid="interop.example",
    )

    # resident credential under the PIN token
    cdh3 = hashlib.sha256(b"interop-resident").digest()
    att2 = ctap.make_credential(
        cdh3, rp, {"id": b"py-user-2", "name": "rk", "displayName": "Resident"}, params,
        options={"rk": True},
        pin_uv_param=protocol.authenticate(token, cdh3),
        pin_uv_protocol=protocol.VERSION,
    )
    PackedAttestation().verify(att2.att_stmt, att2.auth_data, cdh3)
    assert att2.auth_data.flags & 0x04, "UV flag set for a PIN-authorised credential"

    # credential management: metadata, RPs, credentials
    credman = CredentialManagement(ctap, protocol, token)
    meta = credman.get_metadata()
    assert meta[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 1, meta
    rps = credman.enumerate_rps()
    assert [r[CredentialManagement.RESULT.RP]["id"] for r in rps] == ["interop.example"], rps
    rp_hash = rps[0][CredentialManagement.RESULT.RP_ID_HASH]
    creds = credman.enumerate_creds(rp_hash)
    users = [c[CredentialManagement.RESULT.USER]["id"] for c in creds]
    assert users == [b"py-user-2"], users
    checked["credentials_enumerated"] = len(creds)

    extensions_via_client(device, checked)
    checked.update(config_checks(ctap, client_pin, protocol, rp, params))
    checked.update(bio_checks(ctap, client_pin, protocol))

    device.close()
    print(json.dumps({"ok": True, "client": "python-fido2", **checked}))
    return 0


def config_checks(ctap, client_pin, protocol, rp, params) -> dict:
    """authenticatorConfig, minPinLength and pcmr through python-fido2's own classes."""
    info = ctap.get_info()
    assert Config.is_supported(info), info.options
    perm = ClientPin.PERMISSION
    token = client_pin.get_pin_token("4321", perm.AUTHENTICATOR_CFG)
    config = Config(ctap, protocol, token)
    # Raising the minimum past the current PIN (4 characters) forces a change.
    config.set_min_pin_length(min_pin_length=6, rp_ids=["interop.example"])
    info = ctap.get_info()
    assert info.min_pin_length == 6 and info.force_pin_change is True, info
    client_pin.change_pin("4321", "654321")
    assert ctap.get_info().force_pin_change is False
    # minPinLength extension for a listed RP.
    mc = client_pin.get_pin_token("654321", perm.MAKE_CREDENTIAL, permissions_rpid="interop.example")
    cdh = hashlib.sha256(b"interop-min-pin-length").digest()
    att = ctap.make_credential(
        cdh, rp, {"id": b"py-user-3", "name": "mpl"}, params,
        extensions={"minPinLength": True},
        pin_uv_param=protocol.authenticate(mc, cdh), pin_uv_protocol=protocol.VERSION,
    )
    assert att.auth_data.extensions == {"minPinLength": 6}, att.auth_data.extensions
    # toggleAlwaysUv on and off again.
    token = client_pin.get_pin_token("654321", perm.AUTHENTICATOR_CFG)
    config = Config(ctap, protocol, token)
    config.toggle_always_uv()
    assert ctap.get_info().options.get("alwaysUv") is True
    config.toggle_always_uv()
    assert ctap.get_info().options.get("alwaysUv") is False
    # Enterprise attestation (platform-managed: any RP).
    config.enable_enterprise_attestation()
    assert ctap.get_info().options.get("ep") is True
    mc = client_pin.get_pin_token("654321", perm.MAKE_CREDENTIAL, permissions_rpid="interop.example")
    cdh = hashlib.sha256(b"interop-ep").digest()
    att = ctap.make_credential(
        cdh, rp, {"id": b"py-user-4", "name": "ep"}, params, enterprise_attestation=2,
        pin_uv_param=protocol.authenticate(mc, cdh), pin_uv_protocol=protocol.VERSION,
    )
    assert att.ep_att is True, att
    PackedAttestation().verify(att.att_stmt, att.auth_data, cdh)
    # The persistent read-only token enumerates but cannot delete.
    pcmr = client_pin.get_pin_token("654321", perm.PERSISTENT_CREDENTIAL_MGMT)
    credman = CredentialManagement(ctap, protocol, pcmr)
    rps = credman.enumerate_rps()
    rp_hash = rps[0][CredentialManagement.RESULT.RP_ID_HASH]
    creds = credman.enumerate_creds(rp_hash)
    try:
        credman.delete_cred(creds[0][CredentialManagement.RESULT.CREDENTIAL_ID])
        raise AssertionError("a pcmr token deleted a credential")
    except CtapError as e:
        assert e.code == CtapError.ERR.PIN_AUTH_INVALID, e
    return {"min_pin_length": info.min_pin_length, "enterprise_attestation": True, "pcmr_creds": len(creds)}


def bio_checks(ctap, client_pin, protocol) -> dict:
    """FPBioEnrollment on the simulated sensor: info, enroll, name, list, remove."""
    info = ctap.get_info()
    assert info.options.get("bioEnroll") is False, info.options
    token = client_pin.get_pin_token("654321", ClientPin.PERMISSION.BIO_ENROLL)
    bio = FPBioEnrollment(ctap, protocol, token)
    sensor = bio.get_fingerprint_sensor_info()
    context = bio.enroll()
    template_id = None
    samples = 0
    while template_id is None:
        template_id = context.capture()
        samples += 1
    bio.set_name(template_id, "py thumb")
    assert bio.enumerate_enrollments() == {template_id: "py thumb"}
    assert ctap.get_info().options.get("uv") is True
    bio.remove_enrollment(template_id)
    assert ctap.get_info().options.get("bioEnroll") is False
    return {"bio_samples": samples, "bio_max_samples": sensor[FPBioEnrollment.RESULT.MAX_SAMPLES_REQUIRED]}


if __name__ == "__main__":
    sys.exit(main())
