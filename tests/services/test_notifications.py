from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shipyard.app import build
from shipyard.domain.notifications import NotificationEvent, parse_sink, webhook_payload
from shipyard.errors import InvalidArgumentError, SettingsError
from shipyard.services.notifications import Notifier, SmtpSettings
from shipyard.settings import Settings

AT = datetime(2026, 11, 23, 3, 0, 5, tzinfo=UTC)


def event(kind: str = "failure", **changes: Any) -> NotificationEvent:
    values: dict[str, Any] = {
        "kind": kind,
        "pipeline": "train",
        "run_id": "0190abc",
        "status": {"success": "succeeded", "failure": "failed", "retry": "running"}[kind],
        "task_key": "fit-0" if kind != "success" else None,
        "message": "ValueError: bad input" if kind != "success" else "",
        "at": AT,
    }
    values.update(changes)
    return NotificationEvent(**values)


class Hook:
    """A real HTTP server on loopback that records posted bodies and answers ``codes``."""

    def __init__(self, codes: list[int] | None = None, delay: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.codes = list(codes or [])
        self.delay = delay
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                time.sleep(hook.delay)
                hook.bodies.append(body)
                hook.paths.append(self.path)
                hook.headers.append(dict(self.headers))
                code = hook.codes.pop(0) if hook.codes else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    """aiosmtpd handler: keeps messages, refuses recipients listed in ``refuse``."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, SmtpSettings]]:
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield (
        mailbox,
        SmtpSettings(host="127.0.0.1", port=port, sender="shipyard@example.com", starttls=False),
    )
    controller.stop()


def test_a_webhook_gets_a_slack_compatible_json_post(hook: Hook) -> None:
    notifier = Notifier([hook.url])
    notifier.send(event("failure"))
    assert notifier.flush(10)
    [body] = hook.bodies
    assert body["text"].startswith(":x: pipeline train failed (run 0190abc)")
    assert "fit-0" in body["text"] and "ValueError" in body["text"]
    assert body["blocks"][0]["type"] == "section"
    assert body["shipyard"] == {
        "kind": "failure",
        "pipeline": "train",
        "run_id": "0190abc",
        "status": "failed",
        "task_key": "fit-0",
        "message": "ValueError: bad input",
        "at": AT.isoformat(),
    }
    assert hook.headers[0]["Content-Type"] == "application/json"
    assert [d.ok for d in notifier.deliveries] == [True]


def test_sinks_filter_events(hook: Hook) -> None:
    notifier = Notifier(
        [
            f"webhook+failure:{hook.url}/failures",
            f"{hook.url}/default",
            f"webhook+retry+success:{hook.url}/retries",
        ]
    )
    for kind in ("success", "failure", "retry"):
        notifier.deliver(event(kind))
    received = [
        (body["shipyard"]["kind"], path.rsplit("/", 1)[1])
        for body, path in zip(hook.bodies, hook.paths, strict=True)
    ]
    assert received == [
        ("success", "default"),
        ("success", "retries"),
        ("failure", "failures"),
        ("failure", "default"),
        ("retry", "retries"),
    ]


def test_a_webhook_answering_500_is_retried_then_recorded_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Hook(codes=[500, 500, 500])
    try:
        notifier = Notifier([server.url], backoff=0.01)
        with caplog.at_level(logging.WARNING, logger="shipyard.notifications"):
            notifier.send(event())
            assert notifier.flush(10)
    finally:
        server.close()
    assert len(server.bodies) == 3
    [failure] = notifier.failures
    assert (
        failure.attempts == 3 and failure.error == "ConnectionError: HTTP 500 Internal Server Error"
    )
    assert "secret" not in failure.sink and "127.0.0.1" in failure.sink
    assert "failed after 3 attempt(s)" in caplog.text and "secret" not in caplog.text


def test_a_passing_failure_is_retried_until_it_works() -> None:
    server = Hook(codes=[503])
    try:
        notifier = Notifier([server.url], backoff=0.01)
        [delivery] = notifier.deliver(event())
    finally:
        server.close()
    assert delivery.ok and delivery.attempts == 2


def test_a_4xx_answer_is_not_retried() -> None:
    server = Hook(codes=[404])
    try:
        [delivery] = Notifier([server.url], backoff=0.01).deliver(event())
    finally:
        server.close()
    assert not delivery.ok and delivery.attempts == 1 and "HTTP 404" in (delivery.error or "")


def test_a_webhook_that_is_down_is_recorded_and_send_returns_at_once() -> None:
    notifier = Notifier([f"http://127.0.0.1:{free_port()}/hook"], backoff=0.01)
    started = time.perf_counter()
    notifier.send(event())
    assert time.perf_counter() - started < 0.05
    assert notifier.flush(10)
    [failure] = notifier.failures
    assert failure.attempts == 3 and "refused" in (failure.error or "").lower()


def test_a_slow_webhook_times_out_without_holding_the_caller() -> None:
    server = Hook(delay=1.0)
    try:
        notifier = Notifier([server.url], timeout=0.2, retries=0)
        started = time.perf_counter()
        notifier.send(event())
        assert time.perf_counter() - started < 0.05
        assert notifier.flush(10)
    finally:
        server.close()
    [failure] = notifier.failures
    assert "timed out" in (failure.error or "")


def test_an_email_is_sent_over_smtp(smtp: tuple[Mailbox, SmtpSettings]) -> None:
    mailbox, settings = smtp
    notifier = Notifier(["email:team@example.com"], smtp=settings)
    [delivery] = notifier.deliver(event("failure"))
    assert delivery.ok, delivery.error
    [(sender, recipients, content)] = mailbox.messages
    assert sender == "shipyard@example.com" and recipients == ["team@example.com"]
    message = message_from_bytes(content)
    assert message["Subject"] == "[shipyard] pipeline train failed"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "run:      0190abc" in body and "task:     fit-0" in body
    assert "ValueError: bad input" in body


def test_an_smtp_server_refusing_the_recipient_is_recorded(
    smtp: tuple[Mailbox, SmtpSettings],
) -> None:
    mailbox, settings = smtp
    mailbox.refuse.add("nobody@example.com")
    notifier = Notifier(
        ["email:nobody@example.com", "email:team@example.com"], smtp=settings, backoff=0.01
    )
    refused, sent = notifier.deliver(event())
    assert not refused.ok and refused.attempts == 1  # a 5xx answer is final
    assert "550" in (refused.error or "") and "no such mailbox" in (refused.error or "")
    assert sent.ok and len(mailbox.messages) == 1


def test_an_smtp_server_without_starttls_is_refused_when_starttls_is_required(
    smtp: tuple[Mailbox, SmtpSettings],
) -> None:
    mailbox, settings = smtp
    secure = SmtpSettings(host=settings.host, port=settings.port, starttls=True)
    [delivery] = Notifier(["email:a@example.com"], smtp=secure, backoff=0.01).deliver(event())
    assert not delivery.ok and delivery.attempts == 1
    assert "STARTTLS" in (delivery.error or "") and mailbox.messages == []


def test_an_smtp_server_that_is_down_is_recorded() -> None:
    settings = SmtpSettings(host="127.0.0.1", port=free_port(), starttls=False)
    [delivery] = Notifier(["email:a@example.com"], smtp=settings, backoff=0.01).deliver(event())
    assert not delivery.ok and delivery.attempts == 3


def test_email_without_an_smtp_host_names_the_setting() -> None:
    [delivery] = Notifier(["email:a@example.com"]).deliver(event())
    assert not delivery.ok and "notify.smtp_host" in (delivery.error or "")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "empty"),
        ("ftp://example.com/x", "unknown kind .ftp."),
        ("hooks.example.com", "not valid"),
        ("webhook:ftp://example.com", "http:// or https://"),
        ("webhook:https://", "http:// or https://"),
        ("email:nobody", "not an email address"),
        ("email:a@b.c, c@d.e", "not an email address"),
        ("webhook+sometimes:https://example.com", "unknown event 'sometimes'"),
        ("pager:12345", "unknown kind 'pager'"),
    ],
)
def test_a_bad_sink_is_refused_naming_it(spec: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        Notifier([spec])


def test_sink_forms_parse() -> None:
    assert parse_sink("https://x.example/h").events == {"success", "failure"}
    assert parse_sink("webhook+all:https://x.example/h").events == {"success", "failure", "retry"}
    sink = parse_sink("email+failure:oncall@example.com")
    assert (sink.kind, sink.target, sink.events) == ("email", "oncall@example.com", {"failure"})


def test_a_long_message_is_cut_to_fit_slack() -> None:
    payload = webhook_payload(event(message="x" * 10_000))
    assert len(payload["blocks"][-1]["text"]["text"]) < 3001
    assert payload["shipyard"]["message"] == "x" * 10_000


def test_settings_give_project_sinks_and_smtp_with_the_password_from_the_environment(
    tmp_path: Path,
) -> None:
    (tmp_path / "shipyard.toml").write_text(
        '[notify]\nsinks = ["webhook+failure:https://hooks.example.com/a"]\n'
        'smtp_host = "mail.example.com"\nsmtp_port = 2525\nsmtp_user = "bot"\n'
    )
    settings = Settings.load(tmp_path, env={"SHIPYARD_SMTP_PASSWORD": "s3cret"})
    notifier = Notifier.from_settings(settings, ["email:team@example.com"])
    assert [s.spec for s in notifier.sinks] == [
        "webhook+failure:https://hooks.example.com/a",
        "email:team@example.com",
    ]
    assert notifier.smtp == SmtpSettings(
        host="mail.example.com", port=2525, user="bot", password="s3cret", starttls=True
    )
    env = {"SHIPYARD_NOTIFY": "https://a.example/1, email:b@example.com"}
    assert Settings.load(tmp_path, env=env).notify == ("https://a.example/1", "email:b@example.com")


def test_the_smtp_password_is_refused_in_shipyard_toml(tmp_path: Path) -> None:
    (tmp_path / "shipyard.toml").write_text('[notify]\nsmtp_password = "oops"\n')
    with pytest.raises(SettingsError, match="SHIPYARD_SMTP_PASSWORD"):
        Settings.load(tmp_path, env={})


FLOW = """
import shipyard as sy

@sy.task
def one() -> int:
    return 1

@sy.pipeline(notify=["{url}"])
def flow() -> int:
    return one()
"""


def test_a_broken_webhook_leaves_the_pipeline_run_unaffected(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = Hook(codes=[500] * 3)
    root = tmp_path / "project"
    root.mkdir()
    settings = Settings.load(
        root, env={}, metadata_uri=f"sqlite:///{tmp_path / 'meta.db'}", user="alice"
    )
    (tmp_path / "flows.py").write_text(FLOW.format(url=server.url))
    try:
        with (
            caplog.at_level(logging.WARNING, logger="shipyard.notifications"),
            build(settings) as project,
        ):
            run = project.pipelines.run(f"{tmp_path / 'flows.py'}:flow", {})
            deadline = time.monotonic() + 15
            while "failed after 3 attempt(s)" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
            assert run.status == "succeeded" and run.result == 1
            assert project.pipelines.get(run.id).status == "succeeded"
    finally:
        server.close()
    assert len(server.bodies) == 3 and server.bodies[0]["shipyard"]["run_id"] == run.id
    assert f"notification of run {run.id} (success)" in caplog.text
