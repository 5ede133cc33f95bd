import asyncio
import json
import math
import os
import re
import select
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .netlab import LinkSpec, Netlab, NetlabError, check_prerequisites, cleanup_stale, list_namespaces

UDPTOOL = str(Path(__file__).with_name("udptool.py"))
PY = sys.executable


def binomial_interval(n: int, p: float, confidence: float = 0.99) -> tuple[int, int]:
    """Central acceptance interval [lo, hi]: P(X < lo) <= a/2 and P(X > hi) <= a/2, a = 1 - confidence."""
    tail = (1 - confidence) / 2
    cdf, lo, hi = 0.0, None, n
    for k in range(n + 1):
        cdf += math.comb(n, k) * p**k * (1 - p) ** (n - k)
        if lo is None and cdf > tail:
            lo = k
        if cdf >= 1 - tail:
            hi = k
            break
    assert lo is not None
    return lo, hi


def ping(lab: Netlab, src: int, dst: int, count: int, interval: float) -> dict[str, float]:
    # No -w: with a deadline ping keeps sending until `count` replies, and probes still in flight at
    # the deadline would count as lost. The subprocess timeout bounds the wait instead.
    out = lab.exec(
        src, ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), lab.addr(dst)], timeout=60
    )
    counts = re.search(r"(\d+) packets transmitted, (\d+) received", out.stdout)
    rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", out.stdout)
    assert counts and rtt, out.stdout + out.stderr
    sent, received = int(counts[1]), int(counts[2])
    return {
        "sent": sent,
        "received": received,
        "min": float(rtt[1]),
        "avg": float(rtt[2]),
        "mdev": float(rtt[4]),
    }


def start_ready(lab: Netlab, node: int, argv: list[str], timeout: float = 10.0) -> subprocess.Popen[str]:
    proc = lab.run(node, argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready and json.loads(proc.stdout.readline()) == {"ready": True}, f"{argv} did not start"
    return proc


def finish(proc: subprocess.Popen[str], timeout: float = 20.0) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    return json.loads(out)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def assert_gone(lab: Netlab) -> None:
    left = set(lab.names) & set(list_namespaces())
    assert not left, f"namespaces leaked: {left}"


def test_impaired_link_ping_rtt_loss_and_jitter() -> None:
    spec = LinkSpec(delay_ms=30, jitter_ms=5, loss_pct=3)
    with Netlab(2, link=spec, seed=1) as lab:
        r = ping(lab, 0, 1, count=200, interval=0.02)
        stats = lab.stats()["links"]
    assert_gone(lab)
    print(f"impaired ping: {r}")
    assert r["sent"] == 200
    assert abs(r["avg"] - 60.0) <= 0.1 * 60.0 + 1.0  # 10 % of 60 ms, plus 1 ms of processing
    lo, hi = binomial_interval(r["sent"], 1 - 0.97**2)
    assert lo <= r["sent"] - r["received"] <= hi, (lo, hi)
    assert r["mdev"] > 0
    # The emulator saw exactly the pings: requests in one direction, replies to the survivors back.
    fwd, back = stats["0>1"], stats["1>0"]
    assert fwd["packets_in"] == r["sent"]
    assert fwd["forwarded"] + fwd["dropped_loss"] == fwd["packets_in"]
    assert back["packets_in"] == fwd["forwarded"]
    assert back["forwarded"] == r["received"]
    assert lab.final_stats is not None and lab.final_stats["links"]["1>0"]["forwarded"] == r["received"]


def test_unimpaired_link_is_fast_and_lossless() -> None:
    with Netlab(2) as lab:
        r = ping(lab, 1, 0, count=50, interval=0.01)
    assert_gone(lab)
    print(f"clean ping: {r}")
    assert (r["sent"], r["received"]) == (50, 50)
    assert r["avg"] < 5.0


def test_tun_address_is_the_only_host_candidate() -> None:
    code = "import aioice.ice as i; print(i.get_host_addresses(use_ipv4=True, use_ipv6=True))"
    with Netlab(3) as lab:
        for node in range(3):
            out = lab.exec(node, [PY, "-c", code], timeout=30)
            assert out.stdout.strip() == repr([lab.addr(node)]), out.stderr
        assert len(set(lab.addrs)) == 3
    assert_gone(lab)


async def test_udp_echo_keeps_order_under_jitter_unless_reordering_is_asked() -> None:
    async with Netlab(2, link=LinkSpec(delay_ms=10, jitter_ms=8), seed=3) as lab:
        echo = start_ready(lab, 1, [PY, UDPTOOL, "echo", "9000"])
        argv = [PY, UDPTOOL, "client", lab.addr(1), "9000", "100", "0.001", "200", "5"]
        out = await asyncio.to_thread(lab.exec, 0, argv, timeout=30)
        ordered = json.loads(out.stdout)
        await asyncio.to_thread(
            lab.set_link, 0, 1, LinkSpec(delay_ms=10, jitter_ms=8, reorder=True), both=True
        )
        out = await asyncio.to_thread(lab.exec, 0, argv, timeout=30)
        shuffled = json.loads(out.stdout)
        assert echo.poll() is None
    assert_gone(lab)
    assert echo.poll() is not None
    print(f"udp echo: mean RTT {sum(ordered['rtts_ms']) / 100:.1f} ms, min {min(ordered['rtts_ms']):.1f} ms")
    # 1 ms between datagrams and +-8 ms of jitter: only the no-reorder rule keeps them in sequence.
    assert ordered["order"] == list(range(100))
    assert min(ordered["rtts_ms"]) >= 20.0 - 2 * 8.0
    assert 20.0 <= sum(ordered["rtts_ms"]) / 100 <= 40.0  # two 10 ms hops plus queueing behind slow ones
    assert sorted(shuffled["order"]) == list(range(100))
    assert shuffled["order"] != list(range(100))


def test_rate_limit_and_queue_drops() -> None:
    size, count, rate_kbps = 1000, 100, 2000.0
    with Netlab(2, links={(0, 1): LinkSpec(rate_kbps=rate_kbps)}) as lab:
        sink = start_ready(lab, 1, [PY, UDPTOOL, "sink", "9001", str(count), "2"])
        lab.exec(0, [PY, UDPTOOL, "blast", lab.addr(1), "9001", str(count), str(size)], timeout=30)
        paced = finish(sink)
        lab.set_link(0, 1, LinkSpec(rate_kbps=rate_kbps, queue_packets=10))
        before = lab.link_stats(0, 1)
        sink = start_ready(lab, 1, [PY, UDPTOOL, "sink", "9002", "200", "1"])
        lab.exec(0, [PY, UDPTOOL, "blast", lab.addr(1), "9002", "200", str(size)], timeout=30)
        squeezed = finish(sink)
        after = lab.link_stats(0, 1)
    assert_gone(lab)
    assert paced["seqs"] == list(range(count))
    ip_bytes = size + 28  # UDP and IPv4 headers
    span = paced["arrived"][-1] - paced["arrived"][0]
    measured_kbps = (count - 1) * ip_bytes * 8 / 1000 / span
    print(f"rate limit: {measured_kbps:.0f} kbps for {rate_kbps:.0f}")
    assert abs(measured_kbps - rate_kbps) <= 0.1 * rate_kbps
    dropped = after["dropped_queue"] - before["dropped_queue"]
    assert dropped > 0
    assert len(squeezed["seqs"]) == 200 - dropped
    assert squeezed["seqs"] == sorted(squeezed["seqs"])


def test_tcp_between_nodes_and_forward_from_root(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from node 1")
    with Netlab(2, link=LinkSpec(delay_ms=5)) as lab:
        lab.run(
            1,
            [PY, "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port = lab.forward(1, 8000)
        body = None
        deadline = time.monotonic() + 15
        while body is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=2) as resp:
                    body = resp.read().decode()
            except OSError:
                time.sleep(0.1)
        assert body == "hello from node 1"
        url = f"http://{lab.addr(1)}:8000/hello.txt"
        fetch = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=5).read().decode())"
        out = lab.exec(0, [PY, "-c", fetch], timeout=30)
        assert out.stdout.strip() == "hello from node 1", out.stderr
    assert_gone(lab)


def test_teardown_on_failure_kills_everything() -> None:
    lab = Netlab(2)
    with pytest.raises(RuntimeError, match="boom"), lab:
        sleeper = lab.run(0, ["sleep", "60"])
        # A grandchild in its own session: only the sweep of the namespace's pids can find it.
        lab.exec(1, ["sh", "-c", "setsid sleep 60 >/dev/null 2>&1 &"], timeout=10)
        assert subprocess.run(
            ["ip", "netns", "pids", lab.ns(1)], capture_output=True, text=True
        ).stdout.strip()
        raise RuntimeError("boom")
    assert sleeper.poll() is not None
    assert lab.final_stats is not None
    assert_gone(lab)


def test_cleanup_stale_removes_only_dead_owners() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = f"f0lab-{dead.pid}-0badc0-0", f"f0lab-{os.getpid()}-0c0ffe-0"
    stale_tmp = Path(tempfile.mkdtemp(prefix=f"f0lab-{dead.pid}-0badc0-"))
    try:
        for ns in (stale, live):
            subprocess.run(["ip", "netns", "add", ns], check=True, timeout=10)
        orphan = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "60"], start_new_session=True)
        removed = cleanup_stale()
        assert stale in removed and live not in removed
        assert orphan.wait(timeout=10) != 0
        names = list_namespaces()
        assert stale not in names and live in names
        assert not stale_tmp.exists()
    finally:
        for ns in (stale, live):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    assert not {stale, live} & set(list_namespaces())


def test_missing_prerequisites_fail_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    check_prerequisites()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NetlabError, match="root"):
        Netlab(2).start()
    monkeypatch.undo()
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: False if p == "/dev/net/tun" else real_exists(p))
    with pytest.raises(NetlabError, match="/dev/net/tun"):
        Netlab(2).start()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        LinkSpec(loss_pct=101)
    with pytest.raises(ValueError):
        LinkSpec(jitter_dist="pareto")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Netlab(2, subnet="8.8.8.0/24")
    with pytest.raises(KeyError):
        Netlab(2, links={(0, 5): LinkSpec()})
    with pytest.raises(ValueError):
        Netlab(2, links={(1, 1): LinkSpec()})


async def test_cancelled_async_setup_does_not_leak() -> None:
    lab = Netlab(2)
    entered = []

    async def use_lab() -> None:
        async with lab:
            entered.append(True)
            await asyncio.sleep(60)

    task = asyncio.create_task(use_lab())
    # one turn of the loop: the task starts the setup thread and waits for it; the thread's result
    # needs further turns, so the cancel always lands inside the setup (a fixed sleep raced a fast host)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not entered
    torn_down = await asyncio.to_thread(wait_until, lambda: lab.final_stats is not None, 20.0)
    assert torn_down, "the lab built after the cancel was never torn down"
    assert_gone(lab)
