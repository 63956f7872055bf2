#!/usr/bin/env python3
"""Clients that drip a never-ending request header, and the memory a server holds meanwhile.

usage: header_drip.py PORT PID [CONNECTIONS] [MEGABYTES]

Opens CONNECTIONS (500) connections to 127.0.0.1:PORT at once; each sends a request line and the
start of a header, then 4 KiB more of it every 50 ms, up to MEGABYTES (1) in all, until the server
closes the connection. Prints one line: how many connections the server cut, how long the last
one took, and PID's resident memory before, at its peak (sampled every 20 ms and VmHWM) and at the
end, in KiB.
"""
import asyncio
import sys
import time

CHUNK = b"e" * 4096


def memory_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


async def drip(port, limit):
    """True when the server cut the connection before `limit` bytes of header were sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /drip HTTP/1.1\r\nHost: bench\r\nX-Drip: ")
        sent = 0
        while sent < limit:
            writer.write(CHUNK)
            await writer.drain()
            sent += len(CHUNK)
            try:
                data = await asyncio.wait_for(reader.read(256), 0.05)
                if not data:
                    return True
            except asyncio.TimeoutError:
                pass
        return False
    except (ConnectionError, OSError):
        return True
    finally:
        writer.close()


async def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    connections = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    limit = int(float(sys.argv[4]) * 1_000_000) if len(sys.argv) > 4 else 1_000_000
    before, _ = memory_kib(pid)
    peak = before
    started = time.monotonic()
    tasks = [asyncio.create_task(drip(port, limit)) for _ in range(connections)]
    while not all(t.done() for t in tasks):
        peak = max(peak, memory_kib(pid)[0])
        await asyncio.sleep(0.02)
    took = time.monotonic() - started
    cut = sum(1 for t in tasks if t.result())
    end, hwm = memory_kib(pid)
    peak = max(peak, hwm)
    print(f"cut {cut}/{connections} in {took:.1f} s; RSS KiB before {before} peak {peak} "
          f"(+{peak - before}) end {end}")


asyncio.run(main())
