#!/usr/bin/env python3
"""Helpers of bench/run.sh that are easier in Python than in bash.

  report.py pgbench-latency LOG...        p50/p99/p99.9 (ms) of pgbench --log files: "k=v ..."
  report.py cpu TOPFILE                   %CPU per command in the last frame of `top -b -n2`
  report.py commit-delta BEFORE AFTER N   group commit per database over N requests (/metrics)
  report.py steal STAT0 STAT1             the machine's busy and steal shares between two /proc/stat reads
  report.py stalls TIMELINE [MS]          an open loop's stalls: runs of 100-ms stretches whose slowest answer took MS (30) or more
  report.py micro JSON TABLE              appends the microbenchmark rows to the results table
  report.py table TABLE                   prints the results table
  report.py medians TABLE...              prints the median of each figure over several runs' tables
"""
import json
import statistics
import sys
import tempfile

COLUMNS = ["scenario", "thr/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "ceiling", "ratio",
           "target", "met", "note"]
WATCHED = ("emporium", "wrk", "postgres", "nginx", "emporium-openlo", "pgbench", "emporium-micro")
IDLE_ACTOR_BYTES_MAX = 2048


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    idx = round(p / 100 * (len(sorted_values) - 1))
    return sorted_values[min(idx, len(sorted_values) - 1)]


def pgbench_latency(paths):
    # pgbench --log: client_id transaction_no latency_us script_no epoch_s epoch_us
    values = []
    for path in paths:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    values.append(int(fields[2]) / 1000)
    values.sort()
    print(f"p50_ms={percentile(values, 50):.3f} p99_ms={percentile(values, 99):.3f} "
          f"p999_ms={percentile(values, 99.9):.3f}")


def cpu(path):
    frames = open(path).read().split("\ntop - ")
    last = frames[-1].splitlines()
    header = next((i for i, l in enumerate(last) if l.lstrip().startswith("PID")), None)
    if header is None:
        return
    per_command = {}
    for line in last[header + 1:]:
        fields = line.split()
        if len(fields) < 12:
            continue
        command = fields[11]
        if command.startswith(WATCHED):
            per_command[command] = per_command.get(command, 0.0) + float(fields[8].replace(",", "."))
    print(" ".join(f"{c}={v:.0f}%" for c, v in sorted(per_command.items(), key=lambda kv: -kv[1])))


def steal(before, after):
    """The machine's busy and steal shares between two first lines of /proc/stat."""
    def fields(path):
        try:
            line = open(path).readline().split()
        except OSError:
            return []
        return [int(v) for v in line[1:]] if line and line[0] == "cpu" else []
    a, b = fields(before), fields(after)
    if len(a) < 8 or len(a) != len(b):
        print("machine: -")
        return
    d = [y - x for x, y in zip(a, b)]
    total = sum(d[:8])  # user nice system idle iowait irq softirq steal (guest time is in user)
    if total <= 0:
        print("machine: -")
        return
    idle = d[3] + d[4]
    note = " (the host took time: this run's figures are low)" if d[7] / total > 0.02 else ""
    print(f"machine busy={100 * (total - idle - d[7]) / total:.0f}% steal={100 * d[7] / total:.1f}%{note}")


def stalls(path, min_ms="30"):
    """Stalls of the whole path, from an open loop's timeline (send time and latency of each
    answered request, in ms): the 100-ms stretches of sending whose slowest answer took MS or more,
    adjacent ones counted as one stall. A stall holds every request sent during it, so at half rate
    one costs a few hundred slow answers, and one or two make the p99. Only answered requests are in
    the timeline (the generator counts the others as errors); a line it cannot read is skipped.
    Prints the stalls, the slow stretches, and the slowest answer of the run."""
    floor = float(min_ms)
    worst = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        print(f"stalls=- stretches=- slowest_ms=- floor_ms={floor:g}")
        return
    for line in lines:
        try:
            sent, latency = (float(v) for v in line.split())
        except ValueError:
            continue
        k = int(sent // 100)
        worst[k] = max(worst.get(k, 0.0), latency)
    slow = sorted(k for k, v in worst.items() if v >= floor)
    events = sum(1 for i, k in enumerate(slow) if i == 0 or slow[i - 1] != k - 1)
    slowest = max(worst.values(), default=0.0)
    print(f"stalls={events} stretches={len(slow)} slowest_ms={slowest:.1f} floor_ms={floor:g}")


def metrics(path):
    values = {}
    for line in open(path):
        if line.strip():
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


def commit_delta(before_path, after_path, requests):
    # Sums over every series of a database (one per connection, when the node shards them).
    before, after, requests = metrics(before_path), metrics(after_path), max(int(requests), 1)

    def total(values, name, db, combine=sum):
        found = [v for k, v in values.items()
                 if k.startswith(name + "{") and f'database="{db}"' in k]
        return combine(found) if found else 0.0

    parts = []
    for db in ("orders", "inventory"):
        batches = total(after, "emporium_commit_batches_total", db) - total(
            before, "emporium_commit_batches_total", db)
        writes = total(after, "emporium_commit_writes_total", db) - total(
            before, "emporium_commit_writes_total", db)
        biggest = total(after, "emporium_commit_batch_size_max", db, max)
        parts.append(f"{db} db {writes / requests:.2f} writes/request in "
                     f"{batches / requests:.2f} commits/request (avg batch "
                     f"{writes / batches if batches else 0:.1f}, max seen {biggest:.0f})")
    print("; ".join(parts))


def micro(json_path, table_path):
    data = json.load(open(json_path))
    rows = []
    for b in data["benchmarks"]:
        name = b["run_name"] if "run_name" in b else b["name"]
        name = name.split("/")[0].removeprefix("BM_")
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        if "bytes_per_actor" in b:
            # Judged by the larger of the two: the allocator's bytes (rounded up to its size
            # classes) and the resident growth, which falls short when the warm-up round's freed
            # memory is reused without new pages.
            per_actor = b["bytes_per_actor"]
            left = b.get("bytes_left_per_passivated", 0)
            heap = b.get("heap_bytes_per_actor", 0)
            heap_left = b.get("heap_bytes_left_per_passivated", 0)
            ratio = max(per_actor, heap) / IDLE_ACTOR_BYTES_MAX
            floor = "Bare" in name  # CAF's own cost, for comparison: no target
            rows.append([f"micro {name}", "-", "-", "-", "-", "0", "-" if floor else "2 KiB",
                         "-" if floor else f"{ratio:.2f}", "-" if floor else "<= 1.00",
                         "-" if floor else ("yes" if ratio <= 1 else "no"),
                         f"heap {heap:.0f} B/actor (RSS {per_actor:.0f}); after passivation "
                         f"RSS {left:.0f}, heap {heap_left:.0f} B/actor, "
                         f"{b.get('active_after_passivation', 0):.0f} active"])
        elif "heap_bytes_per_committed_reservation" in b:
            # An item keeps each committed reservation until its order ships: no target of its
            # own, but it adds to the item's bytes while its orders wait.
            rows.append([f"micro {name}", "-", "-", "-", "-", "0", "-", "-", "-", "-",
                         f"heap {b['heap_bytes_per_committed_reservation']:.0f} B per committed "
                         f"reservation; activation with {b.get('committed', 0):.0f} of them "
                         f"{b.get('activation_ms', 0):.0f} ms"])
        else:
            rate = b.get("items_per_second", 0)
            rows.append([f"micro {name}", f"{rate:.0f}", "-", "-", "-", "0", "-", "-", "-", "-",
                         f"{1e6 / rate:.2f} us/op" if rate else ""])
    with open(table_path, "a") as f:
        for r in rows:
            f.write("\t".join(r) + "\n")


def table(path):
    rows = [COLUMNS] + [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
    width = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(COLUMNS))]
    for n, r in enumerate(rows):
        cells = [(r[i] if i < len(r) else "") for i in range(len(COLUMNS))]
        print("  ".join(c.ljust(width[i]) if i in (0, 6, 8, 10) else c.rjust(width[i])
                        for i, c in enumerate(cells)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in width))


def number(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def met(target, ratio, p99):
    """Whether a median meets its target, as run.sh states targets: ">= R", "<= R", "p99 < X ms"."""
    parts = target.split()
    if len(parts) == 2 and parts[0] in (">=", "<=") and ratio is not None:
        bound = float(parts[1])
        return "yes" if (ratio >= bound if parts[0] == ">=" else ratio <= bound) else "no"
    if len(parts) == 4 and parts[0] == "p99" and parts[1] == "<" and p99 is not None:
        return "yes" if p99 < float(parts[2]) else "no"
    return "-"


def medians(paths):
    # The targets are medians over repeated runs: one row per scenario, each figure the median of
    # the runs that measured it, with the spread of the ratio and of the p99 in the note.
    rows_by_name, order = {}, []
    for path in paths:
        for line in open(path):
            if not line.strip():
                continue
            row = line.rstrip("\n").split("\t")
            if row[0] not in rows_by_name:
                order.append(row[0])
                rows_by_name[row[0]] = []
            rows_by_name[row[0]].append(row)
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as out:
        for name in order:
            rows = rows_by_name[name]

            def values(i):
                return sorted(v for v in (number(r[i]) for r in rows if len(r) > i) if v is not None)

            def median(i):
                found = values(i)
                return statistics.median(found) if found else None

            cells = [name]
            for i, fmt in ((1, "{:.1f}"), (2, "{:.3f}"), (3, "{:.3f}"), (4, "{:.3f}")):
                m = median(i)
                cells.append("-" if m is None else fmt.format(m))
            cells.append(str(sum(int(v) for v in values(5))))
            ratio, p99 = median(7), median(3)
            cells += [rows[0][6], "-" if ratio is None else f"{ratio:.2f}", rows[0][8],
                      met(rows[0][8], ratio, p99)]
            note = f"median of {len(rows)} runs"
            if values(7):
                note += f"; ratio {values(7)[0]:.2f} to {values(7)[-1]:.2f}"
            if values(3):
                note += f"; p99 {values(3)[0]:.1f} to {values(3)[-1]:.1f} ms"
            cells.append(note)
            out.write("\t".join(cells) + "\n")
    table(out.name)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"pgbench-latency": lambda: pgbench_latency(args), "cpu": lambda: cpu(args[0]),
     "commit-delta": lambda: commit_delta(*args), "steal": lambda: steal(args[0], args[1]),
     "stalls": lambda: stalls(*args),
     "micro": lambda: micro(args[0], args[1]), "table": lambda: table(args[0]),
     "medians": lambda: medians(args)}[command]()
