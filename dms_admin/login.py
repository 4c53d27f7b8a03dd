"""Login lockout by (username, address) pair, kept by django-axes (docs/operator-guide.md §11).

`LOGIN_FAILURE_LIMIT` failed sign-ins for one username from one address lock that pair out for
`LOGIN_LOCKOUT_S`: the right password from another address still signs in, so nobody can lock an
administrator out from elsewhere. Refused attempts do not extend the lockout; a successful sign-in
clears the pair's failures. Axes records every attempt in the database (the admin's "Axes" pages);
`manage.py axes_reset_username <user>` (or `axes_reset`) lifts a lockout.

This module gives axes the client's address and renders the lockout on the login page.
The admin's own login page redirects here, so that there is one sign-in page.
"""

from __future__ import annotations

import math
from urllib.parse import urlencode

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone


def client_ip(request: HttpRequest) -> str | None:
    """The address the request came from (None when there is none: a test's force_login). Behind a
    reverse proxy (LOGIN_IP_FROM_FORWARDED_FOR), the last X-Forwarded-For entry: the one the proxy
    itself appended, which the client cannot forge."""
    if settings.LOGIN_IP_FROM_FORWARDED_FOR:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded and forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR") or None


def seconds_left(request: HttpRequest, credentials: dict | None) -> int:
    """Seconds until the pair's lockout ends: its last counted failure plus the cool-off."""
    last = AccessAttempt.objects.filter(
        username=get_client_username(request, credentials), ip_address=client_ip(request)
    ).aggregate(last=Max("attempt_time"))["last"]
    cool_off = get_cool_off(request)
    if last is None or cool_off is None:
        return int(settings.LOGIN_LOCKOUT_S)
    return max(1, math.ceil((last + cool_off - timezone.now()).total_seconds()))


def lockout_response(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None):
    """The login page again, with 429, how long the refusal lasts and a Retry-After header."""
    wait = seconds_left(request, credentials)
    context = {
        "form": AuthenticationForm(request),
        "throttled_minutes": max(1, math.ceil(wait / 60)),
        "next": request.POST.get("next", ""),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(wait)
    return response


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's login goes through the one login page (staff status is still checked by the admin)."""
    target = reverse("login")
    next_url = request.GET.get("next") or reverse("admin:index")
    return HttpResponseRedirect(f"{target}?{urlencode({'next': next_url})}")
