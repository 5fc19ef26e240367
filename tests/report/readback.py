"""Reading a rendered report back: the timeline's SVG as XML, the page as parsed HTML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser


def svg_of(page: str) -> ET.Element:
    """The timeline ``<svg>`` element, parsed as XML (the renderer promises it is well-formed)."""
    start, end = page.index("<svg"), page.index("</svg>") + len("</svg>")
    return ET.fromstring(page[start:end])


def bars(svg: ET.Element) -> Counter[tuple[datetime, str]]:
    """(bucket start, class) -> count, from the bars' data attributes."""
    out: Counter[tuple[datetime, str]] = Counter()
    for rect in svg.iter("rect"):
        if "data-class" in rect.attrib:
            key = (datetime.fromisoformat(rect.attrib["data-minute"]), rect.attrib["data-class"])
            assert key not in out, f"two bars for {key}"
            out[key] = int(rect.attrib["data-count"])
    return out


def text(el: ET.Element) -> str:
    return "".join(el.itertext())


def by_class(svg: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in svg.iter(tag) if cls in e.attrib.get("class", "").split()]


@dataclass
class Page(HTMLParser):
    """Every start tag with its attributes, every text node, and the style sheet, of one HTML page."""

    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    style: str = ""
    _in_style: bool = False

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        else:
            self.texts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        """The attributes of every ``tag`` whose attributes include ``attrs`` (``class_`` for class)."""
        want = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in want.items())]


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p
