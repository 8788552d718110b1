#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Frames follow the byte layout of core/frame.c (docs/protocol.md): a 12-byte
big-endian header (type u8, flags u8, reserved u16, stream u32, length u32)
then the payload. Run it from anywhere; it replaces the files it owns.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

HELLO, OPEN, ACCEPT, REFUSE, DATA, WINDOW, RESET, PING, GOAWAY = range(9)
F_FIN, F_ACK = 0x01, 0x02
OPEN_INTERACTIVE, OPEN_DGRAM = 0x0001, 0x0002
MAGIC = 0x564D4246
CAP_EXEC, CAP_TCP = 1 << 3, 1 << 5


def frame(ftype, payload=b"", stream=0, flags=0):
    return struct.pack(">BBHII", ftype, flags, 0, stream, len(payload)) + payload


def hello_payload(max_frame=65536, max_streams=64, role=1, name=b"agent 0.1.0", lo=1, hi=1):
    return (struct.pack(">IHHIIQBB", MAGIC, lo, hi, max_frame, max_streams,
                        CAP_EXEC | CAP_TCP, role, len(name)) + name)


def hello(**kw):
    return frame(HELLO, hello_payload(**kw))


def open_(stream, kind=1, flags=0, req=b""):
    return frame(OPEN, struct.pack(">HH", kind, flags) + req, stream)


def data(stream, payload, fin=False):
    return frame(DATA, payload, stream, F_FIN if fin else 0)


def u32(ftype, stream, value):
    return frame(ftype, struct.pack(">I", value), stream)


def ping(stamp, ack=False):
    return frame(PING, struct.pack(">Q", stamp), 0, F_ACK if ack else 0)


def refuse_payload(code, text):
    return struct.pack(">IB", code, len(text)) + text


def goaway_payload(code, last, text):
    return struct.pack(">IIB", code, last, len(text)) + text


def session_seeds():
    """fuzz_session input: side byte, 4 seed bytes, then the peer's frames.

    Side byte bits 1-3: log2 of our max_streams. Bit 0 set: we dial, the peer
    opens even ids and our first stream is 1. Clear: we accept, the peer opens
    odd ids and our first stream is 2.
    """
    seeds = {}
    for dialer in (1, 0):
        side = "dial" if dialer else "accept"
        peer = [2, 4, 6] if dialer else [1, 3, 5]
        ours = 1 if dialer else 2
        pre = bytes([dialer | (3 << 1)]) + struct.pack(">I", 0x1234567 + dialer)
        seeds[f"{side}_hello"] = pre + hello()
        seeds[f"{side}_stream_echo"] = pre + hello() + open_(peer[0], 1, 0, b"ls -l") + \
            data(peer[0], b"hello, world\n") + data(peer[0], b"", fin=True) + \
            u32(WINDOW, peer[0], 4096)
        seeds[f"{side}_many_streams"] = pre + hello(max_streams=4) + b"".join(
            open_(i, 5, OPEN_INTERACTIVE if i == peer[1] else 0, b"x" * i) for i in peer) + \
            b"".join(data(i, bytes(range(256)) * 4) for i in peer) + \
            u32(RESET, peer[1], 19) + data(peer[2], b"tail", fin=True)
        seeds[f"{side}_dgram"] = pre + hello() + open_(peer[0], 6, OPEN_DGRAM) + \
            b"".join(data(peer[0], b"\x45" + bytes(39)) for _ in range(6))
        seeds[f"{side}_accept_ours"] = pre + hello() + frame(ACCEPT, b"ok", ours) + \
            u32(WINDOW, ours, 65536) + data(ours, b"reply" * 100) + data(ours, b"", fin=True)
        seeds[f"{side}_refuse_ours"] = pre + hello() + \
            frame(REFUSE, refuse_payload(7, b"connection refused"), ours)
        seeds[f"{side}_ping_goaway"] = pre + hello() + ping(12345) + ping(1000, ack=True) + \
            frame(GOAWAY, goaway_payload(15, 0, b"shutting down"))
        seeds[f"{side}_big_data"] = pre + hello(max_frame=16384) + open_(peer[0]) + \
            data(peer[0], b"\xa5" * 16384) + data(peer[0], b"", fin=True)
    pre = bytes([1]) + struct.pack(">I", 99)
    seeds["stream_table_growth"] = bytes([7 << 1]) + struct.pack(">I", 7) + hello() + \
        b"".join(open_(i) for i in range(1, 80, 2))
    seeds["bad_version"] = pre + hello(lo=2, hi=3)
    seeds["data_before_hello"] = pre + data(2, b"x")
    seeds["window_overflow"] = pre + hello() + frame(ACCEPT, b"", 1) + \
        u32(WINDOW, 1, 0x7FFFFFF0)
    seeds["data_too_big"] = pre + hello() + open_(2) + frame(DATA, b"", 2)[:8] + \
        struct.pack(">I", 1 << 20)
    return seeds


def frame_seeds():
    """fuzz_frame input: a selector byte (0 hdr .. 6 u64) then the decoder's input."""
    return {
        "hdr_data": b"\x00" + frame(DATA, b"", 7, F_FIN)[:12],
        "hdr_reserved": b"\x00" + bytes([4, 0, 0, 1]) + bytes(8),
        "hello": b"\x01" + hello_payload(),
        "hello_trailing": b"\x01" + hello_payload(name=b"x\x01\xff") + b"future",
        "open": b"\x02" + struct.pack(">HH", 3, OPEN_INTERACTIVE) + b"/bin/sh\0-c\0true",
        "refuse": b"\x03" + refuse_payload(12, b"no such file"),
        "goaway": b"\x04" + goaway_payload(1, 17, b"malformed DATA"),
        "u32": b"\x05" + struct.pack(">I", 65536),
        "u64": b"\x06" + struct.pack(">Q", 1 << 40),
    }


def uri_seeds():
    uris = [
        "vsock://3:1024", "vsock://-1:80", "hybrid:///run/fc/v.sock:1234", "hvsock://parent:80",
        "hvsock://Parent/3049197C-9A4E-4FBF-9367-97F792F16994", "hvsock://my-vm:7",
        "unix:///run/vmbusify/control.sock", "serial:///dev/ttyS1", "tcp://127.0.0.1:5000",
        "tcp://[fe80::1%eth0]:22", "00005642-FACB-11E6-BD58-64006A7986D3",
        "{a42e7cda-d03f-480c-9cc2-a4de20abb878}",
    ]
    return {f"uri_{i:02d}": u.encode() for i, u in enumerate(uris)}


def config_seeds():
    example = (b"# comment\n[daemon]\ncontrol = unix:///run/vmbusify/control.sock\n"
               b"threads = 2\nlog-level = info\nbackend = auto          # auto | uring | epoll\n"
               b"[vm lab1]\nuri = unix:///run/vmbusify/lab/lab1.sock\n[vm web-7]\n"
               b"uri = vsock://7\n")
    return {
        "example": example,
        "example_crlf": example.replace(b"\n", b"\r\n"),
        "whitespace": b"\xef\xbb\xbf  [ vm \t a.b_c ]  # x\n\turi\t=\thvsock://parent:80  \n",
        "errors": b"[daemon]\nthreads = 0\n[vm -x]\n[vms]\nuri2 = y\n",
        "dup": b"[vm a]\nuri = vsock://3\n[vm a]\nuri = vsock://3\n",
    }


def cp_str(b):
    return struct.pack(">H", len(b)) + b


def cp_req(direction, flags, paths):
    return struct.pack(">BIH", direction, flags, len(paths)) + b"".join(cp_str(x) for x in paths)


def cp_entry(etype, flags, mode, size, path, target=b"", mtime=1, atime=2):
    return struct.pack(">BBIQqq", etype, flags, mode, size, mtime, atime) + cp_str(path) + \
        cp_str(target)


def cp_seeds():
    """fuzz_cp input: a selector byte (0 request, 1 ENTRY, 2 END, 3 TOTAL, 4 DONE, 5 RESULT,
    6 path check, 7 top name) then the decoder's input (exec/cp_msg.h, docs/protocol.md)."""
    put, get = 0, 1
    f_file, f_dir, f_link, top = 1, 2, 3, 0x01
    return {
        "req_put": b"\x00" + cp_req(put, 0x03, [b"/tmp/x"]),
        "req_get": b"\x00" + cp_req(get, 0x15, [b"a", b"/b/c", b"dir/.", b"/"]),
        "req_stdin": b"\x00" + cp_req(put, 0x08, [b"/tmp/from-stdin"]),
        "entry_file": b"\x01" + cp_entry(f_file, top, 0o644, 5, b"f.txt", mtime=-1),
        "entry_dir_dot": b"\x01" + cp_entry(f_dir, top, 0o755, 0, b"."),
        "entry_nested": b"\x01" + cp_entry(f_file, 0, 0o4755, 1 << 40, b"a/b/..c/d"),
        "entry_link": b"\x01" + cp_entry(f_link, 0, 0o777, 0, b"d/l", b"../../etc/passwd"),
        "entry_stream": b"\x01" + cp_entry(f_file, top, 0o644, (1 << 64) - 1, b"-"),
        "entry_full": b"\x01" + cp_entry(f_link, 0, 0o777, 0, b"p" * 600, b"t" * 390),
        "end": b"\x02" + struct.pack(">IQ", 0, 5) + bytes(range(16)),
        "end_error": b"\x02" + struct.pack(">IQ", 18, 4096) + bytes(16),
        "total": b"\x03" + struct.pack(">QQ", 1 << 30, 1000),
        "done": b"\x04" + struct.pack(">QQQ", 9, 1, 312),
        "result": b"\x05" + struct.pack(">I", 13) + cp_str(b"dir/f") + b"\x11Permission denied",
        "result_ctl": b"\x05" + struct.pack(">I", 12) + cp_str(b"x\x1b[2J") + b"\x02\r\n",
        "path_ok": b"\x06a/b/c",
        "path_dotdot": b"\x06a/../../x",
        "path_dot": b"\x06.",
        "path_slashes": b"\x06/a//b/",
        "top_trailing": b"\x07/a/b///",
        "top_contents": b"\x07dir/.",
        "top_root": b"\x07/",
    }


def vnet_seeds():
    """Byte 0: 0 packet with offload header, 1 without, 2 attach request, 3 lease."""
    def v4(total, proto, src, dst):
        b = bytearray(total)
        b[0], b[8], b[9] = 0x45, 64, proto
        b[2:4] = struct.pack(">H", total)
        b[12:16], b[16:20] = bytes(src), bytes(dst)
        return bytes(b)

    def v6(payload, nxt, src, dst):
        b = bytearray(40 + payload)
        b[0], b[6], b[7] = 0x60, nxt, 64
        b[4:6] = struct.pack(">H", payload)
        b[8:24], b[24:40] = bytes(src), bytes(dst)
        return bytes(b)

    src4, src6 = [10, 77, 0, 2], [0xFD, 0x77] + [0] * 13 + [2]
    gw6 = [0xFD, 0x77] + [0] * 13 + [1]
    tso = struct.pack("<BBHHHHH", 1, 1, 54, 1448, 20, 16, 0)
    return {
        "v4_udp_hdr": b"\x00" + bytes(12) + v4(60, 17, src4, [198, 51, 100, 80]),
        "v4_icmp_nohdr": b"\x01" + v4(84, 1, src4, [10, 77, 0, 1]),
        "v4_tso": b"\x00" + tso + v4(9000, 6, src4, [198, 51, 100, 80]),
        "v6_icmp": b"\x00" + bytes(12) + v6(16, 58, src6, gw6),
        "req": b"\x02" + bytes([1, 1, 12, 0]) + struct.pack(">I", 65520),
        "lease": b"\x03" + bytes([2, 24, 64, 0]) + struct.pack(">II", 65520, 100)
        + bytes([10, 77, 0, 2, 10, 77, 0, 1, 10, 77, 0, 1]) + bytes(src6) + bytes(gw6),
    }


def tcp_seeds():
    """Byte 0: 0 request, 1 reply, 2 datagram header (tests/fuzz/fuzz_tcp.c)."""
    v4 = bytes([1]) + struct.pack(">H", 80) + bytes([198, 51, 100, 80])
    v6 = bytes([4]) + struct.pack(">H", 443) + bytes([0xfd] + [0] * 14 + [2])
    name = bytes([3]) + struct.pack(">H", 80) + bytes([12]) + b"ext.lab.test"
    return {
        "req_connect_v4": b"\x00" + bytes([1]) + v4,
        "req_connect_v6": b"\x00" + bytes([1]) + v6,
        "req_connect_name": b"\x00" + bytes([1]) + name,
        "req_listen": b"\x00" + bytes([3]) + v4 + struct.pack(">I", 7),
        "req_forwarded": b"\x00" + bytes([2]) + v6 + struct.pack(">I", 9),
        "req_udp": b"\x00" + bytes([4, 1, 0, 0, 0, 0, 0, 0]),
        "reply_v4_v6": b"\x01" + v4 + v6,
        "dgram_v4": b"\x02" + v4 + b"payload",
        "dgram_name": b"\x02" + name + b"\x00\x01",
    }


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if name.startswith("regress-"):
            continue  # a crash the fuzzer found once: kept for good
        os.unlink(os.path.join(d, name))
    for name, blob in sorted(seeds.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(blob)
    return len(seeds), sum(len(b) for b in seeds.values())


def main():
    for target, seeds in (("fuzz_session", session_seeds()), ("fuzz_frame", frame_seeds()),
                          ("fuzz_uri", uri_seeds()), ("fuzz_config", config_seeds()),
                          ("fuzz_cp", cp_seeds()), ("fuzz_vnet", vnet_seeds()),
                          ("fuzz_tcp", tcp_seeds())):
        n, size = write(target, seeds)
        print(f"{target}: {n} seeds, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
