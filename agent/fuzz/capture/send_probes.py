#!/usr/bin/env python3
"""Sends nkpath probes, as printed by `emit_probes`, on a raw IPv4 socket.

Reads lines `<name> <destination> <hex datagram>` from stdin and sends each
datagram unchanged (IPPROTO_RAW implies IP_HDRINCL), so what goes on the
wire is exactly what nkpath's `build_probe` wrote. Run it inside the
capture namespace only: it sends to whatever the lines say.
"""
import socket
import sys
import time

GAP_SECONDS = 0.2  # stay far below every ICMP rate limit


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for line in sys.stdin:
        if not line.strip():
            continue
        name, destination, datagram = line.split()
        sock.sendto(bytes.fromhex(datagram), (destination, 0))
        print(f"sent {name} to {destination}", file=sys.stderr)
        time.sleep(GAP_SECONDS)


if __name__ == "__main__":
    main()
