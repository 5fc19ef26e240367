"""Gathering evidence for the diagnosis: the configured token, its service's restart state, the log's view."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from snapwatch.config.models import TokenConfig
from snapwatch.detect.pipeline import Recovery, SourceView
from snapwatch.diagnose.case import Evidence
from snapwatch.diagnose.rank import diagnose
from snapwatch.diagnose.traffic import invalid_reasons
from snapwatch.errors import SourceError
from snapwatch.ingest.tokens import ConfiguredToken
from snapwatch.model import Diagnosis, EnvState, Finding, FindingCode, Gap, Incident, ProbeResult, Request
from snapwatch.run.configured import load_configured, service_restart_pending

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Context:
    """What the diagnosis knows beyond the log: the configured token, a pending restart, the probe, gaps,
    and what the token source held over time (``env_history``, oldest first; empty: unknown, the
    configured token is taken to have held throughout)."""

    token_config: TokenConfig
    configured: ConfiguredToken | None = None
    restart_pending: bool | None = None
    probe: ProbeResult | None = None
    log_gaps: tuple[str, ...] = ()
    env_history: tuple[EnvState, ...] = ()


def load_context(token_config: TokenConfig, environ: Mapping[str, str], *, check_service: bool = True,
                 strict: bool = False) -> Context:
    """Read the configured token (never printed) and ask systemd whether the backend still runs an older .env.

    An unreadable token source is logged as one line and treated as "no configured token", so the log's
    own evidence still gets diagnosed; with ``strict`` (the user named the file) it raises SourceError.
    """
    try:
        configured = load_configured(token_config, environ)
    except SourceError as exc:
        if strict:
            raise
        log.warning("%s", exc)
        configured = None
    pending = None
    if check_service and token_config.service and configured is not None and configured.mtime is not None:
        pending = service_restart_pending(token_config.service, configured.mtime)
    return Context(token_config, configured, pending)


def diagnose_incident(view: SourceView, incident: Incident | None, ctx: Context, now: datetime, *,
                      latest: Request | None = None, recovery: Recovery | None = None) -> Diagnosis:
    """Rank the causes of ``incident`` (None: of the present state) from one source's evidence.

    ``view`` is the source as the incident opened (Snap's answers before it); ``latest`` the request logged
    last (what the backend sends now, while it is open); ``recovery`` how it ended, for its final judgement.
    """
    configured = ctx.configured
    return diagnose(
        Evidence(
            now=now,
            incident=incident,
            history=view.history,
            configured=configured.report() if configured is not None else None,
            configured_source=configured.source if configured is not None else None,
            configured_pixel=configured.pixel if configured is not None else None,
            seen=dict(view.token_reports),
            config=ctx.token_config,
            restart_pending=ctx.restart_pending,
            probe=ctx.probe,
            # A hygiene note: under "security" for an incident, but a finding of the present (diagnose).
            tokens_in_log=incident is None and view.tokens_in_log,
            log_gaps=ctx.log_gaps,
            invalid_reasons=invalid_reasons(view.invalid_bodies),
            log_paths=(view.label,),
            env_history=ctx.env_history,
            latest=latest,
            recovery=recovery,
        )
    )


def security_findings(view: SourceView) -> list[Finding]:
    """Hygiene findings about the log itself (the token written in clear text), whatever the incidents."""
    last = view.history.last_request
    now = last.at if last is not None else datetime.now(UTC)
    found = diagnose(Evidence(now=now, history=view.history, tokens_in_log=view.tokens_in_log,
                              log_paths=(view.label,)))
    return [f for f in found.findings if f.code is FindingCode.TOKEN_IN_LOG]


def gap_text(gap: Gap) -> str:
    """One line describing a log gap, for the evidence of the ``log-gap`` finding."""
    lost = "an unknown number of bytes" if gap.lost_bytes is None else f"{gap.lost_bytes} bytes"
    span = ""
    if gap.since is not None or gap.until is not None:
        since = gap.since.isoformat() if gap.since else "?"
        until = gap.until.isoformat() if gap.until else "?"
        span = f" written between {since} and {until}"
    return f"{gap.path}: {lost}{span} lost before they could be read ({gap.reason})"
