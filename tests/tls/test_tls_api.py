"""TLS on the HTTP API: the node serves HTTPS, advertises an https URL, and verifies the peers it dials."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from f0mesh import launch

from nodes import TOKEN, free_port, start_all, wait_for


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__ or exc.__context__
    return exc


def test_node_serves_https_verified_by_the_ca(tls_node_factory, pki) -> None:
    a = tls_node_factory("a")
    health = a.http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["url"] == f"https://127.0.0.1:{a.port}"  # advertised as https, not http

    with pytest.raises(httpx.ConnectError) as refused:
        httpx.get(f"{a.url}/healthz", verify=ssl.create_default_context(cafile=str(pki.rogue_ca)))
    assert isinstance(_cause(refused.value, ssl.SSLCertVerificationError), ssl.SSLCertVerificationError)

    with pytest.raises(httpx.TransportError):  # no cleartext HTTP on a TLS port
        httpx.get(f"http://127.0.0.1:{a.port}/healthz", timeout=5)

    login = a.http.get("/login", params={"token": TOKEN}, follow_redirects=False)
    assert login.status_code == 303
    cookies = login.headers.get_list("set-cookie")
    assert cookies and all("secure" in c.lower() for c in cookies)


def test_peer_dials_over_https(tls_node_factory) -> None:
    a, b = start_all([tls_node_factory(name, start=False) for name in "ab"])
    r = a.http.post("/dial", json={"url": b.url})
    assert r.status_code == 200, r.text
    assert r.json()["peer_id"] == b.peer_id and r.json()["state"] == "open"
    wait_for(lambda: (lk := b.link_to(a.peer_id)) and lk["state"] == "open", 15, what="link open on b")
    # b learned a's https URL from the signed offer, so b can redial a over HTTPS.
    known = {p["peer_id"]: p["url"] for p in b.http.get("/api/peers").json()["peers"]}
    assert known[a.peer_id] == a.url


def test_outbound_https_is_verified_against_the_system_store(tls_node_factory, node_factory) -> None:
    b = tls_node_factory("b")
    plain = node_factory("plain")  # no --tls-ca: the test CA is not in the system store
    r = plain.http.post("/dial", json={"url": b.url})
    assert r.status_code == 502, r.text
    assert r.json()["error"] == "tls"
    assert "certificate verify failed" in r.json()["detail"]
    assert plain.links() == [] and b.links() == []


def _up(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        launch.up_argv(data_dir, port=free_port(), extra=args),
        capture_output=True,
        text=True,
        timeout=60,
        env=launch.node_env(env),
    )


def test_bad_tls_settings_are_one_line_errors(tmp_path, pki) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cert, key, ca = str(pki.server_cert), str(pki.server_key), str(pki.ca)
    cases = [
        ((), {"F0MESH_TLS_CERT": cert}, "--tls-key"),  # flags read F0MESH_* variables too
        (("--tls-cert", cert, "--tls-key", str(junk)), {}, "--tls-cert"),
        (("--tls-ca", str(junk)), {}, "--tls-ca"),
        (("--tls-cert", cert, "--tls-key", key, "--tls-client-ca", ca), {}, "--admin-port"),
        (("--admin-port", str(free_port())), {}, "--tls-client-ca"),
        (("--tls-client-ca", ca, "--admin-port", "9"), {}, "--tls-cert"),
    ]
    for args, env, flag in cases:
        r = _up(tmp_path / "d", *args, env=env)
        assert r.returncode != 0, (args, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and flag in errors[0], (args, r.stderr)
        assert "Traceback" not in r.stderr
