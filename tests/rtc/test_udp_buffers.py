"""A link's UDP socket gets buffers large enough for aiortc's SCTP window, and says what it got."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from f0mesh.metrics import NodeMetrics
from f0mesh.rtc.framing import FramingStats
from f0mesh.rtc.udp_buffers import DEFAULT_BUFFER_BYTES, BufferSizes, enlarge, link_socket

MIB = 1024 * 1024


def _cap(name: str) -> int:
    with open(f"/proc/sys/net/core/{name}") as fh:
        return int(fh.read())


def test_enlarge_asks_for_the_size_and_reports_what_the_kernel_granted() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)  # what aioice asks for
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        sizes = enlarge(sock)
        assert sizes == BufferSizes(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        )
        # Linux grants twice the request, capped at twice net.core.rmem_max/wmem_max
        assert sizes.receive >= min(DEFAULT_BUFFER_BYTES, 2 * _cap("rmem_max"))
        assert sizes.receive >= before
        assert sizes.send >= min(DEFAULT_BUFFER_BYTES, 2 * _cap("wmem_max"))


def test_enlarge_never_shrinks_a_larger_buffer() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * MIB)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * MIB)
        before = enlarge(sock, 0)
        assert enlarge(sock, 64 * 1024) == before


def test_a_peer_connection_without_a_nominated_udp_pair_has_no_socket() -> None:
    assert link_socket(SimpleNamespace()) is None
    no_pair = SimpleNamespace(
        sctp=SimpleNamespace(
            transport=SimpleNamespace(transport=SimpleNamespace(_connection=SimpleNamespace(_nominated={})))
        )
    )
    assert link_socket(no_pair) is None


def test_the_granted_sizes_are_exposed_as_gauges_per_link() -> None:
    class FakeLink:
        peer_id, bytes_sent, bytes_received = "12D3KooWother", 1, 2
        framed = SimpleNamespace(stats=FramingStats())
        udp_buffers = BufferSizes(4 * MIB, 3 * MIB)

    class Unopened(FakeLink):
        peer_id = "12D3KooWunopened"
        udp_buffers = None

    metrics = NodeMetrics("12D3KooWself")
    metrics.watch_links(lambda: [FakeLink(), Unopened()])
    text = metrics.render().decode()
    assert "# TYPE f0mesh_link_udp_receive_buffer_bytes gauge" in text
    series = [line for line in text.splitlines() if line.startswith("f0mesh_link_udp_")]
    assert series == [
        'f0mesh_link_udp_receive_buffer_bytes{peer_id="12D3KooWother"} 4.194304e+06',
        'f0mesh_link_udp_send_buffer_bytes{peer_id="12D3KooWother"} 3.145728e+06',
    ]


def test_a_closed_socket_reports_nothing_rather_than_raising() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.close()
    assert enlarge(sock) is None
