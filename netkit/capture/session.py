"""A capture: a packet socket in the target's netns, a reader thread, the packets.

    with capture(engine, "client", filter="udp port 53") as cap:   # ready here
        engine.exec("client", ["dig", "+short", "web"])
    cap.assert_dns_answer("web", count=1)                         # cap.packets: PacketList

Entering returns only once the socket is bound: from then on the kernel
queues every matching frame even before the reader thread reads it, so
traffic made right after ``with`` is never lost to a race. Leaving reads
what is queued plus what arrives within `settle` seconds (frames still
crossing a bridge), and no more, so it returns promptly even under a flood.
A capture also ends by itself after `count` packets or `timeout` seconds;
it runs once. The reader thread only copies frames (and streams the pcap);
scapy decodes them when they are first asked for, or at once for
`on_packet`, so the reader keeps up with traffic that decoding could not.

Assertions raise AssertionError whose message lists the packets seen, as
tcpdump lines, so a failed test says what was on the wire.
"""

from __future__ import annotations

import os
import select
import threading
import time
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, Union

from netkit.capture import bpf
from netkit.capture.live import Frame, PacketSocket
from netkit.capture.targets import Target, resolve
from netkit.errors import InvalidArgument, NetkitError

if TYPE_CHECKING:
    from scapy.packet import Packet
    from scapy.plist import PacketList

    from netkit.capture.analysis import DnsMessage, Flow
    from netkit.engine import Engine

Where = Union[Callable[["Packet"], bool], type]      # a predicate, or a scapy layer class


class WaitTimeout(AssertionError):
    """No packet matched before the deadline (the message lists what was seen)."""


def capture(engine: "Engine", target: "str | Target", *, iface: str | None = None,
            filter: str | None = None, count: int | None = None, timeout: float | None = None,
            pcap: "str | BinaryIO | None" = None,
            on_packet: Callable[["Packet"], None] | None = None, promisc: bool = True) -> "Capture":
    """A capture of `target` (a container, ``network:N``, ``node:N`` or ``lan:N``), not started:
    use it as a context manager. See :class:`Capture` for the arguments."""
    if not isinstance(target, Target):
        target = resolve(engine, target, iface)
    return Capture(target, filter=filter, count=count, timeout=timeout, pcap=pcap,
                   on_packet=on_packet, promisc=promisc)


class Capture:
    """Packets seen in one netns (one interface or all), as tcpdump would see them.

    `filter` is a tcpdump expression, compiled here (an invalid one raises
    InvalidArgument before anything is opened); `count` and `timeout` end
    the capture by themselves; `pcap` streams every packet to that file as
    it arrives (a path, or a binary stream such as stdout's, flushed after
    each packet and left open); `on_packet` is called on the reader thread with each
    decoded packet (decode live); `settle` is how long leaving waits for
    frames still in flight. `promisc` puts a named interface in
    promiscuous mode while capturing (needed to see a bridge's forwarded
    frames).
    """

    def __init__(self, target: Target, *, filter: str | None = None, count: int | None = None,
                 timeout: float | None = None, pcap: "str | BinaryIO | None" = None,
                 on_packet: Callable[["Packet"], None] | None = None, promisc: bool = True,
                 settle: float = 0.02) -> None:
        if count is not None and count < 1:
            raise InvalidArgument(f"invalid packet count {count}: must be at least 1")
        if timeout is not None and timeout <= 0:
            raise InvalidArgument(f"invalid capture duration {timeout}: must be positive")
        self.target = target
        self.filter = filter or None
        self.count = count
        self.timeout = timeout
        self.pcap_path = pcap
        self.on_packet = on_packet
        self.promisc = promisc
        self.settle = settle
        self._program = bpf.compile(filter)
        self._frames: list[Frame] = []          # appended by the reader thread only
        self._decoded: list[Packet] = []        # scapy packets of _frames[:len(_decoded)]
        self._decode_lock = threading.Lock()
        self._cond = threading.Condition()
        self._stop_at: float | None = None
        self._sock: PacketSocket | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None
        self._writer: Any = None
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._stats = (0, 0)
        self.started: float | None = None
        self.ended: float | None = None
        self._entered = False

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> "Capture":
        """Open the socket in the target netns and start reading; returns once ready."""
        if self.started is not None:
            raise InvalidArgument(f"the capture of {self.target.ref} already "
                                  f"{'ran' if self._finished.is_set() else 'runs'}: a capture "
                                  "runs once, make a new one")
        from netkit.capture import analysis  # noqa: F401  (scapy's layers, loaded before the thread)
        self.started = time.time()
        if self.pcap_path:
            from scapy.utils import RawPcapWriter
            self._writer = RawPcapWriter(self.pcap_path, linktype=bpf.DLT_EN10MB,
                                         snaplen=bpf.SNAPLEN, sync=True)
            self._writer.write_header(None)       # a capture of nothing is still a valid pcap
        try:
            self._sock = PacketSocket(self.target.netns, self.target.iface, self._program,
                                      promisc=self.promisc)
        except BaseException:
            self._close_writer()
            self._finished.set()
            raise
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"netkit-capture {self.target.ref}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> "PacketList":
        """End the capture (draining what is queued) and return the packets."""
        self._end()
        return self.packets

    def _end(self) -> None:
        if self._thread is not None and self._wake is not None and not self._finished.is_set():
            self._stop_at = time.time()
            try:
                os.write(self._wake[1], b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join()
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
            self._wake = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> "Capture":
        if self._entered or not self.running:     # started by the netkit_capture fixture: fine
            self.start()
        self._entered = True
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            self._end()                       # packets are decoded when first asked for
        except Exception as err:
            if exc is None:
                raise
            exc.add_note(f"capture of {self.target.ref} also failed: {err}")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the capture ended by itself (`count` or `timeout`); True if it has."""
        return self._finished.wait(timeout)

    @property
    def running(self) -> bool:
        """Started and not yet finished (stopped, its count or duration reached)."""
        return self.started is not None and not self._finished.is_set()

    # -- the reader thread ---------------------------------------------------------------
    def _run(self) -> None:
        assert self._sock is not None and self._wake is not None
        sock, wake = self._sock, self._wake[0]
        deadline = time.monotonic() + self.timeout if self.timeout else None
        try:
            while not self._full():
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    self._drain()                 # queued before the deadline
                    break
                readable = select.select([sock.fileno(), wake], [], [], wait)[0]
                if sock.fileno() in readable:
                    self._drain()
                if wake in readable:
                    self._finish()
                    break
        except BaseException as exc:             # re-raised by stop()
            self._error = exc
        finally:
            sock.close()
            self._stats = sock.stats()
            self._close_writer()
            self.ended = time.time()
            with self._cond:
                self._finished.set()
                self._cond.notify_all()

    def _finish(self) -> None:
        """After stop(): what arrived until `settle` seconds past the request, and no more
        (a flood goes on: stopping must not chase it)."""
        assert self._sock is not None and self._stop_at is not None
        cutoff = self._stop_at + self.settle
        while not self._full() and self._drain(cutoff):
            left = cutoff - time.time()
            if left <= 0 or not select.select([self._sock], [], [], left)[0]:
                return

    def _full(self) -> bool:
        return self.count is not None and len(self._frames) >= self.count

    def _drain(self, cutoff: float | None = None) -> bool:
        """Read what is queued (frames are decoded later, on demand, unless on_packet
        wants them now); False once a frame later than `cutoff` shows up."""
        assert self._sock is not None
        while not self._full():
            frame = self._sock.read()
            if frame is False:
                return True
            if frame is None:
                continue
            if cutoff is not None and frame.time > cutoff:   # type: ignore[union-attr]
                return False
            if self._writer is not None:
                sec = int(frame.time)          # type: ignore[union-attr]
                self._writer.write_packet(frame.data, sec=sec,  # type: ignore[union-attr]
                                          usec=int((frame.time - sec) * 1e6))  # type: ignore[union-attr]
            with self._cond:
                self._frames.append(frame)     # type: ignore[arg-type]
                self._cond.notify_all()
            if self.on_packet is not None:
                self.on_packet(self._upto(len(self._frames))[-1])
        return True

    def _upto(self, n: int) -> list["Packet"]:
        """The first `n` packets, decoding the frames not decoded yet."""
        with self._decode_lock:
            while len(self._decoded) < n:
                self._decoded.append(_decode(self._frames[len(self._decoded)]))
            return self._decoded[:n]

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if isinstance(self.pcap_path, (str, os.PathLike)):
            writer.close()
            return
        try:
            writer.flush()                        # the caller's stream stays open
        except OSError as exc:                    # a closed pipe (`... -w - | head -c 100`)
            self._error = self._error or exc

    # -- what was seen ---------------------------------------------------------------------
    def _check_started(self) -> None:
        """A capture never started saw nothing: asserting on it would pass falsely."""
        if self.started is None:
            raise NetkitError(f"the capture of {self.target.ref} was never started, so it saw "
                              "nothing: use it as `with engine.capture(...) as cap:` around the "
                              "traffic, or call cap.start() before it")

    def _check_ended(self, what: str) -> None:
        """A negative assertion on a running capture could miss frames still queued."""
        self._check_started()
        if self.running:
            raise NetkitError(f"{what} on the capture of {self.target.ref} while it still "
                              "runs could miss frames not read yet: end it first (leave its "
                              "`with` block, or call cap.stop())")

    @property
    def packets(self) -> "PacketList":
        """The packets so far (all of them once the capture ended), as a scapy PacketList.

        Raises NetkitError on a capture that was never started."""
        from scapy.plist import PacketList
        self._check_started()
        return PacketList(self._upto(len(self._frames)), name=self.target.ref)

    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self) -> Iterator["Packet"]:
        return iter(self.packets)

    @property
    def stats(self) -> dict[str, int]:
        """captured (delivered here), received (queued by the kernel, before skipping lo's
        outgoing copies), dropped (by the kernel, for lack of buffer)."""
        received, dropped = self._stats
        if self.running and self._sock is not None:
            try:
                received, dropped = self._sock.stats()
            except OSError:                  # closed by the reader meanwhile
                received, dropped = self._stats
        return {"captured": len(self._frames), "received": received, "dropped": dropped}

    def dns(self) -> list["DnsMessage"]:
        """Every DNS message seen (queries and answers), in order."""
        from netkit.capture.analysis import dns_messages
        return dns_messages(self.packets)

    def dns_queries(self, name: str | None = None, type: str | None = None) -> list["DnsMessage"]:
        """The DNS queries seen, optionally only those for `name` (and of `type`, "A", ...)."""
        return [m for m in self.dns() if not m.response and _dns_match(m, name, type)]

    def dns_answers(self, name: str | None = None, type: str | None = None) -> list["DnsMessage"]:
        """The DNS responses seen, optionally only those for `name` (and of `type`)."""
        return [m for m in self.dns() if m.response and _dns_match(m, name, type)]

    def flows(self) -> list["Flow"]:
        """Packet and byte counts per one-way 5-tuple, in order of first packet."""
        from netkit.capture.analysis import flows
        return flows(self.packets)

    def summary(self, limit: int = 40) -> str:
        """tcpdump lines of what was seen, for messages."""
        from netkit.capture.analysis import summary
        return summary(list(self.packets), limit=limit, iface=self.target.iface is None)

    def write_pcap(self, path: str) -> str:
        """Write every packet seen to a pcap file (Ethernet link type); returns the path."""
        from scapy.utils import RawPcapWriter
        with RawPcapWriter(path, linktype=bpf.DLT_EN10MB, snaplen=bpf.SNAPLEN) as w:
            w.write_header(None)
            for frame in list(self._frames):
                sec = int(frame.time)
                w.write_packet(frame.data, sec=sec, usec=int((frame.time - sec) * 1e6))
        return path

    # -- waiting and asserting ---------------------------------------------------------------
    def wait_for(self, where: Where, timeout: float = 5.0) -> "Packet":
        """The first packet (already seen or arriving within `timeout`) that `where` accepts.

        Raises :class:`WaitTimeout` (an AssertionError) listing what was seen.
        """
        __tracebackhide__ = True          # pytest shows the caller, not this frame
        self._check_started()
        match = _matcher(where)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            batch = self._upto(len(self._frames))[seen:]
            seen += len(batch)
            for pkt in batch:
                if match(pkt):
                    return pkt
            with self._cond:
                if len(self._frames) > seen:
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._finished.is_set():
                    break
                self._cond.wait(remaining)
        why = "the capture ended" if self._finished.is_set() else f"{timeout:g} s"
        raise WaitTimeout(self._report(f"no packet matched {_describe(where)} within {why}"))

    def assert_packets(self, where: Where | None = None, *, count: int | None = None) -> list["Packet"]:
        """At least one packet (exactly `count` if given) that `where` accepts; returns them."""
        __tracebackhide__ = True          # pytest shows the caller, not this frame
        match = _matcher(where)
        found = [p for p in self.packets if match(p)]
        if (count is None and not found) or (count is not None and len(found) != count):
            want = "at least 1" if count is None else str(count)
            raise AssertionError(self._report(f"expected {want} packets matching "
                                              f"{_describe(where)}, saw {len(found)}"))
        return found

    def assert_no_packets(self, where: Where | None = None) -> None:
        """No packet at all (none that `where` accepts, if given). The capture must have
        ended (NetkitError otherwise: frames still queued would be missed)."""
        __tracebackhide__ = True          # pytest shows the caller, not this frame
        self._check_ended("assert_no_packets")
        match = _matcher(where)
        found = [p for p in self.packets if match(p)]
        if found:
            raise AssertionError(self._report(f"expected no packets matching {_describe(where)}, "
                                              f"saw {len(found)}", found))

    def assert_only(self, where: Where, description: str | None = None) -> None:
        """Every packet is one that `where` accepts; the message lists the others. The
        capture must have ended (NetkitError otherwise)."""
        __tracebackhide__ = True          # pytest shows the caller, not this frame
        self._check_ended("assert_only")
        match = _matcher(where)
        others = [p for p in self.packets if not match(p)]
        if others:
            raise AssertionError(self._report(
                f"expected only packets matching {description or _describe(where)}, "
                f"{len(others)} others", others))

    def assert_dns_query(self, name: str, *, count: int | None = None,
                         type: str | None = None) -> list["DnsMessage"]:
        """Queries for `name` (exactly `count` if given, else at least one); returns them."""
        __tracebackhide__ = True
        found = self.dns_queries(name, type)
        self._check_count(found, count, f"DNS queries for {name}" + (f" ({type})" if type else ""))
        return found

    def assert_dns_answer(self, name: str, *, count: int | None = None, type: str | None = None,
                          rcode: str | None = "NOERROR",
                          addresses: "set[str] | list[str] | tuple[str, ...] | None" = None
                          ) -> list["DnsMessage"]:
        """Answers for `name` with `rcode` (exactly `count` if given, else at least one),
        each carrying exactly the set `addresses` if given; returns them."""
        __tracebackhide__ = True
        found = [m for m in self.dns_answers(name, type)
                 if rcode is None or m.rcode == rcode.upper()]
        what = f"DNS answers for {name}" + (f" ({type})" if type else "") + \
            (f" with {rcode.upper()}" if rcode else "")
        self._check_count(found, count, what)
        if addresses is not None:
            want = sorted(set(addresses))
            wrong = [m for m in found if sorted(set(m.addresses)) != want]
            if wrong:
                raise AssertionError(self._report(
                    f"{len(wrong)} of {len(found)} {what} do not carry exactly {want}", dns=True))
        return found

    def _check_count(self, found: list, count: int | None, what: str) -> None:
        __tracebackhide__ = True          # pytest shows the caller, not this frame
        if (count is None and not found) or (count is not None and len(found) != count):
            want = "at least 1" if count is None else str(count)
            raise AssertionError(self._report(f"expected {want} {what}, saw {len(found)}", dns=True))

    def _report(self, headline: str, focus: list["Packet"] | None = None, dns: bool = False) -> str:
        from netkit.capture.analysis import summary
        packets = list(self.packets)
        text = [headline]
        if dns:
            msgs = self.dns()
            text.append(f"DNS messages seen ({len(msgs)}):")
            text += [f"    {m}" for m in msgs] or ["    (none)"]
        if focus is not None and len(focus) != len(packets):
            text.append(f"offending packets ({len(focus)}):")
            text.append(summary(focus, iface=self.target.iface is None))
        where = f" {self.filter!r}" if self.filter else ""
        text.append(f"packets seen ({len(packets)}) on {self.target.label}{where}:")
        text.append(summary(packets, iface=self.target.iface is None))
        return "\n".join(text)

    def __repr__(self) -> str:
        state = "running" if self.running else "ended" if self._finished.is_set() else "new"
        return f"<Capture {self.target.ref} {state}, {len(self._frames)} packets>"


def _decode(frame: Frame) -> "Packet":
    from scapy.config import conf
    from scapy.layers.l2 import Ether
    pkt: Packet
    try:
        pkt = Ether(frame.data)
    except Exception:                        # scapy's dissectors are not all total
        pkt = conf.raw_layer(frame.data)
    pkt.time = frame.time
    pkt.sniffed_on = frame.ifname
    pkt.direction = 2 if frame.outgoing else 1
    return pkt


def _matcher(where: Where | None) -> Callable[["Packet"], bool]:
    if where is None:
        return lambda pkt: True
    if isinstance(where, type):
        return lambda pkt: where in pkt
    return lambda pkt: bool(where(pkt))


def _describe(where: Where | None) -> str:
    if where is None:
        return "anything"
    if isinstance(where, type):
        return where.__name__
    name = getattr(where, "__name__", "")
    return name if name and name != "<lambda>" else "the predicate"


def _dns_match(m: "DnsMessage", name: str | None, type: str | None) -> bool:
    from netkit.capture.analysis import norm_name
    return (name is None or m.name == norm_name(name)) and (type is None or m.type == type.upper())
