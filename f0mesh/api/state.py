"""Replicated application state: named LWW maps, LWW sets and RGA lists that converge on every peer.

PUT replaces a document's content (idempotent: only what differs is written); POST applies operations to
it. Either creates the document, with the kind given, if it does not exist yet.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path
from pydantic import Field, StrictInt, StringConstraints

from f0mesh.api.auth import require_admin
from f0mesh.api.examples import DOCUMENT, OPEN_CONFLICT, OTHER_PEER, PEER, POLICY, answer, bodies
from f0mesh.api.models import Strict
from f0mesh.api.worker import get_node
from f0mesh.node import Node
from f0mesh.state import ListChange, MapChange, SetChange, parse_id
from f0mesh.state.documents import MAX_KEY_CHARS, NAME_RE

router = APIRouter(prefix="/api/state", tags=["state"])

MAX_OPS = 10_000
Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_CHARS)]
Element = Key | Annotated[StrictInt, Field(ge=-(2**63), le=2**64 - 1)]
Name = Annotated[str, Path(pattern=NAME_RE.pattern, description="1..64 of A-Z a-z 0-9 _ . -")]


PeerIdText = Annotated[str, StringConstraints(min_length=40, max_length=60)]
ResolutionName = Literal["lww", "ranked", "keep-all"]
RESOLUTION_HELP = (
    "how concurrent writes resolve, fixed when this write creates the document (409 if it exists otherwise): "
    "lww (last writer wins, the default), ranked (the highest in `rank` wins), keep-all (every concurrent "
    "value is kept and listed in the conflicts until a writer writes the key); ranked and keep-all: maps only"
)


class Created(Strict):
    resolution: ResolutionName | None = Field(default=None, description=RESOLUTION_HELP, examples=["ranked"])
    rank: list[PeerIdText] = Field(
        default_factory=list,
        max_length=64,
        description="for ranked: writers, highest first (named writers)",
        examples=[[OTHER_PEER, PEER]],
    )

    def chosen(self) -> tuple[str, list[str]] | None:
        return None if self.resolution is None else (self.resolution, list(self.rank))


class Replace(Created):
    kind: Literal["map", "set", "list"]
    value: Any = Field(description="map: a JSON object; set: an array of strings/integers; list: an array")


class MapPatch(Created):
    """Keys to write, then keys to delete."""

    kind: Literal["map"]
    set: dict[Key, Any] = Field(default_factory=dict, max_length=MAX_OPS)
    delete: list[Key] = Field(default_factory=list, max_length=MAX_OPS)


class SetPatch(Strict):
    """Elements to add, then elements to remove."""

    kind: Literal["set"]
    add: list[Element] = Field(default_factory=list, max_length=MAX_OPS)
    remove: list[Element] = Field(default_factory=list, max_length=MAX_OPS)


class ListInsert(Strict):
    after: str | None = Field(max_length=200, description='element id ("counter@replica"); null = the head')
    values: list[Any] = Field(min_length=1, max_length=MAX_OPS, description="inserted in this order")


class ListPatch(Strict):
    """Element ids to delete, then runs to insert after an element, then values to append at the end."""

    kind: Literal["list"]
    delete: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=list, max_length=MAX_OPS
    )
    insert: list[ListInsert] = Field(default_factory=list, max_length=MAX_OPS)
    append: list[Any] = Field(default_factory=list, max_length=MAX_OPS)


class Writers(Strict):
    """PeerIds to name as writers of the document, then PeerIds to unname (the creator stays)."""

    add: list[PeerIdText] = Field(default_factory=list, max_length=64)
    remove: list[PeerIdText] = Field(default_factory=list, max_length=64)


Patch = Annotated[MapPatch | SetPatch | ListPatch, Field(discriminator="kind")]


def _change(body: MapPatch | SetPatch | ListPatch) -> MapChange | SetChange | ListChange:
    if isinstance(body, MapPatch):
        return MapChange(set=dict(body.set), delete=list(body.delete))
    if isinstance(body, SetPatch):
        return SetChange(add=list(body.add), remove=list(body.remove))
    return ListChange(
        delete=[parse_id(i) for i in body.delete],
        insert=[(None if run.after is None else parse_id(run.after), run.values) for run in body.insert],
        append=body.append,
    )


@router.get("")
async def documents(node: Node = Depends(get_node)) -> dict[str, Any]:
    """Every document with its kind, entry count and approximate size; deltas dropped, by reason.

    A saved document that could not be loaded at start is listed too, with ``"quarantined": reason``: its
    bytes are kept aside in the store unchanged, and the name starts afresh."""
    return {"documents": node.state.documents(), "dropped": dict(node.state.dropped)}


@router.get(
    "/{name}",
    summary="A document's content, version and write policy (with its resolution)",
    responses=answer(DOCUMENT),
)
async def document(name: Name, node: Node = Depends(get_node)) -> dict[str, Any]:
    """The content (lists also give their element ids) and the version vector of this replica."""
    return node.state.view(name)


@router.put(
    "/{name}",
    summary="Replace a document's content, creating it with a resolution if new (admin)",
    dependencies=[Depends(require_admin)],
    openapi_extra=bodies(
        lww={"kind": "map", "value": {"mode": "fast"}},
        ranked={"kind": "map", "value": {"mode": "fast"}, "resolution": "ranked", "rank": [OTHER_PEER, PEER]},
        keep_all={"kind": "map", "value": {"mode": "fast"}, "resolution": "keep-all"},
        set={"kind": "set", "value": ["red", 7]},
    ),
    responses=answer({k: v for k, v in DOCUMENT.items() if k != "policy"}),
)
async def replace(name: Name, body: Replace, node: Node = Depends(get_node)) -> dict[str, Any]:
    """Make the content equal to ``value``; concurrent writes to other keys elsewhere survive."""
    return await node.state.replace(name, body.kind, body.value, body.chosen())


@router.post(
    "/{name}",
    summary="Apply operations to a document, creating it with a resolution if new (admin)",
    dependencies=[Depends(require_admin)],
    openapi_extra=bodies(
        map={"kind": "map", "set": {"mode": "safe"}, "delete": ["old"]},
        keep_all_map={"kind": "map", "set": {"mode": "safe"}, "resolution": "keep-all"},
        set={"kind": "set", "add": ["blue"], "remove": ["red"]},
        list={"kind": "list", "insert": [{"after": None, "values": ["first"]}], "append": ["last"]},
    ),
    responses=answer({
        "name": "todo", "kind": "list", "value": ["first", "a", "last"], "version": {PEER: 3},
        "ids": [f"2@{PEER}", f"1@{PEER}", f"3@{PEER}"], "inserted": [f"2@{PEER}", f"3@{PEER}"],
    }),
)  # fmt: skip
async def patch(name: Name, body: Patch = Body(...), node: Node = Depends(get_node)) -> dict[str, Any]:
    """Apply operations; list inserts answer with the new element ids under ``inserted``."""
    resolution = body.chosen() if isinstance(body, MapPatch) else None
    return await node.state.update(name, _change(body), resolution)


@router.post(
    "/{name}/writers",
    summary="Name or unname the writers of a document this node created (admin)",
    dependencies=[Depends(require_admin)],
    openapi_extra=bodies(name={"add": [PEER]}, unname={"remove": [PEER]}),
    responses=answer(POLICY, "the document's write policy"),
)
async def writers(name: Name, body: Writers, node: Node = Depends(get_node)) -> dict[str, Any]:
    """Change who may write a document this node created (403 elsewhere); answers with the policy.

    Other nodes refuse ops by authors the policy does not name, so a node's operator names here the
    peers that share the document with it (or all at once with ``--state-writers``)."""
    return await node.state.set_writers(name, body.add, body.remove)


@router.get(
    "/{name}/conflicts",
    summary="Concurrent writes met here, and the keys still open under ranked or keep-all",
    responses=answer({"name": "config", "conflicts": [OPEN_CONFLICT]}),
)
async def conflicts(name: Name, node: Node = Depends(get_node)) -> dict[str, Any]:
    """Concurrent writes met here and how each was resolved (kept / discarded, with timestamps). In a map
    that resolves by ranked or keep-all, every key whose concurrent values no writer has resolved yet is
    listed with ``"open": true`` and its ``siblings``."""
    return {"name": name, "conflicts": node.state.conflicts(name)}
