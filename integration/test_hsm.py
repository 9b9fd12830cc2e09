"""The intermediate key on a PKCS#11 token (issue 14), with real clients and a real token.

SoftHSM2 is the token (tests/softhsm.py: one of the test's own, made by softhsm2-util),
`acme-ca serve` a real process that finds it through SOFTHSM2_CONF, and its
`[ca] intermediate_key` an RFC 7512 URI (``pkcs11:token=acme-ca;object=intermediate
?pin-source=file:...``). The key is made on the token, either by `acme-ca init
--intermediate-key-uri` or by the first start's bootstrap; then:

- lego (http-01) and certbot get certificates that openssl verifies against the root,
  issued by an intermediate whose public key is the token's, whose private key the
  token holds as sensitive and never extractable (PKCS#11 v2.40 4.9, CKA_SENSITIVE,
  CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE);
- the CRL the server publishes after a revocation verifies with `openssl crl -verify`
  against that intermediate (RFC 5280 5.1.1.3: signed by the issuer's key);
- a wrong PIN (exit 77, which systemd does not restart), a missing token and a missing
  object (exit 1) each stop `serve` at start with one line (RFC 7512 2.3: the URI's
  token and object attributes);
- a token that goes away while the server runs fails the finalize of the moment with
  serverInternal (RFC 8555 6.7) and that order becomes invalid; once the token is back
  an order issues within seconds, with the same server process (and with two workers,
  each of which re-initializes the PKCS#11 library after the fork);
- no file in the data directory holds the intermediate's private key: every private key
  found there (the root's, the server's TLS key, the OCSP responder's) has another
  public key.

Without softhsm2 or python-pkcs11 each test is skipped, except under CI=true, where it
fails (tests/required.py).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import josepy as jose
import pytest
from acme import client, crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from integration.clients import (
    NAMES,
    AcmeServer,
    expect_ok,
    load_certs,
    split_chain,
    verify_chain,
    write_config,
)
from integration.conftest import _serving, clean_env, free_port, run_cli, until
from integration.test_acme_library import Resource, connect, http01, http01_responder
from integration.test_certbot import Certbot, check_lineage
from integration.test_crl import assert_crl_verifies, crl_url, pem_file, wait_until_listed
from integration.test_lego import Lego, check_certificate
from tests.softhsm import SoftHsm

pytestmark = pytest.mark.integration

OBJECT = "intermediate"
RECOVERS_WITHIN = 10.0  # seconds: "within a few seconds" (one reconnect a second at most)
READY_CHECK = 15.0  # seconds: /readyz signs at most every 5 s per intermediate
SERVER_INTERNAL = "urn:ietf:params:acme:error:serverInternal"


class Ca(NamedTuple):
    """A token, a configuration naming a key on it, and the data directory it serves."""

    hsm: SoftHsm
    config: Path
    data_dir: Path
    port: int
    http01_port: int

    def env(self) -> dict[str, str]:
        """What every acme-ca process of this CA needs: where SoftHSM2's token is."""
        return {"SOFTHSM2_CONF": str(self.hsm.conf)}


def make_ca(workdir: Path, *, init: bool = True) -> Ca:
    """A token in ``workdir``, the config of a server whose intermediate key is the
    token's ``intermediate``, with OCSP and the admin listener on (so that their keys
    are in the data directory too); with ``init``, the CA made by `acme-ca init
    --intermediate-key-uri` (else the first start makes it)."""
    hsm = SoftHsm.create(workdir / "softhsm")
    uri = hsm.uri(OBJECT)
    data_dir, port, http01_port = workdir / "data", free_port(), free_port()
    extra = (f"\n[ca]\nintermediate_key = {json.dumps(uri)}\n"
             f"pkcs11_module = {json.dumps(str(hsm.module))}\n"
             f'\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n')
    config = write_config(workdir / "acme-ca.toml", data_dir=data_dir, port=port,
                          http01_port=http01_port, extra=extra, ocsp=True)
    ca = Ca(hsm, config, data_dir, port, http01_port)
    if init:
        passphrase = workdir / "root.pass"
        passphrase.write_text("a root passphrase of the test\n")
        passphrase.chmod(0o600)
        run_cli("--config", config, "init", "--key-type", "ec-p384", "--passphrase-file",
                passphrase, "--intermediate-key-uri", uri, "--pkcs11-module",
                hsm.module, cwd=workdir, env=ca.env())
    return ca


@contextlib.contextmanager
def serving(ca: Ca, *extra: str) -> Iterator[AcmeServer]:
    """`acme-ca --config CONFIG serve EXTRA` with the token in its environment, ready;
    stopped by pid afterwards."""
    args = ["--config", str(ca.config), "serve", *extra]
    with _serving(args, ca.config.parent, ca.data_dir, ca.port,
                  env=clean_env(ca.env())) as server:
        yield AcmeServer(server, ca.http01_port)


def serve_once(ca: Ca, config: Path) -> subprocess.CompletedProcess[str]:
    """`acme-ca --config CONFIG serve` expected to stop at start (60 s at most)."""
    return run_cli("--config", config, "serve", cwd=ca.config.parent, check=False,
                   env=ca.env(), timeout=60)


# --- what the token holds, read through PKCS#11 by a process of its own ------------

TOKEN_KEYS = r"""
import json, sys
import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_ec_public_key
from pkcs11.util.rsa import encode_rsa_public_key

module, label, pin, obj = sys.argv[1:]
token = pkcs11.lib(module).get_token(token_label=label)
found = {"public": [], "private": []}
with token.open(user_pin=pin) as session:
    for key in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                    Attribute.LABEL: obj}):
        encode = encode_ec_public_key if key.key_type == KeyType.EC else encode_rsa_public_key
        found["public"].append(encode(key).hex())
    for key in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                    Attribute.LABEL: obj}):
        found["private"].append({name: bool(key[getattr(Attribute, name.upper())])
                                 for name in ("sensitive", "extractable",
                                              "never_extractable", "sign")})
print(json.dumps(found))
"""


def token_keys(hsm: SoftHsm, obj: str = OBJECT) -> tuple[list[Any], list[dict[str, bool]]]:
    """The public keys labelled ``obj`` on the token (cryptography objects) and the
    attributes of its private keys of that label, read with python-pkcs11 in a
    separate process (the test's own never loads a PKCS#11 library)."""
    result = subprocess.run([sys.executable, "-c", TOKEN_KEYS, str(hsm.module), hsm.label,
                             hsm.pin, obj], env=hsm.env(), capture_output=True, text=True,
                            timeout=60, check=True)
    found = json.loads(result.stdout)
    return ([serialization.load_der_public_key(bytes.fromhex(h)) for h in found["public"]],
            found["private"])


def spki(key: Any) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def intermediate_of(ca: Ca) -> x509.Certificate:
    return load_certs(ca.data_dir / "ca" / "intermediate-ca.crt")[0]


def assert_intermediate_on_token(ca: Ca) -> x509.Certificate:
    """The current intermediate's public key is a key pair's on the token, whose
    private half the token keeps sensitive and never extractable; the intermediate."""
    intermediate = intermediate_of(ca)
    public, private = token_keys(ca.hsm)
    assert spki(intermediate.public_key()) in {spki(k) for k in public}, \
        "the intermediate's public key is not on the token"
    assert private, "no private key labelled intermediate on the token"
    for attributes in private:
        assert attributes == {"sensitive": True, "extractable": False,
                              "never_extractable": True, "sign": True}, attributes
    return intermediate


# --- private keys in the data directory ---------------------------------------------

PEM_KEY = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----",
                     re.S)


def private_keys_in(data_dir: Path, passphrases: list[bytes]) -> dict[str, list[bytes]]:
    """Every private key in every file under ``data_dir`` (PEM blocks anywhere in a
    file, the SQLite databases included, and files that are one DER key), as the
    SubjectPublicKeyInfo of its public key, by file (relative path). A PEM key that
    opens with none of ``passphrases`` fails the test: it could be any key."""
    found: dict[str, list[bytes]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        keys = [load_pem_key(m.group(0), passphrases, path) for m in PEM_KEY.finditer(data)]
        for password in (None, *passphrases):  # a file that is one DER key, perhaps encrypted
            with contextlib.suppress(ValueError, TypeError):
                keys.append(serialization.load_der_private_key(data, password))
                break
        if keys:
            found[str(path.relative_to(data_dir))] = [spki(k.public_key()) for k in keys]
    return found


def load_pem_key(pem: bytes, passphrases: list[bytes], path: Path) -> Any:
    for password in (None, *passphrases):
        with contextlib.suppress(TypeError, ValueError):
            return serialization.load_pem_private_key(pem, password)
    pytest.fail(f"{path} holds a private key the test cannot open: it could be any key")


def assert_no_intermediate_key_file(ca: Ca, intermediates: list[x509.Certificate],
                                    passphrases: list[bytes]) -> dict[str, list[bytes]]:
    """No file of the data directory holds the private key of any of ``intermediates``;
    the keys that are there, by file."""
    found = private_keys_in(ca.data_dir, passphrases)
    forbidden = {spki(c.public_key()) for c in intermediates}
    for name, keys in found.items():
        assert not forbidden & set(keys), f"{name} holds the intermediate's private key"
    assert not list(ca.data_dir.rglob("intermediate-ca.key"))
    return found


def root_passphrases(ca: Ca) -> list[bytes]:
    """The root key's passphrases this test may know: init's file, the bootstrap's."""
    files = [ca.config.parent / "root.pass", ca.data_dir / "offline" / "root-ca.passphrase"]
    return [f.read_bytes().rstrip(b"\n") for f in files if f.exists()]


# --- the tests ----------------------------------------------------------------------


def test_lego_certbot_and_the_crl_with_the_key_that_init_made_on_the_token(
    tmp_path: Path,
) -> None:
    """`acme-ca init --intermediate-key-uri` makes the key on the token; lego and certbot
    get certificates through it; the CRL after a revocation is signed by it; no key
    file of the intermediate in the data directory."""
    ca = make_ca(tmp_path / "acme-ca")
    intermediate = assert_intermediate_on_token(ca)
    token_key = intermediate.public_key()
    with serving(ca) as acme:
        lego = Lego(acme, tmp_path / "lego")
        result, elapsed = lego("run")
        print(f"\nlego run, key on the token: {elapsed:.2f} s")
        expect_ok(result, acme)
        check_certificate(lego, acme.root_cert, tmp_path / "lego-check")
        leaf, issuer = load_certs(lego.certificate(".crt"))[:2]
        assert spki(issuer.public_key()) == spki(token_key)
        leaf.verify_directly_issued_by(intermediate)

        certbot = Certbot(acme, tmp_path / "certbot")
        result, elapsed = certbot(
            "certonly", "--standalone", "--http-01-port", str(acme.http01_port),
            "--http-01-address", "127.0.0.1", "--server", acme.directory,
            *[arg for name in NAMES for arg in ("-d", name)], "--agree-tos",
            "--register-unsafely-without-email")
        print(f"certbot certonly, key on the token: {elapsed:.2f} s")
        expect_ok(result, acme)
        check_lineage(certbot, acme.root_cert)
        (chain_issuer,) = load_certs(certbot.live / "chain.pem")
        assert spki(chain_issuer.public_key()) == spki(token_key)
        load_certs(certbot.live / "cert.pem")[0].verify_directly_issued_by(intermediate)

        result, _ = lego("revoke", "--reason", "1", http=False)
        expect_ok(result, acme)
        crl = wait_until_listed(crl_url(leaf), leaf.serial_number)
        assert crl.issuer == intermediate.subject
        assert crl.is_signature_valid(token_key)  # type: ignore[arg-type]
        chain = pem_file(tmp_path / "chain.pem", intermediate, *load_certs(acme.root_cert))
        assert_crl_verifies(crl.public_bytes(Encoding.DER), chain, tmp_path)

    found = assert_no_intermediate_key_file(ca, [intermediate], root_passphrases(ca))
    # the keys that are files on purpose were all looked at (and are other keys)
    assert "tls/server.key" in found and "offline/root-ca.key" in found, sorted(found)
    assert any(name.startswith("ocsp/") for name in found), sorted(found)
    assert (ca.data_dir / "dashboard.key").is_file()  # random bytes, no private key


def test_the_first_start_makes_the_key_on_the_token_of_its_config(tmp_path: Path) -> None:
    """An empty data directory and `[ca] intermediate_key = "pkcs11:..."`: the bootstrap
    makes the key on the token, lego gets a certificate from it, and no key file."""
    ca = make_ca(tmp_path / "acme-ca", init=False)
    with serving(ca) as acme:
        intermediate = assert_intermediate_on_token(ca)
        lego = Lego(acme, tmp_path / "lego")
        result, _ = lego("run")
        expect_ok(result, acme)
        work = tmp_path / "check"
        work.mkdir()
        cert, chain = split_chain(lego.certificate(".crt").read_bytes(), work)
        verify_chain(acme.root_cert, cert, chain)
        leaf, issuer = load_certs(lego.certificate(".crt"))[:2]
        assert issuer == intermediate
        leaf.verify_directly_issued_by(intermediate)
    found = assert_no_intermediate_key_file(ca, [intermediate], root_passphrases(ca))
    assert "tls/server.key" in found, sorted(found)


def test_a_wrong_pin_a_missing_token_or_object_stops_serve_with_one_line(
    tmp_path: Path,
) -> None:
    """Each of RFC 7512's parts naming the key, wrong, stops `serve` at start: exit 1
    (77 for the wrong PIN, which docs/acme-ca.service does not restart), one line on
    stderr saying which (and no PIN), no traceback; so does a `[ca] pkcs11_module` that
    is not there. The right URI then starts."""
    ca = make_ca(tmp_path / "acme-ca")
    wrong_pin = tmp_path / "wrong.pin"
    wrong_pin.write_text("9999\n")
    wrong_pin.chmod(0o600)
    right = ca.hsm.uri(OBJECT)
    cases = {
        "wrong PIN": (right.replace(str(ca.hsm.pin_file), str(wrong_pin)), "pin"),
        "missing token": (right.replace("token=acme-ca", "token=nosuchtoken"), "nosuchtoken"),
        "missing object": (right.replace(f"object={OBJECT}", "object=nosuchkey"), "nosuchkey"),
        "missing library": (right, "/nonexistent/libpkcs11.so"),
    }
    text = ca.config.read_text()
    module = json.dumps(str(ca.hsm.module))
    for case, (uri, needle) in cases.items():
        config = ca.config.with_name(f"{case.replace(' ', '-')}.toml")
        changed = text.replace(json.dumps(right), json.dumps(uri))
        if case == "missing library":
            changed = changed.replace(module, json.dumps(needle))
        assert changed != text, case
        config.write_text(changed)
        result = serve_once(ca, config)
        status = 77 if case == "wrong PIN" else 1
        assert result.returncode == status, (case, result.returncode, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr, (case, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (case, result.stderr)
        assert lines[0].startswith("acme-ca: error: "), (case, lines[0])
        assert needle in lines[0].lower(), (case, lines[0])
        assert ca.hsm.pin not in lines[0] and "9999" not in lines[0], (case, lines[0])
    with serving(ca):  # the same CA, with the right URI: the errors were the URIs'
        pass


# --- a token that fails while the server runs ---------------------------------------


class Orders:
    """One ACME account on ``acme`` (certbot's acme library), ordering certificates for
    NAMES; answers http-01 on the server's http01 port while ``stack`` lives."""

    def __init__(self, acme: AcmeServer, stack: contextlib.ExitStack) -> None:
        self.acme = acme
        self.key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        self.resources: set[Any] = set()
        stack.enter_context(http01_responder(acme.http01_port, self.resources))
        self.regr: messages.RegistrationResource | None = None
        self.regr = self.client().new_account(
            messages.NewRegistration.from_data(terms_of_service_agreed=True))
        csr_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        self.csr = crypto_util.make_csr(csr_key, list(NAMES))

    def client(self) -> client.ClientV2:
        """A client on a new connection (with two workers, to either of them)."""
        acme = connect(self.acme, self.key, jose.ES256)
        if self.regr is not None:
            acme.net.account = self.regr
        return acme

    def issue(self) -> tuple[str, messages.OrderResource | messages.Error]:
        """A new order, its authorizations answered if they are not valid already,
        finalized: its URL, and the valid order or the problem the finalize got."""
        acme = self.client()
        orderr = acme.new_order(self.csr)
        for authzr in orderr.authorizations:
            if authzr.body.status != messages.STATUS_VALID:
                challb = http01(authzr)
                response, validation = challb.response_and_validation(self.key)
                self.resources.add(Resource(challb.chall, response, validation))
                acme.answer_challenge(challb, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
        orderr = acme.poll_authorizations(orderr, deadline)
        try:
            done = acme.begin_finalization(orderr)
        except messages.Error as error:
            return orderr.uri, error
        if done.body.status != messages.STATUS_VALID:  # processing: poll (1 s apart)
            return orderr.uri, acme.poll_finalization(done, deadline)
        chain = acme._post_as_get(done.body.certificate).text  # no sleep when it is ready
        return orderr.uri, done.update(fullchain_pem=chain)

    def status(self, order_uri: str) -> dict[str, Any]:
        return self.client()._post_as_get(order_uri).json()  # type: ignore[no-any-return]


def assert_issued(got: messages.OrderResource | messages.Error, acme: AcmeServer) -> str:
    """``got`` is a valid order with its certificate; the full chain (PEM)."""
    assert isinstance(got, messages.OrderResource), f"{got}\n{acme.logs()}"
    assert got.body.status == messages.STATUS_VALID
    assert got.fullchain_pem
    return str(got.fullchain_pem)


def readiness(acme: AcmeServer) -> tuple[int, str]:
    """/readyz's status and what it says of the signing check (docs/operations.md)."""
    got = acme.server.get("/readyz")
    return got.status, json.loads(got.body)["checks"]["signing"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_token_that_fails_at_run_time_fails_one_finalize_and_comes_back(
    tmp_path: Path, workers: str
) -> None:
    """RFC 8555 7.4 and 6.7: the finalize made while the token is gone gets
    serverInternal and its order is invalid; with the token back, orders issue again
    within seconds from the same server process (PKCS#11 v2.40 5.4: C_Finalize and
    C_Initialize again). Meanwhile /readyz says the signing check fails, and it is
    ready again once the token is back (docs/operations.md). With two workers, each
    re-initialized the library after the fork (four orders before the failure, each on
    a new connection: the kernel spreads them over both), and each comes back: the
    test waits for eight issuances in a row, each on a new connection."""
    ca = make_ca(tmp_path / "acme-ca")
    with serving(ca, "--workers", workers) as acme, contextlib.ExitStack() as stack:
        pid = acme.server.process.pid
        orders = Orders(acme, stack)
        for _ in range(4):
            assert_issued(orders.issue()[1], acme)

        with ca.hsm.away(tmp_path / "away"):
            order_uri, failed = orders.issue()
            assert isinstance(failed, messages.Error), f"{failed}\n{acme.logs()}"
            assert failed.code == "serverInternal", failed
            order = orders.status(order_uri)
            assert order["status"] == "invalid", order
            assert order["error"]["type"] == SERVER_INTERNAL, order
            assert "certificate" not in order
            until(lambda: readiness(acme) == (503, "failing"),
                  "/readyz reports the signing check failing", READY_CHECK)

        started = time.monotonic()
        first, streak, fullchain = None, 0, ""
        while streak < 8:
            assert time.monotonic() - started < RECOVERS_WITHIN, \
                f"no 8 issuances in a row {RECOVERS_WITHIN:g} s after the token came " \
                f"back\n{acme.logs()}"
            _, got = orders.issue()
            if isinstance(got, messages.Error):
                assert got.code == "serverInternal", got
                streak = 0
                continue
            fullchain = assert_issued(got, acme)
            first = time.monotonic() - started if first is None else first
            streak += 1
        print(f"\nworkers={workers}: the first issuance {first:.2f} s after the token came "
              f"back, the eighth in a row {time.monotonic() - started:.2f} s")
        until(lambda: readiness(acme) == (200, "ok"), "/readyz is ready again", READY_CHECK)
        assert acme.server.process.poll() is None and acme.server.process.pid == pid
        work = tmp_path / "last"
        work.mkdir()
        verify_chain(acme.root_cert, *split_chain(fullchain.encode(), work))
