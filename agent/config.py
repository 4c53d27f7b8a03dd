"""Options of `python -m agent`: flags, or a JSON config file that flags override."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.checks import CheckSpec
from agent.hooks import DEFAULT_TIMEOUT_S as DEFAULT_HOOK_TIMEOUT_S


@dataclass
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        """Reachable from this host only (a name other than localhost counts as not)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass
class AgentConfig:
    name: str
    heartbeat_listen: Listen
    data_dir: Path
    state_dir: Path
    token: str
    next_token: str | None = None  # accepted beside `token` during a rotation
    intranet_listen: Listen | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    peer_ca: Path | None = None
    checks: list[CheckSpec] = field(default_factory=list)
    clock_offset: float = 0.0
    inventory: Path | None = None
    max_body_mb: float = 1024.0
    on_role_change: str | None = None
    on_role_change_timeout: float = DEFAULT_HOOK_TIMEOUT_S
    insecure: bool = False

    def plain_http_exposed(self) -> list[Listen]:
        """Listeners that would serve plain HTTP beyond this host."""
        if self.tls_cert:
            return []
        return [listen for listen in (self.heartbeat_listen, self.intranet_listen) if listen and not listen.loopback]


class ConfigError(ValueError):
    pass


def parse_listen(value: str) -> Listen:
    """HOST:PORT, or [IPV6]:PORT."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"listen address {value!r} must be HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return Listen(host, int(port))


def parse_check(value: Any, critical_default: bool, interval: float, timeout: float) -> CheckSpec:
    """A check from the config file (an object) or a flag: JSON object text or NAME=COMMAND."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"check {value!r} is not valid JSON: {exc}") from None
    if isinstance(value, str):
        name, sep, command = value.partition("=")
        if not sep or not name or not command:
            raise ConfigError(f"check {value!r} must be NAME=COMMAND")
        return CheckSpec(name=name, command=command, critical=critical_default, interval=interval, timeout=timeout)
    if not isinstance(value, dict) or not value.get("name") or not value.get("command"):
        raise ConfigError(f"check {value!r} needs at least a name and a command")
    try:
        return CheckSpec(
            name=str(value["name"]),
            command=str(value["command"]),
            critical=bool(value.get("critical", critical_default)),
            interval=float(value.get("interval", interval)),
            timeout=float(value.get("timeout", timeout)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"check {value!r}: {exc}") from None


def parse_hook(command: Any, timeout: Any) -> tuple[str | None, float]:
    """The role-change hook's command (None: no hook) and its timeout, checked."""
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise ConfigError(f"--on-role-change-timeout {timeout!r} must be a number of seconds") from None
    if not 0 < timeout < float("inf"):
        raise ConfigError("--on-role-change-timeout must be > 0")
    if command is None:
        return None, timeout
    if not isinstance(command, str):
        raise ConfigError("--on-role-change must be a command line (a string)")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"--on-role-change {command!r}: {exc}") from None
    if not argv:
        raise ConfigError("--on-role-change needs a command")
    return command, timeout


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m agent",
        description="dms-agent: the HTTP service each DMS appliance runs (DESIGN §8). Every "
        "option may also be given in a JSON config file (--config) under the same name with "
        "dashes as underscores; flags override the file.",
    )
    p.add_argument("--config", type=Path, help="JSON config file; flags override its values")
    p.add_argument("--name", help="appliance name reported in heartbeat answers")
    p.add_argument("--heartbeat-listen", metavar="HOST:PORT", help="listen address on the heartbeat network (required)")
    p.add_argument(
        "--intranet-listen",
        metavar="HOST:PORT",
        help="optional second listen address (intranet): serves only /v1/primary, /v1/replica, "
        "/v1/health and POST /v1/heartbeat (the control plane's fallback); anything else is 404",
    )
    p.add_argument("--data-dir", type=Path, help="data directory served by /v1/data (required)")
    p.add_argument("--state-dir", type=Path, help="state directory: state.json, inventory.json, serving.log (required)")
    p.add_argument(
        "--token",
        help="bearer token every call but /v1/primary, /v1/replica and /v1/health must carry "
        "(default: $DMS_AGENT_TOKEN)",
    )
    p.add_argument(
        "--next-token",
        help="a second token accepted beside --token while the control plane moves to it (a token "
        "rotation without a failover; default: $DMS_AGENT_TOKEN_NEXT)",
    )
    p.add_argument("--tls-cert", type=Path, help="PEM certificate: serve HTTPS on both listeners")
    p.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow plain HTTP (no --tls-cert) on a listen address that is not loopback; without it "
        "the agent refuses to start that way",
    )
    p.add_argument("--peer-ca", type=Path, help="CA file to verify an HTTPS peer (default: the system's CAs)")
    p.add_argument(
        "--check",
        action="append",
        default=None,
        metavar="NAME=COMMAND",
        help="critical check (a 'service'; failing stops serving). Repeatable. "
        "Or a JSON object {name, command, critical, interval, timeout}. Config file: "
        "checks: [{name, command, critical, interval, timeout}]",
    )
    p.add_argument(
        "--component",
        action="append",
        default=None,
        metavar="NAME=COMMAND",
        help="non-critical check (a 'component': reported, never a failover)",
    )
    p.add_argument(
        "--check-interval", type=float, default=None, help="default seconds between runs of a check (default 1)"
    )
    p.add_argument(
        "--check-timeout",
        type=float,
        default=None,
        help="default seconds before a check is killed and counted failed (default 5)",
    )
    p.add_argument(
        "--clock-offset",
        type=float,
        default=None,
        metavar="SECONDS",
        help="added to the wall clock everywhere the agent uses it (skew tests)",
    )
    p.add_argument(
        "--inventory",
        type=Path,
        help="JSON {system:{part_number, hardware, configuration}, licenses, "
        "modules} seeding the inventory on first start (later kept in the state dir)",
    )
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=None,
        help="largest file a PUT /v1/data/files may carry, in MB (default 1024)",
    )
    p.add_argument(
        "--on-role-change",
        metavar="CMD",
        help="run 'CMD ROLE EPOCH CLUSTER' in the background after every change of role or epoch "
        "(split like a shell command line; no shell). Never delays answers or leases; its outcome "
        "never changes the role",
    )
    p.add_argument(
        "--on-role-change-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"kill a role-change hook running longer than this (default {DEFAULT_HOOK_TIMEOUT_S:g})",
    )
    p.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING")
    return p


def load_config(argv: list[str] | None = None) -> tuple[AgentConfig, str]:
    """Parse flags and the config file; return the config and the log level."""
    args = build_parser().parse_args(argv)
    file_values: dict[str, Any] = {}
    if args.config:
        try:
            file_values = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read config {args.config}: {exc}") from None
        if not isinstance(file_values, dict):
            raise ConfigError("config file must hold a JSON object")

    def opt(key: str, default: Any = None) -> Any:
        flag = getattr(args, key, None)
        return flag if flag is not None else file_values.get(key, default)

    interval = float(opt("check_interval", 1.0))
    timeout = float(opt("check_timeout", 5.0))
    checks = [parse_check(c, True, interval, timeout) for c in file_values.get("checks", [])]
    if args.check is not None or args.component is not None:
        checks = [parse_check(c, True, interval, timeout) for c in args.check or []]
        checks += [parse_check(c, False, interval, timeout) for c in args.component or []]
    names = [c.name for c in checks]
    if len(names) != len(set(names)):
        raise ConfigError("check names must be unique")

    token = opt("token") or os.environ.get("DMS_AGENT_TOKEN")
    next_token = opt("next_token") or os.environ.get("DMS_AGENT_TOKEN_NEXT") or None
    missing = [
        k
        for k, v in (
            ("heartbeat_listen", opt("heartbeat_listen")),
            ("data_dir", opt("data_dir")),
            ("state_dir", opt("state_dir")),
            ("token", token),
        )
        if not v
    ]
    if missing:
        raise ConfigError("missing required option(s): " + ", ".join("--" + m.replace("_", "-") for m in missing))
    if bool(opt("tls_cert")) != bool(opt("tls_key")):
        raise ConfigError("--tls-cert and --tls-key go together")

    def path(key: str) -> Path | None:
        value = opt(key)
        return Path(value) if value else None

    intranet = opt("intranet_listen")
    insecure = opt("insecure", False)
    if not isinstance(insecure, bool):
        raise ConfigError("insecure must be true or false")
    hook, hook_timeout = parse_hook(opt("on_role_change"), opt("on_role_change_timeout", DEFAULT_HOOK_TIMEOUT_S))
    config = AgentConfig(
        name=opt("name") or os.uname().nodename,
        heartbeat_listen=parse_listen(opt("heartbeat_listen")),
        intranet_listen=parse_listen(intranet) if intranet else None,
        data_dir=Path(opt("data_dir")),
        state_dir=Path(opt("state_dir")),
        token=token,
        next_token=next_token,
        tls_cert=path("tls_cert"),
        tls_key=path("tls_key"),
        peer_ca=path("peer_ca"),
        checks=checks,
        clock_offset=float(opt("clock_offset", 0.0)),
        inventory=path("inventory"),
        max_body_mb=float(opt("max_body_mb", 1024.0)),
        on_role_change=hook,
        on_role_change_timeout=hook_timeout,
        insecure=insecure,
    )
    exposed = config.plain_http_exposed()
    if exposed and not config.insecure:
        raise ConfigError(
            f"refusing plain HTTP on {', '.join(map(str, exposed))} (not a loopback address): the token "
            "and the grants would cross the network in clear. Give --tls-cert and --tls-key, or "
            "--insecure to run like this anyway"
        )
    return config, str(opt("log_level", "INFO")).upper()
