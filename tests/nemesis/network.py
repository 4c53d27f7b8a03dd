"""The appliances' networks: one network namespace per appliance, so that a fault cuts its links the
way a switch port or a firewall would while its processes keep running.

Two bridges in the root namespace stand for the two networks: the heartbeat network (`nemhb`,
10.201.0.0/24) and the intranet (`nemin`, 10.202.0.0/24); the control plane is .1 on each. Appliance
i lives in namespace `nem-i` with `hb0` = 10.201.0.(10+i) and `in0` = 10.202.0.(10+i), each a veth
to its bridge. Inside each namespace an nftables table `inet nemesis` (input, output and a nat
prerouting chain) holds the faults' rules, each added and deleted by its handle. Every name carries
the `nem` prefix, so `teardown()` removes exactly what a campaign made, an earlier killed one's too.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass

NETWORKS = {"hb": ("nemhb", "10.201.0"), "in": ("nemin", "10.202.0")}
IFACE = {"hb": "hb0", "in": "in0"}
NETNS_PREFIX = "nem-"
BASE_TABLE = """
table inet nemesis {
  chain input { type filter hook input priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
  chain prerouting { type nat hook prerouting priority -100; policy accept; }
}
table ip nemesis_dup {
  chain output { type filter hook output priority 0; policy accept; }
}
"""


class NetworkError(RuntimeError):
    pass


def run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def control_address(network: str) -> str:
    """The root namespace's (the control plane's) address on `network`."""
    return f"{NETWORKS[network][1]}.1"


@dataclass(frozen=True)
class Host:
    """One appliance's place on the networks."""

    index: int

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.index}"

    def address(self, network: str) -> str:
        return f"{NETWORKS[network][1]}.{10 + self.index}"

    def nft(self, *args: str, stdin: str | None = None) -> str:
        return run("ip", "netns", "exec", self.netns, "nft", *args, stdin=stdin)

    def add_rule(self, family_table: str, chain: str, rule: str) -> int:
        """Add one rule; its handle, for `delete_rule`."""
        family, table = family_table.split()
        echoed = self.nft("-e", "-a", "add", "rule", family, table, chain, *rule.split())
        found = re.search(r"# handle (\d+)", echoed)
        if not found:
            raise NetworkError(f"nft gave no handle for {rule!r}: {echoed!r}")
        return int(found.group(1))

    def delete_rule(self, family_table: str, chain: str, handle: int) -> None:
        family, table = family_table.split()
        self.nft("delete", "rule", family, table, chain, "handle", str(handle))


def setup_bridges() -> None:
    for bridge, prefix in NETWORKS.values():
        run("ip", "link", "add", bridge, "type", "bridge")
        run("ip", "addr", "add", f"{prefix}.1/24", "dev", bridge)
        run("ip", "link", "set", bridge, "up")


def add_host(index: int) -> Host:
    host = Host(index)
    run("ip", "netns", "add", host.netns)
    run("ip", "-n", host.netns, "link", "set", "lo", "up")
    for network, (bridge, _) in NETWORKS.items():
        outside = f"nem{network[0]}{index}"
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", IFACE[network], "netns", host.netns)
        run("ip", "link", "set", outside, "master", bridge)
        run("ip", "link", "set", outside, "up")
        run("ip", "-n", host.netns, "addr", "add", f"{host.address(network)}/24", "dev", IFACE[network])
        run("ip", "-n", host.netns, "link", "set", IFACE[network], "up")
    host.nft("-f", "-", stdin=BASE_TABLE)
    return host


def teardown() -> list[str]:
    """Delete every namespace, veth and bridge with our prefixes (the nft tables go with their
    namespaces); what was removed, for the log."""
    removed = []
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(NETNS_PREFIX):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            removed.append(name)
    links = json.loads(run("ip", "-j", "link", "show") or "[]")
    ours = {bridge for bridge, _ in NETWORKS.values()}
    for link in links:
        name = link.get("ifname", "")
        if name in ours or re.fullmatch(r"nem[hi]\d+", name):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
            removed.append(name)
    return removed
