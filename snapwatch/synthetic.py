"""A synthetic backend: writes CAPI call blocks exactly as the Python backend logs them (for demo and tests)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

SEPARATOR = "=" * 100
DEFAULT_PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"
OK_BODY: dict[str, object] = {"status": "VALID", "reason": "Events have been processed successfully."}
UNAUTHORIZED_BODY: dict[str, object] = {"status": "UNKNOWN", "text": "Invalid access token"}
FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"


def _b64(obj: object) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def demo_token(nbf: int = 1764800000, environment: str = "PRODUCTION", seed: str = "demo") -> str:
    """A token shaped like Business Manager's CAPI tokens (Canvas S2S JWT); its signature is made up."""
    header = {"alg": "HS256", "kid": "CanvasS2SHMACProd", "typ": "JWT"}
    claims = {
        "aud": "canvas-canvasapi",
        "iss": "canvas-s2stoken",
        "nbf": nbf,
        "sub": f"6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b~{environment}~0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
    }
    head = f"{_b64(header)}.{_b64(claims)}"
    signature = base64.urlsafe_b64encode(hashlib.sha256((seed + head).encode()).digest()).rstrip(b"=")
    return f"{head}.{signature.decode()}"


@dataclass(frozen=True, slots=True)
class Call:
    """One CAPI call to log: the request's shape and the answer Snap gave."""

    event: str
    status: int
    token: str | None
    pixel: str = DEFAULT_PIXEL
    api: str = "v3"
    in_query: bool = True
    body: dict[str, object] | str | None = None

    def url(self) -> str:
        if self.api == "v2":
            return "https://tr.snapchat.com/v2/conversion"
        url = f"https://tr.snapchat.com/v3/{self.pixel}/events"
        return f"{url}?access_token={self.token}" if self.in_query and self.token else url

    def response_body(self) -> dict[str, object] | str:
        if self.body is not None:
            return self.body
        if self.api == "v2" and 200 <= self.status < 300:
            return {"status": "SUCCESS", "reason": "All records processed"}
        return OK_BODY if 200 <= self.status < 300 else UNAUTHORIZED_BODY


def request_messages(call: Call, at: datetime) -> list[str]:
    """The log messages the backend writes before sending ``call`` (one string per logging call)."""
    payload = {
        "data": [
            {
                "event_name": call.event,
                "action_source": "WEB",
                "event_time": int(at.timestamp()),
                "event_source_url": "https://shop.example.com/p/123",
                "user_data": {"em": [hashlib.sha256(at.isoformat().encode()).hexdigest()]},
            }
        ]
    }
    return [
        SEPARATOR,
        f"[OUT] OUTGOING REQUEST - {call.event} Event ({call.api})",
        f"URL: {call.url()}",
        "Method: POST",
        "Payload:",
        json.dumps(payload, indent=2),
        SEPARATOR,
    ]


def response_messages(call: Call) -> list[str]:
    """The log messages the backend writes when Snap answers ``call``."""
    body = call.response_body()
    text = json.dumps(body, indent=2) if isinstance(body, dict) else body
    return [
        SEPARATOR,
        f"[IN] INCOMING RESPONSE - {call.event} Event",
        f"Status Code: {call.status}",
        f"Body: {text}",
        SEPARATOR,
        "",
    ]


def backend_logger(handler: logging.Handler, name: str = "snapwatch.synthetic.backend") -> logging.Logger:
    """A logger formatted like the backend's (``asctime - LEVEL - message``), writing only to ``handler``."""
    handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log_call(logger: logging.Logger, call: Call, at: datetime) -> None:
    """Write one call's request and response blocks through the backend's logger."""
    for message in request_messages(call, at) + response_messages(call):
        logger.info(message)
