#!/usr/bin/env python3
"""Runs a command and prints one line on stdout: its wall time and its peak memory, split by kind.

    scripts/peak-memory.py [--interval MS] [--out FILE] -- COMMAND ARGS...
    -> "wall_s=1.23 cpu_s=1.10 anon_mib=140.2 file_mib=35.1 hwm_mib=170.4 maxrss_mib=184.1"

- cpu_s: user + system CPU time of the command (getrusage), which on a machine shared with other
  work says more of the command's cost than its wall time.

- anon_mib: the largest RssAnon seen in /proc/PID/status, sampled every --interval ms (default 5): the
  process's own memory (heap, stacks), what it cannot give back without freeing.
- file_mib: the largest RssFile seen: file-backed pages mapped into the process (the binary, and a
  memory-mapped input); clean pages the kernel may reclaim at any time.
- hwm_mib: VmHWM, the kernel's exact peak of the total resident set (anonymous + file + shared),
  read on the last sample; maxrss_mib: getrusage's ru_maxrss of the child, exact, but never below the
  resident size of the forked Python that ran exec (about 14 MiB).

The split peaks are sampled, so a spike shorter than the interval can be missed; the totals are exact.
The command's stdout and stderr are this process's; the line goes to stdout after the command's
output, or to FILE with --out. Exits with the command's status.
"""
import os
import subprocess
import sys
import time

FIELDS = ("RssAnon", "RssFile", "RssShmem", "VmHWM")


def sample(pid):
    """The FIELDS of /proc/PID/status in KiB (empty once the process is a zombie)."""
    got = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in FIELDS:
                    got[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return got


def main():
    args = sys.argv[1:]
    interval, out = 0.005, None
    while args[:1] in (["--interval"], ["--out"]):
        if args[0] == "--interval":
            interval = float(args[1]) / 1000
        else:
            out = args[1]
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    peak = dict.fromkeys(FIELDS, 0)
    start = time.monotonic()
    proc = subprocess.Popen(args)
    while True:
        for k, v in sample(proc.pid).items():
            peak[k] = max(peak[k], v)
        # wait4 rather than Popen.poll: it returns the child's own rusage (ru_maxrss).
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(interval)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    mib = lambda kib: kib / 1024
    line = (
        "wall_s=%.3f cpu_s=%.3f anon_mib=%.1f file_mib=%.1f hwm_mib=%.1f maxrss_mib=%.1f"
        % (wall, usage.ru_utime + usage.ru_stime, mib(peak["RssAnon"]), mib(peak["RssFile"]), mib(peak["VmHWM"]), mib(usage.ru_maxrss))
    )
    if out is None:
        print(line, flush=True)
    else:
        with open(out, "w") as f:
            print(line, file=f)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
