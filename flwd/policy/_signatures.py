"""Signature checks: the policy bundle's (before serving) and images' (before running).

Blocking (files and ``cosign`` subprocesses); the server runs them before it
serves, or in a worker thread.

Bundle, ``secure`` profile only:

- ``FLWD_POLICY_PUBKEY=key.pub`` (PEM): the detached ``<bundle>.sig`` in
  cosign's blob-signature format — base64 of an ASN.1 DER ECDSA P-256
  signature over the SHA-256 of the file, what ``cosign sign-blob --key``
  writes — is verified natively with ``cryptography``;
- else, when ``cosign`` is on PATH, keyless: ``cosign verify-blob`` with the
  ``<bundle>.bundle`` (or ``.sig`` + ``.pem``) next to the file and the signer
  identity from ``FLWD_COSIGN_IDENTITY`` / ``FLWD_COSIGN_OIDC_ISSUER``;
- else there is no verifier and the server refuses to start.

Images: ``cosign verify`` (``--key $FLWD_IMAGE_PUBKEY``, else keyless with the
same identity variables); no cosign → no verdict (see ``signature_decision``).
"""

from __future__ import annotations

import base64
import binascii
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from flwd.errors import PolicySignatureInvalid

from ._images import Verdict

#: cosign talks to transparency logs in keyless mode; never hang start-up on it.
COSIGN_TIMEOUT = 60.0


def verify_blob_signature(data: bytes, signature: bytes, public_key_pem: bytes) -> None:
    """Check a cosign blob signature (base64 DER ECDSA/SHA-256) of ``data``.

    Raises:
        PolicySignatureInvalid: malformed key or signature, or no match.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, TypeError) as exc:
        raise PolicySignatureInvalid(f"the public key is not a PEM public key: {exc}",
                                     hint="FLWD_POLICY_PUBKEY must name cosign.pub "
                                          "(cosign generate-key-pair)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PolicySignatureInvalid(
            f"the public key is a {type(key).__name__}, not an ECDSA key",
            hint="use the ECDSA P-256 key pair cosign generates")
    try:
        der = base64.b64decode(b"".join(signature.split()), validate=True)
    except (binascii.Error, ValueError):
        raise PolicySignatureInvalid("the signature is not base64 (cosign's blob-signature "
                                     "format)") from None
    if not der:
        raise PolicySignatureInvalid("the signature file is empty")
    try:
        key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise PolicySignatureInvalid(
            "the signature does not match the file and the public key",
            hint="re-sign the bundle (cosign sign-blob --key cosign.key FILE "
                 "--output-signature FILE.sig) or check FLWD_POLICY_PUBKEY") from None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PolicySignatureInvalid(f"{what} {path} is missing",
                                     hint="sign the bundle: cosign sign-blob --key cosign.key "
                                          f"{path.with_suffix('')} --output-signature {path}"
                                     if what == "signature" else None) from None
    except OSError as exc:
        raise PolicySignatureInvalid(f"cannot read {what} {path}: {exc.strerror}") from None


def verify_bundle(path: Path, env: Mapping[str, str]) -> str:
    """Verify the bundle at ``path``; returns how (``"public key"``, ``"cosign keyless"``).

    Raises:
        PolicySignatureInvalid: no verifier, a missing or bad signature; the
            message names which.
    """
    signature_path = Path(f"{path}.sig")
    key_path = env.get("FLWD_POLICY_PUBKEY")
    if key_path:
        public_key = _read(Path(key_path), "public key (FLWD_POLICY_PUBKEY)")
        signature = _read(signature_path, "signature")
        try:
            verify_blob_signature(_read(path, "policy bundle"), signature, public_key)
        except PolicySignatureInvalid as exc:
            raise PolicySignatureInvalid(f"policy bundle {path}: {exc.detail}",
                                         hint=exc.hint) from None
        return "public key"
    cosign = shutil.which("cosign", path=env.get("PATH"))
    if cosign is None:
        raise PolicySignatureInvalid(
            f"policy bundle {path} cannot be verified: no verifier (FLWD_POLICY_PUBKEY is "
            "not set and cosign is not installed)",
            hint="set FLWD_POLICY_PUBKEY to the signer's public key, install cosign for "
                 "keyless verification, or serve with a permissive profile")
    identity = env.get("FLWD_COSIGN_IDENTITY")
    issuer = env.get("FLWD_COSIGN_OIDC_ISSUER")
    if not identity or not issuer:
        raise PolicySignatureInvalid(
            f"policy bundle {path}: keyless verification needs the signer's identity",
            hint="set FLWD_COSIGN_IDENTITY and FLWD_COSIGN_OIDC_ISSUER, or FLWD_POLICY_PUBKEY")
    argv = [cosign, "verify-blob", "--certificate-identity", identity,
            "--certificate-oidc-issuer", issuer]
    bundle_path = Path(f"{path}.bundle")
    if bundle_path.exists():
        argv += ["--bundle", str(bundle_path)]
    else:
        _read(signature_path, "signature")
        argv += ["--signature", str(signature_path)]
        certificate = Path(f"{path}.pem")
        if certificate.exists():
            argv += ["--certificate", str(certificate)]
    argv.append(str(path))
    result = _run(argv, dict(env))
    if result is not None:
        raise PolicySignatureInvalid(f"policy bundle {path}: cosign verify-blob failed: "
                                     f"{result}")
    return "cosign keyless"


def _run(argv: list[str], env: dict[str, str]) -> str | None:
    """None when ``argv`` exits 0, else the reason (its trimmed output)."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=COSIGN_TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired:
        return f"timed out after {COSIGN_TIMEOUT:g}s"
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc.strerror}"
    if done.returncode == 0:
        return None
    output = (done.stderr or done.stdout).strip()
    return output.splitlines()[-1] if output else f"exit status {done.returncode}"


class CosignImageVerifier:
    """``cosign verify`` of an image; results cached per reference for the process."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.cosign = shutil.which("cosign", path=self.env.get("PATH"))
        self._cache: dict[str, Verdict] = {}

    @property
    def available(self) -> bool:
        return self.cosign is not None

    def __call__(self, ref: str) -> Verdict | None:
        if self.cosign is None:
            return None
        cached = self._cache.get(ref)
        if cached is not None:
            return cached
        argv = [self.cosign, "verify"]
        key = self.env.get("FLWD_IMAGE_PUBKEY")
        if key:
            argv += ["--key", key]
        else:
            identity = self.env.get("FLWD_COSIGN_IDENTITY")
            issuer = self.env.get("FLWD_COSIGN_OIDC_ISSUER")
            if not identity or not issuer:
                return Verdict(False, "keyless verification needs FLWD_COSIGN_IDENTITY and "
                                      "FLWD_COSIGN_OIDC_ISSUER (or FLWD_IMAGE_PUBKEY)")
            argv += ["--certificate-identity", identity, "--certificate-oidc-issuer", issuer]
        reason = _run([*argv, ref], self.env)
        verdict = Verdict(reason is None, reason or "")
        if verdict.verified:
            self._cache[ref] = verdict
        return verdict
