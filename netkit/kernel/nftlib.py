"""nftables in-process: libnftables (``libnftables.so.1``) through ctypes.

:func:`run` runs an nft script in the calling thread's network namespace,
with no process spawned: libnftables opens its netlink socket in the netns
the thread is in when the context is made, so a caller that wants another
netns runs it on netkit.kernel.netns's worker (``netns.run_in``), which has
setns()'d there. A script is one kernel transaction, as with ``nft -f``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

from netkit.errors import KernelError, Unsupported

NFT_CTX_DEFAULT = 0


@functools.cache
def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libnftables.so.1")
    except OSError:
        name = ctypes.util.find_library("nftables")    # runs ldconfig: only as a fallback
        try:
            lib = ctypes.CDLL(name or "libnftables.so")
        except OSError as exc:
            raise Unsupported(f"libnftables not found: install libnftables1 ({exc})") from exc
    ptr = ctypes.c_void_p
    lib.nft_ctx_new.restype = ptr
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.argtypes = [ptr]
    lib.nft_ctx_buffer_output.argtypes = [ptr]
    lib.nft_ctx_buffer_error.argtypes = [ptr]
    lib.nft_ctx_get_output_buffer.argtypes = [ptr]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ptr]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [ptr, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    return lib


def available() -> bool:
    try:
        _lib()
        return True
    except Unsupported:
        return False


def run(script: str) -> tuple[int, str, str]:
    """(rc, output, error) of `script` in this thread's netns; rc 0 on success."""
    lib = _lib()
    ctx = lib.nft_ctx_new(NFT_CTX_DEFAULT)
    if not ctx:
        raise KernelError("libnftables: cannot make a context")
    try:
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        rc = lib.nft_run_cmd_from_buffer(ctx, script.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        return rc, out, err
    finally:
        lib.nft_ctx_free(ctx)


def apply(script: str, what: str) -> None:
    """Run `script` in this thread's netns; KernelError (nft's first line) if it fails."""
    rc, _, err = run(script)
    if rc != 0:
        first = next((line for line in err.splitlines() if line.startswith("Error")),
                     err.strip().splitlines()[0] if err.strip() else "failed")
        raise KernelError(f"{what}: {first}")
