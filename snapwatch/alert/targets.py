"""Which targets a configuration names: apprise URLs (or the console), and Alertmanager when configured."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from snapwatch.alert.notify import Target, targets_from_urls
from snapwatch.config.models import AlertsConfig

if TYPE_CHECKING:
    from snapwatch.alert.alertmanager import AlertmanagerTarget


def targets_for(alerts: AlertsConfig, console: TextIO | None = None) -> tuple[list[Target], AlertmanagerTarget | None]:
    """The targets ``alerts`` names, and the Alertmanager one among them (None when not configured);
    raises NotifyError for a URL that cannot be used."""
    # With only Alertmanager configured, the console is not a target: Alertmanager routes the alerts.
    console_or_urls = alerts.urls or not alerts.alertmanager
    targets: list[Target] = targets_from_urls(alerts.urls, console) if console_or_urls else []
    manager = None
    if alerts.alertmanager:
        from snapwatch.alert.alertmanager import AlertmanagerTarget  # noqa: PLC0415  (httpx only when used)

        manager = AlertmanagerTarget(alerts.alertmanager)
        targets.append(manager)
    return targets, manager
