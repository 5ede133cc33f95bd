"""Tunable numbers of the gossip layer, kept apart from the mechanism (as go-libp2p-pubsub does).

Validated on construction so a bad configuration fails at start-up naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from f0mesh.crdt.bounds import MAX_DRIFT_MS
from f0mesh.errors import ConfigError
from f0mesh.gossip.envelope import MAX_TTL
from f0mesh.gossip.transport import MAX_ENVELOPES_PER_MESSAGE, MAX_IDS_PER_MESSAGE


@dataclass(frozen=True, slots=True)
class GossipParams:
    # eager push (GossipSub's mesh per topic, topic_mesh.py): every new message goes at once to the
    # mesh peers of its topic. Below d_lo a node GRAFTs subscribers of the topic by trust up to d;
    # above d_hi it PRUNEs the least trusted down to d. The connection manager keeps the links
    # themselves (its own D_lo/D/D_hi). d_hi 8, not GossipSub's 12: links average ~7.6, so at 12
    # every mesh held nearly every link and each message cost ~6.3 copies per node (1,000 simulated
    # peers); trimmed to d above 8 it costs ~5.7, and delivery times are unchanged (docs/scale.md).
    d: int = 6
    d_lo: int = 4
    d_hi: int = 8
    flood_publish: bool = True  # own messages go to every subscriber of the topic (flood publishing)
    # the system topics' meshes (telemetry, trust, state: periodic, not in a hurry, taken by every
    # node), without flood publishing; at d 6 they held every link of an idle node and each message
    # cost every node ~3.5 copies, most of its packets (topic_mesh.py)
    system_d: int = 3
    system_d_lo: int = 2
    system_d_hi: int = 4
    # topic meshes (topic_mesh.py): after a PRUNE neither side grafts the other for this long; a
    # PRUNE offers this many well-trusted subscribers of the topic (PX); the fanout set of a topic
    # published to without subscribing is kept this long after the last publish
    prune_backoff_s: float = 60.0
    prune_px: int = 6
    fanout_ttl_s: float = 60.0
    ttl: int = 16  # max hops; past the push depth of 10,000+ peers at d 6, bounds a message's lifetime
    floor_weight: float = 0.1  # uniform share mixed into trust so new honest peers still get picked
    # heartbeat: mesh upkeep, and IHAVE of the ids first seen within the last gossip_history
    # heartbeats to d_lazy neighbours drawn uniformly, those not pushed to first (a trust-picked
    # partner leaves a long tail)
    heartbeat_s: float = 1.0
    d_lazy: int = 6
    gossip_history: int = 3
    # a copy that answers a periodic digest is pushed on like a first receipt if it is this young
    # (catch-up pages after a (re)connect are not: repair of old news stays pairwise)
    forward_repaired_age_s: float = 5.0
    # limits
    max_message_bytes: int = 64 * 1024  # whole wire envelope; larger is rejected "too_large"
    # time validity
    replay_window_s: float = 300.0  # envelopes whose HLC wall time is older are rejected "replay"
    max_clock_skew_s: float = MAX_DRIFT_MS / 1000  # envelopes further ahead: rejected "clock_skew" (HLC)
    # dedup: the seen-cache must outlive window + skew, or an old duplicate could slip through
    seen_ttl_s: float = 400.0
    seen_max_entries: int = 200_000
    # acknowledgement and retry
    ack_timeout_s: float = 2.0  # no ack by then: the send failed, try another neighbour
    max_retries: int = 3  # further neighbours tried per message after failed sends
    # batching of envelopes towards one neighbour
    batch_max_envelopes: int = 64
    batch_max_bytes: int = 256 * 1024
    batch_linger_s: float = 0.002  # gather what is queued meanwhile into one transport message
    # write-behind store queue
    write_batch_rows: int = 256
    write_flush_interval_s: float = 0.005
    write_queue_max_rows: int = 20_000  # past this, audit rows of rejections are dropped (counted)
    # admission: own publishes waiting for their commit; past this publish() refuses (HTTP 429) instead of
    # queueing, so overload shows as refusals rather than ever later answers. 128 publishes are one full
    # write batch (a message and an audit row each): more would only wait for the next commit.
    max_pending_publishes: int = 128
    # repair (pull): IHAVE/IWANT
    repair_interval_s: float = 5.0
    repair_lookback_s: float = 60.0  # a periodic digest covers messages created this recently
    repair_digest_size: int = 500  # ids per IHAVE (GossipSub's MaxIHaveLength is 5000)
    catchup_max_ids: int = 10_000  # ids offered to a neighbour that (re)connects, within the window
    max_pending_iwant: int = 5_000  # ids requested from one neighbour and not yet received
    iwant_timeout_s: float = 3.0  # an id asked for is not asked of anyone else until then (IWantFollowupTime)
    # peer score thresholds (GossipSub v1.1; score.py): below gossip_threshold no IHAVE to or from the
    # peer, below publish_threshold no flood publish to it, below graylist_threshold everything it
    # sends is ignored and it is disconnected at the next heartbeat
    gossip_threshold: float = -10.0
    publish_threshold: float = -50.0
    graylist_threshold: float = -80.0
    # cost control: IHAVE taken from one neighbour per heartbeat (GossipSub's MaxIHaveMessages and
    # MaxIHaveLength), a link's first catch-up pages (up to catchup_max_ids) counted apart
    max_ihave_messages: int = 10
    max_ihave_ids: int = 5000
    # IDONTWANT (GossipSub v1.2): envelopes this large are announced to push peers on first receipt
    idontwant_min_bytes: int = 1024
    max_idontwant_ids: int = 1000  # ids remembered per neighbour, oldest forgotten first
    # application validators (validators.py): each call bounded in time, and in number at once
    validator_timeout_s: float = 2.0
    validator_concurrency: int = 64

    def __post_init__(self) -> None:
        for name in (
            "d",
            "d_lo",
            "d_hi",
            "system_d",
            "system_d_lo",
            "system_d_hi",
            "d_lazy",
            "gossip_history",
            "max_message_bytes",
            "seen_max_entries",
            "batch_max_envelopes",
            "batch_max_bytes",
            "write_batch_rows",
            "write_queue_max_rows",
            "max_pending_publishes",
            "repair_digest_size",
            "catchup_max_ids",
            "max_pending_iwant",
            "prune_px",
            "max_ihave_messages",
            "max_ihave_ids",
            "idontwant_min_bytes",
            "max_idontwant_ids",
            "validator_concurrency",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"gossip {name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(f"gossip max_retries must be an integer >= 0, got {self.max_retries!r}")
        if not self.d_lo <= self.d <= self.d_hi:
            raise ConfigError(
                f"gossip degrees must satisfy d_lo <= d <= d_hi, got {self.d_lo}, {self.d}, {self.d_hi}"
            )
        if not self.system_d_lo <= self.system_d <= self.system_d_hi:
            raise ConfigError(
                "gossip system topic degrees must satisfy system_d_lo <= system_d <= system_d_hi, "
                f"got {self.system_d_lo}, {self.system_d}, {self.system_d_hi}"
            )
        if not isinstance(self.ttl, int) or not 1 <= self.ttl <= MAX_TTL:
            raise ConfigError(f"gossip ttl must be in 1..{MAX_TTL}, got {self.ttl!r}")
        if not (math.isfinite(self.floor_weight) and 0.0 <= self.floor_weight <= 1.0):
            raise ConfigError(f"gossip floor_weight must be in [0, 1], got {self.floor_weight!r}")
        for name in (
            "replay_window_s",
            "max_clock_skew_s",
            "seen_ttl_s",
            "ack_timeout_s",
            "repair_interval_s",
            "repair_lookback_s",
            "iwant_timeout_s",
            "heartbeat_s",
            "forward_repaired_age_s",
            "prune_backoff_s",
            "fanout_ttl_s",
            "validator_timeout_s",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"gossip {name} must be > 0, got {value!r}")
        for name in ("batch_linger_s", "write_flush_interval_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"gossip {name} must be >= 0, got {value!r}")
        thresholds = (self.gossip_threshold, self.publish_threshold, self.graylist_threshold)
        if not all(isinstance(t, int | float) and math.isfinite(t) for t in thresholds) or not (
            self.graylist_threshold <= self.publish_threshold <= self.gossip_threshold <= 0
        ):
            raise ConfigError(
                "gossip score thresholds must satisfy graylist <= publish <= gossip <= 0, "
                f"got {self.graylist_threshold!r}, {self.publish_threshold!r}, {self.gossip_threshold!r}"
            )
        if self.seen_ttl_s < self.replay_window_s + self.max_clock_skew_s:
            raise ConfigError(
                "gossip seen_ttl_s must be >= replay_window_s + max_clock_skew_s, "
                "or old duplicates slip through"
            )
        if self.batch_max_envelopes > MAX_ENVELOPES_PER_MESSAGE:
            raise ConfigError(f"gossip batch_max_envelopes must be <= {MAX_ENVELOPES_PER_MESSAGE}")
        if self.repair_digest_size > MAX_IDS_PER_MESSAGE:
            raise ConfigError(f"gossip repair_digest_size must be <= {MAX_IDS_PER_MESSAGE}")
        if self.batch_max_bytes < self.max_message_bytes:
            raise ConfigError("gossip batch_max_bytes must hold at least one maximum-size envelope")
