"""results.json and RESULTS.md: the figures, the machine they were measured on, and how."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import REPO, summarize

METHODS: dict[str, str] = {
    "setup": (
        "Client-side wall time of one HTTP request that returns once a new link's two channels are open. "
        "f0mesh: `POST /dial {url}` between two `f0mesh up` processes (it fetches the peer's /healthz, "
        "signs the offer, the peer verifies it and answers signed, ICE/DTLS/SCTP, then a hello on `ctl`); "
        "each repeat dials, then `DELETE /api/mesh-rtc/links/{peer}` and waits until the other side "
        "shows the link closed. Baseline: `POST /connect {url}` on a `bench/raw_peer.py` process, which "
        "creates an RTCPeerConnection with the same two negotiated channels, POSTs the unsigned offer to "
        "the other raw peer's /offer, applies the answer and waits until both channels are open; then "
        "closes the connection. One warm-up round per side is not recorded."
    ),
    "relayed_dial": (
        "Client wall time of `POST /dial {peer_id}` until the new link's two channels are open, run after "
        "the `setup` rounds by the same dialling `f0mesh up` process, whose link to the other `setup` "
        "node now stays open: that node is the relay. f0mesh: the dialled node is private "
        "(`--no-public-url`, linked to the relay only), so the signed offer travels over `ctl` to the "
        "relay, which checks it (last hop, signature, freshness, nonce, token buckets) and forwards it; "
        "the private node answers signed back the same way (issue #23). Baseline: a public node dialled "
        "by PeerId the same way, whose signed offer goes over HTTP to its `/offer`. Then ICE/DTLS/SCTP and "
        "the hello, as in `setup`. Rounds interleaved; each closes the link as `setup` does (DELETE, the "
        "other side sees it closed); one warm-up round per side is not recorded. Degree manager off."
    ),
    "throughput": (
        "Payload bytes per second (1 MB = 10^6 bytes) from one process to another, measured from the "
        "first message handed to the channel until the receiver's ack of the last one arrived. f0mesh: "
        "two `f0mesh.node.Node` processes (`bench/node_peer.py`: the same Node and FastAPI app as "
        "`f0mesh up` plus a bench-only route), linked with `POST /dial`; the sender awaits "
        "`link.framed.send()` of 1 MiB wire messages one after another (msgpack "
        '`{"t": "bench.data", "d": <1 MiB>}`, chunked by FramedChannel into 16 KiB frames); the '
        "receiver counts payload bytes in its handler of the `bench.data` ctl kind (registered with "
        "the node's ctl router), i.e. after reassembly, wire decoding and dispatch. Baseline: plain "
        "aiortc, 16 KiB binary messages, waiting on `bufferedamountlow` above the same high/low marks "
        "f0mesh uses (128/32 KiB). Both run the same aiortc; f0mesh's links ask for 2 MiB UDP socket "
        "buffers (`f0mesh/rtc/udp_buffers.py`), run aiortc's SCTP sender with f0mesh's fast path "
        "(`f0mesh/rtc/sctp_fastpath.py`) and acknowledge with delayed SACKs "
        "(`f0mesh/rtc/sctp_delayed_sack.py`: a SACK per second DATA packet, at once on a gap, else within"
        " 5 ms), while the baseline keeps aioice's 256 KiB `SO_RCVBUF` and stock aiortc, which sends a "
        "SACK for every DATA packet, as an aiortc user would. Counted between two nodes (a counter on "
        "aiortc's `_send_chunk`): stock aiortc sent 917 SACKs per MB, one per DATA packet; the delayed "
        "SACK sends 459, and each SACK it saves was a DTLS record encrypted by the receiver and "
        "decrypted, parsed and run through the sender's SACK handling (`_receive_sack_chunk`, "
        "`_transmit`, the channel flush). Measured for s32 against the previous main, ten interleaved "
        "`--quick` pairs at load 1-6: f0mesh MB per CPU-second of both processes 9.0-11.7 (median 10.1) "
        "-> 11.5-14.3 (median 13.5, +34 %), sender 56 -> 37 and receiver 50 -> 38 CPU-ms per MB "
        "(two-process rounds at load 1-4, medians of 8); the `throughput` ratio 0.77-1.16 (median 0.99) "
        "-> 1.00-1.84 (median 1.44), CPU-normalised 0.97-1.09 (median 1.06) -> 1.23-1.56 (median 1.43). "
        "The baseline is stock aiortc: it still acknowledges every packet. No retransmission and no T3 "
        "expiry in clean runs; in bulk 1 SACK in 1,000 waited for the timer, in gossip 2-3 %. A sender's "
        "slow start grows by at most one MTU per SACK (RFC 4960 §7.2.1), so with half the SACKs a fresh "
        "link opened its window ~1.5x per round trip instead of 2x: over an emulated 60 ms round trip "
        "(in-process, every SCTP packet delayed 30 ms) its first 1.25 MB took 860-990 ms against 650-690 "
        "with stock aiortc. f0mesh's sender therefore counts bytes in slow start (RFC 3465, L = 2: up to "
        "two MTUs per SACK), and the first 1.25 MB take 635-685 ms again. On loopback the transfer is "
        "CPU-bound, not window-bound, and aiortc keeps the window open between transfers."
    ),
    "message_rate": (
        "Signed gossip messages per second over one link, counted by the receiving application. f0mesh: "
        "two Node processes as in `throughput`; the sender calls `Node.publish()` (what "
        "`POST /api/gossip` calls) with as many publishes in flight as the node admits "
        "(`max_pending_publishes`, 128), each a 100-byte JSON string "
        "payload: an Ed25519-signed envelope, committed to the sender's SQLite store with its audit "
        "row, then pushed to the one neighbour in batches of up to 64 envelopes per ctl message, with "
        "ack and retry. The receiver runs its full inbound pipeline on each (decode, signature, replay "
        "window and HLC, seen-cache, rate limits, SQLite commit with an audit row, ack) and counts it in a "
        "gossip subscription, i.e. once accepted and committed. The receiver's rate limits are raised "
        "for the bench: by design they cap one origin at 200 msgs/s, which would measure the policy, "
        "not the cost (the checks still run). Baseline: plain aiortc, one DataChannel message per "
        "100-byte payload, with the same backpressure as `throughput`: no signature, no store, no ack. "
        "Not the same work, so reported only; the goal is `message_rate_crypto`'s."
    ),
    "message_rate_crypto": (
        "The same `message_rate` rounds against the physical floor of this design: one Ed25519 "
        "signature per envelope at the origin and one verification at the receiver. f0mesh: signed "
        "gossip envelopes accepted by the receiving application per CPU-second of both Node processes "
        "(user + system, /proc), the whole pipeline on both sides (sign, store, push, ack, decode, "
        "verify, checks, store, deliver). Baseline: `Ed25519PrivateKey.sign` + `Ed25519PublicKey.verify` "
        "of the signed bytes of as many envelopes of the same shape (same topic, 100-byte payload) per "
        "CPU-second of the bench thread, keys loaded once; measured right after each f0mesh round, "
        "while the nodes idle. A ratio of 1 would mean the pipeline adds nothing to the crypto."
    ),
    "validation": (
        "Inbound envelopes one core validates and accepts per CPU-second. f0mesh: a real GossipEngine "
        "in the bench process fed `msgs` batches of 64 envelopes from 16 origins, as a link delivers "
        "them: size, strict canonical decode, signature (PeerId -> public key -> Ed25519 verify), replay "
        "window and HLC, seen-cache, rate limits (unlimited, as in `message_rate`), then accept: audit "
        "row, write-behind commit into the in-memory store, ack queued. Baseline: "
        "`Ed25519PublicKey.verify` over the same signed bytes with the keys loaded beforehand. Both "
        "per CPU-second of the thread (`time.thread_time`); wall-clock rates are in results.json."
    ),
    "dead_peer": (
        "Seconds from SIGKILL of one peer until the survivor reports the link dead, polled every 50 ms. "
        "f0mesh: two `f0mesh up` processes, linked for 1 s, kill one, poll the survivor's "
        "`GET /api/mesh-rtc/links` until the link's state is \"failed\" (f0mesh's heartbeat, default "
        "`--heartbeat-timeout 4`). Baseline: two raw peers, kill one, poll the survivor until its "
        'pc.connectionState is "closed" or "failed" (aiortc/aioice consent checks: 6 failures at ~5 s). '
        "The baseline pairs wait in the background, all at once, while the f0mesh repeats and then "
        "`link_memory` (which times nothing) run; a baseline that has not noticed within the cap counts "
        "as the cap."
    ),
    "gossip": (
        "Spread of a published message through a mesh of N `f0mesh up` processes on this host (no goal; "
        "reported next to the one-hop RTT of the same mesh). The mesh grows in place, 8 then 16 then 32 "
        "nodes, each bootstrapping from node 0 and linking by peer exchange and its degree manager; "
        "every node runs `f0mesh up --profile large` (f0mesh/profiles.py), the profile `f0mesh demo` "
        "uses for large meshes on two cores, the same at every N. Once "
        "every node has 3 links, random nodes publish one message every 0.25 s via `POST /api/gossip`. "
        "Time to last delivery = the latest `received_at` among the other N-1 nodes minus the "
        "publisher's own `received_at` (its commit), one host clock; hops from "
        "`/api/gossip/messages` (0 = straight from the origin); duplicates from "
        "`/api/audit?event=duplicate`; one-hop RTT = median QoS `rtt_ms` of the mesh's open links. "
        "The table row shows N=8: f0mesh = time to last delivery, baseline = one-hop RTT."
    ),
    "libp2p_message_rate": (
        "What a Python user would pick instead for a pub/sub mesh: py-libp2p (the `bench` extra, run "
        "from bench/.libp2p-venv, which the bench makes on first use) with gossipsub and strict "
        "message signing (Ed25519, like f0mesh's envelopes), two processes (`bench/libp2p_peer.py`) "
        "on loopback TCP with Noise and yamux: its webrtc transport was not used (see the note). "
        "Signed messages per second over the one connection, counted where py-libp2p hands each "
        "message to the topic's subscription (as f0mesh's subscriber callback counts), from the "
        "first publish to the last delivery on the one host clock; 100-byte payloads. py-libp2p "
        "drops what does not fit its 32-RPC outbound queue per peer (as go-libp2p does), so its "
        "publisher waits while that queue is half full, as f0mesh's sender waits on backpressure; its "
        "spam protection (10 msgs/s per topic by default) is off, as f0mesh's rate limits are raised. "
        "f0mesh: the `message_rate` rounds (same runs, same figures); py-libp2p runs right after each "
        "f0mesh round, 500 (quick) or 3,000 messages. Goal: f0mesh >= 1.5x both per second and per "
        "CPU-second of both processes (`met` needs both)."
    ),
    "libp2p_setup": (
        "Connection setup in-process, no goal: f0mesh = the dialling node's own `setup_ms` in the "
        "`setup` rounds (link object created -> both channels open: signed offer/answer over HTTP, "
        "ICE, DTLS, SCTP, hello); py-libp2p = `host.connect()` to a listening peer (TCP, "
        "multistream-select, Noise XX, yamux, identify), then `host.disconnect()`; one py-libp2p "
        "round after each f0mesh/baseline round, the warm-up round not recorded. Unlike stacks: "
        "ICE+DTLS+SCTP against TCP+Noise+yamux."
    ),
    "libp2p_gossip": (
        "Publish -> last delivery in a py-libp2p gossipsub mesh of N processes (D=6, D_lo=4, D_hi=12, "
        "1 s heartbeat, strict signing), no goal. The mesh grows 8 then 16: peer 0 connects to peers "
        "1-8 and to no one else (it is the `libp2p_rss_idle` hub), every other new peer to 3 random "
        "earlier ones (2 when the hub also took it); then, as `gossip` does for f0mesh, random peers "
        "publish one 100-byte message every 0.25 s (5 quick, 20 full). Last delivery = latest "
        "first-delivery time among the other N-1 peers minus the publish time, one host clock; "
        "duplicates = copies that reached a peer's pipeline after its first, per node per message "
        "(f0mesh: its `duplicate` audit rows, same formula). Row: f0mesh p99 (this run's `gossip`) / "
        "py-libp2p p99 at N=16 (8 if 16 failed)."
    ),
    "libp2p_rss_idle": (
        "VmRSS (kB) of an idle py-libp2p host holding 8 connections (the mesh's hub, read 2 s after "
        "the N=16 round, as the median of reads that agree within 128 kB), next to f0mesh's "
        "`node_rss_idle` hub of this run (8 links in a full run, 5 in --quick). No goal: TCP + "
        "Noise + yamux against ICE + DTLS + SCTP per link."
    ),
    "node_rss_idle": (
        "Absolute VmRSS (kB) of a node holding 8 open, idle links: the `link_memory` hub's "
        "second reading (1 warm-up + 7 links, read 2 s after the last dial; 1 + 4 = 5 links in --quick). "
        "Baseline: the raw aiortc hub with as many connections, read the same way."
    ),
    "libdatachannel_throughput": (
        "Spike for issue #25 (bench only, no goal): aiortc, f0mesh's link library (the f0mesh column), "
        "against libdatachannel 0.22.2 through `pylibdatachannel` 0.2.0 (installed with pip --target "
        "into bench/.ldc-lib on first use). `aiolibdatachannel`, the binding the issue names, does not "
        "install here: every release requires Python >= 3.12 (pip: `Ignored the following versions that "
        "require a different python version: 2026.10.15 Requires-Python >=3.12; ...`, `No matching "
        "distribution found for aiolibdatachannel`; so does `libdatachannel-py`, >= 3.13). "
        "`bench/libdatachannel_spike.py` runs in a network namespace of its own (one veth address, IPv6 "
        "off) with both ends of every connection in one process, so both libraries are measured the "
        "same way: one channel, 16 KiB messages, at most 1 MiB in flight with the receiver reporting its "
        "count every 256 KiB (pylibdatachannel 0.2.0 has no bufferedAmount, so the application-level "
        "window replaces aiortc's `bufferedamountlow`); MB/s of payload, CPU-seconds per MB of the "
        "process (both ends), setup (peer connections created -> channel open on both sides), RSS per "
        "connection end (8 pairs after a warm-up pair, 4 in --quick; 16 MiB per round, 8 in --quick), "
        "and a libdatachannel offer answered by an aiortc peer connection (interop)."
    ),
    "link_memory": (
        "VmRSS (kB as /proc reports it, i.e. KiB) that one hub process gains per additional open link. "
        "The hub first links to one warm-up peer (one-time costs: first certificate, lazy imports, "
        "allocator arenas); an f0mesh hub also waits until it is 11 s old, past its first two 5-second "
        "trust refreshes (the first imported networkx and scipy, ~30 MB, until trust.pagerank replaced them; "
        "the wait is kept so runs compare). 2 s after the "
        "warm-up link RSS is read (the median of 6 reads 0.2 s apart that agree "
        "within 128 kB), then the hub links to K more peers, each a separate process, and 2 s later RSS "
        "is read the same way; figure = difference / K. f0mesh: `f0mesh up` "
        "processes with the degree manager off (`--d-lo 0 --d 0`) so only the hub's links exist; "
        "the hub dials with `POST /dial`. Baseline: raw peers, the hub connects with `POST /connect`."
    ),
}

LIBP2P_TRANSPORT = (
    "Transport: py-libp2p over TCP (Noise, yamux), its default. Its WebRTC-Direct transport (the same "
    "ICE/DTLS/SCTP family as f0mesh's links) was tried first and did not listen: "
    "`new_host(listen_addrs=[/ip4/127.0.0.1/udp/0/webrtc-direct], enable_webrtc=True, "
    "enable_tcp=False)` inside `host.run(...)` left the host with no address (`get_addrs() == []`, "
    "no swarm listener, nothing logged at DEBUG) in py-libp2p 0.8.1, and was not pursued further. "
    "So these keys compare unlike stacks, which is why only the message rate carries a goal."
)

LDC_VERDICT = (
    "Interop failed in both spike runs for issue #25, at the same place: aiortc's DTLS start "
    "(`RTCDtlsTransport.start` -> pyOpenSSL `to_cryptography`) raises `cryptography.x509.InvalidVersion: "
    "1 is not a valid X509 version` on libdatachannel's self-signed certificate, so an aiortc peer "
    "cannot finish a handshake with it; a mixed mesh would need that certificate fixed upstream or "
    "aiortc to stop parsing the peer's certificate through cryptography. What a `--link-backend "
    "libdatachannel` option would take besides: a binding with flow control (bufferedAmount and its "
    "low-threshold event, which FramedChannel's backpressure needs), negotiated channel ids (f0mesh's "
    "two channels are negotiated), callbacks marshalled from libdatachannel's threads into the event "
    "loop (pylibdatachannel 0.2.0 holds the GIL inside its calls: creating a connection while another "
    "one's ICE thread waited for the GIL in a callback deadlocked the spike, so it opens one at a time), "
    "the certificate fingerprint in the signed offer (f0mesh's signaling binds it), and Python >= 3.12 "
    "for aiolibdatachannel."
)

PROFILE_INTRO = (
    "pyinstrument (1 ms sampling, whole event loop) in the sending and the receiving Node process "
    "during one extra, unrecorded `message_rate` round. The store's transactions run on the store's "
    "own threads (issue #25), which this profile of the event loop's thread does not sample."
)
PROFILE_ACTIONS = """\
"via -" marks work with no f0mesh frame above it on the stack. Until issue #25 that was mostly
SQLAlchemy run inside its asyncio greenlet, i.e. `Store.commit_gossip` (see 1. below).
The three largest costs, the same in every profile taken for issue #12:

1. **SQLAlchemy compiling each gossip commit's INSERT** (`compiler.bindparam_string`,
   `visit_bindparam`, `crud._extend_values_for_multiparams`, `coercions.expect`, `elements.__init__`:
   together ~20-25 % of both processes' busy time). `Store.commit_gossip` builds
   `insert(table).values(rows).on_conflict_do_nothing()`: a new multi-row statement for every batch,
   which the compiled-statement cache cannot reuse, with one bind parameter per column and row.
   Done: `Store.commit_gossip` now executes one cached statement with the row list (executemany);
   measured first in a scratch copy, `message_rate` per CPU-second +63 % (1375 -> 2240), and the
   full-run `message_rate` went from 2201 to 3614 msgs/s (ratio 0.18 -> 0.26).
2. **Ed25519**: `sign` in the sender (~7 %), `verify` in the receiver (~14 %). Inherent: every
   envelope is signed by its origin and verified on receipt (StrictSign). Not changed; only a
   signature per batch (a change of the envelope contract) or verification on more cores would cut it.
3. **PeerId -> public key**: base58 decoding in `identity.public_key_from_peer_id` (~8 % of the
   receiver), twice per envelope (`Envelope.decode` checks the origin with `is_peer_id`, `verify`
   decodes it again). Done: the decoding is cached (`functools.lru_cache(4096)`, errors not cached);
   `validation` ratio 0.59 -> 0.72 in a scratch copy, 0.63 -> 0.76 between two full runs.
4. **`dataclasses.asdict` and `base64.b32encode`** (issue #25: ~4 % and ~2-8 % of busy time in both
   processes): `SqlGossipStore.commit` deep-copied every stored message to make its row, and message
   ids went through pure-Python base32. Done: rows built field by field, ids by a 10-bit lookup table
   (the same strings, tested); the sender's CPU per message 202 -> 186 us in an A/B in one process.
"""

# What holds a goal back, shown under the key whenever this run did not meet it.
LINK_MEMORY_NOTE = (
    "The node returns memory itself: `malloc_trim(0)` 1 s after a burst of link changes and glibc's "
    "malloc arenas capped at two (f0mesh/heap.py), and each link's DTLS session hands OpenSSL's "
    "record buffers back while they are empty (`SSL_MODE_RELEASE_BUFFERS`, "
    "f0mesh/rtc/dtls_buffers.py). Where f0mesh's extra memory per link was (s33; hub and raw hub, K = "
    "7: /proc smaps, mallinfo2, pymalloc's own statistics and tracemalloc across the K links): "
    "OpenSSL kept a read and a write buffer of ~17 KiB per session for the session's life; the raw "
    "hub never touches most of those pages, an f0mesh hub, whose heap has more reused holes, did. "
    "Released: 281-301 -> 258-275 kB per link (four full runs of 3 repeats each, old and new "
    "interleaved within 30 minutes, load 0.8-6.4; ratio 1.44-1.53 -> 1.34-1.38). Left, ~70 kB per "
    "link, is Python objects: ~114 KiB per link against the raw peer's ~66, no single allocation site "
    "above 3 KiB: f0mesh's own per-link state ~15 KiB (link, framing, QoS meter, gossip outbox, their "
    "asyncio events and tasks), what a new peer's catch-up leaves in gossip repair, replicated state "
    "and trust ~20 KiB (bounded per message and per peer), SQLAlchemy statements compiled for the "
    "first time in the window ~5 KiB. Memory malloc'd outside Python grows as much as in the raw hub, "
    "the store threads' arena not at all, and no link starts a thread. Not measured here but found on "
    "the way: a closed link stays in the registry for `--stranger-retention` (an hour) and kept its "
    "closed peer connection; it now lets go of it (Python objects per closed link 94 -> 45 KiB), and "
    "a lossy link's remembered lost probes take 8 bytes each instead of ~115 (up to ~116 KiB per "
    "link)."
)


NOT_MET: dict[str, str] = {
    "message_rate_crypto": (
        "**Not met.** Measured for issue #25 (two Node processes, CPU per envelope from /proc, load "
        "4-20): sender 210-290 us, receiver 290-390 us, against a floor of 140-180 us per sign + verify "
        "pair. The engines alone, in one thread with no link and no SQL (the budget line above), were "
        "235-350 us per envelope for both sides before the hot-path pass, so the ceiling before any I/O "
        "was ~0.5-0.6. That pass (s30) cut the engines' Python per envelope, counted in instructions "
        "(callgrind, Ed25519 stubbed out so only the engine counts, 2,000 envelopes; repeatable where CPU"
        " time on this shared machine is not): publish 237.0k -> 193.9k instructions per envelope (-18 %;"
        " 61.3k of it is the one task and one future per publish that an HTTP request has, so the "
        "engine's own part went 175.7k -> 132.6k, -25 %), inbound 274.9k -> 172.4k (-37 %). Gone from the"
        " path: frozen dataclasses built per envelope (Envelope, StoredMessage, AuditRow are NamedTuples:"
        " a frozen dataclass's __init__ costs 1.2-1.5 us for ten fields against 0.3); three or four clock"
        " readings per envelope (one per msgs frame); a writer item, commit callback, trust-feedback call"
        " and P2 update per envelope (one per frame; an ack frame's sent rows are one writer item too); "
        "P3's bookkeeping while its weight is 0 (the default); the forwarded wire form when no mesh peer "
        "is left to push to; an iterator per seen-cache add; HLCTimestamp's validation loop (a fast "
        "path); a third of the message id's cost; _is_uint calls in decode; a set per id in is_message_id"
        " (every ack, IHAVE and IWANT id). Two-process rounds, four of each interleaved in the same hour "
        "(load 7-29): 1,490-2,060 envelopes per CPU-second of both nodes before (median 1,870), "
        "2,070-2,240 after (median 2,140); ratio 0.25-0.31 before, 0.30-0.32 after (the floor moves with "
        "the load). What is left per envelope is spread thin (no engine function above ~5 %); the rest of"
        " the gap is the store (~25-50 us per side) and aiortc (~40 us for both ends). Earlier passes "
        "removed `dataclasses.asdict` (~15 us per message and side), pure-Python base32 ids, PeerId "
        "decoding (cached), SQLAlchemy's per-row parameter processing and half the thread handoffs of a "
        "SQLite commit. Not made: one signature per batch (breaks one signature per envelope)."
        " The store then left SQLAlchemy's asyncio layer: SQLAlchemy Core on a sync engine run on the "
        "store's own writer and reader threads, one handoff per transaction where aiosqlite made 4-8 per "
        "gossip commit (SQLite, one process, old and new interleaved, load 5-9: 64-row commits 22-38 -> "
        "18-32 us of CPU per message, 1-row commits 470-685 -> 240-350 us; `message_rate_crypto` quick, "
        "six rounds each interleaved at load 6-15: median 0.26 -> 0.29)."
        " This pass (s31) kept every check, every audit row and one signature per envelope. Counted with"
        " callgrind (Ed25519 stubbed out; two engines on a MemoryNetwork, no linger, no ack timeouts, so"
        " repeatable to ~0.2 %; (Ir at 2,500 envelopes - Ir at 500) / 2,000): both engines 415.3k ->"
        " 383.1k instructions per envelope (-8 %), and 295.5k through `Node.publish_many` (-29 %); the"
        " inbound pipeline alone 182.2k -> 157.7k (-13 %); publish alone 186.2k -> 179.9k (-3 %). Gone:"
        " a `msgpack.Packer` built per pack (three or four a side per envelope; one per module now); a"
        " refill of a topic mesh short of d_lo over every neighbour per forwarded envelope (now only"
        " after a change of neighbours or subscriptions, or at the heartbeat); StoredMessage built by"
        " keyword; a clock reading per envelope in HLC.update (the frame's is used); an empty"
        " offered-set per noted id; an f-string per HLC string; a copied field list in decode's"
        " canonical check; a message event built for every delivered message while nobody listens on"
        " /api/events. And duplicates: the heartbeat's IHAVE and the periodic repair round offered ids"
        " whose push still waited in that neighbour's outbox; the IHAVE overtook the push and the IWANT"
        " it drew brought a second copy. Two-process runs of 8,500 envelopes: 176-644 received twice in"
        " each of four runs before; after, 0-2 in five runs and 120 in one (not explained yet). `--quick"
        " --only message_rate_crypto --repeats 4`, main and this branch interleaved, five pairs at load"
        " 0.9-5.1: ratio 0.297-0.359 before (median 0.337), 0.316-0.376 after (median 0.349); through"
        " publish_many 1,914-2,920 envelopes per CPU-second against 2,176-2,673 per publish in the same"
        " runs: within the noise. Two-process rounds on a quiet machine (load 0.2-0.8, 4,000 envelopes,"
        " six rounds each, CPU from /proc), medians: sender 179 -> 178 us per envelope per publish and"
        " 159 us through publish_many, receiver 247 -> 238 us; both processes 2,340 -> 2,410 envelopes"
        " per CPU-second per publish, 2,520 through publish_many. The real pipeline follows the engines'"
        " counts only a little: the engines are now ~60-70 us of the ~400 us both processes spend per"
        " envelope, next to sign and verify (~140 us), aiortc and DTLS (~35-40 us a side), the store's"
        " per-row work on its threads, and the cyclic garbage collector (7 % of the sender's GIL samples"
        " in a py-spy --native run, triggered from allocation sites in publish and SQLAlchemy; 0.1 % in"
        " the receiver). 0.6 needs the store and the link to cost less, not only the engines."
        " This pass (s32) kept every check, every audit row, one signature per envelope and the wire "
        "format. Own messages are delivered and pushed from the writer once their batch is committed, the"
        " flood targets read once per topic and batch, and only then does a publish's future resolve (a "
        "committed publish is now pushed even if its caller was cancelled; before, only repair sent it); "
        "`GossipEngine.publish` returns that future rather than a coroutine around it (one frame fewer "
        "per publish; `Node.publish` stays a coroutine); a frame's HLC stamps are checked against its one"
        " clock reading and the clock moves once per frame, past the newest admitted stamp, instead of a "
        "timestamp issued per envelope; the block list and a topic's publish policy are asked once per "
        "frame for each (topic, origin); overdue acks come from per-neighbour queues of clock starts in "
        "order, not a walk of every pending send per sweep; gossip rows reach the store as the engine's "
        "own tuples, reordered by one cached itemgetter on the writer thread (no dict per row, where two "
        "were built); message ids spread their digits one to a byte by five mask-and-shift steps and "
        "translate them in C (-17 % per id, no 1,024-string table); smaller cuts (no isawaitable for a "
        "subscriber that returned None, the loop's time through its bound method, Repair.note's eviction "
        "inline, highest seq by move_to_end, published counts per batch). Counted with callgrind (Ed25519"
        " stubbed; publishes through one coroutine, as Node.publish makes them): both engines 385.4k -> "
        "342.0k instructions per envelope (-11 %), through publish_many 295.5k -> 278.0k (-6 %); "
        "SqlGossipStore.commit on SQLite in batches of 64: 139.3k -> 125.7k per message with its audit "
        "row (-10 %). The whole pipeline moved less than the noise: `--quick --only message_rate_crypto`,"
        " main and this branch interleaved, eight pairs at load 1.3-7.5: ratio median 0.361 -> 0.384 "
        "(this branch ahead in six pairs; single runs 0.29-0.39 before, 0.32-0.45 after), envelopes per "
        "CPU-second of both nodes median 2,467 -> 2,533 (pairs from -7 % to +47 %); two-process rounds of"
        " 8,000 envelopes, old and new interleaved, 15 pairs of three rounds at load 2-7: medians 2,469 "
        "-> 2,496, 2,339 -> 2,388 and 2,180 -> 2,226 envelopes per CPU-second in three sessions (+1-2 % "
        "each; sender 197 -> 187 us, receiver 262 -> 256 us per envelope in the last). Where the rest is "
        "(py-spy --gil of this branch, load ~3): sender ~170 us per envelope: sign 25 %, the rest of "
        "publish 23 % (canonical payload, pack and id, the HLC stamp, seen-cache, row, future), aiortc "
        "and DTLS taking in acks and SACKs 13 %, the writer's push and store hand-off 10 %, the store "
        "thread 6.5 %; receiver ~226 us: verify 58 %, decode 8 %, admission and forwarding 8 %, aiortc "
        "and DTLS 8 %, the store ~7 %. On SQLite a message row costs ~100k instructions (~7k of it for "
        "each of gossip_messages' four secondary indexes) and an audit row ~25k, on both sides; the "
        "sender writes a message and two audit rows per envelope, the receiver a message and one. The "
        "cyclic GC takes ~11 us per envelope of the sender's CPU and ~4 of the receiver's (gc.callbacks);"
        " a generation-0 threshold of 10,000 after gc.freeze halves the sender's and does not lower the "
        "receiver's: ~1 % of both. 0.6 stays out of reach without a cheaper link, fewer or cheaper rows "
        "per envelope (each decision is an audit row by DESIGN.md), or cheaper crypto bindings. The link's "
        "acknowledgements (s32): aiortc sent a SACK per DATA packet, 0.25 per envelope here (the framing "
        "puts ~4 envelopes in one packet), each a DTLS record each way; f0mesh's delayed SACK "
        "(`f0mesh/rtc/sctp_delayed_sack.py`, RFC 9260 §6.2) sends 0.13. Ten `--quick` pairs interleaved "
        "with the previous main at load 1-6: ratio 0.344-0.401 (median 0.363) -> 0.345-0.400 (median "
        "0.380), envelopes per CPU-second of both nodes 2,409-2,874 (median 2,622) -> 2,447-2,853 (median"
        " 2,639): a gain, if any, within the noise; what is left of aiortc per envelope is mostly the "
        "DATA packets' own DTLS and SCTP work. Where the ceiling is (s33), measured by taking parts away"
        " in an experiment build, never merged (`--quick --only message_rate_crypto --repeats 3`, the "
        "variants interleaved with main, two rounds each, load 3-5): main 0.351 and 0.380; without the "
        "accepted envelopes' audit rows (published, sent, received, forwarded) 0.397 and 0.368, inside "
        "the noise; with no gossip store at all (a dict in memory: no SQLite, no audit, no writer thread)"
        " 0.511 and 0.542. So even a store that cost nothing would leave the key under 0.6: what remains"
        " beyond sign and verify is the engines (~60-70 us for both sides) and the link (aiortc, DTLS, "
        "framing and the event loop around them). On the store's side, `Store._commit_gossip` on SQLite "
        "in batches of 32 (20,000 rows, one thread, load ~3): 48.8 us of CPU per message with its audit "
        "row, 35.9 without the audit row, 28.4 without gossip_messages' four secondary indexes; the "
        "same rows through the stdlib's sqlite3 alone, 36.9 us (19.7 without the five secondary indexes"
        " of the two tables), so SQLite's own B-tree work is most of it, not SQLAlchemy; the "
        "issue's batch audit rows would save ~13 us per accepted decision (the sender makes two per "
        "envelope, the receiver one), some 10 % of the pipeline, and were not made: the gain is below "
        "what a run here can resolve, and each decision keeps its own row (DESIGN.md)."
    ),
    "node_rss_idle": (
        "**Met since s32** (fifth pass, last sentences). The store left SQLAlchemy's asyncio layer "
        "(issue #25): SQLAlchemy Core on a sync "
        "engine and the stdlib's sqlite3, run on the store's own threads, so a node no longer imports "
        "`sqlalchemy.ext.asyncio`, the ORM it pulls in, greenlet or aiosqlite: 129.4-129.8 -> 123.0-123.2"
        " MB, ratio 1.35 -> 1.29 (four quick runs each, old and new interleaved, load 5-15). What "
        "remains of SQLAlchemy is Core, ~11.5 MB; without it the ratio would be ~1.17. Measured before "
        "that change (`f0mesh up` hub with 5 links against the raw hub, quiet machine): 129.9 against "
        "95.7 MB; anonymous memory 85.2 against 54.3 MB, file-backed "
        "44.6 against 41.4 MB. The gap is imported code, not what the node holds: RSS of the imports "
        "alone is 118.2 against 85.1 MB, and both hubs add ~11 MB at run time (node start 5.3 MB before "
        "any link: the SQLite dialect and httpcore imported on first use, SQLite and its thread). "
        "tracemalloc of the idle node: 65 MB of Python heap, 31 MB of it code objects. Of the 33 MB "
        "of imports the raw peer does not have, SQLAlchemy is 20.7 MB (core 11.5; `sqlalchemy.ext.asyncio` "
        "6.5, most of it the ORM, which it imports for its session; aiosqlite and its dialect 2.7), "
        "f0mesh's own modules ~10 MB (state and CRDTs 4, api "
        "2.5, gossip 1.3), typer 1.4, prometheus_client 0.8. "
        "Tried and dropped: `gc.collect()` before the start-up `gc.freeze()` (-0.2 MB) and "
        "`malloc_trim` right after start (-0.35 MB; the first link's burst trims anyway)."
        " Third pass (issue #25): what `f0mesh up` imported but never ran is gone: rich (the other "
        "commands' terminal output; `f0mesh/cli.py` makes its consoles on first print) and httpx's "
        "own command line, which httpx's `__init__` imports whenever rich and click are installed "
        "(rich's progress bars and syntax highlighting, pygments; `f0mesh/serve.py` keeps "
        "`httpx._main` out, so httpx keeps its stub `main`): imports 107.7 -> 103.4 MB; the hub with "
        "8 idle links 124.0 -> 119.9 MB, ratio 1.29 -> 1.245 (full runs, 3 repeats each, old and new "
        "in the same hour, load 8-13). Where the rest is (smaps and tracemalloc of a real hub): "
        "SQLAlchemy Core ~10 MB of Python objects, f0mesh's own modules 5.6, typer and click 2; at "
        "run time the node's start adds ~9 MB before any link (typer's command tree and first-use "
        "imports 3.3 MB; `Store.open` 3.0 MB, mostly outside Python: libsqlite3, two connections, "
        "their threads; the link manager, the HTTP client and its TLS context 2.5 MB). Tried without "
        "gain: glibc's mmap and trim thresholds, keeping uvicorn's watchfiles reloader out. ~5 MB "
        "remain over the goal: SQLAlchemy Core (house rule) or typer for `up` would have to go. The "
        "SQLite page cache is now bounded at 1 MiB per connection (the writer's and the reader's each "
        "had SQLite's 2 MiB default): nothing on the bench's fresh hub (a ~230 KB database), -1.1 MB "
        "after 40,000 stored messages (a 38 MB database), same CPU. Fourth pass (issue #25): -4.0 MB."
        " No request builds the OpenAPI schema or a validator any more: the admin guard read its list "
        "of admin operations from `app.openapi()` on the first request (~1.7 MB kept), and "
        "`include_router` made FastAPI build every route's parameter and response validators a second "
        "time on that request, keeping both; the app now takes the routers' routes as they are and "
        "the guard reads `require_admin` from each route's dependencies (tested equal to the OpenAPI "
        "security marks). The system CA store (~150 certificates, ~1.7 MB) is read on the first "
        "https:// dial instead of at start-up, and `pydantic.v1`, which FastAPI imports only to refuse "
        "v1 models, is kept out (~0.9 MB). An idle hub after its first request: 116.0 -> 110.5 MB. "
        "Full runs, 3 repeats, K = 7, old and new in the same ten minutes (load 1.8-5.3): 120.4 -> "
        "116.4 MB against 96.4, ratio 1.249 -> 1.208; quick: 119.6 -> 115.4, 1.248 -> 1.206. Left: "
        "typer, which `f0mesh up` imports to read its flags, costs 2.1 MB in the running node (the "
        "same serve loop started without the CLI: 108.1 against 110.2 MB); the rest is the imports "
        "of FastAPI and pydantic (~15 MB) and SQLAlchemy Core (~12 MB). Tried without gain this "
        "pass: one malloc arena instead of two, `gc.collect()` before the start-up `gc.freeze()` "
        "(nothing to collect), `malloc_trim` of the idle node. Fifth pass (s32): typer is gone from "
        "the serving process. `f0mesh up` still parses its flags with typer and builds and checks the "
        "NodeConfig, then replaces itself (execve: same PID, arguments and streams) with a fresh "
        "interpreter that reads the checked settings from an inherited pipe and serves them, so typer "
        "and its own copy of click are never imported there (`serve.run_in_fresh_interpreter`; a test "
        "reads the serving interpreter's modules at exit). An idle node after its first request, "
        "interleaved with the previous main: 114.9 -> 107.9 MB (both passes). Bench, load 2.7-4.3: "
        "quick 113.2 against 95.7 MB, ratio 1.183; full, 3 repeats, K = 7: 114.0 against 96.3 MB, "
        "ratio 1.184 (link_memory 1.46 and 1.485 in the same runs)."
    ),
    "throughput": (
        "Where the gap was (issue #25; py-spy `--gil` profiles of both processes of each side during "
        "32-48 MiB rounds): f0mesh's own code is ~2 % of the sender's samples (the framing writer) and "
        "~5 % of the receiver's (`FramedChannel._on_more`, reassembly); the rest is aiortc, aioice and "
        "pyOpenSSL, as in the raw peers. The difference came from two things in aiortc's use of the "
        "network. (1) UDP drops: aioice asks for a 256 KiB `SO_RCVBUF`, which Linux reports as 512 KiB "
        "and which holds ~230 datagrams, ~270 KB of SCTP payload, while aiortc's SCTP advertises a "
        "1 MiB window; a receiver that pauses for a few milliseconds loses datagrams, and each loss "
        "costs a retransmission and halves the window. f0mesh now asks for 2 MiB on each link's "
        "socket once the link is open, and reads back what the kernel granted (4 MiB here, with "
        "`net.core.rmem_max` 4 MiB). The granted size is `f0mesh_link_udp_receive_buffer_bytes`. "
        "(2) With no losses the window grows to 1 MiB, ~900 chunks in flight, and aiortc's "
        "`_transmit` walks all of them on every SACK to look for chunks to retransmit. That walk was "
        "32 % of the f0mesh sender's samples against 9 % in the raw sender, whose losses kept its "
        "window small, so the larger buffer alone cut the drops to 0 but also cut MB per CPU-second "
        "(CPU-normalised ratio 0.84-0.97). f0mesh now installs a guarded copy of that method that "
        "skips the walk while no chunk is marked for retransmission (3 % of the sender's samples). "
        "Eleven quick runs each of the old code (3f20b9b) and the new code, interleaved, at a load of "
        "2-9: the wall-clock ratio went from a median of 0.93 (range 0.70-1.21, goal met in 7 of 11) "
        "to 1.03 (range 0.68-1.47, met in 10 of 11). The CPU-normalised ratio went from 0.86 "
        "(0.72-1.07) to 1.03 (0.89-1.35). f0mesh's `RcvbufErrors` went from 0-1,144 per repeat to 0 "
        "in every repeat. Full mode (64 MiB, 5 repeats), two runs each, interleaved, load 4-11: wall "
        "0.76 and 0.83 -> 0.90 and 0.89, CPU-normalised 0.91 and 0.97 -> 1.00 and 0.95, f0mesh "
        "`RcvbufErrors` 92-1,576 per repeat -> 0. "
        "Per CPU-second, f0mesh now moves bytes as cheaply as stock aiortc. A 2-repeat quick run's "
        "wall-clock ratio still follows the machine's load more than the code. What remains of "
        "f0mesh's own per-byte cost is reassembly (`bytearray +=` reallocations, ~4 % of the receiver)."
    ),
    "link_memory": (
        "What it is (issue #12: in-process hub, /proc/self/smaps, tracemalloc): Python objects grow by "
        "~213 KiB per link (aiortc SCTP, catch-up gossip, framing, asyncio), about plain aiortc's "
        "live cost; the rest was glibc heap high-water, since every new link sets off a burst of work "
        "(signed signaling, hello, peer exchange, anti-entropy, telemetry, store writes) whose freed "
        "memory glibc kept. Applied for issue #25: the node itself calls `malloc_trim(0)` "
        "(`f0mesh/heap.py`, in a thread) 1 s after the last link change of a burst. Measured with "
        "K = 7 links and 3 repeats (`--only link_memory --repeats 3`, load average 10-19): before, "
        "428 kB (full run of 2026-11-27, 2 repeats, ratio 2.17); trimming with the telemetry publish "
        "(up to 10 s after a burst) 402 kB [290-415] (2.04); the debounced trim 349 kB [347-381] "
        "(1.78). Not yet 1.5. A tracemalloc diff of an in-process hub (K = 7 after a warm-up link and "
        "12 s, 3 s after the last dial) traced only +139 KiB of Python objects per link, less than "
        "plain aiortc's whole per-link RSS: msgpack 15 KiB (catch-up envelopes re-encoded one hop "
        "on, `repair.py`), aioice 8, aiortc SCTP 8 and SDP 7, asyncio locks/queues ~11, pyee 5, "
        "f0mesh's link, framing, push and repair state ~14. So the rest of the gap lies outside "
        "Python objects (OpenSSL/DTLS state, allocator arenas of the threads that serve the store), "
        "where the next step is /proc/self/smaps per mapping rather than tracemalloc. Second pass for "
        "issue #25: the node caps glibc's malloc arenas at two (`heap.limit_arenas`, mallopt "
        "M_ARENA_MAX, called first thing in `Node.__init__`): with MALLOC_ARENA_MAX=2 in the "
        "environment, two runs of `--quick --only link_memory` went 342 -> 279 and 364 -> 302 kB per "
        "link (K = 4), and with the node setting it itself 258 kB (2 repeats, ratio 1.29). Idle RSS did "
        "not move (~128 MB against ~96 MB): f0mesh's imports alone hold ~110 MB (aiortc 62, then "
        "SQLAlchemy's asyncio engine +19, FastAPI/pydantic +16, httpx +7), all used at run time; "
        "scipy and networkx are no longer imported by a node."
        " Third pass (issue #25): the +20-30 kB per link since 0409ede is still not explained. Full "
        "runs (K = 7, 3 repeats, same hour, load 8-13): old node 303 kB [266-330], new 301 [301-316], "
        "baseline 195-197 (ratios 1.55 and 1.53). A tracemalloc diff per link of a real `f0mesh up` "
        "hub (snapshots on a signal, K = 7): 125-128 KiB of Python objects per link, no item above 7 "
        "KiB: aiortc 23 (SDP 7.5, SCTP 6.7, DTLS 4.2), asyncio events, queues and handles ~17, aioice "
        "9, pyee 7, SQLAlchemy 10-17 (3 statements first compiled in that window, the first QoS "
        "round's rows), msgpack 4.7, prometheus 3, f0mesh's link, repair, framing, push, wire, codec "
        "and QoS state ~25. The other ~175 kB of RSS per link lies outside Python objects. Tried on a "
        "hub, without gain: a 64 KiB SQLite page cache, glibc's mmap/trim thresholds and top pad, one "
        "malloc arena (worse: 337-340 against 310-325 kB), PYTHONMALLOC=malloc (worse: 341-362), a "
        "gc.collect before the trim, and a warm-up past the first QoS round (hub runs suggested -20 "
        "kB; the bench then read 318-319 against 301-303 kB, old and new node alike)."
    ),
    "validation": (
        "What holds it back: per envelope, beyond the Ed25519 verification itself, the PeerId's base58 "
        "decoding (twice), the strict canonical re-encoding check, the message id (sha256 + base32) and "
        "the accept path. The PeerId key cache (applied) lifted the ratio from ~0.6 to ~0.75."
    ),
}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    mem_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "loadavg_at_start": " ".join(load),
    }


def versions() -> dict[str, str]:
    import f0mesh

    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        args = ["git", "rev-parse", "--short", "HEAD"]  # read-only
        commit = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=5).stdout.strip()
    return {
        "python": platform.python_version(),
        "aiortc": dist("aiortc"),
        "aioice": dist("aioice"),
        "f0mesh": f"{f0mesh.__version__} (commit {commit or '?'}, working tree may differ)",
    }


def _fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _cell(values: list[float]) -> str:
    s = summarize(values)
    return f"{_fmt(s['median'])} [{_fmt(s['min'])}–{_fmt(s['max'])}] IQR {_fmt(s['q1'])}–{_fmt(s['q3'])}"


def _ints(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


def _gossip_table(by_n: dict[str, Any]) -> list[str]:
    rows = [
        "| N | messages | last delivery p50 (ms) | p99 (ms) | hops p99 | duplicates / node / msg "
        "| one-hop RTT (ms) | incomplete | links per node | mesh formed (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in by_n.items():
        if "error" in r:
            rows.append(f"| {n} | not measured: {r['error']} |  |  |  |  |  |  |  |  |")
            continue
        links = r["links_per_node"]
        rows.append(
            f"| {n} | {r['messages']} | {_fmt(r['last_delivery_ms_p50'])} "
            f"| {_fmt(r['last_delivery_ms_p99'])} "
            f"| {r['hops_p99']:g} | {r['duplicates_per_node_per_message']:.2f} | {_fmt(r['one_hop_rtt_ms'])} "
            f"| {r['incomplete']} | {min(links)}–{max(links)} | {r['mesh_formed_s']:.0f} |"
        )
    missing = [str(n) for n in (8, 16, 32) if str(n) not in by_n]
    if missing:
        rows += ["", f"Not reached (a smaller mesh failed first): N = {', '.join(missing)}."]
    return rows


def _libp2p_gossip_table(by_n: dict[str, Any]) -> list[str]:
    rows = [
        "| N | messages | last delivery p50 (ms) | p99 (ms) | duplicates / node / msg | incomplete |",
        "|---|---|---|---|---|---|",
    ]
    for n, r in by_n.items():
        if "error" in r:
            rows.append(f"| {n} | not measured: {r['error']} |  |  |  |  |")
            continue
        rows.append(
            f"| {n} | {r['messages']} | {_fmt(r['last_delivery_ms_p50'])} "
            f"| {_fmt(r['last_delivery_ms_p99'])} "
            f"| {r['duplicates_per_node_per_message']:.2f} | {r['incomplete']} |"
        )
    return rows


def _profile(samples: dict[str, Any]) -> list[str]:
    lines = []
    for role, prof in samples.items():
        busy, idle = prof["busy_s"], prof["idle_s"]
        lines.append(
            f"- {role}: {busy:.1f} s busy, {idle:.1f} s idle in epoll; top costs by own time "
            "(function — via the innermost f0mesh function above it — share of busy time):"
        )
        lines += [
            f"  {i}. `{c['function']}` — via `{c['via']}` — {100 * c['share']:.0f} %"
            for i, c in enumerate(prof["costs"], 1)
        ]
    return lines


def _extra_notes(key: str, fig: dict[str, Any]) -> list[str]:
    samples = fig["samples"]
    notes: list[str] = []
    if samples.get("round_ratios"):
        notes.append(
            f"Ratio per round (both sides back to back): {_cell(samples['round_ratios'])}; "
            f"all rounds: {', '.join(f'{r:.2f}' for r in samples['round_ratios'])}."
        )
    if key == "setup":
        api, inproc = samples["f0mesh_api_setup_ms"], samples["baseline_inprocess_setup_ms"]
        s_api, s_in = summarize(api)["median"], summarize(inproc)["median"]
        notes.append(
            f"Secondary: `setup_ms` as the dialling process measures it (link object created → open, "
            f"without /healthz and HTTP to the client): f0mesh {_cell(api)} ms; the baseline's in-process "
            f"equivalent (pc created → both channels open) {_cell(inproc)} ms; ratio {s_api / s_in:.2f}."
        )
    if key == "relayed_dial":
        mesh, http = samples["f0mesh_api_setup_ms"], samples["baseline_api_setup_ms"]
        notes.append(
            f"Secondary: `setup_ms` as the dialling process measures it (link object created → open): "
            f"through the relay {_cell(mesh)} ms, over HTTP {_cell(http)} ms; ratio "
            f"{summarize(mesh)['median'] / summarize(http)['median']:.2f}."
        )
    if key == "setup" and samples.get("f0mesh_peer_saw_failed"):
        notes.append(
            f"In {samples['f0mesh_peer_saw_failed']} of {samples['f0mesh_cycles']} f0mesh cycles the dialled "
            f"node saw the DELETEd link as failed ({', '.join(samples['f0mesh_peer_failed_reasons'])}) "
            "instead of closed by its peer: the final bye did not arrive before the channel closed, and "
            "that node would redial within ~1 s, bringing back a link closed for good. The bench cancels "
            "that redial with a DELETE on the dialled node, then lifts the hold that DELETE puts on the "
            "dialler's offers (`DELETE /api/peers/{id}/block`) before the next round."
        )
    for side in ("f0mesh", "baseline"):
        failed = samples.get(f"{side}_failed_rounds")
        if failed:
            notes.append(
                f"{len(failed)} {side} round(s) failed and were run again (not counted in the figure): "
                + "; ".join(f"`{reason}`" for reason in failed)
            )
    if key == "throughput":
        notes.append(f"Payload per repeat: {samples['payload_bytes'] / 1024 / 1024:.0f} MiB.")
    if key in ("message_rate", "message_rate_crypto"):
        notes.append(f"Messages per repeat: {samples['messages']}.")
    if key == "message_rate_crypto" and samples.get("per_cpu_second_batch"):
        notes.append(_batch_note(samples))
    if key == "message_rate_crypto" and "engine_budget_us" in samples:
        notes.append(_engine_budget_note(samples["engine_budget_us"]))
    if key == "validation":
        wf, wb = samples["wall_f0mesh"], samples["wall_baseline"]
        notes.append(
            f"Envelopes per repeat: {samples['envelopes']}. Wall-clock rates (a busy neighbour shows "
            f"here): f0mesh {_cell(wf)}, baseline {_cell(wb)} per second."
        )
        if "crdt_op_us" in samples:
            ops = samples["crdt_op_us"]
            notes.append(
                f"Signed replicated state, CPU µs per op of a map delta: sign {ops['sign_us']:.1f}, verify "
                f"{ops['verify_us']:.1f}, decode + merge {ops['decode_merge_us']:.1f}."
            )
    if key == "gossip":
        notes += ["\n".join(_gossip_table(samples["by_n"]))]
    if key == "libp2p_gossip":
        notes += ["\n".join(_libp2p_gossip_table(samples["by_n"]))]
    if key == "libp2p_message_rate":
        notes.append(
            f"Messages per repeat: f0mesh {samples['messages_f0mesh']}, py-libp2p "
            f"{samples['messages_libp2p']}. Per CPU-second ratio: {samples['per_cpu_second_ratio']:.2f}."
        )
    if key.startswith("libp2p_"):
        notes.append(LIBP2P_TRANSPORT)
    if "per_cpu_second_f0mesh" in samples:
        f0, base = samples["per_cpu_second_f0mesh"], samples["per_cpu_second_baseline"]
        ratio = summarize(f0)["median"] / summarize(base)["median"]
        notes.append(
            f"CPU-normalised (the same work per CPU-second of the sending and receiving processes, "
            f"user + system, which a busy neighbour distorts far less than wall time): f0mesh {_cell(f0)}, "
            f"baseline {_cell(base)} {fig['unit'].split('/')[0]} per CPU-second; ratio {ratio:.2f}."
        )
    if "udp_rcvbuf_errors_f0mesh" in samples:
        f0, base = samples["udp_rcvbuf_errors_f0mesh"], samples["udp_rcvbuf_errors_baseline"]
        notes.append(
            "UDP datagrams dropped because a receiving socket's buffer was full, per repeat "
            f"(`RcvbufErrors` of /proc/net/snmp, whole network namespace): f0mesh {_ints(f0)}, "
            f"baseline {_ints(base)}. Each drop costs aiortc's SCTP a retransmission, so many drops "
            "mean a rate set by recovery rather than by CPU, and a wide spread."
        )
    if key == "dead_peer" and samples.get("baseline_capped"):
        notes.append(
            f"{samples['baseline_capped']} baseline repeat(s) had not noticed after the "
            f"{samples['baseline_cap_s']:.0f} s cap and count as the cap: the true ratio is lower."
        )
    if key == "link_memory":
        notes.append(f"K = {samples['links']} links per repeat. {LINK_MEMORY_NOTE}")
    if key == "node_rss_idle":
        notes.append(
            "Most of it is code: an idle `f0mesh up` that has answered its first request holds ~110 MB "
            "before any link, the raw peer ~90 MB (aiortc, httpx and its own HTTP server); the "
            "difference is mostly the imports of FastAPI and pydantic, SQLAlchemy Core, f0mesh's own "
            "modules and typer. The first link adds 4-5 MB to either (the certificate and DTLS code of "
            "`cryptography` paged in, aiortc's objects), each further link ~0.3 against ~0.2 MB."
        )
    if key == "libdatachannel_throughput":
        notes.append(_libdatachannel_notes(samples))
    if key in NOT_MET and fig["met"] is False:
        notes.append(NOT_MET[key])
    return notes


def _batch_note(samples: dict[str, Any]) -> str:
    """The same rounds' envelopes published through Node.publish_many, against the same floors."""
    batch, floor = samples["per_cpu_second_batch"], samples["baseline"]
    ratios = [b / f for b, f in zip(batch, floor, strict=False)]
    return (
        f"Published in batches (`Node.publish_many`, 60 payloads a call, two calls in flight; still one "
        f"envelope, signature, store row and audit row per message; measured after each round's floor): "
        f"{_cell(batch)} envelopes per CPU-second of both nodes, {_cell(samples['wall_rate_batch'])} per "
        f"second; ratio to the floor {_cell(ratios)}."
    )


def _engine_budget_note(b: dict[str, float]) -> str:
    crypto = b["sign_us"] + b["verify_us"]
    engines = b["sender_engine_us"] + b["receiver_engine_us"]
    return (
        f"The engines alone (this run, one thread, no link, no SQL, `bench/validation.engine_budget`): "
        f"sign {b['sign_us']:.0f} and verify {b['verify_us']:.0f} us per envelope; the sender's publish "
        f"{b['sender_engine_us']:.0f} us (its sign included), the receiver's inbound pipeline "
        f"{b['receiver_engine_us']:.0f} us (its verify included); beyond the crypto, publish "
        f"{b['sender_engine_us'] - b['sign_us']:.0f} us and inbound "
        f"{b['receiver_engine_us'] - b['verify_us']:.0f} us. With the store and aiortc free, the "
        f"pipeline would reach at most {crypto / engines:.2f} of the floor."
    )


def _libdatachannel_notes(samples: dict[str, Any]) -> str:
    cpu, setup, rss = samples["cpu_s_per_mb"], samples["setup_ms"], samples["rss_kb_per_connection_end"]
    interop = samples["interop"]
    c_a, c_l = summarize(cpu["aiortc"])["median"], summarize(cpu["libdatachannel"])["median"]
    return (
        f"CPU-seconds per MB (both ends): aiortc {_cell(cpu['aiortc'])}, libdatachannel "
        f"{_cell(cpu['libdatachannel'])} ({c_a / c_l:.1f}x less CPU per byte). Setup: aiortc "
        f"{_cell(setup['aiortc'])} ms, libdatachannel {_cell(setup['libdatachannel'])} ms (the first "
        f"round of each makes its certificate). RSS per connection end: aiortc {rss['aiortc']:.0f} kB, "
        f"libdatachannel {rss['libdatachannel']:.0f} kB. Interop (libdatachannel offer, aiortc answer): "
        f"{'yes' if interop['ok'] else 'no'} ({interop['detail']}). {LDC_VERDICT}"
    )


def write(results: dict[str, Any], out_json: Path, out_md: Path, meta: dict[str, Any]) -> None:
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    out_md.write_text(markdown(results, meta))


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    m, v = meta["machine"], meta["versions"]
    lines = [
        "# f0mesh benchmark results",
        "",
        f"- Date: {meta['date']} ({meta['mode']} run, {meta['duration_s']:.0f} s; `{meta['command']}`)",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['kernel']}, {m['memory_gib']} GiB RAM, "
        f"load average at start {m['loadavg_at_start']}",
        f"- Versions: Python {v['python']}, aiortc {v['aiortc']}, aioice {v['aioice']}, f0mesh {v['f0mesh']}",
        "",
        "Each cell: median [min–max] IQR q1–q3 over the repeats. ratio = f0mesh median / baseline median, "
        "both measured in this run with repeats interleaved; the machine is shared, so compare ratios, "
        "not absolute numbers across runs.",
        "",
        "| key | unit | f0mesh | baseline | ratio | goal | met | repeats |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, fig in results.items():
        s = fig["samples"]
        lines.append(
            f"| `{key}` | {fig['unit']} | {_cell(s['f0mesh'])} | {_cell(s['baseline'])} | "
            f"{fig['ratio']:.3f} | {fig['goal']} | {_met(fig['met'])} | {fig['repeats']} |"
        )
    lines += ["", "## What is measured", ""]
    for key, fig in results.items():
        lines += [f"### `{key}`", "", METHODS.get(key, ""), ""]
        for note in _extra_notes(key, fig):
            lines += [note, ""]
    profile = results.get("message_rate", {}).get("samples", {}).get("profile")
    if profile:
        lines += ["## Profile of the small-message path", "", PROFILE_INTRO, ""]
        lines += [*_profile(profile), "", PROFILE_ACTIONS, ""]
    failed = meta.get("failed") or {}
    if failed:
        lines += ["## Not measured in this run", ""]
        lines += [f"- `{key}`: {why}" for key, why in failed.items()]
        lines.append("")
    return "\n".join(lines)


def _met(met: bool | None) -> str:
    return "–" if met is None else "yes" if met else "**no**"


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
