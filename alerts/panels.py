"""Sections other apps add to an event's page. alerts imports no cluster module (docs/design.md §3),
so the cluster app registers, from its `ready()`, a function that renders the story of the failover
an event belongs to; the event page shows whatever the registered functions render."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest

from .models import Event

EventPanel = Callable[[HttpRequest, Event], str]  # HTML, "" when it has nothing to tell

_panels: list[EventPanel] = []


def register(panel: EventPanel) -> None:
    if panel not in _panels:
        _panels.append(panel)


def render(request: HttpRequest, event: Event) -> list[str]:
    return [html for html in (panel(request, event) for panel in _panels) if html]
