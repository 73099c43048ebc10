#!/usr/bin/env python3
"""Writes the small checked-in seed corpora under fuzz/corpus/<target>/ from the shared vectors
(protocol/tests/vectors/hybrid.json), the test fixtures and the docs. Re-run after changing a
target's input format: `python3 fuzz/seeds.py` (idempotent; files are named by content)."""
import hashlib, json, os, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
V = json.load(open(os.path.join(ROOT, "protocol/tests/vectors/hybrid.json")))
T = V["transcripts"]; QR = T["qr"]; UP = V["upstream"]

def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()

# --- a tiny canonical CBOR encoder (ints, bytes, text, bools, null, arrays, maps) ---
def head(major, n):
    if n < 24: return bytes([major << 5 | n])
    for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | ai]) + struct.pack(fmt, n)
def cbor(v):
    if v is True: return b"\xf5"
    if v is False: return b"\xf4"
    if v is None: return b"\xf6"
    if isinstance(v, int): return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, bytes): return head(2, len(v)) + v
    if isinstance(v, str): b = v.encode(); return head(3, len(b)) + b
    if isinstance(v, list): return head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        items = sorted(((cbor(k), cbor(x)) for k, x in v.items()), key=lambda kv: (kv[0][0] >> 5, len(kv[0]), kv[0]))
        return head(5, len(items)) + b"".join(k + x for k, x in items)
    raise TypeError(v)
h = bytes.fromhex

# cbor
for hx in (QR["qr_cbor"], QR["phone_getinfo"], QR["post_handshake_plain"], T["linking"]["linking_map_cbor"]):
    put("cbor", h(hx))
for p in UP["post_handshake"]:
    put("cbor", h(p["plaintext"]))
put("cbor", cbor({1: [1, -1, b"x", "y", True, None], "k": {2: 3}}))

# CTAP2 requests: getAssertion from the transcript (frame type byte dropped), makeCredential,
# getInfo, clientPIN getRetries, credential management metadata, reset.
cdh = b"\x11" * 32
mc = cbor({1: cdh, 2: {"id": "example.com", "name": "Example"},
           3: {"id": b"user", "name": "alice", "displayName": "Alice"},
           4: [{"alg": -7, "type": "public-key"}], 7: {"rk": True}})
ga = cbor({1: "example.com", 2: cdh, 3: [{"id": b"\x01" * 16, "type": "public-key"}]})
for req in (h(QR["request_plain"])[1:], b"\x01" + mc, b"\x02" + ga, b"\x04", b"\x06" + cbor({1: 2, 2: 1}),
            b"\x0a" + cbor({1: 1}), b"\x07", b"\x01" + mc + b"\xff" * 4 + b"\x02" + ga):
    put("ctap2_request", req)

# CTAP2 responses (selector 0 = whole response, 1 = authData, 2 = attestation object, 3 = COSE key)
x = h(QR["qr_public_uncompressed"])[1:33]; y = h(QR["qr_public_uncompressed"])[33:]
cose = {1: 2, 3: -7, -1: 1, -2: x, -3: y}
auth_data = h("a379a6f6eeafb9a55e378c118034e2751e682fab9f2d30ab13d2125586ce1947") + b"\x45" + b"\0\0\0\x01" \
    + b"\0" * 16 + struct.pack(">H", 16) + b"\x02" * 16 + cbor(cose)
att = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
put("ctap2_response", b"\0\0" + h(QR["phone_getinfo"]))
put("ctap2_response", b"\0\0" + cbor({1: "none", 2: auth_data, 3: {}}))
put("ctap2_response", b"\0\0" + cbor({1: {"id": b"\x02" * 16, "type": "public-key"}, 2: auth_data[:37], 3: b"\x30" * 70}))
put("ctap2_response", b"\0\x31")
put("ctap2_response", b"\x01" + auth_data)
put("ctap2_response", b"\x02" + att)
put("ctap2_response", b"\x03" + cbor(cose))

# QR URLs and digits
for q in UP["qr_urls"]:
    put("qr_url", q["url"])
put("qr_url", QR["qr_url"])
for d in UP["digits"]:
    put("qr_url", d["digits"])
put("qr_url", h(QR["qr_cbor"]))

# adverts: mode 0 = raw (the transcript's advert matches the QR session), 1/2 = seal under QR/link key
put("advert", b"\x00" + h(QR["advert_service_data"]))
put("advert", b"\x80" + h(QR["advert_service_data"]) + b"\x01\x02")
put("advert", b"\x01" + h(QR["eid_plaintext"]) + b"\x00" * 4)
put("advert", b"\x02" + bytes(16) + b"\x00" * 4)
for a in UP["adverts"]:
    put("advert", b"\x00" + h(a["advert"]))

# Noise: role 0/1 = phone reads msg1, 2/3 = desktop reads msg2
put("noise_handshake", b"\x00" + h(QR["handshake_msg1"]))
put("noise_handshake", b"\x02" + h(QR["handshake_msg2"]))
put("noise_handshake", b"\x01" + h(QR["handshake_msg1"]))
put("noise_handshake", b"\x03" + h(QR["handshake_msg2"]))

# tunnel upgrade requests (NUL separates requests within one input)
def req(path, extra=()):
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: fido.cable", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
tid = QR["tunnel_id"]
put("tunnel_upgrade", req(f"/cable/new/{tid}"))
put("tunnel_upgrade", req(f"/cable/new/{tid}") + b"\0" + req(f"/cable/connect/{QR['routing_id']}/{tid}"))
payload = cbor({1: b"01234567", 2: bytes(range(16)), 3: "ga"}).hex().upper()
put("tunnel_upgrade", req("/cable/contact/Y29udGFjdA", [f"X-caBLE-Client-Payload: {payload}"]))
put("tunnel_upgrade", req("/cable/listen/Y29udGFjdA", ["X-cableBridge-Listen-Secret: 00"]))
put("tunnel_upgrade", req("/cable/other"))

# control API lines
for line in ('{"jsonrpc":"2.0","id":1,"method":"status","params":{}}',
             '{"jsonrpc":"2.0","id":1,"method":"ceremony.register","params":{"rp_id":"example.com","user_name":"alice"}}',
             '{"jsonrpc":"2.0","id":"a","method":"ceremony.authenticate","params":{"rp_id":"example.com","transport":"usb","uv":"required","timeout":"30s","allow_credentials":["AQID"]}}',
             '[{"jsonrpc":"2.0"}]', '{"jsonrpc":"1.0","id":{}}'):
    put("control_request", line)

# config files (selector 0 = service TOML, 1 = lab scenario)
put("config_files", b"\x00" + read("systemd/config.toml.example"))
for s in sorted(os.listdir(os.path.join(ROOT, "examples/scenarios"))):
    put("config_files", b"\x01" + read(os.path.join("examples/scenarios", s)))

# policy and MDS
for p in sorted(os.listdir(os.path.join(ROOT, "daemon/tests/fixtures/policy"))):
    put("policy", read(os.path.join("daemon/tests/fixtures/policy", p)))
put("mds", read("daemon/tests/fixtures/mds/mds3-payload.json"))

# state files (selector 0 = virtual key store CBOR, 1 = link store JSON)
cred = {1: b"\x07" * 16, 2: "example.com", 3: None, 4: b"user", 5: "alice", 6: None, 7: b"\x01" * 32, 8: 3}
put("state_files", b"\x00" + cbor({1: 1, 2: b"\x05" * 32, 3: None, 4: 8, 5: 0, 6: [cred]}))
put("state_files", b"\x00" + cbor({1: 1, 2: b"\x05" * 32, 3: b"\x06" * 16, 4: 3, 5: 7, 6: []}))
link = {"name": "Pixel", "phone_public_key": T["linking"]["phone_identity_public"],
        "contact_id": T["linking"]["contact_id"], "link_id": T["linking"]["pairing_id"],
        "link_secret": T["linking"]["paired_secret"], "tunnel_domain": 0, "created": 1, "updated": 2}
put("state_files", b"\x01" + json.dumps({"version": 1, "links": [link]}).encode())

# HID: 0 = report descriptor (the FIDO one; one with a second, non-FIDO collection first),
# 1 = hot-plug uevent message, 2 = sysfs uevent text
fido = h("06d0f10901a10109201500 26ff00750895408102 09211500 26ff00750895409102c0".replace(" ", ""))
put("hid_device", b"\x00" + fido)
put("hid_device", b"\x00" + h("05010906a101050719e029e71500250175019508810295017508 8101c0".replace(" ", "")) + fido)
put("hid_device", b"\x01" + b"add@/devices/virtual/misc/uhid/0003:1050:0407.0001/hidraw/hidraw3\0ACTION=add\0DEVPATH=/devices/virtual/misc/uhid/0003:1050:0407.0001/hidraw/hidraw3\0SUBSYSTEM=hidraw\0DEVNAME=hidraw3\0SEQNUM=4711\0")
put("hid_device", b"\x01" + b"libudev\0\xfe\xed\xca\xfeACTION=remove\0SUBSYSTEM=hidraw\0DEVNAME=/dev/hidraw3\0")
put("hid_device", b"\x02" + b"DRIVER=hid-generic\nHID_ID=0003:00001050:00000407\nHID_NAME=Yubico YubiKey OTP+FIDO+CCID\nHID_PHYS=usb-0000:00:14.0-1/input1\nHID_UNIQ=\nMODALIAS=hid:b0003g0001v00001050p00000407\n")

# structured targets (arbitrary): a few byte strings to start from
for t in ("ctaphid_host", "ctaphid_device", "hybrid_session"):
    for i in range(3):
        put(t, hashlib.sha256(f"{t}{i}".encode()).digest() * (i + 1))

# uhid event codec: byte 0 picks the direction (0 kernel event, 1 CREATE2, 2 INPUT2, 3 what we
# encode). OUTPUT's size field is at offset 4100, so its seed is a (nearly) whole event: that
# also lifts libFuzzer's -max_len to where OUTPUT is reachable.
def le32(n): return struct.pack("<I", n)
init = b"\xff\xff\xff\xff\x86\x00\x08" + bytes(range(8))
output = bytearray(4103)
output[0:4] = le32(6); output[4:5] = b"\x00"; output[5:5 + len(init)] = init
output[4100:4102] = struct.pack("<H", 65); output[4102] = 1
put("uhid_codec", b"\x00" + bytes(output))
put("uhid_codec", b"\x00" + le32(2) + struct.pack("<Q", 0))          # START
put("uhid_codec", b"\x00" + le32(4))                                  # OPEN
put("uhid_codec", b"\x00" + le32(9) + le32(7))                        # GET_REPORT id 7
put("uhid_codec", b"\x00" + le32(13) + le32(8))                       # SET_REPORT id 8
create = bytearray(4 + 276)
create[0:4] = le32(11); create[4:21] = b"cablebridge phone"
create[260:262] = struct.pack("<H", len(fido)); create[262:264] = struct.pack("<H", 3)
create[264:268] = le32(0x1209); create[268:272] = le32(0xcab1)
put("uhid_codec", b"\x01" + (bytes(create) + fido).ljust(4380, b"\0"))  # whole event
put("uhid_codec", b"\x02" + le32(12) + struct.pack("<H", 64) + init.ljust(64, b"\0"))
put("uhid_codec", b"\x03" + init.ljust(64, b"\0"))
put("uhid_codec", b"\x03" + b"name\0phy" + b"sical\0un" + b"iq\0" + fido)

# the established-session target (arbitrary): byte strings to start from; the other files in
# fuzz/corpus/hybrid_established/ are small inputs copied from a 120 s run's working corpus
# (reaching the open, awaiting-response and closed phases), not written by this script
for i in range(3):
    put("hybrid_established", hashlib.sha256(f"hybrid_established{i}".encode()).digest() * (i + 1))
