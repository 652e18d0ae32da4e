"""A container process's privileges, as Docker gives them: capabilities, user, sysctls.

The pure half (names, Docker's rules, its error wording) runs on the CLI's
path and imports nothing heavy; `apply` runs in a forked child right before
exec (the container's init, an `exec` process), after it joined the
container's namespaces and mounted what it mounts.

Docker's rules (moby caps.TweakCapabilities, oci.SetCapabilities):
- default: the 14 capabilities of `DEFAULT` in the bounding, permitted and
  effective sets; inheritable and ambient empty (Docker 20.10.14+);
- `--cap-add ALL`: every capability but those dropped; `--cap-drop ALL`:
  only those added; otherwise the default minus the dropped plus the added;
- `--privileged`: every capability the kernel knows (add/drop ignored);
- `--user` other than uid 0: the bounding set only, permitted and effective
  empty (moby #36587), so the process gains them only through setuid or
  file-capability binaries, as in Docker;
- no `no_new_privs` (Docker sets it only with `--security-opt no-new-privileges`).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from netkit.errors import InvalidArgument

# capability numbers are the index (linux/capability.h)
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE")
DEFAULT = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
           "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")
# Docker's client (opts.ValidateSysctl): what a container may set
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
               "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+")


@functools.cache
def last_cap() -> int:
    """The highest capability number the running kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return min(int(f.read()), len(CAPABILITIES) - 1)
    except OSError:
        return len(CAPABILITIES) - 1


def mask_of(names: tuple[str, ...] | list[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES.index(name)
    return mask


def all_caps() -> int:
    return (1 << (last_cap() + 1)) - 1


def _normalize(caps: tuple[str, ...] | list[str], what: str) -> list[str]:
    """`net_admin`, `CAP_NET_ADMIN` -> NET_ADMIN; ALL stays; else Docker's error."""
    out = []
    for raw in caps:
        name = raw.strip().upper()
        if name == "ALL":
            out.append(name)
            continue
        name = name.removeprefix("CAP_")
        if name not in CAPABILITIES[:last_cap() + 1]:
            raise InvalidArgument(f'invalid {what}: unknown capability: "CAP_{name}"')
        out.append(name)
    return out


def capability_mask(cap_add: tuple[str, ...] = (), cap_drop: tuple[str, ...] = (),
                    privileged: bool = False) -> int:
    """The bounding (and, for root, permitted and effective) set Docker gives."""
    add, drop = _normalize(cap_add, "CapAdd"), _normalize(cap_drop, "CapDrop")
    if privileged:
        return all_caps()
    if "ALL" in add:
        return all_caps() & ~mask_of([c for c in drop if c != "ALL"])
    if "ALL" in drop:
        return mask_of(add)
    return (mask_of(DEFAULT) & ~mask_of(drop)) | mask_of(add)


def cap_names(mask: int) -> list[str]:
    return [f"CAP_{name}" for i, name in enumerate(CAPABILITIES) if mask >> i & 1]


def check_sysctls(sysctls: dict[str, str], network: str) -> None:
    """`--sysctl` as Docker's client and runc check it. netkit containers share the host's
    IPC namespace, so the IPC ones are refused as runc refuses them there."""
    for key, value in sysctls.items():
        if key.startswith("net.") and _SYSCTL_KEY.fullmatch(key):
            if network == "host":
                raise InvalidArgument(f'sysctl "{key}" not allowed in host network namespace')
            continue
        if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
            raise InvalidArgument(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
        raise InvalidArgument(f"invalid argument \"{key}={value}\" for \"--sysctl\" flag: "
                              f"sysctl '{key}={value}' is not whitelisted")


def parse_sysctls(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--sysctl KEY=VALUE` flags (repeatable) as a mapping."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"invalid argument \"{item}\" for \"--sysctl\" flag: "
                                  f"sysctl '{item}' is not whitelisted")
        out[key.strip()] = value
    return out


@dataclass(frozen=True, slots=True)
class User:
    """`--user` resolved on the host (netkit containers run the host's files)."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def resolve_user(user: str | None) -> User | None:
    """`--user NAME|UID[:GROUP|GID]` -> ids; names from the host's passwd and group files.
    None: the default (root). Docker's error when a name is unknown."""
    if not user:
        return None
    name, _, group = user.partition(":")
    entry = _passwd(name)
    if entry is None and not name.isdigit():
        raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file")
    uid = int(name) if name.isdigit() else entry[1]          # type: ignore[index]
    gid = entry[2] if entry is not None else 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = _group(group)
            if found is None:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
            gid = found
    if uid >= 1 << 31 or gid >= 1 << 31:
        raise InvalidArgument(f"uids and gids must be in range 0-2147483647")
    groups: tuple[int, ...] = ()
    if entry is not None:
        groups = tuple(sorted(_member_of(entry[0]) - {gid}))
    return User(uid, gid, groups, entry[3] if entry is not None else "/")


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def _passwd(name: str) -> tuple[str, int, int, str] | None:
    """(name, uid, gid, home) of a user name or uid in the host's /etc/passwd."""
    for e in _entries("/etc/passwd"):
        if len(e) >= 6 and e[2].isdigit() and e[3].isdigit() and name in (e[0], e[2]):
            return e[0], int(e[2]), int(e[3]), e[5] or "/"
    return None


def _group(name: str) -> int | None:
    for e in _entries("/etc/group"):
        if len(e) >= 3 and e[0] == name and e[2].isdigit():
            return int(e[2])
    return None


def _member_of(user: str) -> set[int]:
    return {int(e[2]) for e in _entries("/etc/group")
            if len(e) >= 4 and e[2].isdigit() and user in e[3].split(",")}


# -- the kernel half: in the forked child, right before exec --------------------------------

@dataclass(frozen=True, slots=True)
class Creds:
    """What `apply` sets: the capability mask, the user, the sysctls (init only)."""

    caps: int
    user: User | None = None
    sysctls: tuple[tuple[str, str], ...] = ()
    privileged: bool = False


PR_SET_KEEPCAPS, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 8, 24, 47, 4
_CAP_V3 = 0x20080522
SYS_CAPGET, SYS_CAPSET = 125, 126            # x86_64
SYS_CAPGET_BY_ARCH = {"x86_64": 125, "aarch64": 90, "riscv64": 90, "ppc64le": 183, "s390x": 184}
SYS_CAPSET_BY_ARCH = {"x86_64": 126, "aarch64": 91, "riscv64": 91, "ppc64le": 184, "s390x": 185}


def write_sysctls(sysctls: tuple[tuple[str, str], ...]) -> None:
    """Write them through /proc/sys (of the calling process's netns)."""
    for key, value in sysctls:
        path = "/proc/sys/" + key.replace(".", "/")
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        except OSError as exc:
            raise OSError(exc.errno, f'write sysctl "{key}": {exc.strerror}') from None
        finally:
            os.close(fd)


@functools.cache
def _libc():
    """libc, the capget/capset numbers and buffers: made once, in the parent (start_init and
    exec_in call it before they fork), so the forked child only makes system calls."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    machine = os.uname().machine
    return (libc, ctypes, SYS_CAPGET_BY_ARCH.get(machine, SYS_CAPGET),
            SYS_CAPSET_BY_ARCH.get(machine, SYS_CAPSET), ctypes.c_uint32 * 2, ctypes.c_uint32 * 6)


def prepare() -> None:
    """Load what `apply` needs (in the parent, before forking)."""
    _libc()
    last_cap()


def apply(creds: Creds) -> None:
    """Drop to `creds` for good: bounding set, ambient set, user, capability sets.

    The calling process must still be root with every capability (CAP_SETPCAP
    for the bounding set, CAP_SETUID/SETGID for the user)."""
    libc, ctypes, capget, capset, header_t, data_t = _libc()

    def check(rc: int, what: str) -> None:
        if rc < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    for cap in range(last_cap() + 1):
        if not creds.caps >> cap & 1:
            check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop bounding set")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)     # EINVAL before 4.3: none
    user = creds.user
    if user is not None:
        os.setgroups(list(user.groups))
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)   # to non-root: permitted and effective cleared
    header, data = header_t(_CAP_V3, 0), data_t()
    check(libc.syscall(capget, header, data), "capget")
    permitted = data[1] | data[4] << 32      # what we hold: a capability the node lacks stays out
    keep = creds.caps & permitted if user is None or user.uid == 0 else 0
    data = data_t(keep & 0xFFFFFFFF, keep & 0xFFFFFFFF, 0, keep >> 32, keep >> 32, 0)
    check(libc.syscall(capset, header, data), "capset")
