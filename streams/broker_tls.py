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
    _run(keytool, steps)
    return BrokerTls(keystore, password, ca_file)


def _run(keytool: str, steps: list[list[str]]) -> None:
    for step in steps:
        done = subprocess.run(
            [keytool, *step], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"keytool {step[0]} failed: {done.stderr or done.stdout}")


def make_client_certificate(tls: BrokerTls, folder: Path, keytool: str, name: str) -> Path:
    """A client key and certificate (``CN=name``) the broker's authority signs, in a PKCS12
    store of their own (password: the broker's) at the returned path; the signed
    certificate is also written as PEM beside it (``<name>.pem``)."""
    folder.mkdir(parents=True, exist_ok=True)
    store_path, request, signed = (
        folder / f"{name}.p12",
        folder / f"{name}.csr",
        folder / f"{name}.pem",
    )
    store = ["-storetype", "PKCS12", "-storepass", tls.password, "-keypass", tls.password]
    in_client = ["-keystore", str(store_path), *store]
    in_authority = ["-keystore", str(tls.keystore.with_name("ca.p12")), *store]
    steps = [
        [
            "-genkeypair",
            "-alias",
            name,
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-dname",
            f"CN={name}",
            "-validity",
            str(VALID_DAYS),
            *in_client,
        ],
        ["-certreq", "-alias", name, "-file", str(request), *in_client],
        [
            "-gencert",
            "-alias",
            "ca",
            "-infile",
            str(request),
            "-outfile",
            str(signed),
            "-rfc",
            "-validity",
            str(VALID_DAYS),
            *in_authority,
        ],
        ["-importcert", "-alias", "ca", "-file", str(tls.ca_file), "-noprompt", *in_client],
        ["-importcert", "-alias", name, "-file", str(signed), *in_client],
    ]
    _run(keytool, steps)
    return store_path
