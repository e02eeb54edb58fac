"""No client-supplied paths: 300+ traversal spellings in every path, name and id field get a
4xx, and a canary file outside the store never shows up in an answer."""

from __future__ import annotations

import http.client
import json
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest

from .conftest import Team

_DOTS = ("..", "%2e%2e", "%252e%252e", ".%2e", "%2e.", "\uff0e\uff0e", "%c0%ae%c0%ae")
_SEPS = ("/", "\\", "%2f", "%5c", "%252f", "\uff0f", "%c0%af")
_SPECIAL = (
    "..",
    "../",
    "..\\",
    ".",
    "./",
    "....//",
    "..;/",
    "..././",
    ";",
    ";/etc/passwd",
    "#",
    "#/../",
    "//",
    "//etc/passwd",
    "/etc/passwd",
    "/etc/shadow",
    "\\etc\\passwd",
    "C:\\Windows\\win.ini",
    "c:/windows/win.ini",
    "\\\\server\\share\\x",
    "file:///etc/passwd",
    "~/.ssh/id_rsa",
    "~root",
    "a\x00b",
    "..\x00/",
    "%00",
    "..%00/",
    "a/../../b",
    "name/../../../etc/passwd",
    "\u2024\u2024/",
    "..\u2215",
    "..\u2216",
    "%2e%2e%2f",
    "%252e%252e%252f",
    "..%c1%9c",
    "/%2e%2e/%2e%2e/",
    "..%u2215",
    "\r\n..",
    " ../",
    "../ ",
    "..\t/",
)


def corpus(canary: Path) -> list[str]:
    """Traversal spellings: dots x separators x depths, specials, and the canary's own path."""
    found = list(_SPECIAL)
    for depth in (1, 2, 3, 4, 5, 6):
        for dots in _DOTS:
            for sep in _SEPS:
                found.append((dots + sep) * depth + canary.name)
    found += [str(canary), f"file://{canary}", f"/{canary}", f"//{canary}", str(canary.parent)]
    return list(dict.fromkeys(found))


def _raw_ok(text: str) -> bool:
    return all(0x21 <= ord(c) < 0x7F for c in text)


# (method, template with {} for the spelling, body or None) — a path field each.
_PATH_FIELDS = (
    ("GET", "/api/v1/runs/{}", None),
    ("POST", "/api/v1/runs/{}/batch", {"params": {"a": "1"}}),
    ("GET", "/api/v1/models/{}/versions", None),
    ("GET", "/api/v1/datasets/{}/versions/1", None),
    ("PUT", "/api/v1/models/m1/aliases/{}", {"version": 1}),
    ("POST", "/api/v1/promotions/{}/approve", {}),
    ("DELETE", "/api/v1/tokens/{}", None),
    ("GET", "/api/v1/blobs/{}", None),
    ("HEAD", "/api/v1/blobs/{}", None),
    ("PUT", "/api/v1/blobs/{}", None),
)
_QUERY_FIELDS = (
    ("/api/v1/runs", "experiment"),
    ("/api/v1/promotions", "name"),
    ("/api/v1/datasets", "after"),
    ("/api/v1/deployments", "name"),
    ("/api/v1/pipelines/runs", "pipeline"),
    ("/api/v1/tokens", "user"),
    ("/api/v1/dataset-versions", "reference"),
    ("/api/v1/model-versions", "reference"),
    ("/api/v1/lineage/kinds", "id"),
)
_FAKE = "blake3:" + "0" * 64
# Routes whose body names files inside a run or a version, by digest: the names are checked.
_FILE_FIELDS = (
    ("/api/v1/runs/" + "0" * 32 + "/artifacts", {}),
    ("/api/v1/datasets/d/versions", {}),
    ("/api/v1/models/m/versions", {"flavor": "sklearn", "onnx": {"status": "unavailable"}}),
)
_BODY_FIELDS = (
    ("POST", "/api/v1/runs", "experiment", {}),
    ("POST", "/api/v1/runs", "parent_id", {}),
    ("POST", "/api/v1/promotions", "reference", {"to": "production", "reason": "r"}),
    ("POST", "/api/v1/promotions", "to", {"reference": "m1@1", "reason": "r"}),
    ("POST", "/api/v1/users", "name", {}),
    ("POST", "/api/v1/tokens", "user", {}),
    ("POST", "/api/v1/tokens", "name", {"user": "alice"}),
)


@pytest.mark.slow
def test_traversal_spellings_get_a_4xx_and_never_the_canary(team: Team, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    secret = secrets.token_hex(16)
    canary.write_text(secret)
    spellings = corpus(canary)
    assert len(spellings) >= 300
    conn = http.client.HTTPConnection("127.0.0.1", team.server.port, timeout=30)
    headers = {"authorization": f"Bearer {team.tokens['admin']}"}
    sent, wrong = 0, []

    def send(method: str, target: str, body: object) -> None:
        nonlocal sent, conn
        payload = None if body is None else json.dumps(body).encode()
        extra = {"content-type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, target, body=payload, headers=headers | extra)
            answer = conn.getresponse()
            status, text = answer.status, answer.read().decode("utf-8", "replace")
        except (http.client.HTTPException, ConnectionError):
            conn.close()  # the server dropped a request it could not parse: not served
            conn = http.client.HTTPConnection("127.0.0.1", team.server.port, timeout=30)
            status, text = 400, ""
        sent += 1
        if not 400 <= status < 500 or secret in text:
            wrong.append(f"{method} {target!r}: {status} {text[:100]}")

    for spelling in spellings:
        forms = [quote(spelling, safe="")]
        if _raw_ok(spelling):
            forms.append(spelling)
        for method, template, body in _PATH_FIELDS:
            for form in forms:
                send(method, template.format(form), body)
        for path, name in _QUERY_FIELDS:
            send("GET", f"{path}?{name}={quote(spelling, safe='')}", None)
        for method, path, name, rest in _BODY_FIELDS:
            send(method, path, rest | {name: spelling})
        for path, rest in _FILE_FIELDS:
            send("POST", path, rest | {"files": [{"path": spelling, "digest": _FAKE, "size": 1}]})
    conn.close()
    print(f"\n{len(spellings)} spellings, {sent} requests, {len(wrong)} wrong")  # with -s
    assert not wrong, f"{len(wrong)} of {sent} answers were wrong:\n" + "\n".join(wrong[:30])
    fields = len(_PATH_FIELDS) + len(_QUERY_FIELDS) + len(_BODY_FIELDS) + len(_FILE_FIELDS)
    assert sent > 300 * fields
    assert secret not in canary.read_text().replace(secret, "") and canary.read_text() == secret


@pytest.fixture
def metadata_uri(tmp_path: Path) -> str:
    """SQLite only: what is refused does not depend on the metadata back end."""
    return f"sqlite:///{tmp_path / 'meta' / 'shipyard.db'}"
