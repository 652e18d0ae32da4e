"""Process and system memory as the runtime benchmark reads it (/proc, no tools).

Pss (proportional set size, /proc/PID/smaps_rollup) is what a process
costs: its private pages plus its share of pages it shares (libraries,
copy-on-write pages of a forked parent). MemAvailable (/proc/meminfo) is
the kernel's estimate of what new work can still get; the kernel-side
fields (Slab, PageTables, KernelStack, Shmem, Percpu) say where growth went.
"""

from __future__ import annotations

import os

KERNEL_FIELDS = ("Slab", "SUnreclaim", "PageTables", "KernelStack", "Shmem", "Percpu")


def pss_kib(pid: int) -> int:
    """Pss of `pid` in KiB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def meminfo() -> dict[str, int]:
    """/proc/meminfo in KiB."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0])
    return out


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _ns_ino(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def netkit_processes(marker: str, netns_path: str, python: str) -> dict[int, str]:
    """netkit's processes of a node: {pid: command line}.

    Those whose command line names `marker` (the benchmark's state
    directory: the node's agent and resolver are started with it), and
    every process of the interpreter `python` in the node's netns (any
    other netkit process there). Container processes run other programs.
    """
    try:
        node_ino = os.stat(netns_path).st_ino
    except OSError:
        node_ino = None
    python = os.path.realpath(python)
    me = os.getpid()
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        argv = cmdline(pid)
        if not argv:
            continue                    # kernel thread or gone
        if any(marker in a for a in argv) and any("netkit" in a for a in argv):
            found[pid] = " ".join(argv)
        elif node_ino is not None and _ns_ino(pid) == node_ino and _exe(pid) == python:
            found[pid] = " ".join(argv)
    return found


def processes_named(program: str, marker: str) -> list[int]:
    """pids whose argv[0] ends with `program` ("": any) and whose command line names `marker`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = cmdline(int(entry))
            if argv and argv[0].endswith(program) and any(marker in a for a in argv):
                out.append(int(entry))
    return out
