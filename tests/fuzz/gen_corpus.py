#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/ (committed; rerun after
changing an input format). Inputs are little-endian x86-64 layouts, the
machines dgring runs on. Files found by a fuzzer (crash-*, regression-*) are
left alone. Usage: tests/fuzz/gen_corpus.py"""
import os
import socket
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

# ---- address: mode byte, port (int32), empty_any byte, text or raw bytes
def addr_input(mode, port, empty_any, body):
    return bytes([mode]) + struct.pack("<i", port) + bytes([empty_any]) + body

def sin(ip, port):
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + \
        socket.inet_pton(socket.AF_INET, ip) + bytes(8)

def sin6(ip, port, scope=0, flow=0):
    return struct.pack("<H", socket.AF_INET6) + struct.pack(">H", port) + \
        struct.pack("<I", flow) + socket.inet_pton(socket.AF_INET6, ip) + \
        struct.pack("<I", scope)

v4_texts = ["127.0.0.1", "0.0.0.0", "255.255.255.255", "10.1.2.3", "", "localhost",
            "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.4 ", "256.1.1.1", "::1", "0x7f.1"]
v6_texts = ["::1", "::", "", "localhost", "fe80::1%lo", "fe80::1%1", "fe80::1%0",
            "fe80::1%4294967295", "fe80::1%4294967296", "fe80::1%", "fe80::1%-1",
            "fe80::1%no-such-if", "::ffff:1.2.3.4", "2001:db8::1", "1:2:3:4:5:6:7:8",
            "1::2::3", "fe80::1%lo%1", "127.0.0.1", "[::1]",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295",
            "1:2:3:4:5:6:7:8" + "0" * 60]
ports = [0, 41234, 65535, 65536, -1, 2**31 - 1]
for i, t in enumerate(v4_texts):
    write("address", "v4-%02d" % i, addr_input(0, ports[i % len(ports)], i & 1, t.encode()))
for i, t in enumerate(v6_texts):
    write("address", "v6-%02d" % i, addr_input(1, ports[i % len(ports)], i & 1, t.encode()))
raws = [sin("127.0.0.1", 41234), sin("0.0.0.0", 0), sin("255.255.255.255", 65535),
        sin6("::1", 9), sin6("fe80::1", 53, scope=1), sin6("fe80::1", 53, scope=0xffffffff),
        sin6("::ffff:10.0.0.1", 80, flow=0x12345), sin6("2001:db8::2", 1, scope=77),
        b"", b"\x02", struct.pack("<H", socket.AF_INET), sin("1.2.3.4", 1)[:15],
        sin6("::2", 2)[:27], struct.pack("<H", socket.AF_UNIX) + b"/tmp/x\0",
        bytes(128)]
for i, r in enumerate(raws):
    write("address", "raw-%02d" % i, addr_input(2, 0, 0, r))

# ---- recvmsg: [mode, namelen, controllen] then the buffer
# Engine template (engine/dgram/recv_decode.h): name space sizeof(sockaddr_in6)
# rounded up to 8, control space CMSG_SPACE(4) twice.
NAME_LEN = 32
CONTROL_LEN = 48
SOL_SOCKET, SO_RXQ_OVFL, SOL_UDP, UDP_GRO, MSG_TRUNC = 1, 40, 17, 104, 0x20

def cmsg(level, ctype, data, cmsg_len=None):
    n = 16 + len(data) if cmsg_len is None else cmsg_len
    body = struct.pack("<Qii", n, level, ctype) + data
    return body + bytes((-len(body)) % 8)

def drops(n, **kw):
    return cmsg(SOL_SOCKET, SO_RXQ_OVFL, struct.pack("<I", n), **kw)

def gro(n, **kw):
    return cmsg(SOL_UDP, UDP_GRO, struct.pack("<i", n), **kw)

def recv_input(name, control, payload, payloadlen=None, flags=0, namelen=None,
               controllen=None, mode=0, tmpl=(0, 0), cut=None):
    hdr = struct.pack("<IIII", len(name) if namelen is None else namelen,
                      len(control) if controllen is None else controllen,
                      len(payload) if payloadlen is None else payloadlen, flags)
    name_area = (name + bytes(NAME_LEN))[:NAME_LEN] if mode & 1 == 0 else name
    ctl_area = (control + bytes(CONTROL_LEN))[:CONTROL_LEN] if mode & 1 == 0 else control
    buf = hdr + name_area + ctl_area + payload
    if cut is not None:
        buf = buf[:cut]
    return bytes([mode, tmpl[0], tmpl[1]]) + buf

v4 = sin("127.0.0.1", 41234)
v6 = sin6("::1", 5353)
ll = sin6("fe80::1", 7, scope=1)
seeds = {
    "plain-v4": recv_input(v4, b"", b"hello"),
    "plain-v6": recv_input(v6, b"", b"datagram over IPv6"),
    "linklocal": recv_input(ll, b"", b"x"),
    "empty-payload": recv_input(v4, b"", b""),
    "truncated": recv_input(v4, b"", b"A" * 64, payloadlen=70000, flags=MSG_TRUNC),
    "drops": recv_input(v4, drops(3), b"after drops"),
    "gro-3": recv_input(v4, gro(4), b"aaaabbbbcc"),
    "gro-exact": recv_input(v4, gro(5), b"aaaaabbbbb"),
    "gro-and-drops": recv_input(v6, gro(3) + drops(9), b"abcabcabcab"),
    "drops-and-gro": recv_input(v6, drops(1) + gro(2), b"ababab"),
    "gro-zero": recv_input(v4, gro(0), b"no split"),
    "gro-negative": recv_input(v4, gro(-1), b"no split"),
    "gro-int-min": recv_input(v4, gro(-2**31), b"no split"),
    "gro-huge": recv_input(v4, gro(2**31 - 1), b"no split"),
    "gro-length": recv_input(v4, gro(8), b"no split"),
    "gro-one": recv_input(v4, gro(1), b"0123456789"),
    "short-res": recv_input(v4, b"", b"", cut=10),
    "header-only": recv_input(v4, b"", b"", cut=16),
    "one-short": recv_input(v4, b"", b"", cut=16 + NAME_LEN + CONTROL_LEN - 1),
    "error-res": bytes([2, 104, 0]) + bytes(100),
    "namelen-lie": recv_input(v4, b"", b"p", namelen=0xffffffff),
    "namelen-zero": recv_input(v4, b"", b"p", namelen=0),
    "payloadlen-lie-small": recv_input(v4, b"", b"longer than said", payloadlen=2),
    "payloadlen-lie-huge": recv_input(v4, b"", b"p", payloadlen=0xffffffff),
    "trunc-flag-lie": recv_input(v4, b"", b"whole", flags=MSG_TRUNC),
    "controllen-lie": recv_input(v4, drops(5), b"p", controllen=0xffffffff),
    "controllen-short": recv_input(v4, drops(5), b"p", controllen=17),
    "cmsg-len-huge": recv_input(v4, drops(5, cmsg_len=2**64 - 1), b"p"),
    "cmsg-len-2e63": recv_input(v4, drops(5, cmsg_len=2**63), b"p"),
    "cmsg-len-zero": recv_input(v4, drops(5, cmsg_len=0), b"p"),
    "cmsg-len-short": recv_input(v4, drops(5, cmsg_len=19), b"p"),
    "cmsg-len-past": recv_input(v4, drops(5, cmsg_len=200), b"p"),
    "second-cmsg-huge": recv_input(v4, drops(5) + gro(2, cmsg_len=2**64 - 8), b"pppp"),
    "second-cmsg-wrap": recv_input(v4, drops(5) + gro(2, cmsg_len=2**64 - 24), b"pppp"),
    # Templates other than the engine's: no name, no control, small control.
    "tmpl-empty": recv_input(b"", b"", b"payload", mode=1, tmpl=(0, 0)),
    "tmpl-name-only": recv_input(v4, b"", b"payload", mode=1, tmpl=(16, 0)),
    "tmpl-data-past-res": recv_input(b"", drops(1)[:16], b"", mode=1, tmpl=(0, 16),
                                     controllen=16),
    "tmpl-cmsg-len-20": recv_input(b"", struct.pack("<Qii", 20, SOL_SOCKET, SO_RXQ_OVFL),
                                   b"", mode=1, tmpl=(0, 16)),
    "tmpl-unaligned-name": recv_input(b"\x02\x00\x01", drops(2) + b"\0",
                                      b"x", mode=1, tmpl=(3, 25)),
}
for name, data in seeds.items():
    write("recvmsg", name, data)
