"""Queries, as ``serf query``: ask the peers that match a filter, gather their answers until a deadline.

A query is a direct message (f0mesh.direct) to each target, so questions and answers are signed
end to end and encrypted; relays see only whom they go to. A target acks on receipt, runs the
handler registered under the query's name (``node.queries.handler(name, fn)``) until the deadline,
and answers; the asker reports answers, acks, errors and the targets that did not answer in time.
The payload and the answer are msgpack-able values (JSON-like, or bytes) within the direct body cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from f0mesh.direct import MAX_BODY, DirectService, Received
from f0mesh.errors import F0MeshError
from f0mesh.tasks import TaskSet

ASK, ACK, ANSWER = "q", "qa", "qr"
MAX_NAME = 64
MAX_TIMEOUT_S = 30.0
MAX_TARGETS = 256
MAX_RUNNING = 16  # handlers this node runs at once for others' queries
PING = "f0mesh.ping"

QueryHandler = Callable[[Any, str], Awaitable[Any]]
"""``fn(payload, asker_peer_id)``: the answer; an exception becomes the asker's ``errors`` entry."""


@dataclass
class QueryResult:
    targets: list[str]
    answers: dict[str, Any] = field(default_factory=dict)
    acks: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def view(self) -> dict[str, Any]:
        answered = set(self.answers) | set(self.errors)
        return {
            "answers": [{"peer_id": p, "answer": a} for p, a in self.answers.items()],
            "errors": [{"peer_id": p, "error": e} for p, e in self.errors.items()],
            "acks": sorted(self.acks),
            "no_answer": [p for p in self.targets if p not in answered],
            "no_ack": [p for p in self.targets if p not in self.acks],
        }


def _pack(value: Any) -> bytes:
    try:
        body = msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an int past 64 bits
        raise F0MeshError(f"not a msgpack-able value: {exc}", code="bad_payload") from exc
    if len(body) > MAX_BODY - 256:
        limit = MAX_BODY - 256
        raise F0MeshError(f"query payload is larger than {limit} bytes", code="too_large", status=413)
    return body


class Queries:
    def __init__(
        self, direct: DirectService, *, self_info: Callable[[], dict[str, Any]], tasks: TaskSet | None = None
    ) -> None:
        """``tasks``: where answers being worked out run (the node's, closed when it stops)."""
        self._direct = direct
        self._handlers: dict[str, QueryHandler] = {}
        self._pending: dict[bytes, QueryResult] = {}
        self._running = 0
        self._tasks = tasks or TaskSet("queries")
        direct.handler(ASK, self._on_ask)
        direct.handler(ACK, self._on_reply)
        direct.handler(ANSWER, self._on_reply)

        async def ping(payload: Any, asker: str) -> Any:
            return self_info()

        self.handler(PING, ping)

    def handler(self, name: str, fn: QueryHandler) -> None:
        """Answer queries named ``name`` with ``await fn(payload, asker)``."""
        if not name or len(name) > MAX_NAME or name in self._handlers:
            raise ValueError(f"query name must be 1..{MAX_NAME} characters and new: {name!r}")
        self._handlers[name] = fn

    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def ask(self, name: str, payload: Any, targets: list[str], timeout: float) -> dict[str, Any]:
        """Send to every target, wait until all answered or ``timeout``; the QueryResult's view."""
        if not 0 < timeout <= MAX_TIMEOUT_S:
            raise F0MeshError(f"timeout must be in (0, {MAX_TIMEOUT_S}] seconds", code="bad_timeout")
        if len(targets) > MAX_TARGETS:
            raise F0MeshError(f"a query goes to at most {MAX_TARGETS} peers", code="too_many_targets")
        qid = os.urandom(12)
        result = QueryResult(list(dict.fromkeys(targets)))
        deadline = time.time() + timeout
        body = _pack({"qid": qid, "name": name, "payload": payload, "deadline": deadline})
        self._pending[qid] = result
        try:
            for peer in result.targets:
                if peer == self._direct.identity.peer_id:
                    self._spawn(self._answer_self(result, name, payload, timeout))
                    continue
                try:
                    await self._direct.send(peer, ASK, body)
                except F0MeshError as exc:
                    result.errors[peer] = f"{exc.code}: {exc.detail}"
            self._check_done(result)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(result.done.wait(), max(0.0, deadline - time.time()))
            return result.view()
        finally:
            self._pending.pop(qid, None)

    async def _answer_self(self, result: QueryResult, name: str, payload: Any, timeout: float) -> None:
        me = self._direct.identity.peer_id
        result.acks.add(me)
        try:
            result.answers[me] = await asyncio.wait_for(self._run(name, payload, me), timeout)
        except Exception as exc:
            result.errors[me] = _why(exc)
        self._check_done(result)

    async def _run(self, name: str, payload: Any, asker: str) -> Any:
        fn = self._handlers.get(name)
        if fn is None:
            raise F0MeshError(f"no handler for query {name!r}", code="no_handler")
        return await fn(payload, asker)

    async def _on_ask(self, received: Received) -> None:
        try:
            ask = msgpack.unpackb(received.body, raw=False)
            qid, name, deadline = ask["qid"], ask["name"], ask["deadline"]
        except Exception:
            return  # signed by its sender yet malformed: nothing to answer to
        if not (isinstance(qid, bytes) and isinstance(name, str) and isinstance(deadline, int | float)):
            return
        sender = received.sender
        await self._reply(sender, ACK, {"qid": qid})
        if self._running >= MAX_RUNNING:
            await self._reply(sender, ANSWER, {"qid": qid, "error": "busy: too many queries running"})
            return
        self._running += 1
        if self._tasks.spawn(self._answer(sender, qid, name, ask.get("payload"), deadline)) is None:
            self._running -= 1  # the node is stopping

    async def _answer(self, sender: str, qid: bytes, name: str, payload: Any, deadline: float) -> None:
        try:
            left = min(MAX_TIMEOUT_S, deadline - time.time())
            reply: dict[str, Any] = {"qid": qid}
            try:
                reply["answer"] = await asyncio.wait_for(self._run(name, payload, sender), max(0.0, left))
            except Exception as exc:
                reply["error"] = _why(exc)
            await self._reply(sender, ANSWER, reply)
        finally:
            self._running -= 1

    async def _reply(self, to: str, kind: str, reply: dict[str, Any]) -> None:
        try:
            await self._direct.send(to, kind, _pack(reply))
        except F0MeshError:
            await self._direct.send(to, kind, _pack({"qid": reply["qid"], "error": "answer too large"}))

    def _on_reply(self, received: Received) -> None:
        try:
            reply = msgpack.unpackb(received.body, raw=False)
            result = self._pending.get(reply["qid"])
        except Exception:
            return
        sender = received.sender
        if result is None or sender not in result.targets:
            return  # late, or from a peer not asked
        result.acks.add(sender)
        if received.kind == ANSWER and sender not in result.answers and sender not in result.errors:
            if "error" in reply:
                result.errors[sender] = str(reply["error"])[:200]
            else:
                result.answers[sender] = reply.get("answer")
        self._check_done(result)

    @staticmethod
    def _check_done(result: QueryResult) -> None:
        if all(p in result.answers or p in result.errors for p in result.targets):
            result.done.set()

    def _spawn(self, coro: Any) -> None:
        self._tasks.spawn(coro)

    async def close(self) -> None:
        await self._tasks.close(2.0)


def _why(exc: BaseException) -> str:
    if isinstance(exc, F0MeshError):
        return f"{exc.code}: {exc.detail}"[:200]
    if isinstance(exc, TimeoutError):
        return "timeout: the handler did not answer before the deadline"
    return f"{type(exc).__name__}"[:200]
