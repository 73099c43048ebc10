#!/usr/bin/env python3
"""Independent cross-check of credentials with python-fido2 (CTAP2, or CTAP1/U2F on U2F-only
keys): a credential our CLI made is asserted by python-fido2 with the signature verified, and
python-fido2 makes one for our CLI to assert.

Usage:
  python_fido2_cross.py DEVICE create RP_ID
      -> {"credential_id": B64URL, "public_key_cose": B64URL, "protocol": ...}
  python_fido2_cross.py DEVICE assert RP_ID CREDENTIAL_ID_B64URL PUBLIC_KEY_COSE_B64URL
      -> {"verified": true, "counter": N, "protocol": ...}   (raises on a bad signature)

DEVICE is udp:HOST:PORT (a `cablebridge virtual-key`), /dev/hidrawN, or `auto` (the first FIDO
key python-fido2 finds). CABLEBRIDGE_PIN, when set, is used for a PIN/UV auth token on CTAP2
keys that have a PIN. Used by hw-tests/tests/python_fido2_cross_real.rs (real keys, ignored) and
tools/tests/python_fido2_cross.rs (the virtual key, CTAP2 and --u2f-only).
"""

import base64
import hashlib
import json
import os
import socket
import sys
import time

from fido2 import cbor
from fido2.cose import ES256, CoseKey
from fido2.ctap import CtapError
from fido2.ctap1 import ApduError, APDU, Ctap1
from fido2.ctap2 import ClientPin, Ctap2
from fido2.hid import CAPABILITY, CtapHidDevice, list_devices, open_device
from fido2.hid.base import CtapHidConnection, HidDescriptor

REPORT_LEN = 64
TOUCH_WAIT_S = 30.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UdpCtapHidConnection(CtapHidConnection):
    """CtapHidConnection over UDP-HID: one report per datagram, no report-ID byte."""

    def __init__(self, host: str, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(10.0)
        self.sock.connect((host, port))

    def read_packet(self) -> bytes:
        data = self.sock.recv(REPORT_LEN + 1)
        if len(data) != REPORT_LEN:
            raise OSError(f"UDP-HID datagram of {len(data)} bytes, expected {REPORT_LEN}")
        return data

    def write_packet(self, data: bytes) -> None:
        if self.sock.send(data) != len(data):
            raise OSError("short UDP send")

    def close(self) -> None:
        self.sock.close()


def open_hid(spec: str) -> CtapHidDevice:
    if spec.startswith("udp:"):
        host, _, port = spec[4:].rpartition(":")
        descriptor = HidDescriptor(spec, 0, 0, REPORT_LEN, REPORT_LEN, "udp-hid", None)
        return CtapHidDevice(descriptor, UdpCtapHidConnection(host, int(port)))
    if spec == "auto":
        for device in list_devices():
            return device
        raise SystemExit("no FIDO key found")
    return open_device(spec)


def until_touched(op):
    """U2F: repeat while the key answers 0x6985 (conditions not satisfied = touch me)."""
    deadline = time.monotonic() + TOUCH_WAIT_S
    while True:
        try:
            return op()
        except ApduError as e:
            if e.code != APDU.USE_NOT_SATISFIED or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def pin_param(ctap: Ctap2, permission, rp_id: str, cdh: bytes):
    pin = os.environ.get("CABLEBRIDGE_PIN")
    if not pin or not ctap.info.options.get("clientPin"):
        return None, None
    client_pin = ClientPin(ctap)
    token = client_pin.get_pin_token(pin, permission, rp_id)
    return client_pin.protocol.authenticate(token, cdh), client_pin.protocol.VERSION


def main() -> int:
    device_spec, mode, rp_id = sys.argv[1], sys.argv[2], sys.argv[3]
    device = open_hid(device_spec)
    u2f = not (device.capabilities & CAPABILITY.CBOR)
    app = hashlib.sha256(rp_id.encode()).digest()
    cdh = hashlib.sha256(f"python-fido2 cross-check {mode} {time.time()}".encode()).digest()
    protocol = "ctap1/u2f" if u2f else "ctap2"
    if mode == "create":
        if u2f:
            reg = until_touched(lambda: Ctap1(device).register(cdh, app))
            reg.verify(app, cdh)  # the U2F attestation signature, by python-fido2
            key, credential_id = ES256.from_ctap1(reg.public_key), reg.key_handle
        else:
            ctap = Ctap2(device)
            param, proto = pin_param(ctap, ClientPin.PERMISSION.MAKE_CREDENTIAL, rp_id, cdh)
            att = ctap.make_credential(
                cdh,
                {"id": rp_id, "name": rp_id},
                {"id": os.urandom(16), "name": "python-fido2", "displayName": "python-fido2"},
                [{"type": "public-key", "alg": -7}],
                pin_uv_param=param,
                pin_uv_protocol=proto,
            )
            data = att.auth_data.credential_data
            key, credential_id = data.public_key, data.credential_id
        print(json.dumps({
            "credential_id": b64url(credential_id),
            "public_key_cose": b64url(cbor.encode(dict(key))),
            "protocol": protocol,
        }))
        return 0
    if mode == "assert":
        credential_id = unb64url(sys.argv[4])
        key = CoseKey.parse(cbor.decode(unb64url(sys.argv[5])))
        if u2f:
            sig = until_touched(lambda: Ctap1(device).authenticate(cdh, app, credential_id))
            auth_data = app + bytes([sig.user_presence]) + sig.counter.to_bytes(4, "big")
            signature, counter = sig.signature, sig.counter
        else:
            ctap = Ctap2(device)
            param, proto = pin_param(ctap, ClientPin.PERMISSION.GET_ASSERTION, rp_id, cdh)
            resp = ctap.get_assertion(
                rp_id, cdh, [{"type": "public-key", "id": credential_id}],
                pin_uv_param=param, pin_uv_protocol=proto,
            )
            auth_data, signature, counter = bytes(resp.auth_data), resp.signature, resp.auth_data.counter
        key.verify(auth_data + cdh, signature)  # raises InvalidSignature on a bad one
        assert auth_data[:32] == app, "rpIdHash is not SHA-256 of the RP id"
        assert auth_data[32] & 0x01, "user presence flag not set"
        print(json.dumps({"verified": True, "counter": counter, "protocol": protocol}))
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (CtapError, ApduError) as e:
        print(json.dumps({"verified": False, "error": str(e)}))
        sys.exit(1)
