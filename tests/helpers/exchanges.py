"""Requests and exchanges built by hand, as the assembler would hand them out."""

from __future__ import annotations

from datetime import datetime

from snapwatch.model import Api, Exchange, Placement, Request, Response, TokenKind


def request(at: datetime, pixel: str | None, fp: str | None, *, event: str = "PURCHASE", api: Api = Api.V3,
            placement: Placement = Placement.QUERY, token_kind: TokenKind | None = TokenKind.CANVAS_S2S) -> Request:
    """A request to ``pixel``'s v3 events path (v2: the conversion path), its token placed in the query."""
    path = f"/v3/{pixel}/events" if api is Api.V3 else "/v2/conversion"
    return Request(at, event, api, path, pixel, placement, fp, token_kind)


def exchange(at: datetime, status: int | None, body: str = "", *, pixel: str | None, fp: str | None,
             source: str = "", event: str = "PURCHASE", api: Api = Api.V3, placement: Placement = Placement.QUERY,
             token_kind: TokenKind | None = TokenKind.CANVAS_S2S) -> Exchange:
    """The response ``status`` with ``body`` at ``at`` to a request sent at the same moment (see ``request``)."""
    sent = request(at, pixel, fp, event=event, api=api, placement=placement, token_kind=token_kind)
    return Exchange(Response(at, event, status, body), sent, source)
