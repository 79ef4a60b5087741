"""The gateway's upstream client over TLS (real providers are HTTPS): a local HTTPS
server with a certificate from a throwaway CA; the client verifies it through the
system trust store (``SSL_CERT_FILE``) and refuses a certificate it cannot verify."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest

from ctxbudget.serve.gateway._client import Origin, UpstreamClient


def _certs(tmp: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("ctxbudget test CA"))
          .issuer_name(name("ctxbudget test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem))
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


def _serve_and_request(cert_file: Path, key_file: Path) -> tuple[int, bytes, list[bytes]]:
    seen: list[bytes] = []

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                n = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                         if line.lower().startswith(b"content-length:"))
                seen.append(head + await r.readexactly(n))
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                        b"b\r\ndata: one\n\n\r\n")
                await w.drain()
                w.write(b"b\r\ndata: two\n\n\r\n0\r\n\r\n")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            w.close()

    async def main() -> tuple[int, bytes]:
        sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        sctx.load_cert_chain(cert_file, key_file)
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        c = UpstreamClient(connect_timeout=5.0)
        try:
            out = b""
            status = 0
            for i in range(2):  # the second request reuses the TLS connection
                async with await c.request(Origin.parse(f"https://127.0.0.1:{port}/v"),
                                           "POST", b"/v/1/messages", [b"x-k: v\r\n"],
                                           b'{"i":%d}' % i) as r:
                    status = r.status
                    while chunk := await r.read_chunk():
                        out += chunk
            return status, out
        finally:
            await c.close()
            server.close()
            await server.wait_closed()

    status, body = asyncio.run(main())
    return status, body, seen


def test_https_upstream_verified_by_the_trust_store(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = _certs(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    status, body, seen = _serve_and_request(cert, key)
    assert status == 200
    assert body == b"data: one\n\ndata: two\n\n" * 2
    assert len(seen) == 2
    assert seen[0].startswith(b"POST /v/1/messages HTTP/1.1\r\nhost: 127.0.0.1:")
    assert seen[0].endswith(b'\r\nx-k: v\r\ncontent-length: 7\r\n\r\n{"i":0}')


def test_https_upstream_with_an_unverifiable_certificate_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "server").mkdir()
    _, cert, key = _certs(tmp_path / "server")
    other_ca, _, _ = _certs(tmp_path)  # a CA that did not sign the server's certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        _serve_and_request(cert, key)


