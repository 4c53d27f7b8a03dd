"""The REST API over urllib: JSON in and out, each HTTP failure turned into a CliError with the
exit code a script can act on (dmsctl/errors.py)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from . import VERSION
from .config import Config
from .errors import AUTH, REFUSED, UNREACHABLE, USAGE, CliError

TIMEOUT_S = 15


class Api:
    def __init__(self, config: Config):
        self.config = config

    def get(self, path: str, query: dict | list | None = None) -> dict | list:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query, doseq=True)}"
        return self.request("GET", path)

    def post(self, path: str, body: dict | None = None) -> dict:
        return self.request("POST", path, body)

    def get_all(self, path: str, query: dict | None = None) -> list[dict]:
        """Every row of a limit/offset list, page after page."""
        page = self.get(path, {**(query or {}), "limit": 500})
        rows = list(page["results"])
        while page.get("next"):
            page = self.request("GET", page["next"])
            rows.extend(page["results"])
        return rows

    def request(self, method: str, path: str, body: dict | None = None):
        url = path if path.startswith("http") else self.config.url + path
        headers = {
            "Authorization": f"Token {self.config.token}",
            "Accept": "application/json",
            "User-Agent": f"dmsctl/{VERSION}",  # the audit log says "dmsctl" for these requests
        }
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return _json(response.read())
        except urllib.error.HTTPError as error:
            raise _http_error(error.code, _json(error.read())) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise CliError(UNREACHABLE, f"cannot connect to {self.config.url}: {reason}") from None


def _json(raw: bytes):
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {"detail": raw[:200].decode(errors="replace")}


def _http_error(status: int, body) -> CliError:
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 401:
        return CliError(AUTH, f"authentication failed: {detail or 'the token is missing or wrong'}")
    if status == 403:
        return CliError(AUTH, f"not allowed: {detail or 'your role may not do this'}")
    if status == 404:
        return CliError(USAGE, "not found")
    if status == 409:
        reasons = body.get("reasons", []) if isinstance(body, dict) else []
        return CliError(REFUSED, "refused", [str(r) for r in reasons] or [detail or "conflict"])
    if 400 <= status < 500:
        return CliError(USAGE, f"the control plane refused the request ({status}): {_messages(body)}")
    return CliError(UNREACHABLE, f"the control plane answered {status}: {detail or 'server error'}")


def _messages(body) -> str:
    if isinstance(body, dict):
        return "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in body.items())
    return str(body)
