#!/usr/bin/env python3
"""CPU used per group of processes, second by second, from /proc: which process a benchmark's
cores went to (the database, the broker, the service), when they are all on one machine.

    loadtests/cpu-by-process.py postgres tansu pipeline_bench > cpu.log &
    ... run the benchmark, note when its phase of interest starts and ends (epoch seconds) ...
    kill %1
    loadtests/cpu-by-process.py --sum cpu.log FROM TO

Each line is `<epoch seconds> <group>=<CPU seconds in the last second> ...`; a process belongs to
the first group whose name is in its command name or command line, else to `other`. With
`--sum`, adds up the lines between FROM and TO and gives each group's share of the machine's
cores over that window. Processes that start and end between two samples are not seen.
"""

import os
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def snapshot(groups):
    seen = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline") as f:
                command = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / HZ
        group = next((g for g in groups if g in name or g in command), "other")
        seen[pid] = (group, cpu)
    return seen


def sample(groups):
    before = snapshot(groups)
    while True:
        time.sleep(1)
        now = snapshot(groups)
        used = {group: 0.0 for group in groups + ["other"]}
        for pid, (group, cpu) in now.items():
            used[group] += max(0.0, cpu - before.get(pid, (group, 0.0))[1])
        before = now
        print(f"{time.time():.1f} " + " ".join(f"{g}={v:.2f}" for g, v in used.items()), flush=True)


def total(path, start, end):
    used, seconds = {}, 0
    for line in open(path):
        at, *groups = line.split()
        if start <= float(at) <= end:
            seconds += 1
            for field in groups:
                group, value = field.split("=")
                used[group] = used.get(group, 0.0) + float(value)
    cores = os.cpu_count()
    for group, cpu in sorted(used.items(), key=lambda kv: -kv[1]):
        print(f"{group}: {cpu:.2f} CPU s, {100 * cpu / (cores * max(1, seconds)):.0f} % of {cores} cores over {seconds} s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sum"]:
        total(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    else:
        sample(sys.argv[1:])
