"""A Content-Security-Policy on every answer: scripts only from this site's own files (htmx, the
pages' scripts, the Swagger UI from drf-spectacular-sidecar), so markup injected through data shown
on a page (an event message, a check name) cannot run script or send a form elsewhere. Inline
`style` attributes stay allowed: the pages use them for bars and legends, and they cannot run code."""

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
