"""Where dmsctl finds the control plane and its token: the environment (DMSCTL_URL, DMSCTL_TOKEN)
first, then the config file (`--config`, else ~/.config/dmsctl.toml), then the default URL."""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import AUTH, USAGE, CliError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_CONFIG = Path("~/.config/dmsctl.toml")


@dataclass(frozen=True)
class Config:
    url: str
    token: str


def load(config_path: str | None, url: str | None) -> Config:
    explicit = config_path is not None
    path = Path(config_path or DEFAULT_CONFIG).expanduser()
    values = _read(path) if explicit or path.exists() else {}
    token = os.environ.get("DMSCTL_TOKEN") or values.get("token") or ""
    url = url or os.environ.get("DMSCTL_URL") or values.get("url") or DEFAULT_URL
    if not token:
        raise CliError(AUTH, f'no API token: set DMSCTL_TOKEN or `token = "..."` in {path}')
    return Config(url=url.rstrip("/"), token=token)


def _read(path: Path) -> dict:
    try:
        with path.open("rb") as file:
            values = tomllib.load(file)
    except FileNotFoundError:
        raise CliError(USAGE, f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise CliError(USAGE, f"config file {path}: {error}") from None
    if "token" in values and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"dmsctl: warning: {path} holds a token and others may read it (chmod 600 {path})", file=sys.stderr)
    unknown = set(values) - {"url", "token"}
    if unknown or not all(isinstance(values.get(k, ""), str) for k in ("url", "token")):
        raise CliError(USAGE, f"config file {path}: only the strings `url` and `token` are read")
    return values
