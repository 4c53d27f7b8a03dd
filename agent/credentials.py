"""The two credentials an agent accepts (docs/decisions.md, "Credentials between appliances").

The control token (`DMS_AGENT_TOKEN`) may do everything and only the control plane holds it. The
peer credential is derived from it, so the agent and the control plane compute the same value and
nothing new is configured or stored: the control plane hands an appliance its peer's *peer
credential* (`peer_token` of `/v1/role`, `source_token` of `/v1/sync`), never its control token.
A peer credential is accepted only for heartbeats (grants bounded by the commanded lease) and the
reads a syncing peer makes. Standard library only: the control plane imports this module too.
"""

from __future__ import annotations

import hashlib
import hmac

PEER_CREDENTIAL_LABEL = b"dms-peer-credential"


def peer_credential(control_token: str) -> str:
    """HMAC-SHA256(control token, "dms-peer-credential") as hex: the peer cannot derive the control
    token back from it (given a random token; a guessable one can be found by trying)."""
    return hmac.new(control_token.encode(), PEER_CREDENTIAL_LABEL, hashlib.sha256).hexdigest()
