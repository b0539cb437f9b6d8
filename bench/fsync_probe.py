#!/usr/bin/env python3
"""fsync_probe.py SECONDS DIR: how long the disk under DIR takes to make 8 KiB durable, meanwhile.

Every 5 ms it writes 8 KiB into a 512 KiB file in DIR and calls fdatasync, as PostgreSQL does for
each commit's WAL, and at the end prints one line:
  probes=N p50_ms=.. p99_ms=.. p999_ms=.. max_ms=.. stalls_20ms=K
Run beside a load on the same file system, it tells whether the slow commits of that load were the
disk's (every commit waits for such a flush) or the program's."""
import os
import sys
import time


def main():
    seconds, directory = float(sys.argv[1]), sys.argv[2]
    path = os.path.join(directory, "fsync-probe.dat")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 64 * 8192)
        os.fsync(fd)
        block = b"p" * 8192
        latencies = []
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            started = time.monotonic()
            os.pwrite(fd, block, (i % 64) * 8192)
            os.fdatasync(fd)
            latencies.append((time.monotonic() - started) * 1000)
            i += 1
            time.sleep(0.005)
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()

    def at(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    print(f"probes={len(latencies)} p50_ms={at(0.5):.3f} p99_ms={at(0.99):.3f} p999_ms={at(0.999):.3f} "
          f"max_ms={(latencies[-1] if latencies else 0):.3f} stalls_20ms={sum(1 for v in latencies if v >= 20)}")


if __name__ == "__main__":
    main()
