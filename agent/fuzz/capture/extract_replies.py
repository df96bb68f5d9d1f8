#!/usr/bin/env python3
"""Extracts the IPv4 datagrams of traceroute replies from a pcap file into
seed files for the `reply_parser` fuzz target.

Each seed holds one datagram exactly as a raw socket delivers it: from the
IPv4 header to the IPv4 total length (link header and padding removed).
Files are named `<label>-<kind>-<n>.bin`, where kind is e.g.
`time-exceeded-udp`, `unreachable-port-udp`, `echo-reply`, `tcp-syn-ack`;
identical datagrams are kept once and at most --per-kind per kind.

Standard library only, so it runs wherever tcpdump does.
"""
import argparse
import pathlib
import struct
import sys

LINK_HEADER = {1: 14, 113: 16, 276: 20}  # Ethernet, Linux cooked v1 and v2
PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}
UNREACHABLE_CODES = {0: "net", 1: "host", 2: "protocol", 3: "port", 4: "frag-needed", 13: "admin-prohibited"}


def packets(path):
    data = pathlib.Path(path).read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        sys.exit(f"{path}: not a pcap file (pcapng is not supported; use tcpdump -w)")
    (linktype,) = struct.unpack(endian + "I", data[20:24])
    if linktype not in LINK_HEADER:
        sys.exit(f"{path}: unsupported link type {linktype}")
    offset = 24
    while offset + 16 <= len(data):
        _, _, captured, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        if linktype == 1 and frame[12:14] != b"\x08\x00":
            continue
        yield frame[LINK_HEADER[linktype]:]


def kind_of(datagram):
    """Names a reply, or returns None for anything that is not one."""
    if len(datagram) < 20 or datagram[0] >> 4 != 4:
        return None
    header_len = (datagram[0] & 0x0F) * 4
    protocol = datagram[9]
    payload = datagram[header_len:]
    if protocol == 6 and len(payload) >= 14:
        flags = payload[13]
        if flags & 0x12 == 0x12:
            return "tcp-syn-ack"
        if flags & 0x04:
            return "tcp-rst"
        return None
    if protocol != 1 or len(payload) < 8:
        return None
    icmp_type, code = payload[0], payload[1]
    if icmp_type == 0:
        return "echo-reply"
    if icmp_type not in (3, 11) or len(payload) < 8 + 20:
        return None
    quoted = PROTOCOL_NAMES.get(payload[8 + 9], "other")
    if icmp_type == 11:
        return f"time-exceeded-{quoted}"
    return f"unreachable-{UNREACHABLE_CODES.get(code, f'code{code}')}-{quoted}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pcap")
    parser.add_argument("--label", required=True, help="file name prefix, e.g. traceroute-udp")
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--per-kind", type=int, default=3)
    args = parser.parse_args()

    seen, counts = set(), {}
    for frame in packets(args.pcap):
        if len(frame) < 20:
            continue
        (total_length,) = struct.unpack(">H", frame[2:4])
        datagram = frame[:total_length]
        kind = kind_of(datagram)
        if kind is None or datagram in seen or counts.get(kind, 0) >= args.per_kind:
            continue
        seen.add(datagram)
        counts[kind] = counts.get(kind, 0) + 1
        path = args.out / f"{args.label}-{kind}-{counts[kind]}.bin"
        path.write_bytes(datagram)
        print(f"{path.name}: {len(datagram)} bytes")


if __name__ == "__main__":
    main()
