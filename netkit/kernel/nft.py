"""Apply nftables scripts inside a node's netns: one ``nft -f -`` per apply.

A script is one kernel transaction: it applies whole or not at all, so a
failed apply leaves the previous ruleset in place. ``nft`` runs inside the
netns through ``nsenter --net=/run/netns/NAME``, which setns()es and execs
nft (one process, and the caller's threads never change namespace).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

from netkit.errors import KernelError, NotFound, Unsupported
from netkit.firewall.ruleset import TABLE, render_delete
from netkit.kernel import netns as ns

TIMEOUT = 30.0
# "/dev/stdin:12:5-16: Error: Could not process rule: Operation not supported"
_ERROR = re.compile(r"^(?:[^:\n]*:(\d+):[\d-]+: )?Error: (.*)$", re.M)
# One inet nat chain: what netkit needs from the kernel (nft_nat, inet nat hooks).
_PROBE = (f"table inet {TABLE}_probe {{\n\tchain p {{\n"
          "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
          "\t\tmasquerade\n\t}\n}\n")


@functools.cache
def _nft() -> str | None:
    return shutil.which("nft") or next(
        (p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)


def _run(netns: str | None, args: list[str], script: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    nft = _nft()
    if nft is None:
        raise Unsupported("nft not found: install nftables")
    argv = [nft, *args]
    if netns is not None:
        if not ns.exists(netns):
            raise NotFound(f"netns {netns} not found")
        argv = ["nsenter", f"--net={ns.netns_path(netns)}", "--", *argv]
    try:
        return subprocess.run(argv, input=script, capture_output=True, text=True,
                              timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError(f"nft {' '.join(args)} in netns {netns or 'host'}: {exc}") from exc


def _error(stderr: str, script: str | None) -> str:
    """nft's first error line, with the script line it points at."""
    m = _ERROR.search(stderr)
    if m is None:
        return (stderr.strip().splitlines() or ["failed"])[0].strip()
    message = m.group(2).strip()
    if m.group(1) and script:
        lines = script.splitlines()
        index = int(m.group(1)) - 1
        if 0 <= index < len(lines):
            message += f" (line {index + 1}: {lines[index].strip()})"
    return message


def apply(netns: str | None, script: str) -> None:
    """Run `script` with ``nft -f -`` in netns `netns` (None: the current one)."""
    proc = _run(netns, ["-f", "-"], script)
    if proc.returncode != 0:
        raise KernelError(f"apply nft ruleset in netns {netns or 'host'}: "
                          f"{_error(proc.stderr, script)}")


def check(netns: str | None, script: str) -> None:
    """Like apply, in check mode (``nft -c``): the kernel validates, nothing changes."""
    proc = _run(netns, ["-c", "-f", "-"], script)
    if proc.returncode != 0:
        raise KernelError(f"check nft ruleset in netns {netns or 'host'}: "
                          f"{_error(proc.stderr, script)}")


def list_table(netns: str | None, family: str = "inet", table: str = TABLE) -> str | None:
    """``nft list table <family> <table>`` in `netns`, or None if there is no such table."""
    proc = _run(netns, ["list", "table", family, table])
    if proc.returncode == 0:
        return proc.stdout
    if "No such file or directory" in proc.stderr:
        return None
    raise KernelError(f"list nft table {family} {table} in netns {netns or 'host'}: "
                      f"{_error(proc.stderr, None)}")


def delete(netns: str | None) -> None:
    """Remove netkit's tables from `netns`; nothing to do if they, or the netns, are gone."""
    try:
        apply(netns, render_delete())
    except NotFound:
        pass


@functools.cache
def available() -> bool:
    """True if nft runs here and the kernel takes an inet nat chain (checked, not applied)."""
    if _nft() is None:
        return False
    try:
        return _run(None, ["-c", "-f", "-"], _PROBE).returncode == 0
    except KernelError:
        return False
