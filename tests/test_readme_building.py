"""README "Building on f0mesh": every sh block runs, exactly as printed, against a real node."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from nodes import TOKEN

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(language: str = "sh") -> list[str]:
    text = README.read_text()
    section = text.split("\n## Building on f0mesh\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```$", section, re.M | re.S)


def run(block: str, node, *, python: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    env.update(
        F0MESH_NODE=node.url,
        F0MESH_ADMIN_TOKEN=TOKEN,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    argv = [sys.executable, "-c", block] if python else ["bash", "-c", block]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def test_the_readme_examples_run_as_printed(node_factory) -> None:
    shell, http = blocks()
    node = node_factory("readme")

    lines = run(shell, node).splitlines()
    printed = [json.loads(line) for line in lines if line.startswith("{")]
    assert [m["payload"] for m in printed] == [{"headline": "hello"}, "from stdin"], lines
    assert [m["n"] for m in printed] == sorted(m["n"] for m in printed)

    out = run(http, node)
    decoder = json.JSONDecoder()
    published, end = decoder.raw_decode(out)  # curl adds no newline after a JSON body
    page, _ = decoder.raw_decode(out, end)
    (message,) = page["messages"]
    assert message["id"] == published["id"] and page["next"] == message["n"]
    assert base64.b64decode(message["payload_b64"]) == b"\x00\xffraw"
    assert f"id: {message['n']}\nevent: message\ndata: " in out
    streamed = json.loads(out.split("event: message\ndata: ", 1)[1].split("\n", 1)[0])
    assert streamed == message


def test_the_python_examples_run_as_printed(node_factory) -> None:
    client, embedded = blocks("python")
    node = node_factory("readme-py", extra=["--tag", "role=example"])

    lines = run(client, node, python=True).splitlines()
    assert [line.split(" ", 1)[1] for line in lines[:2]] == ["{'text': 'hi'}", "b'\\x00raw'"], lines
    assert int(lines[0].split()[0]) < int(lines[1].split()[0])  # in storing order
    assert lines[2] == "[{'role': 'example'}]", lines

    assert run(embedded, node, python=True).splitlines() == ["{'job': 1}", "b'\\x00raw'", "[6]"]
