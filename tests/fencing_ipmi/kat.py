#!/usr/bin/env python3
"""Known-answer RMCP+ transcripts for hactl's IPMI client, computed
independently of hactl: Python's hmac/hashlib for the HMACs and the
`cryptography` package for AES-CBC-128, from the IPMI v2.0 formulas (research
note ../shared/research/fencing.md §2). Plays both sides of one "status"
operation with fixed random numbers and writes every datagram in order.

tests/fencing_ipmi.rs replays each transcript against hactl's sans-I/O
client: the client must send exactly the "send" datagrams, accept the "recv"
ones, and end with the "result". ipmi_sim has no cipher suite 17, so this is
how suite 17 is tested; the suite-3 transcript from the same generator
matches both hactl and (through hactl's tests against it) ipmi_sim, which
checks the generator itself.

Regenerate (needs python3 and python3-cryptography):
    python3 tests/fencing_ipmi/kat.py tests/fencing_ipmi
"""
import hashlib
import hmac
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SUITES = {
    # suite: (hash, auth alg, integrity alg, conf alg, icv bytes)
    3: (hashlib.sha1, 0x01, 0x01, 0x01, 12),
    17: (hashlib.sha256, 0x03, 0x04, 0x01, 16),
}
RMCP = bytes([0x06, 0x00, 0xFF, 0x07])


def hm(h, key, *parts):
    return hmac.new(key, b"".join(parts), h).digest()


def csum(b):
    return (-sum(b)) & 0xFF


def lan_request(netfn, cmd, seq, data):
    head = bytes([0x20, netfn << 2])
    body = bytes([0x81, seq << 2, cmd]) + bytes(data)
    return head + bytes([csum(head)]) + body + bytes([csum(body)])


def lan_response(netfn, cmd, seq, cc, data):
    head = bytes([0x81, (netfn + 1) << 2])
    body = bytes([0x20, seq << 2, cmd, cc]) + bytes(data)
    return head + bytes([csum(head)]) + body + bytes([csum(body)])


def v15(msg):
    return RMCP + bytes([0x00]) + struct.pack("<II", 0, 0) + bytes([len(msg)]) + msg


def presession(ptype, payload):
    return RMCP + bytes([0x06, ptype]) + struct.pack("<IIH", 0, 0, len(payload)) + payload


def sealed(suite, k1, k2, sid, seq, msg, iv):
    h, _, _, _, icv = SUITES[suite]
    pad = (16 - (len(msg) + 1) % 16) % 16
    plain = msg + bytes(range(1, pad + 1)) + bytes([pad])
    enc = Cipher(algorithms.AES(k2[:16]), modes.CBC(iv)).encryptor()
    payload = iv + enc.update(plain) + enc.finalize()
    pkt = RMCP + bytes([0x06, 0xC0]) + struct.pack("<IIH", sid, seq, len(payload)) + payload
    ipad = (-(len(pkt) - 4 + 2)) % 4
    pkt += b"\xff" * ipad + bytes([ipad, 0x07])
    return pkt + hm(h, k1, pkt[4:])[:icv]


def transcript(suite, privilege, bmc_password=b"fxpass"):
    h, auth, integ, conf, icv = SUITES[suite]
    user, password = b"admin", b"fxpass"
    # The client's random numbers, in the order hactl draws them.
    sidm_bytes = bytes.fromhex("e3cae3ad")
    rm = bytes(range(0x10, 0x20))
    ivs = [bytes([0xA0 + i] * 16) for i in range(3)]
    # The BMC's choices.
    sidc = 0x00001582
    rc = bytes(range(0x40, 0x50))
    guid = bytes.fromhex("686163746c2d746573742d626d630001")
    bmc_ivs = [bytes([0xB0 + i] * 16) for i in range(3)]
    sidm = struct.unpack("<I", sidm_bytes)[0]
    role = 0x10 | privilege
    lens = bytes([len(user)])
    kuid = password.ljust(20, b"\0")
    bmc_kuid = bmc_password.ljust(20, b"\0")

    lines = [f"suite {suite}", f"privilege {privilege}", "username admin", "password fxpass"]
    for e in [sidm_bytes, rm] + ivs:
        lines.append("entropy " + e.hex())

    def send(b):
        lines.append("send " + b.hex())

    def recv(b):
        lines.append("recv " + b.hex())

    send(v15(lan_request(0x06, 0x38, 0, [0x8E, privilege])))
    recv(v15(lan_response(0x06, 0x38, 0, 0, [0x01, 0x97, 0x04, 0x03, 0, 0, 0, 0])))
    algs = bytes([0, 0, 0, 8, auth, 0, 0, 0, 1, 0, 0, 8, integ, 0, 0, 0, 2, 0, 0, 8, conf, 0, 0, 0])
    send(presession(0x10, bytes([0, privilege, 0, 0]) + struct.pack("<I", sidm) + algs))
    recv(presession(0x11, bytes([0, 0, privilege, 0]) + struct.pack("<II", sidm, sidc) + algs))
    send(presession(0x12, bytes([0, 0, 0, 0]) + struct.pack("<I", sidc) + rm + bytes([role, 0, 0]) + lens + user))
    sid_pair = struct.pack("<II", sidm, sidc)
    rakp2_code = hm(h, bmc_kuid, sid_pair, rm, rc, guid, bytes([role]), lens, user)
    recv(presession(0x13, bytes([0, 0, 0, 0]) + struct.pack("<I", sidm) + rc + guid + rakp2_code))
    lines += [
        f"sidm {sidm_bytes.hex()}", f"sidc {struct.pack('<I', sidc).hex()}", f"rm {rm.hex()}",
        f"rc {rc.hex()}", f"guid {guid.hex()}", f"role {role:02x}",
        "rakp2_code " + rakp2_code.hex(),
    ]
    if bmc_password != password:
        # hactl must notice, tell the BMC (RAKP3 status 0x0F) and fail.
        send(presession(0x14, bytes([0, 0x0F, 0, 0]) + struct.pack("<I", sidc)))
        lines.append("result authentication-failed")
        return lines
    rakp3_code = hm(h, kuid, rc, struct.pack("<I", sidm), bytes([role]), lens, user)
    send(presession(0x14, bytes([0, 0, 0, 0]) + struct.pack("<I", sidc) + rakp3_code))
    sik = hm(h, kuid, rm, rc, bytes([role]), lens, user)  # no BMC key: Kuid
    k1 = hm(h, sik, b"\x01" * 20)
    k2 = hm(h, sik, b"\x02" * 20)
    rakp4_icv = hm(h, sik, rm, struct.pack("<I", sidc), guid)[:icv]
    recv(presession(0x15, bytes([0, 0, 0, 0]) + struct.pack("<I", sidm) + rakp4_icv))
    lines += ["rakp3_code " + rakp3_code.hex(), "sik " + sik.hex(), "k1 " + k1.hex(),
              "k2 " + k2.hex(), "rakp4_icv " + rakp4_icv.hex()]
    # Session: Set Session Privilege Level, Get Chassis Status, Close Session.
    send(sealed(suite, k1, k2, sidc, 1, lan_request(0x06, 0x3B, 1, [privilege]), ivs[0]))
    recv(sealed(suite, k1, k2, sidm, 1, lan_response(0x06, 0x3B, 1, 0, [privilege]), bmc_ivs[0]))
    send(sealed(suite, k1, k2, sidc, 2, lan_request(0x00, 0x01, 2, []), ivs[1]))
    recv(sealed(suite, k1, k2, sidm, 2, lan_response(0x00, 0x01, 2, 0, [0x01, 0x00, 0x40, 0x00]), bmc_ivs[1]))
    send(sealed(suite, k1, k2, sidc, 3, lan_request(0x06, 0x3C, 3, struct.pack("<I", sidc)), ivs[2]))
    recv(sealed(suite, k1, k2, sidm, 3, lan_response(0x06, 0x3C, 3, 0, []), bmc_ivs[2]))
    lines.append("result on")
    return lines


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    cases = {
        "suite3-status.kat": transcript(3, 4),
        "suite17-status.kat": transcript(17, 3),
        "suite17-wrong-password.kat": transcript(17, 4, bmc_password=b"other"),
    }
    for name, lines in cases.items():
        with open(os.path.join(out, name), "w") as f:
            f.write("# Generated by tests/fencing_ipmi/kat.py: do not edit, regenerate.\n")
            f.write("\n".join(lines) + "\n")
        print("wrote", os.path.join(out, name))


if __name__ == "__main__":
    main()
