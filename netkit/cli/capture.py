"""`netkit capture TARGET`: tcpdump inside netkit's namespaces.

TARGET is a container, ``network:NAME`` (the network's bridge),
``node:NAME`` (a simulated host, every interface) or ``lan:NAME`` (a LAN's
switch). Without ``-w`` one line per packet, as tcpdump prints them; with
``-w FILE`` a pcap file (``-w -``: a pcap stream on stdout, as tcpdump's).
Ctrl-C ends the capture cleanly and prints the count.
scapy is imported only when a capture starts, so ``netkit --help`` stays cheap.
"""

from __future__ import annotations

import os
import sys

import click

from netkit.cli import engine, names


@click.command("capture")
@click.option("-i", "--interface", "iface", metavar="IFACE",
              help="Only this interface of the target's netns (default: all; a LAN's switch).")
@click.option("-f", "--filter", "filter_", metavar="FILTER",
              help="tcpdump filter expression, e.g. 'udp port 53'.")
@click.option("-c", "--count", type=click.IntRange(min=1), metavar="N", help="Stop after N packets.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Stop after S seconds.")
@click.option("-w", "--write", "pcap", type=click.Path(dir_okay=False, allow_dash=True),
              metavar="FILE.pcap", help="Write the packets to a pcap file instead of printing "
              "them ('-': stream the pcap to stdout).")
@click.argument("target", shell_complete=names("target"))
def capture(target: str, iface: str | None, filter_: str | None, count: int | None,
            duration: float | None, pcap: str | None) -> None:
    """Capture packets on TARGET: a container, network:NAME, node:NAME or lan:NAME.

    \b
    Examples:
      netkit capture web -f 'udp port 53' -c 10
      netkit capture network:app -w app.pcap --duration 5
      netkit --node h1 capture lan:office -w - | tcpdump -nr -
    """
    from netkit.capture.session import capture as make_capture

    every = not iface and not target.startswith(("network:", "lan:"))

    def show(pkt) -> None:                      # on the reader thread, packet by packet
        from netkit.capture.analysis import line
        click.echo(line(pkt, iface=every))

    out = sys.stdout.buffer if pcap == "-" else pcap                      # as tcpdump -w -
    cap = make_capture(engine(), target, iface=iface, filter=filter_, count=count,
                       timeout=duration, pcap=out, on_packet=None if pcap else show)
    interrupted = False
    try:
        with cap:
            click.echo(f"listening on {cap.target.label}, link-type EN10MB (Ethernet), "
                       "snapshot length 262144 bytes", err=True)
            try:
                cap.wait()
            except KeyboardInterrupt:
                interrupted = True
    except BrokenPipeError:                     # `netkit capture ... | head`
        # stdout's fd to /dev/null: nothing left in its buffers fails again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    stats = cap.stats
    if interrupted:
        click.echo(err=True)
    click.echo(f"{stats['captured']} packets captured", err=True)
    if stats["dropped"]:
        click.echo(f"{stats['dropped']} packets dropped by kernel", err=True)
