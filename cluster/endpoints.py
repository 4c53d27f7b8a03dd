"""Machine-facing endpoints outside the API: the end users' entry URL and Prometheus' /metrics."""

import hmac

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .metrics import ClusterCollector
from .models import Cluster


@require_GET
def go(request, name: str):
    """No auth (DESIGN §4.7): a stable entry URL for users; a browser refresh after a failover
    lands on the new primary. It goes to the primary's application (`web_url`); a server without
    one sends users to its agent's intranet URL, as before web_url existed (docs/decisions.md)."""
    cluster = Cluster.objects.select_related("primary").filter(name=name).first()
    if cluster is None:
        return HttpResponseNotFound(f"No cluster named {name}.", content_type="text/plain")
    response = HttpResponseRedirect(cluster.primary.web_url or cluster.primary.intranet_url)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def metrics(request):
    """Prometheus text format; the token comes as a bearer credential (DESIGN §4.7)."""
    expected = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        response = HttpResponse("A bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    registry.register(ClusterCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
