"""The timeline: responses per minute stacked by status class, incident bands and change markers, as inline SVG.

The SVG is written by hand rather than with a plotting library: snapwatch takes on no dependency for
it, every element carries exactly the attributes the tests read back (``data-minute``, ``data-class``,
``data-count``, ``data-incident``, ``data-kind``), and the output stays a few tens of kilobytes with
no script, font or image to fetch. Colours come from the page's CSS variables through class names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

from snapwatch.report.data import (
    CLASSES,
    MINUTE,
    Bucket,
    EnvChange,
    LogGap,
    Marker,
    ReportData,
    ReportIncident,
    Restart,
    TokenChange,
)
from snapwatch.report.fmt import day, esc, hhmm, iso, local, number

MAX_COLUMNS: Final = 720  # above this many minutes, minutes are summed into wider buckets
BUCKET_WIDTHS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)  # each divides a day
TICK_STEPS: Final = (*BUCKET_WIDTHS, 2 * 1440, 7 * 1440, 14 * 1440, 28 * 1440)

WIDTH: Final = 1000
LEFT: Final = 56
RIGHT: Final = 18
PLOT_H: Final = 220
ROW_H: Final = 16
CHAR_W: Final = 6.4  # a generous average advance of an 11px sans-serif character, for label layout
MARKER_ROWS: Final = 4
INCIDENT_ROWS: Final = 2
TICK_SPACING: Final = 84  # px between x labels at least

# Class names instead of the class labels, which are not CSS identifiers ("401/403").
CLASS_CSS: Final = {
    "2xx": "c-2xx",
    "401/403": "c-auth",
    "429": "c-429",
    "5xx": "c-5xx",
    "other-4xx": "c-4xx",
    "other": "c-other",
}
MARKER_KINDS: Final = ("token-change", "env-change", "restart", "log-gap")


@dataclass(frozen=True, slots=True)
class Axis:
    """The time axis: ``columns`` buckets of ``width`` minutes from ``origin`` (UTC)."""

    origin: datetime
    width: int
    columns: int

    @property
    def end(self) -> datetime:
        return self.origin + timedelta(minutes=self.width * self.columns)

    def column(self, at: datetime) -> int:
        return int((at.astimezone(UTC) - self.origin) // timedelta(minutes=self.width))

    def x(self, at: datetime) -> float:
        """The horizontal position of ``at``, clamped to the plot."""
        span = (self.end - self.origin).total_seconds()
        frac = (at.astimezone(UTC) - self.origin).total_seconds() / span
        return LEFT + min(1.0, max(0.0, frac)) * (WIDTH - LEFT - RIGHT)


def time_axis(data: ReportData, max_columns: int = MAX_COLUMNS) -> Axis:
    """The axis covering the report's range and every bucket; buckets are widened (1, 2, 5, 10 …
    minutes, aligned on the display zone's clock) until at most ``max_columns`` remain."""
    first = min([data.start, *(b.start for b in data.buckets)]).astimezone(UTC)
    last = max([data.end, *(b.start + MINUTE for b in data.buckets)]).astimezone(UTC)
    first = first.replace(second=0, microsecond=0)
    minutes = max(1, math.ceil((last - first) / MINUTE))
    width = next((w for w in BUCKET_WIDTHS if math.ceil(minutes / w) <= max_columns), BUCKET_WIDTHS[-1])
    wall = local(first, data.tz)
    origin = first - timedelta(minutes=(wall.hour * 60 + wall.minute) % width)
    columns = max(1, math.ceil((last - origin) / timedelta(minutes=width)))
    return Axis(origin, width, columns)


def aggregate(buckets: tuple[Bucket, ...], axis: Axis) -> list[Bucket]:
    """One bucket per non-empty column of ``axis``, starting at the column's start, with exact sums."""
    sums: dict[int, dict[str, int]] = {}
    for bucket in buckets:
        counts = sums.setdefault(axis.column(bucket.start), {})
        for cls, n in bucket.counts.items():
            counts[cls] = counts.get(cls, 0) + n
    return [Bucket(axis.origin + timedelta(minutes=axis.width * col), counts) for col, counts in sorted(sums.items())]


def nice_ceiling(n: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``n`` (1 for nothing)."""
    if n <= 1:
        return 1
    power: int = 10 ** math.floor(math.log10(n))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= n)


def _f(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True, slots=True)
class _Label:
    x: float  # the point labelled
    text: str
    row: int
    end: bool  # anchored at its end (drawn to the left of x) because it would leave the plot


def place_labels(items: list[tuple[float, str]], rows: int) -> list[_Label]:
    """Give each (x, text) a row so labels in a row do not overlap (greedily, left to right);
    past ``rows`` rows, a label goes to the row that leaves it the most room. In the items' order."""
    ends: list[float] = []
    placed: dict[int, _Label] = {}
    for i in sorted(range(len(items)), key=lambda i: items[i][0]):
        x, text = items[i]
        w = len(text) * CHAR_W + 8
        end = x + 6 + w > WIDTH
        left = x - 6 - w if end else x
        row = next((r for r, e in enumerate(ends) if e <= left), None)
        if row is None and len(ends) < rows:
            ends.append(-math.inf)
            row = len(ends) - 1
        if row is None:
            row = min(range(len(ends)), key=lambda r: ends[r])
        ends[row] = max(ends[row], left + w + 6)
        placed[i] = _Label(x, text, row, end)
    return [placed[i] for i in range(len(items))]


def _marker(m: Marker) -> tuple[str, str, str]:
    """(kind, short label, hover text) of one marker."""
    if isinstance(m, TokenChange):
        change = f"{m.before or '(none)'} → {m.after}"
        return "token-change", f"token {change}", f"the backend switched tokens: {change}"
    if isinstance(m, EnvChange):
        fp = m.fingerprint or "no token"
        return "env-change", f".env {fp}", f".env changed, now holds {fp}"
    if isinstance(m, Restart):
        return "restart", f"restart {m.unit}", f"{m.unit} restarted"
    assert isinstance(m, LogGap)
    return "log-gap", f"gap {m.file}", f"log gap in {m.file}: {m.description}"


_GLYPH: Final = {
    "token-change": "M{x} {y0}l4 4l-4 4l-4-4z",  # diamond
    "env-change": "M{xl} {y0}h7v7h-7z",  # square
    "restart": "M{x} {y0}l4 7h-8z",  # triangle
    "log-gap": "M{xl} {y0}l7 7m0-7l-7 7",  # cross
}


def _tick_times(axis: Axis, tz: tzinfo) -> list[datetime]:
    """Tick times on round wall-clock times of the display zone, at least TICK_SPACING px apart."""
    minutes = axis.width * axis.columns
    most = max(2, int((WIDTH - LEFT - RIGHT) / TICK_SPACING))
    step = next((s for s in TICK_STEPS if minutes / s <= most), TICK_STEPS[-1])
    wall = local(axis.origin, tz)
    if step < 1440:
        into = (wall.hour * 60 + wall.minute) % step
        t = wall + timedelta(minutes=(step - into) % step)
    else:
        t = wall if (wall.hour, wall.minute) == (0, 0) else (wall + timedelta(days=1)).replace(hour=0, minute=0)
    ticks = []
    while t.astimezone(UTC) <= axis.end:
        ticks.append(t)
        # Wall-clock steps (aware arithmetic keeps the zone), so ticks stay on round local times across DST.
        t = (t + timedelta(minutes=step)).astimezone(tz)
    return ticks


@dataclass(frozen=True, slots=True)
class _Frame:
    """Where things go: the axis, the display zone, the plot's vertical extent and its scale."""

    axis: Axis
    tz: tzinfo
    plot_top: float
    ymax: int

    @property
    def bottom(self) -> float:
        return self.plot_top + PLOT_H


def _label_y(row: int) -> float:
    return 8 + row * ROW_H + 12


def _y_axis(fr: _Frame, unit: str) -> list[str]:
    """Gridlines and the y labels: zero, half (when it is a whole number) and the maximum."""
    out = []
    for value in (0, fr.ymax / 2, fr.ymax):
        if value != int(value):
            continue
        y = _f(fr.bottom - value / fr.ymax * PLOT_H)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>')
        out.append(f'<text class="ylabel" x="{LEFT - 6}" y="{y}" dy="4" text-anchor="end">{number(int(value))}</text>')
    mid = _f(fr.plot_top + PLOT_H / 2)
    out.append(
        f'<text class="ytitle" x="14" y="{mid}" text-anchor="middle" transform="rotate(-90 14 {mid})">'
        f"responses / {esc(unit)}</text>"
    )
    return out


def _bands(fr: _Frame, incidents: list[ReportIncident]) -> list[str]:
    """Incident bands, drawn under the bars so the bars stay readable through them."""
    out = []
    for inc in incidents:
        x0 = fr.axis.x(inc.opened_at)
        x1 = fr.axis.x(inc.resolved_at) if inc.resolved_at is not None else WIDTH - RIGHT
        state = "resolved" if inc.resolved_at is not None else "open"
        out.append(
            f'<rect class="incident {state}" data-incident="{esc(inc.id)}" data-verdict="{esc(inc.verdict)}" '
            f'x="{_f(x0)}" y="{_f(fr.plot_top)}" width="{_f(max(2.0, x1 - x0))}" height="{PLOT_H}">'
            f"<title>{esc(inc.rule)}: {esc(inc.verdict)} ({esc(inc.verdict_title)}), "
            f"{number(inc.failed)} failed</title></rect>"
        )
    return out


def _bars(fr: _Frame, columns: list[Bucket]) -> list[str]:
    """One rect per non-zero class per column, stacked in CLASSES order from the bottom."""
    axis, tz = fr.axis, fr.tz
    col_w = (WIDTH - LEFT - RIGHT) / axis.columns
    gap = min(1.0, col_w * 0.15)
    out = []
    for bucket in columns:
        x = _f(axis.x(bucket.start) + gap / 2)
        y = fr.bottom
        when = hhmm(bucket.start, tz)
        if axis.width > 1:
            when += "–" + hhmm(bucket.start + timedelta(minutes=axis.width), tz)
        for cls in CLASSES:
            n = bucket.count(cls)
            if not n:
                continue
            # At least one pixel for any non-zero count: a lone 401 among thousands must still show.
            h = max(1.0, n / fr.ymax * PLOT_H)
            y -= h
            out.append(
                f'<rect class="{CLASS_CSS[cls]}" data-minute="{iso(bucket.start, tz)}" data-class="{esc(cls)}" '
                f'data-count="{n}" x="{x}" y="{_f(y)}" width="{_f(col_w - gap)}" height="{_f(h)}">'
                f"<title>{when} · {esc(cls)}: {number(n)}</title></rect>"
            )
    if not columns:
        out.append(
            f'<text class="empty" x="{_f((LEFT + WIDTH - RIGHT) / 2)}" y="{_f(fr.plot_top + PLOT_H / 2)}" '
            'text-anchor="middle">No responses in this window</text>'
        )
    return out


def _x_axis(fr: _Frame, spans_days: bool) -> list[str]:
    """The baseline and ticks: HH:MM in the display zone, the date under the first tick and each new day."""
    b = _f(fr.bottom)
    out = [f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{b}" y2="{b}"/>']
    last_day = None
    for t in _tick_times(fr.axis, fr.tz):
        x = fr.axis.x(t)
        anchor = "start" if x - LEFT < 18 else "end" if WIDTH - RIGHT - x < 18 else "middle"
        out.append(f'<line class="tick" x1="{_f(x)}" x2="{_f(x)}" y1="{b}" y2="{_f(fr.bottom + 4)}"/>')
        text = hhmm(t, fr.tz)
        if spans_days and t.date() != last_day:
            text += f'<tspan class="date" x="{_f(x)}" dy="14">{esc(day(t))}</tspan>'
            last_day = t.date()
        out.append(
            f'<text class="xlabel" data-at="{iso(t, fr.tz)}" x="{_f(x)}" y="{_f(fr.bottom + 17)}" '
            f'text-anchor="{anchor}">{text}</text>'
        )
    return out


def _markers(fr: _Frame, drawn: list[tuple[Marker, str, str, str]], labels: list[_Label]) -> list[str]:
    """Each marker: a line from its label down through the plot, a glyph by kind, the label, a hover
    text. Top row first: a line crosses only the rows below its label, whose text (with a halo) comes later."""
    out = []
    for lab, (m, kind, _, hover) in sorted(zip(labels, drawn, strict=True), key=lambda p: p[0].row):
        y, x = _label_y(lab.row), lab.x
        glyph = _GLYPH[kind].format(x=_f(x), xl=_f(x - 3.5), y0=_f(y - 9))
        tx, anchor = (x - 7, "end") if lab.end else (x + 7, "start")
        at = iso(m.at, fr.tz)
        out.append(
            f'<g class="marker {kind}" data-kind="{kind}" data-at="{at}"><title>{esc(hover)} at {at}</title>'
            f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(y - 1)}" y2="{_f(fr.bottom)}"/><path d="{glyph}"/>'
            f'<text x="{_f(tx)}" y="{_f(y)}" text-anchor="{anchor}">{esc(lab.text)}</text></g>'
        )
    return out


def _incident_labels(incidents: list[ReportIncident], labels: list[_Label], first_row: int) -> list[str]:
    """The verdict of each incident in the lane just above the plot, at its band's start."""
    out = []
    for lab, inc in zip(labels, incidents, strict=True):
        x, anchor = (lab.x - 2, "end") if lab.end else (lab.x + 1, "start")
        out.append(
            f'<text class="incident-label" data-incident="{esc(inc.id)}" x="{_f(x)}" '
            f'y="{_f(_label_y(first_row + lab.row))}" text-anchor="{anchor}">{esc(lab.text)}</text>'
        )
    return out


def timeline_svg(data: ReportData) -> str:
    """The timeline as one ``<svg>`` element (well-formed XML, no namespace needed inline in HTML).

    Markers outside the axis are left out of the picture (the page lists every marker in words)."""
    axis = time_axis(data)
    columns = aggregate(data.buckets, axis)
    drawn = [(m, *_marker(m)) for m in data.markers if axis.origin <= m.at.astimezone(UTC) <= axis.end]
    marker_labels = place_labels([(axis.x(m.at), label) for m, _, label, _ in drawn], MARKER_ROWS)
    incidents = [
        i
        for i in data.incidents
        if i.opened_at.astimezone(UTC) <= axis.end and (i.resolved_at is None or i.resolved_at >= axis.origin)
    ]
    incident_labels = place_labels([(axis.x(i.opened_at), i.verdict) for i in incidents], INCIDENT_ROWS)
    m_rows = 1 + max((lab.row for lab in marker_labels), default=-1)
    i_rows = 1 + max((lab.row for lab in incident_labels), default=-1)
    fr = _Frame(axis, data.tz, 10 + (m_rows + i_rows) * ROW_H, nice_ceiling(max((b.total for b in columns), default=0)))
    spans_days = local(axis.origin, data.tz).date() != local(axis.end - MINUTE, data.tz).date()
    height = _f(fr.bottom + (38 if spans_days else 24))
    unit = "min" if axis.width == 1 else f"{axis.width} min"
    return "".join(
        [
            f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="timeline-title" '
            f'data-bucket-minutes="{axis.width}" data-columns="{axis.columns}">',
            f'<title id="timeline-title">Responses per {esc(unit)} by status class, '
            f"{len(data.incidents)} incidents, {len(data.markers)} markers</title>",
            *_y_axis(fr, unit),
            *_bands(fr, incidents),
            *_bars(fr, columns),
            *_x_axis(fr, spans_days),
            *_markers(fr, drawn, marker_labels),
            *_incident_labels(incidents, incident_labels, m_rows),
            "</svg>",
        ]
    )
