"""The login page, throttled (DESIGN §4.7): after `LOGIN_FAILURES_PER_USER` failed attempts for one
username, or `LOGIN_FAILURES_PER_IP` from one address, within `LOGIN_LOCKOUT_S`, further attempts are
refused with 429 for `LOGIN_LOCKOUT_S` — without looking at the password, so guessing stops too.

Failures are counted in Redis, one key per username (hashed: no usernames stored) and one per
address, each with a TTL: a fixed window that starts at the first failure, and restarts at the
failure that reaches the limit so that the refusal lasts the full lockout from then. Refused
attempts are not counted (an attacker cannot extend a victim's lockout forever). A successful login
clears the username's counter, not the address's.

The admin's own login page redirects here, so that it is throttled as well.
"""

from __future__ import annotations

import hashlib
import logging
import math
from urllib.parse import urlencode

import redis
from django.conf import settings
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from .redis import redis_client

log = logging.getLogger(__name__)

PREFIX = "dms:login:"


def client_ip(request: HttpRequest) -> str:
    """The address the request came from. Behind a reverse proxy (LOGIN_IP_FROM_FORWARDED_FOR), the
    last X-Forwarded-For entry: the one the proxy itself appended, which the client cannot forge."""
    if settings.LOGIN_IP_FROM_FORWARDED_FOR:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded and forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


class LoginThrottle:
    def __init__(self, username: str, ip: str):
        self.limits: dict[str, int] = {PREFIX + "ip:" + ip: settings.LOGIN_FAILURES_PER_IP}
        name = username.strip().lower()
        if name:
            digest = hashlib.sha256(name.encode()).hexdigest()[:32]
            self.user_key: str | None = PREFIX + "user:" + digest
            self.limits[self.user_key] = settings.LOGIN_FAILURES_PER_USER
        else:
            self.user_key = None

    def refused_for(self) -> int:
        """Seconds until an attempt is allowed again; 0 when it is allowed now."""
        keys = list(self.limits)
        pipe = redis_client().pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.ttl(key)
        answers = pipe.execute()
        waits = [
            max(1, int(ttl))
            for key, count, ttl in zip(keys, answers[0::2], answers[1::2], strict=True)
            if count is not None and int(count) >= self.limits[key]
        ]
        return max(waits, default=0)

    def failed(self) -> None:
        lockout = int(settings.LOGIN_LOCKOUT_S)
        client = redis_client()
        pipe = client.pipeline(transaction=False)
        for key in self.limits:
            pipe.set(key, 0, ex=lockout, nx=True)  # the window starts at the first failure
            pipe.incr(key)
        counts = pipe.execute()[1::2]
        for key, count in zip(self.limits, counts, strict=True):
            if count == self.limits[key]:
                client.expire(key, lockout)  # locked out for the full period from now

    def succeeded(self) -> None:
        if self.user_key:
            redis_client().delete(self.user_key)


class ThrottledLoginView(LoginView):
    """`django.contrib.auth`'s login view with the throttle in front.

    If Redis is down, attempts go through unthrottled (with a warning in the log): signing in to
    the console during an incident matters more than throttling, and the passwords are still
    checked. Availability over throttling.
    """

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        self.throttle = LoginThrottle(request.POST.get("username", ""), client_ip(request))
        wait = self._safely(self.throttle.refused_for, default=0)
        if wait:
            log.warning("login refused (throttled) for a username or address: %s s left", wait)
            return self.refused(wait)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form) -> HttpResponse:
        self._safely(self.throttle.failed)
        return super().form_invalid(form)

    def form_valid(self, form) -> HttpResponse:
        self._safely(self.throttle.succeeded)
        return super().form_valid(form)

    def refused(self, wait_s: int) -> HttpResponse:
        minutes = max(1, math.ceil(wait_s / 60))
        context = self.get_context_data(form=self.form_class(request=self.request), throttled_minutes=minutes)
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(wait_s)
        return response

    @staticmethod
    def _safely(call, default=None):
        try:
            return call()
        except redis.RedisError as error:
            log.warning("login throttle unavailable (Redis: %s): the attempt is let through", error)
            return default


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's login goes through the throttled page (staff status is still checked by the admin)."""
    target = reverse("login")
    next_url = request.GET.get("next") or reverse("admin:index")
    return HttpResponseRedirect(f"{target}?{urlencode({'next': next_url})}")
