#!/usr/bin/env python3
"""A tiny DNS server for the packaging test: answers A queries for one name with one
address, NXDOMAIN for other names and an empty answer for other types of that name.

    dns.py NAME ADDRESS [LISTEN_ADDRESS] [PORT]
"""
import socket
import struct
import sys


def qname(packet, offset):
    labels = []
    while packet[offset] != 0:
        n = packet[offset]
        labels.append(packet[offset + 1:offset + 1 + n].decode("ascii", "replace"))
        offset += n + 1
    return ".".join(labels).lower(), offset + 1


def answer(packet, name, address):
    ident, _flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        return None
    asked, end = qname(packet, 12)
    qtype, _qclass = struct.unpack("!HH", packet[end:end + 4])
    question = packet[12:end + 4]
    if asked.rstrip(".") != name:
        return struct.pack("!HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question
    if qtype != 1:
        return struct.pack("!HHHHHH", ident, 0x8180, 1, 0, 0, 0) + question
    record = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
    return struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + record


def main():
    name, address = sys.argv[1].lower().rstrip("."), sys.argv[2]
    listen = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    port = int(sys.argv[4]) if len(sys.argv) > 4 else 53
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen, port))
    print(f"answering {name} A {address} on {listen}:{port}", flush=True)
    while True:
        packet, peer = sock.recvfrom(512)
        try:
            reply = answer(packet, name, address)
        except (IndexError, struct.error):
            continue
        if reply:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
