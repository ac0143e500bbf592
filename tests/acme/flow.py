"""Steps of an ACME issuance the tests share: order, prove, finalize, download."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.acme.jws import AcmeTestClient, Answer


def csr_der(names: list[str], key=None, common_name: str | None = None) -> tuple[bytes, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    general = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    csr = (x509.CertificateSigningRequestBuilder().subject_name(subject)
           .add_extension(x509.SubjectAlternativeName(general), critical=False).sign(key, _hash(key)))
    return csr.public_bytes(Encoding.DER), key


def _hash(key):
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_order(client: AcmeTestClient, *names: str, kind: str = "dns") -> Answer:
    return client.post(client.directory["newOrder"], {"identifiers": [{"type": kind, "value": n} for n in names]})


def prove_all(client: AcmeTestClient, order: dict, outcomes, challenge_type: str = "http-01") -> None:
    for authz_url in order["authorizations"]:
        authz = client.post(authz_url, None).json()
        challenge = next(c for c in authz["challenges"] if c["type"] == challenge_type)
        with outcomes.capture():
            answer = client.post(challenge["url"], {})
        assert answer.status == 200, answer.body


def issue(client: AcmeTestClient, outcomes, *names: str, challenge_type: str = "http-01", kind: str = "dns"
          ) -> tuple[dict, str, bytes]:
    """Order, prove, finalize; the final order, its URL and the PEM chain."""
    answer = new_order(client, *names, kind=kind)
    assert answer.status == 201, answer.body
    order_url = answer.headers["location"]
    prove_all(client, answer.json(), outcomes, challenge_type)
    assert client.post(order_url, None).json()["status"] == "ready"
    der, _key = csr_der([n for n in names])
    finalized = client.post(answer.json()["finalize"], {"csr": b64(der)})
    assert finalized.status == 200, finalized.body
    order = finalized.json()
    assert order["status"] == "valid"
    chain = client.post(order["certificate"], None)
    assert chain.status == 200
    assert chain.headers["content-type"] == "application/pem-certificate-chain"
    return order, order_url, chain.body
