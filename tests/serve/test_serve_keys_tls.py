"""Several API keys from a file (reread on SIGHUP, compared in constant time) and HTTPS with a
self-signed certificate made here, on 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import json
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi", reason="crossrank[serve] is not installed")
pytest.importorskip("uvicorn", reason="crossrank[serve] is not installed")
httpx = pytest.importorskip("httpx", reason="the tests speak HTTP with httpx")

from crossrank import Reranker  # noqa: E402
from crossrank.serve import ServeSettings, create_app  # noqa: E402
from crossrank.serve.keys import ApiKeys  # noqa: E402
from crossrank.testing import PANDA_DOCS as DOCS  # noqa: E402
from crossrank.testing import PANDA_QUERY as QUERY  # noqa: E402
from crossrank.testing import post_json as post  # noqa: E402
from crossrank.testing import serving as running_server  # noqa: E402

BODY = {"query": QUERY, "documents": DOCS}


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def test_key_file_keys_and_the_single_key_are_all_accepted(bert_dir, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# team a\nkey-a\n\n  key-b  \n")
    reranker = Reranker(bert_dir, device="cpu", max_length=128)
    app = create_app(reranker, ServeSettings(api_key="key-single", api_key_file=str(keys)))
    with running_server(app) as url:
        for key in ("key-a", "key-b", "key-single"):
            assert post(f"{url}/v1/rerank", BODY, headers=bearer(key)).status_code == 200, key
        for headers in ({}, bearer("key-c"), bearer("# team a"), bearer("key-a" + "x"),
                        {"Authorization": "key-a"}):  # fmt: skip
            response = post(f"{url}/v1/rerank", BODY, headers=headers)
            assert response.status_code == 401 and "API key" in response.json()["message"]
        assert httpx.get(f"{url}/health").status_code == 200  # open, for load balancers
        info = httpx.get(f"{url}/info", headers=bearer("key-b")).json()
        assert info["limits"]["api_key"] is True and "key-a" not in json.dumps(info)
        keys.write_text("key-c\n")  # revoke a and b, add c; what SIGHUP does:
        assert app.state.crossrank.keys.reload() == 2  # key-c and the single key
        assert post(f"{url}/v1/rerank", BODY, headers=bearer("key-a")).status_code == 401
        assert post(f"{url}/v1/rerank", BODY, headers=bearer("key-c")).status_code == 200


def test_key_file_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="holds no key"):
        ApiKeys(key_file=str(empty))
    with pytest.raises(ValueError, match="api_key_file: cannot read"):
        ApiKeys(key_file=str(tmp_path / "missing"))
    good = tmp_path / "keys"
    good.write_text("k1\n")
    keys = ApiKeys(key_file=str(good))
    good.unlink()  # a running server keeps its keys when the file is briefly gone
    assert keys.reload() == 1 and keys.allows("Bearer k1") and not keys.allows("Bearer k2")
    assert not ApiKeys().required and ApiKeys("x").required


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 and its key, written as PEM files."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    return str(cert_file), str(key_file)


@pytest.mark.slow
def test_https_key_file_reread_on_sighup_and_json_access_log(bert_dir, tmp_path):
    cert, key = self_signed(tmp_path)
    keys = tmp_path / "keys"
    keys.write_text("team-a\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"https://127.0.0.1:{port}"
    command = [sys.executable, "-m", "crossrank.cli", "serve", "--model", f"en={bert_dir}",
               "--port", str(port), "--device", "cpu", "--max-length", "128",
               "--ssl-certfile", cert, "--ssl-keyfile", key, "--api-key-file", str(keys),
               "--log-level", "warning"]  # fmt: skip
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    client = httpx.Client(verify=ssl.create_default_context(cafile=cert), timeout=60)
    try:
        deadline = time.monotonic() + 300
        while not _healthy(client, url):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        response = client.post(f"{url}/v1/rerank", json=dict(BODY, model="en"),
                               headers=bearer("team-a") | {"x-request-id": "tls-1"})  # fmt: skip
        assert response.status_code == 200 and response.headers["x-crossrank-model"] == "en"
        with pytest.raises(httpx.TransportError):  # TLS only
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        keys.write_text("team-b\n")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while client.post(f"{url}/v1/rerank", json=BODY,
                          headers=bearer("team-b")).status_code != 200:  # fmt: skip
            assert time.monotonic() < deadline, "SIGHUP did not reread the key file"
            time.sleep(0.1)
        assert (
            client.post(f"{url}/v1/rerank", json=BODY, headers=bearer("team-a")).status_code == 401
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log.read_text()
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait(30)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    logged = {line["request_id"]: line for line in lines}
    assert logged["tls-1"]["status"] == 200 and logged["tls-1"]["model"] == "en"
    assert "Traceback" not in log.read_text()


def _healthy(client, url) -> bool:
    try:
        return client.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
