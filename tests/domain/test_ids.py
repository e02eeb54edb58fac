"""Host labels: what a machine calls itself, made safe for records and the API."""

from __future__ import annotations

import re

from shipyard.domain.ids import host_label


def test_a_host_label_keeps_only_what_the_api_takes() -> None:
    assert host_label("build-7.example.org") == "build-7.example.org"
    assert host_label("my laptop/../x\x00") == "mylaptop..x"
    assert host_label("a" * 300) == "a" * 255 and host_label("a" * 300, 64) == "a" * 64
    assert host_label("///") == "host"  # never empty
    assert re.fullmatch(r"[A-Za-z0-9_.\-]{1,255}", host_label("ü-ß box"))
