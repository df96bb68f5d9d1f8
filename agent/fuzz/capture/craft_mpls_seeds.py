#!/usr/bin/env python3
"""Writes the crafted MPLS seeds: no Linux router sends RFC 4950 label
stacks, so they are built from a captured time exceeded instead.

From `nkpath-time-exceeded-udp-1.bin` (a real time exceeded quoting an
nkpath UDP probe) it writes two replies carrying the same extension
structure, one MPLS object with two entries (label 16025 TC 0 S 0 TTL 1;
label 1 TC 5 S 1 TTL 254):

* crafted-mpls-rfc4884.bin: the RFC 4884 layout, ICMP length field 32
  (the quote zero-padded to 128 bytes, the extension right after);
* crafted-mpls-compat.bin: the pre-RFC 4884 layout, length field 0 and
  the extension at the fixed offset 128 (RFC 4884 section 5.5).

Usage: craft_mpls_seeds.py CORPUS_DIR
"""
import pathlib
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def label_entry(label: int, traffic_class: int, bottom: int, ttl: int) -> bytes:
    return struct.pack(">I", label << 12 | traffic_class << 9 | bottom << 8 | ttl)


def main() -> None:
    corpus = pathlib.Path(sys.argv[1])
    captured = (corpus / "nkpath-time-exceeded-udp-1.bin").read_bytes()
    outer, quote = bytearray(captured[:20]), captured[28:]
    padded = quote + bytes(128 - len(quote))

    mpls_object = struct.pack(">HBB", 12, 1, 1) + label_entry(16025, 0, 0, 1) + label_entry(1, 5, 1, 254)
    extension = bytearray(b"\x20\x00\x00\x00" + mpls_object)  # version 2
    extension[2:4] = struct.pack(">H", checksum(bytes(extension)))

    for name, length_words in (("crafted-mpls-rfc4884.bin", 32), ("crafted-mpls-compat.bin", 0)):
        icmp = bytearray([11, 0, 0, 0, 0, length_words, 0, 0]) + padded + extension
        icmp[2:4] = struct.pack(">H", checksum(bytes(icmp)))
        header = bytearray(outer)
        header[2:4] = struct.pack(">H", 20 + len(icmp))
        header[10:12] = b"\0\0"
        header[10:12] = struct.pack(">H", checksum(bytes(header)))
        (corpus / name).write_bytes(bytes(header + icmp))
        print(f"{name}: {20 + len(icmp)} bytes")


if __name__ == "__main__":
    main()
