"""``tccli`` (Tencent Cloud's own command line) against cumulo, unchanged.

tccli always speaks HTTPS and trusts only the CA bundle of the ``certifi`` package it runs
with (it passes that file to ``requests`` explicitly, so ``REQUESTS_CA_BUNDLE`` does not
apply). So the server runs with ``--tls-cert``/``--tls-key`` and a certificate made here,
and tccli runs with a ``certifi`` whose bundle is certifi's own plus that certificate: what
an operator does when their CA is private (or nothing at all, with a public certificate).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cumulo_server import ServerProcess
from scf_sdk import make_key, zip_b64

TCCLI = Path(sys.executable).with_name("tccli")


def make_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cumulo test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("tls")
    srv = ServerProcess(folder / "data", tls=make_certificate(folder))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def tccli_env(
    tls_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The environment of a tccli that trusts the server's certificate: a ``certifi``
    shadowing the installed one, whose bundle adds the test certificate to certifi's."""
    folder = tmp_path_factory.mktemp("tccli")
    assert tls_server.tls is not None
    bundle = folder / "bundle.pem"
    bundle.write_text(Path(certifi.where()).read_text() + tls_server.tls[0].read_text())
    shim = folder / "shim" / "certifi"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        f"def where():\n    return {str(bundle)!r}\n\n\n"
        "def contents():\n    with open(where()) as f:\n        return f.read()\n"
    )
    home = folder / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENCENTCLOUD_", "CUMULO_"))}
    env.update(HOME=str(home), PYTHONPATH=str(shim.parent))
    return env


def tccli(env: dict[str, str], server: ServerProcess, key: tuple[str, str], *args: str) -> dict:
    done = subprocess.run(
        [str(TCCLI), "scf", *args, "--region", "ap-guangzhou", "--secretId", key[0],
         "--secretKey", key[1], "--endpoint", f"127.0.0.1:{server.port}"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_tccli_creates_and_invokes_a_function(
    tls_server: ServerProcess, tccli_env: dict[str, str]
) -> None:
    key = make_key(tls_server)
    code = zip_b64(
        {"index.py": "def main_handler(event, context):\n"
                     "    print('from tccli', event['name'])\n"
                     "    return {'hello': event['name'], 'function': context.function_name}\n"}
    )  # fmt: skip
    tccli(tccli_env, tls_server, key, "CreateFunction", "--FunctionName", "greet",
          "--Handler", "index.main_handler", "--Runtime", "Python3.9",
          "--Code", json.dumps({"ZipFile": code}))  # fmt: skip
    event = json.dumps({"name": "scf user"})
    answer = tccli(tccli_env, tls_server, key, "Invoke", "--FunctionName", "greet",
                   "--ClientContext", event, "--LogType", "Tail")  # fmt: skip
    result = answer["Result"]
    assert json.loads(result["RetMsg"]) == {"hello": "scf user", "function": "greet"}
    assert result["InvokeResult"] == 0
    assert "from tccli scf user" in result["Log"]
    listed = tccli(tccli_env, tls_server, key, "ListFunctions")
    assert [f["FunctionName"] for f in listed["Functions"]] == ["greet"]


def test_tccli_reports_scf_errors(tls_server: ServerProcess, tccli_env: dict[str, str]) -> None:
    key = make_key(tls_server)
    done = subprocess.run(
        [str(TCCLI), "scf", "Invoke", "--FunctionName", "missing", "--region", "ap-guangzhou",
         "--secretId", key[0], "--secretKey", key[1], "--endpoint", f"127.0.0.1:{tls_server.port}"],
        env=tccli_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "ResourceNotFound.Function" in done.stdout + done.stderr


def test_tccli_with_a_wrong_secret_is_refused(
    tls_server: ServerProcess, tccli_env: dict[str, str]
) -> None:
    secret_id, _ = make_key(tls_server)
    done = subprocess.run(
        [str(TCCLI), "scf", "ListFunctions", "--region", "ap-guangzhou", "--secretId", secret_id,
         "--secretKey", "not-the-secret", "--endpoint", f"127.0.0.1:{tls_server.port}"],
        env=tccli_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "AuthFailure.SignatureFailure" in done.stdout + done.stderr
