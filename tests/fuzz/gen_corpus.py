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

# ---- game: datagrams, each a length byte then its bytes (tools/examples/game.h)
def game(ptype, body, ack=0):
    return bytes([ptype, 0]) + struct.pack("<HI", 0, ack) + body

def game_reliable(seq, msg, ack=0, length=None):
    return game(7, struct.pack("<IB", seq, len(msg) if length is None else length) + msg, ack)

def datagrams(*ds):
    return b"".join(bytes([len(d)]) + d for d in ds)

chat = lambda n: bytes([2]) + struct.pack("<I", n)
game_seeds = {
    "hello": datagrams(game(1, struct.pack("<I", 0x1234))),
    "welcome": datagrams(game(2, struct.pack("<IIH", 1, 0x1234, 30))),
    "input": datagrams(game(3, struct.pack("<Ibb", 7, -1, 1), ack=3)),
    "state": datagrams(game(4, struct.pack("<IIiiH", 9, 7, -5, 2**31 - 1, 3))),
    "ping-pong": datagrams(game(5, struct.pack("<Q", 2**64 - 1)), game(6, struct.pack("<Q", 1))),
    "tick": datagrams(game(9, struct.pack("<IHQ", 100, 2, 123456789))),
    "ack-all": datagrams(game(8, b"", ack=8)),
    "ack-beyond": datagrams(game(8, b"", ack=9), game(8, b"", ack=2**31)),
    "reliable-in-order": datagrams(*[game_reliable(i, chat(i)) for i in range(4)]),
    "reliable-reordered": datagrams(game_reliable(2, chat(2)), game_reliable(0, chat(0)),
                                    game_reliable(1, chat(1)), game_reliable(1, chat(1))),
    "reliable-window-edge": datagrams(game_reliable(63, chat(63)), game_reliable(64, chat(64)),
                                      game_reliable(2**32 - 1, chat(0))),
    "reliable-max": datagrams(game_reliable(0, bytes(range(16)))),
    "reliable-too-long": datagrams(game_reliable(0, bytes(17))),
    "reliable-length-lie": datagrams(game_reliable(0, b"ab", length=16)),
    "short-header": datagrams(b"\x01\x00\x00"),
    "short-body": datagrams(game(4, bytes(17))),
    "unknown-type": datagrams(game(0, bytes(8)), game(10, bytes(8)), game(255, bytes(8))),
    "empty": datagrams(b""),
}
for name, data in game_seeds.items():
    write("game", name, data)

# ---- statsd: the metric cap byte, then datagrams as for game
statsd_seeds = {
    "counter": bytes([8]) + datagrams(b"hits:1|c"),
    "gauge-delta": bytes([8]) + datagrams(b"temp:20|g\ntemp:+5|g\ntemp:-3|g"),
    "timer": bytes([8]) + datagrams(b"rt:12|ms|@0.5\nrt:7|h\nrt:3|d"),
    "multi-value": bytes([8]) + datagrams(b"a:1|c:2|c:3|g"),
    "tags": bytes([8]) + datagrams(b"req:1|c|#env:prod,region:eu|@0.1"),
    "crlf": bytes([8]) + datagrams(b"a:1|c\r\nb:2|c\r\n\n"),
    "cap-full": bytes([2]) + datagrams(b"a:1|c\nb:1|c\nc:1|c\nd:1|g"),
    "cap-zero": bytes([0]) + datagrams(b"a:1|c"),
    "bad-rate": bytes([8]) + datagrams(b"a:1|c|@0\na:1|c|@1.5\na:1|c|@nan\na:1|c|@"),
    "bad-number": bytes([8]) + datagrams(b"a:nan|c\na:inf|g\na: 1|c\na:|c\na:1e999|c"),
    "bad-type": bytes([8]) + datagrams(b"a:1|x\na:1|\na:1\na:1|cc\na:1|ms|"),
    "no-name": bytes([8]) + datagrams(b":1|c\n|:1|c\na|b:1|c"),
    "long-name": bytes([8]) + datagrams(b"n" * 200 + b":1|c", b"n" * 201 + b":1|c"),
    "many-values": bytes([8]) + datagrams(b"a" + b":1|c" * 32, b"a" + b":1|c" * 33),
    "colon-end": bytes([8]) + datagrams(b"a:", b"a:1|c:", b"a::1|c"),
    "nul-bytes": bytes([8]) + datagrams(b"a\0b:1|c\n\0:1|g"),
    "json-escape": bytes([8]) + datagrams(b"q\"\\\x01\x7f:1|c"),
    "flushes": bytes([4]) + datagrams(*[b"t:%d|ms" % i for i in range(9)]),
    "huge-sum": bytes([8]) + datagrams(b"a:1e308|c:1e308|c", b"a:1e308|c|@1e-300"),
}
for name, data in statsd_seeds.items():
    write("statsd", name, data)
