"""What a timeline shows of one source: responses per minute by status, and each change of the request token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from snapwatch.detect.tally import status_key
from snapwatch.model import Exchange


@dataclass(frozen=True, slots=True)
class TokenSwitch:
    """From ``at`` on, the requests carry token ``after`` instead of ``before``."""

    at: datetime
    before: str | None
    after: str


class Timeline:
    """Counts responses per minute (the minute as the log stamps it) and status, and notes token switches.

    ``take`` hands out what was counted since the last ``take`` (the daemon adds it to the state file
    with each batch); ``scan`` takes once at the end. ``last_token`` survives a restart through the
    history (``History.last_request``), so a switch across a restart is still seen.
    """

    __slots__ = ("last_token", "minutes", "switches")

    def __init__(self, last_token: str | None = None) -> None:
        self.last_token = last_token
        self.minutes: dict[tuple[datetime, str], int] = {}
        self.switches: list[TokenSwitch] = []

    def observe_all(self, exchanges: Iterable[Exchange]) -> None:
        minutes, last, switches = self.minutes, self.last_token, self.switches
        names: dict[int | None, str] = {}  # status → its name in ``minutes``, for this batch
        # Records of one stamp share one datetime object: its minute is taken once.
        stamp: datetime | None = None
        minute = datetime.min
        for ex in exchanges:
            resp = ex.response
            if resp.at is not stamp:
                stamp = resp.at
                minute = stamp.replace(second=0, microsecond=0)
            name = names.get(resp.status)
            if name is None:
                name = names[resp.status] = status_key(resp.status)
            key = (minute, name)
            minutes[key] = minutes.get(key, 0) + 1
            req = ex.request
            if req is not None and req.token_fp is not None and req.token_fp != last:
                if last is not None:  # the first token seen is where the log starts, not a switch
                    switches.append(TokenSwitch(req.at, last, req.token_fp))
                last = req.token_fp
        self.last_token = last

    def take(self) -> tuple[dict[tuple[datetime, str], int], list[TokenSwitch]]:
        """What was counted since the last call, and forget it."""
        minutes, switches = self.minutes, self.switches
        self.minutes, self.switches = {}, []
        return minutes, switches
