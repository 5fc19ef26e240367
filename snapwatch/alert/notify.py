"""Alert delivery: notification targets (apprise, console), secrets in their URLs, and the retrying notifier."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, TextIO

from snapwatch.alert.messages import render
from snapwatch.alert.urls import MASK, mask_url, passwords, scrub, url_secrets
from snapwatch.codec import Message
from snapwatch.errors import NotifyError
from snapwatch.model import Alert, AlertKind
from snapwatch.redact import SECRETS, redact
from snapwatch.store.outbox import Outbox, OutboxRow

if TYPE_CHECKING:
    from apprise.plugins.base import NotifyBase

log = logging.getLogger(__name__)
_alert_log = logging.getLogger("snapwatch.alert")

EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})  # get the HTML body; every other scheme gets markdown


class Target(Protocol):
    """Somewhere alerts go. ``send`` raises NotifyError with a one-line reason free of secrets."""

    @property
    def key(self) -> str: ...

    @property
    def display(self) -> str: ...

    def send(self, message: Message, timeout: float) -> None: ...


class _AppriseCapture(logging.Filter):
    """Masks the URL's secrets in every apprise record, and keeps this thread's warnings as the reason."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets, self.thread, self.lines = secrets, threading.get_ident(), list[str]()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = scrub(text, self.secrets)
        if clean != text:
            record.msg, record.args = clean, None
        if record.thread == self.thread and record.levelno >= logging.WARNING:
            self.lines.append(clean)
        return True


_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


class _AppriseUrls(logging.Filter):
    """Every record of apprise's own logger, whoever sends: URLs only in the masked form snapwatch shows
    (``mailto://…@host``; apprise's "privacy" form keeps a password's first and last character), then
    the one redactor."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        record.msg, record.args = redact(_URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)), None
        return True


@contextmanager
def _apprise_logs(secrets: Sequence[str]) -> Iterator[_AppriseCapture]:
    capture = _AppriseCapture(secrets)
    logger = logging.getLogger("apprise")
    logger.addFilter(capture)
    try:
        yield capture
    finally:
        logger.removeFilter(capture)


@contextmanager
def _attachment(message: Message | None) -> Iterator[str | None]:
    """The message's report as a file apprise can attach, removed afterwards (None: nothing to attach)."""
    if message is None or message.attachment is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="snapwatch-report-") as folder:
        path = Path(folder) / "snapwatch-report.html"
        path.write_text(message.attachment, encoding="utf-8")
        yield str(path)


_load_lock = threading.Lock()


def _load_apprise() -> ModuleType:
    """Import apprise and its plugins once (~0.3 s, so only when a target needs it)."""
    import apprise  # noqa: PLC0415

    with _load_lock:
        if not getattr(_load_apprise, "done", False):
            # apprise's email plugin imports the stdlib imghdr, deprecated since 3.11: not ours to act on.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"'imghdr' is deprecated", category=DeprecationWarning)
                apprise.Apprise.instantiate("json://localhost")  # loads every plugin module
            logging.getLogger("apprise").addFilter(_AppriseUrls())
            _load_apprise.done = True  # type: ignore[attr-defined]
    return apprise


class AppriseTarget:
    """One apprise URL. Email schemes get the HTML body (apprise adds a plain part) under the short subject;
    others get markdown under the title. Every message goes with its notification type (failure, warning,
    success, info), so chat targets and mail clients can tell FIRING from RESOLVED."""

    def __init__(self, url: str) -> None:
        self._apprise, self._url = _load_apprise(), url.strip()
        self._secrets = url_secrets(url)
        for secret in passwords(url):  # shown as the mask wherever they turn up, not only in apprise's logs
            SECRETS.add(secret, shown_as=MASK, min_length=8)
        self.key = "apprise:" + hashlib.sha256(self._url.encode()).hexdigest()[:16]
        self.display = mask_url(url)
        self._email = self._url.split("://", 1)[0].lower() in EMAIL_SCHEMES
        self._plugin(10.0)  # a URL apprise cannot use fails here, at startup, not at the first alert

    def _plugin(self, timeout: float) -> NotifyBase:
        asset = self._apprise.AppriseAsset(async_mode=False)  # send in this thread, so its logs are ours
        with _apprise_logs(self._secrets) as capture:
            plugin = self._apprise.Apprise.instantiate(self._url, asset=asset)
        if not plugin:
            reason = capture.lines[-1] if capture.lines else "unknown scheme or bad URL"
            raise NotifyError(f"{self.display}: apprise cannot use this URL: {reason}")
        plugin.socket_connect_timeout = plugin.socket_read_timeout = timeout
        return plugin  # type: ignore[no-any-return]

    def send(self, message: Message, timeout: float) -> None:
        """Deliver once through apprise, each socket operation bounded by ``timeout`` seconds."""
        fmt = self._apprise.NotifyFormat
        body, body_format = (message.html, fmt.HTML) if self._email else (message.markdown, fmt.MARKDOWN)
        # An e-mail's subject is what a phone's lock screen shows: the short one, the details in the body.
        title = (message.subject or message.title) if self._email else message.title
        kind = self._apprise.NotifyType(message.notify_type)
        plugin = self._plugin(timeout)
        with _apprise_logs(self._secrets) as capture:
            try:
                sender = self._apprise.Apprise(asset=self._apprise.AppriseAsset(async_mode=False))
                sender.add(plugin)
                with _attachment(message if self._email else None) as attach:
                    result = sender.notify(body=body, title=title, body_format=body_format, notify_type=kind,
                                           attach=attach)
                ok = bool(result)
                # apprise 2 may send on its own threads and hands back what it logged; apprise 1 logs here.
                for entry in getattr(result, "logs", list)():
                    if getattr(logging, str(entry.level), 0) >= logging.WARNING:
                        capture.lines.append(scrub(str(entry.message), self._secrets))
            except Exception as exc:  # apprise should return False, but a plugin bug must not escape
                ok = False
                capture.lines.append(scrub(f"{type(exc).__name__}: {exc}", self._secrets))
        if not ok:
            reason = capture.lines[-1] if capture.lines else "the target refused the message (no reason given)"
            raise NotifyError(f"{self.display}: {reason}")


class ConsoleTarget:
    """The target when no URL is configured: the plain-text message, to a stream or to the log.

    Without a stream the message is one WARNING record of the ``snapwatch.alert`` logger, so under
    systemd it is one journal entry with a priority (not thirty lines without one) and passes the
    log's redaction filter like every other line.
    """

    key = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.display = "console (stderr)" if stream is None else "console"

    def send(self, message: Message, timeout: float) -> None:
        if self._stream is None:
            _alert_log.warning("%s", message.text)
            return
        try:
            self._stream.write(f"\n{message.text}\n")
            self._stream.flush()
        except (OSError, ValueError) as exc:
            raise NotifyError(f"{self.display}: {exc}") from exc


def targets_from_urls(urls: Sequence[str], stream: TextIO | None = None) -> list[Target]:
    """An AppriseTarget per URL, or the console when there are none. Raises NotifyError on a bad URL."""
    return [AppriseTarget(url) for url in urls] if urls else [ConsoleTarget(stream)]


# --- the notifier ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one delivery round did."""

    delivered: int = 0
    retrying: int = 0  # attempts that failed and were rescheduled
    expired: int = 0  # rows given up after max_age
    errors: tuple[str, ...] = ()  # one scrubbed line per failed attempt


class Notifier:
    """Renders alerts into the outbox and delivers what is due, each target on its own worker thread.

    At-least-once: a row is marked delivered only after its target accepted it, so a crash in between
    resends it (the alert id in every body makes the duplicate recognisable). A target that fails or hangs
    delays only its own queue. Call ``close`` when done.
    """

    def __init__(
        self,
        outbox: Outbox,
        targets: Sequence[Target],
        *,
        timeout: float = 10.0,
        max_age: timedelta = timedelta(hours=24),
        grace: float = 5.0,
    ) -> None:
        self.outbox, self.targets = outbox, list(targets)
        self._by_key = {t.key: t for t in self.targets}
        self._timeout, self._max_age, self._grace = timeout, max_age, grace
        self._pool = ThreadPoolExecutor(max_workers=max(4, 2 * len(self.targets)), thread_name_prefix="notify")
        self._busy = False

    def enqueue(self, alert: Alert, now: datetime, attachment: str | None = None) -> Message:
        """Render ``alert`` (with ``attachment``, an HTML report, when given) and owe it to every target
        (idempotent by alert id)."""
        message = render(alert)
        if attachment is not None:
            message = replace(message, attachment=attachment)
        self.outbox.enqueue(message, [(t.key, t.display) for t in self.targets], now)
        return message

    async def deliver_due(self, now: datetime) -> Delivery:
        """Expire old rows, then send every due row; returns at once if a round is already running."""
        if self._busy:
            return Delivery()
        self._busy = True
        try:
            expired = self.outbox.expire(now, self._max_age)
            self.outbox.prune(now)
            # Each queue is read as it is sent, a page at a time: 10,000 alerts owed to a dead target cost
            # one page of memory, and its first failure ends its round.
            keys = self.outbox.pending_targets(self._by_key)
            rounds = await asyncio.gather(*(self._send_queue(self._by_key[k], self.outbox.queue(k, now), now)
                                            for k in keys))
        finally:
            self._busy = False
        errors = tuple(e for r in rounds for e in r[1])
        return Delivery(sum(r[0] for r in rounds), len(errors), expired, errors)

    async def _send_queue(self, target: Target, rows: Iterable[OutboxRow], now: datetime) -> tuple[int, list[str]]:
        loop, sent = asyncio.get_running_loop(), 0
        for row in rows:
            try:
                call = loop.run_in_executor(self._pool, target.send, row.message, self._timeout)
                await asyncio.wait_for(call, self._timeout + self._grace)
            except (NotifyError, TimeoutError, Exception) as exc:
                reason = str(exc) if isinstance(exc, NotifyError) else _unexpected(target, exc, self._timeout)
                later = self.outbox.mark_retry(row, now, reason)
                log.warning("alert %s not delivered (%s); retry at %s", row.alert_id, reason, later.isoformat())
                return sent, [reason]  # the rest of this queue waits: alerts arrive in order
            self.outbox.mark_delivered(row, now)
            sent += 1
        return sent, []

    def deliver_due_sync(self, now: datetime) -> Delivery:
        """``deliver_due`` for callers without an event loop (the CLI)."""
        return asyncio.run(self.deliver_due(now))

    def close(self) -> None:
        """Stop the worker threads (a send still running finishes on its own, bounded by its timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _unexpected(target: Target, exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | FutureTimeout):
        return f"{target.display}: no answer within {timeout:g} s"
    return f"{target.display}: {scrub(f'{type(exc).__name__}: {exc}', ())}"


def send_test(
    targets: Sequence[Target], host: str, now: datetime, timeout: float = 10.0, grace: float = 5.0
) -> list[tuple[str, bool, str]]:
    """Send one test message to every target at once; ``(display, delivered, reason)`` per target, in order."""
    alert_id = "test-" + hashlib.sha256(f"{host}|{now.isoformat()}".encode()).hexdigest()[:12]
    message = render(Alert(id=alert_id, kind=AlertKind.TEST, created_at=now, host=host))
    pool = ThreadPoolExecutor(max_workers=max(1, len(targets)), thread_name_prefix="test-alert")
    try:
        futures = [pool.submit(t.send, message, timeout) for t in targets]
        results: list[tuple[str, bool, str]] = []
        for target, future in zip(targets, futures, strict=True):
            try:
                future.result(timeout=timeout + grace)
            except NotifyError as exc:
                results.append((target.display, False, str(exc)))
            except Exception as exc:  # a hung or broken target is reported, never raised
                results.append((target.display, False, _unexpected(target, exc, timeout)))
            else:
                results.append((target.display, True, "delivered"))
        return results
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
