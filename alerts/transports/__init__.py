"""Notification transports: one class per channel behind `Transport` (base.py)."""

from alerts.transports.base import Notification, Transport, TransportError

__all__ = ["Notification", "Transport", "TransportError"]
