"""TLS material for the local broker's secured listener, made with the JDK's ``keytool``.

A throwaway certificate authority signs the broker's certificate (for
127.0.0.1 and localhost); clients trust the authority's PEM file. Nothing
here is fit for production: the keys are made fresh for each test broker,
with a password written next to them.
"""

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 30


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """The broker's PKCS12 keystore (its key and the authority-signed certificate chain), the
    store's password, and the authority's certificate for clients to trust."""

    keystore: Path
    password: str
    ca_file: Path


def make_broker_tls(folder: Path, keytool: str, host: str = "127.0.0.1") -> BrokerTls:
    """Make a certificate authority and a broker certificate it signs, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    authority, keystore = folder / "ca.p12", folder / "broker.p12"
    ca_file, request, signed = folder / "ca.pem", folder / "broker.csr", folder / "broker.pem"
    store = ["-storetype", "PKCS12", "-storepass", password, "-keypass", password]
    days = ["-validity", str(VALID_DAYS)]
    in_authority, in_broker = (
        ["-keystore", str(authority), *store],
        ["-keystore", str(keystore), *store],
    )
    rsa = ["-keyalg", "RSA", "-keysize", "2048"]
    steps = [
        [
            "-genkeypair",
            "-alias",
            "ca",
            *rsa,
            "-dname",
            "CN=driftline test authority",
            "-ext",
            "bc:c",
            *days,
            *in_authority,
        ],
        ["-exportcert", "-alias", "ca", "-rfc", "-file", str(ca_file), *in_authority],
        ["-genkeypair", "-alias", "broker", *rsa, "-dname", f"CN={host}", *days, *in_broker],
        ["-certreq", "-alias", "broker", "-file", str(request), *in_broker],
        [
            "-gencert",
            "-alias",
            "ca",
            "-infile",
            str(request),
            "-outfile",
            str(signed),
            "-rfc",
            "-ext",
            f"SAN=IP:{host},DNS:localhost",
            *days,
            *in_authority,
        ],
        ["-importcert", "-alias", "ca", "-file", str(ca_file), "-noprompt", *in_broker],
        ["-importcert", "-alias", "broker", "-file", str(signed), *in_broker],
    ]
    for step in steps:
        done = subprocess.run(
            [keytool, *step], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"keytool {step[0]} failed: {done.stderr or done.stdout}")
    return BrokerTls(keystore, password, ca_file)
