"""Notifications: what happened to a pipeline run, where to tell it, and the messages.

A sink is one string::

    https://hooks.slack.com/services/…           webhook, success and failure events
    webhook:https://example.com/hook             the same, spelled out
    webhook+failure:https://example.com/hook     only failures
    email:team@example.com                       email (SMTP settings), success and failure
    email+failure+retry:oncall@example.com       failures and task retries

Events are ``success``, ``failure``, ``retry`` (a task is about to be tried again) and
``alert`` (a monitor run fired an alert rule, asked for with ``+alert`` only); ``+all``
takes the first three. Without a ``+event`` filter a sink gets success and failure, not
the retries (they can be many).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shipyard.errors import InvalidArgumentError

__all__ = [
    "EVENT_KINDS",
    "EventKind",
    "NotificationEvent",
    "Sink",
    "email_message",
    "parse_sink",
    "webhook_payload",
]

EventKind = Literal["success", "failure", "retry", "alert"]
EVENT_KINDS: tuple[EventKind, ...] = ("success", "failure", "retry")
_DEFAULT_EVENTS = frozenset({"success", "failure"})
_ICONS = {"success": ":white_check_mark:", "failure": ":x:", "retry": ":repeat:"}
_ICONS["alert"] = ":warning:"
_VERBS = {"success": "succeeded", "failure": "failed", "retry": "is retrying a task"}
_VERBS["alert"] = "raised an alert"  # monitoring: ``pipeline`` holds the model version


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    """Something a pipeline run did that people may want to hear about."""

    kind: EventKind
    pipeline: str
    run_id: str
    status: str
    task_key: str | None
    message: str
    at: datetime

    @property
    def summary(self) -> str:
        """One line: ``pipeline train failed (run 0190…): task fit-0: ValueError …``."""
        task = f" task {self.task_key}" if self.task_key else ""
        noun = "monitor of" if self.kind == "alert" else "pipeline"
        head = f"{noun} {self.pipeline} {_VERBS.get(self.kind, self.kind)} (run {self.run_id})"
        tail = f":{task} {self.message}".rstrip() if self.message or task else ""
        return head + tail

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "kind": self.kind,
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "status": self.status,
            "task_key": self.task_key,
            "message": self.message,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Sink:
    """Where notifications go (a webhook URL or an email address) and for which events."""

    kind: Literal["webhook", "email"]
    target: str
    events: frozenset[str]
    spec: str

    def wants(self, event: NotificationEvent) -> bool:
        """Whether this sink takes this event."""
        return event.kind in self.events

    def __str__(self) -> str:
        # A webhook URL often holds a secret token: show the host only.
        if self.kind == "webhook":
            scheme, _, rest = self.target.partition("://")
            return f"webhook {scheme}://{rest.split('/', 1)[0]}/…"
        return f"email {self.target}"


def parse_sink(spec: str) -> Sink:
    """A sink from its string form (see the module docstring).

    Raises:
        InvalidArgumentError: naming the sink and what is wrong with it.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgumentError(f"notification sink {spec!r} is empty")
    text = spec.strip()
    if text.startswith(("http://", "https://")):
        head, target = "webhook", text
    else:
        head, sep, target = text.partition(":")
        if not sep:
            raise InvalidArgumentError(
                f"notification sink {spec!r} is not valid: write 'webhook:https://…', "
                "'email:someone@example.com' or an http(s) URL"
            )
    kind, *filters = head.split("+")
    if kind not in ("webhook", "email"):
        raise InvalidArgumentError(
            f"notification sink {spec!r}: unknown kind {kind!r}; use 'webhook' or 'email'"
        )
    events: set[str] = set()
    for word in filters:
        if word == "all":
            events |= set(EVENT_KINDS)
        elif word in EVENT_KINDS or word == "alert":
            events.add(word)
        else:
            raise InvalidArgumentError(
                f"notification sink {spec!r}: unknown event {word!r}; use "
                f"{', '.join(EVENT_KINDS)} or all"
            )
    if kind == "webhook":
        if not target.startswith(("http://", "https://")) or len(target.split("://", 1)[1]) == 0:
            raise InvalidArgumentError(
                f"notification sink {spec!r}: a webhook needs an http:// or https:// URL"
            )
        return Sink("webhook", target, frozenset(events or _DEFAULT_EVENTS), text)
    local, at, domain = target.partition("@")
    if not local or not at or "." not in domain or any(c in target for c in " ,;<>\r\n"):
        raise InvalidArgumentError(
            f"notification sink {spec!r}: {target!r} is not an email address"
        )
    return Sink("email", target, frozenset(events or _DEFAULT_EVENTS), text)


def webhook_payload(event: NotificationEvent) -> dict[str, Any]:
    """A Slack-compatible JSON body: ``text`` and ``blocks``, plus the event under ``shipyard``.

    Slack, Mattermost and Discord's Slack-compatible endpoint read ``text``; other receivers
    read the structured fields under ``shipyard``.
    """
    icon = _ICONS.get(event.kind, "")
    text = f"{icon} {event.summary}".strip()
    fields = [
        {"type": "mrkdwn", "text": f"*Pipeline*\n{event.pipeline}"},
        {"type": "mrkdwn", "text": f"*Status*\n{event.status}"},
        {"type": "mrkdwn", "text": f"*Run*\n`{event.run_id}`"},
        {"type": "mrkdwn", "text": f"*When*\n{event.at.isoformat(timespec='seconds')}"},
    ]
    if event.task_key:
        fields.append({"type": "mrkdwn", "text": f"*Task*\n{event.task_key}"})
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": fields},
    ]
    if event.message:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{event.message[:2900]}```"}}
        )
    return {"text": text, "blocks": blocks, "shipyard": event.to_dict()}


def email_message(event: NotificationEvent) -> tuple[str, str]:
    """Subject and plain-text body of an email about ``event``."""
    subject = f"[shipyard] pipeline {event.pipeline} {_VERBS.get(event.kind, event.kind)}"
    lines = [
        event.summary,
        "",
        f"pipeline: {event.pipeline}",
        f"run:      {event.run_id}",
        f"status:   {event.status}",
    ]
    if event.task_key:
        lines.append(f"task:     {event.task_key}")
    lines.append(f"at:       {event.at.isoformat(timespec='seconds')}")
    if event.message:
        lines += ["", event.message]
    lines += ["", f"`shipyard pipelines show {event.run_id}` has the details."]
    return subject, "\n".join(lines) + "\n"
