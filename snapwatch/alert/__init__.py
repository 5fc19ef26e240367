"""Incident lifecycle to messages to delivery: the policy, rendering, targets (apprise, console, Alertmanager)."""

from snapwatch import lazy_exports

__all__ = [
    "AlertPolicy",
    "AlertmanagerTarget",
    "Notifier",
    "ResendSchedule",
    "Target",
    "mask_url",
    "render",
    "send_test",
    "targets_for",
    "targets_from_urls",
]

__getattr__ = lazy_exports(__name__, {
    "AlertPolicy": "policy",
    "AlertmanagerTarget": "alertmanager",
    "Notifier": "notify",
    "ResendSchedule": "alertmanager",
    "Target": "notify",
    "mask_url": "urls",
    "render": "messages",
    "send_test": "notify",
    "targets_for": "targets",
    "targets_from_urls": "notify",
})
