"""Send notification events to webhooks and email, off the pipeline's critical path.

``Notifier.send(event)`` queues the event and returns at once; one background thread
delivers queued events in order, to each sink that wants them, with a short timeout and a
couple of retries. A sink that is down, answers 500 or refuses the mail never raises into
the caller: the failure is logged (logger ``shipyard.notifications``) and recorded in
``Notifier.deliveries``. The thread is not a daemon, so a process that ends right after a
run still delivers its last events (bounded by the timeouts) before it exits.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shipyard._version import __version__
from shipyard.domain.notifications import (
    NotificationEvent,
    Sink,
    email_message,
    parse_sink,
    webhook_payload,
)
from shipyard.settings import Settings

__all__ = ["Delivery", "Notifier", "SmtpSettings"]

log = logging.getLogger("shipyard.notifications")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How email sinks reach an SMTP server."""

    host: str | None = None
    port: int = 587
    sender: str | None = None
    user: str | None = None
    password: str | None = None
    starttls: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSettings:
        """The ``[notify]`` SMTP settings of a project."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of delivering one event to one sink."""

    sink: str  # shown without secrets (a webhook's path is left out)
    kind: str
    run_id: str
    ok: bool
    attempts: int
    error: str | None = None


class _Permanent(Exception):
    """A failure that trying again will not fix (a 4xx answer, a refused address)."""


class Notifier:
    """Delivers pipeline events to webhooks and email.

    Args:
        sinks: sink strings (see :mod:`shipyard.domain.notifications`) or parsed sinks.
        smtp: SMTP settings for email sinks.
        timeout: seconds one delivery attempt may take.
        retries: further attempts after a failure that may pass (down, 5xx, 4xx SMTP).
        backoff: seconds before the first retry; doubles each retry.

    Raises:
        InvalidArgumentError: if a sink string is malformed (checked here, before any run).

    Example:
        >>> notifier = Notifier(["webhook+failure:https://hooks.example.com/T0/B0/x"])
        >>> notifier.send(event)   # returns at once; never raises
        >>> notifier.flush(10)     # optional: wait for delivery
    """

    def __init__(
        self,
        sinks: Iterable[str | Sink] = (),
        *,
        smtp: SmtpSettings | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        parsed = [s if isinstance(s, Sink) else parse_sink(s) for s in sinks]
        self.sinks: tuple[Sink, ...] = tuple({s.spec: s for s in parsed}.values())
        self.smtp = smtp or SmtpSettings()
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.deliveries: list[Delivery] = []
        self._queue: deque[NotificationEvent] = deque()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, sinks: Sequence[str] = ()) -> Notifier:
        """A notifier for the project's ``notify.sinks`` plus ``sinks`` (e.g. a pipeline's)."""
        return cls(
            [*settings.notify, *sinks],
            smtp=SmtpSettings.from_settings(settings),
            timeout=settings.notify_timeout,
        )

    @property
    def failures(self) -> list[Delivery]:
        """Deliveries that failed after every attempt."""
        with self._lock:
            return [d for d in self.deliveries if not d.ok]

    def send(self, event: NotificationEvent) -> None:
        """Queue ``event`` for delivery and return at once. Never raises."""
        try:
            if not any(s.wants(event) for s in self.sinks):
                return
            with self._lock:
                self._queue.append(event)
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._drain, name="shipyard-notify", daemon=False
                    )
                    self._worker.start()
        except Exception:  # never into the pipeline
            log.exception("could not queue a %s notification", event.kind)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until queued events are delivered; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                worker = self._worker
            if worker is None:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            worker.join(left)

    def deliver(self, event: NotificationEvent) -> list[Delivery]:
        """Deliver ``event`` now, in this thread, to every sink that wants it. Never raises.

        Returns:
            One delivery outcome a sink (also appended to ``deliveries``).
        """
        results = []
        for sink in self.sinks:
            if sink.wants(event):
                results.append(self._deliver_one(sink, event))
        with self._lock:
            self.deliveries.extend(results)
        return results

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._worker = None
                    return
                event = self._queue.popleft()
            self.deliver(event)

    def _deliver_one(self, sink: Sink, event: NotificationEvent) -> Delivery:
        attempts = 0
        error = ""
        while attempts <= self.retries:
            attempts += 1
            try:
                if sink.kind == "webhook":
                    self._post(sink.target, event)
                else:
                    self._mail(sink.target, event)
            except _Permanent as exc:
                error = str(exc)
                break
            except Exception as exc:  # anything else may pass: try again
                error = f"{type(exc).__name__}: {exc}"
                if attempts <= self.retries:
                    time.sleep(self.backoff * 2 ** (attempts - 1))
                continue
            return Delivery(str(sink), event.kind, event.run_id, True, attempts)
        log.warning(
            "notification of run %s (%s) to %s failed after %d attempt(s): %s",
            event.run_id,
            event.kind,
            sink,
            attempts,
            error,
        )
        return Delivery(str(sink), event.kind, event.run_id, False, attempts, error)

    def _post(self, url: str, event: NotificationEvent) -> None:
        import urllib.error
        import urllib.request

        body = json.dumps(webhook_payload(event)).encode()
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"shipyard/{__version__}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            message = f"HTTP {exc.code} {exc.reason}"
            if exc.code >= 500 or exc.code == 429:
                raise ConnectionError(message) from None
            raise _Permanent(message) from None

    def _mail(self, address: str, event: NotificationEvent) -> None:
        # Imported here: every project opens a notifier's module, few send mail.
        import smtplib
        import ssl
        from email.message import EmailMessage

        smtp = self.smtp
        if not smtp.host:
            raise _Permanent("no SMTP server configured: set notify.smtp_host (SHIPYARD_SMTP_HOST)")
        subject, body = email_message(event)
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = smtp.sender or f"shipyard@{smtp.host}"
        message["To"] = address
        message.set_content(body)
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=self.timeout) as client:
                if smtp.starttls:
                    client.starttls(context=ssl.create_default_context())
                if smtp.user:
                    client.login(smtp.user, smtp.password or "")
                client.send_message(message)
        except smtplib.SMTPNotSupportedError as exc:
            raise _Permanent(
                f"{exc}: the server offers no STARTTLS; set notify.smtp_starttls = false "
                "only for a trusted local relay"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            reason = "; ".join(f"{r}: {c} {m!r}" for r, (c, m) in exc.recipients.items())
            if all(code >= 500 for code in codes):
                raise _Permanent(f"recipient refused: {reason}") from None
            raise ConnectionError(f"recipient deferred: {reason}") from None
        except smtplib.SMTPResponseException as exc:
            reason = f"SMTP {exc.smtp_code} {exc.smtp_error!r}"
            if exc.smtp_code >= 500:
                raise _Permanent(reason) from None
            raise ConnectionError(reason) from None
