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
    authority = _store(folder / "ca.p12", password)
    ca_file = folder / "ca.pem"
    making_authority = [
        [
            "-genkeypair",
            "-alias",
            "ca",
            *RSA,
            "-dname",
            "CN=driftline test authority",
            "-ext",
            "bc:c",
            *DAYS,
            *authority,
        ],
        ["-exportcert", "-alias", "ca", "-rfc", "-file", str(ca_file), *authority],
    ]
    tls = BrokerTls(folder / "broker.p12", password, ca_file)
    san = ["-ext", f"SAN=IP:{host},DNS:localhost"]
    _run(keytool, making_authority + _signed_key_steps(tls, tls.keystore, "broker", host, san))
    return tls


def make_client_certificate(tls: BrokerTls, folder: Path, keytool: str, name: str) -> Path:
    """A client key and certificate (``CN=name``) the broker's authority signs, in a PKCS12
    store of their own (password: the broker's) at the returned path; the signed
    certificate is also written as PEM beside it (``<name>.pem``)."""
    folder.mkdir(parents=True, exist_ok=True)
    store_path = folder / f"{name}.p12"
    _run(keytool, _signed_key_steps(tls, store_path, name, name, []))
    return store_path


RSA = ["-keyalg", "RSA", "-keysize", "2048"]
DAYS = ["-validity", str(VALID_DAYS)]


def _store(path: Path, password: str) -> list[str]:
    """keytool's arguments naming a PKCS12 store and its password."""
    return ["-keystore", str(path), "-storetype", "PKCS12", "-storepass", password]


def _signed_key_steps(
    tls: BrokerTls, store_path: Path, alias: str, common_name: str, extensions: list[str]
) -> list[list[str]]:
    """keytool's steps to a key in ``store_path`` whose certificate (``CN=common_name``,
    also written as ``<alias>.pem`` beside) the authority of ``tls`` signed, with the
    authority's certificate trusted there too."""
    store = _store(store_path, tls.password)
    authority = _store(tls.ca_file.with_name("ca.p12"), tls.password)
    request = store_path.with_name(f"{alias}.csr")
    signed = store_path.with_name(f"{alias}.pem")
    return [
        ["-genkeypair", "-alias", alias, *RSA, "-dname", f"CN={common_name}", *DAYS, *store],
        ["-certreq", "-alias", alias, "-file", str(request), *store],
        [
            "-gencert",
            "-alias",
            "ca",
            "-infile",
            str(request),
            "-outfile",
            str(signed),
            "-rfc",
            *extensions,
            *DAYS,
            *authority,
        ],
        ["-importcert", "-alias", "ca", "-file", str(tls.ca_file), "-noprompt", *store],
        ["-importcert", "-alias", alias, "-file", str(signed), *store],
    ]


def _run(keytool: str, steps: list[list[str]]) -> None:
    for step in steps:
        done = subprocess.run(
            [keytool, *step], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"keytool {step[0]} failed: {done.stderr or done.stdout}")
