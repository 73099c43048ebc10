#!/usr/bin/env python3
"""python-fido2 against cablebridged's uhid front served over UDP-HID (issue 11).

Usage: python_fido2_uhid.py HOST:PORT

The daemon answers getInfo and silent probes itself and runs every other request as a hybrid
ceremony with a (virtual) phone that the test starts from the `qr` event. Steps, in order
(the Rust test starts phones in the same order):
  1 register             phone OK        -> attestation, credential id
  2 silent probe up=false (no phone)     -> "present", empty signature
  3 authenticate         phone OK        -> signature verified with the credential's key
  4 authenticate, CANCEL after UPNEEDED  -> CtapError KEEPALIVE_CANCEL (no phone)
  5 authenticate         phone says no   -> CtapError OPERATION_DENIED (the phone's status)
  6 authenticate         phone breaks    -> CtapError OTHER (handshake failed)
  7 authenticate         phone OK        -> signature verified (earlier failures left no trace)
Prints one JSON line per step; any failure raises (exit 1).
"""

import hashlib
import json
import socket
import sys
import threading

from fido2.cose import CoseKey
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor

REPORT_LEN = 64
TIMEOUT_S = 30.0
RP = {"id": "uhid.example", "name": "uhid"}


class UdpCtapHidConnection(CtapHidConnection):
    def __init__(self, host, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(TIMEOUT_S)
        self.sock.connect((host, port))

    def read_packet(self):
        data = self.sock.recv(REPORT_LEN + 1)
        if len(data) != REPORT_LEN:
            raise OSError(f"datagram of {len(data)} bytes")
        return data

    def write_packet(self, data):
        self.sock.send(data)

    def close(self):
        self.sock.close()


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def expect_ctap_error(code, fn):
    try:
        fn()
    except CtapError as e:
        assert e.code == code, f"expected {code!r}, got {e.code!r}"
        return e.code
    raise AssertionError(f"expected CtapError {code!r}, the request succeeded")


def main():
    host, _, port = sys.argv[1].rpartition(":")
    desc = HidDescriptor(sys.argv[1], 0x1209, 0xCB1D, REPORT_LEN, REPORT_LEN, "cablebridge phone", None)
    ctap = Ctap2(CtapHidDevice(desc, UdpCtapHidConnection(host, int(port))))

    info = ctap.get_info()
    assert "FIDO_2_1" in info.versions, info.versions
    assert "clientPin" not in info.options, info.options
    say("info", versions=info.versions, options=dict(info.options))

    # 1 register through the phone
    cdh = hashlib.sha256(b"uhid-register").digest()
    att = ctap.make_credential(
        cdh, RP, {"id": b"u1", "name": "alice"}, [{"type": "public-key", "alg": -7}]
    )
    cred = att.auth_data.credential_data
    assert cred is not None
    key = CoseKey.parse(cred.public_key)
    descriptor = {"type": "public-key", "id": cred.credential_id}
    say("register", fmt=att.fmt, credential_id=cred.credential_id.hex(), up=att.auth_data.is_user_present())

    # 2 the silent pre-flight probe python-fido2's client sends (up=false): answered locally
    probe = ctap.get_assertion(RP["id"], b"\0" * 32, [descriptor], None, {"up": False})
    assert probe.signature == b"", "a probe must not be signed"
    assert not probe.auth_data.is_user_present()
    say("probe", credential_id=probe.credential["id"].hex())

    def assert_ok(step):
        cdh = hashlib.sha256(step.encode()).digest()
        a = ctap.get_assertion(RP["id"], cdh, [descriptor])
        key.verify(a.auth_data + cdh, a.signature)
        assert a.auth_data.is_user_present()
        say(step, verified=True, sign_count=a.auth_data.counter)

    # 3 authenticate through the phone
    assert_ok("authenticate")

    # 4 CTAPHID_CANCEL after a few keepalives: nobody scans this QR
    cancel = threading.Event()
    seen = []

    def on_keepalive(status):
        # python-fido2 reports each new keepalive status once; cancel a little later.
        seen.append(status)
        threading.Timer(0.5, cancel.set).start()

    code = expect_ctap_error(
        CtapError.ERR.KEEPALIVE_CANCEL,
        lambda: ctap.get_assertion(
            RP["id"], cdh, [descriptor], event=cancel, on_keepalive=on_keepalive
        ),
    )
    assert seen == [2], f"keepalives must say UPNEEDED, got {seen}"
    say("cancel", code=int(code), keepalives=len(seen))

    # 5 the phone answers with an error status: passed through
    code = expect_ctap_error(
        CtapError.ERR.OPERATION_DENIED,
        lambda: ctap.get_assertion(RP["id"], cdh, [descriptor]),
    )
    say("phone_denied", code=int(code))

    # 6 the phone breaks the handshake: the session failed, not the user
    code = expect_ctap_error(
        CtapError.ERR.OTHER, lambda: ctap.get_assertion(RP["id"], cdh, [descriptor])
    )
    say("phone_broken", code=int(code))

    # 7 and the device is as good as new
    assert_ok("authenticate_again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
