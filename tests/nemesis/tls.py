"""A throw-away CA made with `openssl` at the start of each campaign: the control plane refuses plain
HTTP to agents that are not on loopback, so the agents serve HTTPS with certificates for their two
addresses, the control plane verifies them against the CA (`AGENT_CA_FILE`) and the agents verify
each other's with `--peer-ca`. Nothing here outlives the campaign's folder."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]}: {done.stderr.strip()}")


class CertificateAuthority:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pem = self.directory / "ca.pem"
        self.key = self.directory / "ca.key"
        _openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(self.key), "-out", str(self.pem), "-days", "2", "-subj", "/CN=dms-nemesis-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=self.directory,
        )  # fmt: skip

    def issue(self, name: str, addresses: list[str]) -> tuple[Path, Path]:
        """A server certificate for `addresses` (IP SANs), the file holding it and the CA as a chain."""
        key, csr, crt = (self.directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        extensions = self.directory / f"{name}.ext"
        extensions.write_text(
            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
            f"subjectAltName={','.join('IP:' + a for a in addresses)}\n"
        )
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}", cwd=self.directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.pem), "-CAkey", str(self.key), "-CAcreateserial",
            "-days", "2", "-extfile", str(extensions), "-out", str(crt), cwd=self.directory,
        )  # fmt: skip
        crt.write_text(crt.read_text() + self.pem.read_text())
        return crt, key
