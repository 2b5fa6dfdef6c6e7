"""OCI add-on sources: policy checks, the pull policy, manifest extraction by a container.

Adding an add-on image (``materialise_oci``), in this order — the first
refusal wins and nothing is pulled or run before the policy said yes:

1. registry allow-list of the policy bundle (``image.registry.not.allowed``);
2. signature policy (``image.signature.required`` when ``verify_signatures`` is
   ``required`` and the image is not verified — with no verifier installed,
   required fails closed); a source that asks for ``verify_signatures: true``
   is refused (``source-signature-invalid``) unless its image verifies, and when
   the verify mode is ``disabled`` (nothing would be checked);
3. a container runtime (``container.runtime.unavailable``);
4. ``on-add``: ``<rt> pull REF`` now (cached layers are reused) → ``E_OCI``
   with the runtime's message on failure; ``on-run``: nothing is pulled;
5. the manifest, read by the extraction container (below) with
   ``--pull=never`` — ``on-add`` from the image pinned by digest;
6. strict validation (``E_ADDON_MANIFEST`` listing every violation);
7. ``on-add``: the digest from ``<rt> image inspect`` (``E_OCI`` when it cannot
   be told); ``on-run``: no digest until a run succeeds (``digest_to_record``).
   The same inspect gives the image's id, build time, size and labels
   (``metadata`` of the source).

The extraction container runs ``cat /flwd-addon/manifest.yaml`` as its
entrypoint with the flags of the profile (README table; :func:`extraction_argv`).
It is owned by the :class:`ManifestExtractor`, a child task of the source's
actor: bounded in time and output, removed on cancellation.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

import trio

from flwd.containers import ImageInfo, Runtime, inspect_image, pull_image, runtime_call
from flwd.errors import (
    AddonManifestInvalid,
    ContainerRuntimeUnavailable,
    OciFailed,
    SourceSignatureInvalid,
    SourceSignatureUnverifiable,
)
from flwd.observe import UNOBSERVED, Observer
from flwd.policy import (
    ImageTrust,
    PolicyContext,
    Profile,
    Verdict,
    VerifyMode,
    check_registry,
    image_repository,
    signature_decision,
)

from ._manifest import MANIFEST_PATH, MAX_BYTES, AddonManifest, parse_manifest
from ._model import SourceSpec, SourceState, pinned_image

#: The cached copy of the manifest in the source's directory.
MANIFEST_FILE: Final = "manifest.yaml"
#: Label of extraction containers (value: the source name).
ADDON_LABEL: Final = "flwd.addon"
EXTRACT_TIMEOUT: Final = 120.0
_STOP_TIMEOUT: Final = 15.0


@dataclass(frozen=True, slots=True)
class OciContext:
    """What adding an add-on needs from the process: runtime, policy, profile, env."""

    runtime: Runtime | None
    policy: PolicyContext = field(default_factory=PolicyContext)
    profile: Profile = "secure"
    #: The runtime client's environment (CONTAINERS_CONF, registries.conf …).
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    #: Why ``runtime`` is None, when a runtime was looked for and none works (raised
    #: after the policy checks, which come first whatever the runtime).
    unavailable: ContainerRuntimeUnavailable | None = None


# -- the pull policy (sans-IO) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddSteps:
    """What adding (or refreshing) an oci source does for its pull policy."""

    #: Pull the image now.
    pull: bool
    #: Pin (and require) the digest now.
    pin: bool
    #: The extraction container never pulls (``--pull=never``).
    extract_pull: str = "never"


def add_steps(spec: SourceSpec) -> AddSteps:
    if (spec.pull_policy or "on-add") == "on-add":
        return AddSteps(pull=True, pin=True)
    return AddSteps(pull=False, pin=False)


def digest_to_record(spec: SourceSpec, state: SourceState, observed: str | None,
                     run_image: str) -> str | None:
    """After a successful run of one of this source's jobs: the digest to pin, if any.

    Only an ``on-run`` source that has no digest yet learns one, and only from
    a run of its current image (not of an image it was re-pointed from since).
    """
    if spec.type != "oci" or spec.pull_policy != "on-run" or state.digest is not None:
        return None
    if not observed or run_image != spec.ref:
        return None
    return observed


# -- the extraction container --------------------------------------------------


def extraction_argv(runtime: Runtime, image: str, profile: Profile, name: str,
                    source: str, *, pull: str = "never") -> list[str]:
    """``<rt> run`` of the extraction container, with the README's flags for ``profile``.

    secure / permissive: ``--network none --read-only``; disabled: ``--network
    bridge`` and the runtime's default (writable) root filesystem. Always
    ``--cap-drop=ALL --security-opt=no-new-privileges``.
    """
    argv = [runtime.path, "run", "--rm", "--name", name, "--label", f"{ADDON_LABEL}={source}",
            f"--pull={pull}", "--cap-drop=ALL", "--security-opt=no-new-privileges"]
    if profile == "disabled":
        argv += ["--network", "bridge"]
    else:
        argv += ["--network", "none", "--read-only"]
    argv += ["--entrypoint", "cat", image, MANIFEST_PATH]
    return argv


class ManifestExtractor:
    """Runs one extraction container and collects the manifest it prints.

    Start it inside the source actor's task tree with ``await extractor.run()``;
    it returns the manifest bytes or raises.

    Cancellation: the container is removed (``rm --force``, shielded, bounded)
    and the runtime client killed before ``Cancelled`` propagates.

    Raises:
        AddonManifestInvalid: the image has no manifest file.
        OciFailed: the runtime failed (unknown image, no ``cat``, timeout …),
            with the runtime's own message; or the output is too large.
    """

    def __init__(self, runtime: Runtime, image: str, profile: Profile, source: str,
                 env: Mapping[str, str], *, timeout: float = EXTRACT_TIMEOUT) -> None:
        self.runtime = runtime
        self.image = image
        self.source = source
        self.name = f"flwd-addon-{source.lower()}-{secrets.token_hex(4)}"
        self.argv = extraction_argv(runtime, image, profile, self.name, source)
        self.env = dict(env)
        self.timeout = timeout

    async def run(self) -> bytes:
        stdout = bytearray()
        stderr = bytearray()
        too_big = False
        returncode: int | None = None
        try:
            with trio.move_on_after(self.timeout) as deadline:
                async with trio.open_nursery() as nursery:
                    process: trio.Process = await nursery.start(partial(
                        trio.run_process, self.argv, stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                        start_new_session=True, env=self.env,
                        deliver_cancel=self._deliver_cancel))
                    assert process.stdout is not None and process.stderr is not None

                    async def read(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
                        nonlocal too_big
                        async with stream:
                            while chunk := await stream.receive_some(1 << 16):
                                if len(into) + len(chunk) > MAX_BYTES:
                                    too_big = True
                                    nursery.cancel_scope.cancel(reason="output too large")
                                    return
                                into += chunk

                    nursery.start_soon(read, process.stdout, stdout)
                    nursery.start_soon(read, process.stderr, stderr)
                    returncode = await process.wait()
        finally:
            if returncode is None:
                with trio.CancelScope(shield=True):
                    await self._remove()
        if too_big:
            raise OciFailed(f"manifest extraction from {self.image} printed more than "
                            f"{MAX_BYTES} bytes", hint="a manifest is a small YAML file")
        if deadline.cancelled_caught or returncode is None:
            raise OciFailed(f"manifest extraction from {self.image} timed out after "
                            f"{self.timeout:g}s", hint="check the container runtime")
        if returncode == 0:
            return bytes(stdout)
        message = (stderr or stdout).decode(errors="replace").strip()
        last = message.splitlines()[-1] if message else f"exit status {returncode}"
        if returncode not in (125, 126, 127) and (
                "no such file" in message.lower() or "not found" in message.lower()):
            raise AddonManifestInvalid(
                f"add-on manifest missing: {self.image} has no {MANIFEST_PATH} ({last})",
                hint=f"add {MANIFEST_PATH} to the image and rebuild it",
                errors=[{"arg": "manifest", "message": f"{MANIFEST_PATH} is missing"}])
        raise OciFailed(f"oci command failed: {last}",
                        hint="check that the image exists locally (on-run adds never pull) "
                             "and that the runtime works",
                        errors=[{"arg": "ref", "message": last}])

    async def _deliver_cancel(self, process: trio.Process) -> None:
        with trio.CancelScope(shield=True):
            await self._remove()
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    async def _remove(self) -> None:
        rt = self.runtime
        await runtime_call([rt.path, "rm", "--force", *(["--ignore"] if rt.is_podman else []),
                            self.name], self.env, _STOP_TIMEOUT)


# -- adding a source ---------------------------------------------------------------


def source_image_trust(spec: SourceSpec, mode: VerifyMode, verdict: Verdict | None,
                       profile: Profile) -> ImageTrust | None:
    """The signature decision on an add-on's image (sans-IO): its trust, or a refusal.

    ``verdict`` None: no verifier was asked (none installed, or the mode is
    ``disabled``). A source asking for ``verify_signatures`` needs a verified
    image whatever the mode — ``permissive`` included — and cannot be added
    while the mode is ``disabled``.

    Raises:
        SourceSignatureUnverifiable: ``verify_signatures`` and the mode is ``disabled``.
        SourceSignatureInvalid: ``verify_signatures`` and the image is not verified.
        ImageSignatureRequired: mode ``required`` and the image is not verified.
    """
    trust = ImageTrust.of(spec.ref, mode, verdict)
    if spec.verify_signatures:
        if trust is None:
            raise SourceSignatureUnverifiable(
                f"oci source {spec.name!r} asks for verify_signatures, but signature "
                f"verification is disabled for the current profile ({profile})",
                hint="set verify_signatures to required or permissive in the policy bundle "
                     "(or serve with the secure or permissive profile), or add the source "
                     "without verify_signatures",
                errors=[{"arg": "verify_signatures",
                         "message": "signature verification is disabled"}])
        if not trust.verified:
            raise SourceSignatureInvalid(
                f"signature verification failed for {spec.ref}: {trust.reason}",
                hint="sign the image with cosign (and install cosign with the signer's key "
                     "in FLWD_IMAGE_PUBKEY), or add the source without verify_signatures",
                errors=[{"arg": "verify_signatures", "message": trust.reason}])
        return trust
    signature_decision(spec.ref, mode, verdict)
    return trust


async def check_image_policy(spec: SourceSpec, oci: OciContext) -> ImageTrust | None:
    """Registry allow-list, then signature policy (verification runs in a thread).

    Cancellation: a verification in flight runs to its end in its thread (it is
    bounded by ``COSIGN_TIMEOUT``); nothing is left behind.

    Raises:
        ImageRegistryNotAllowed, ImageSignatureRequired, SourceSignatureInvalid
    """
    bundle = oci.policy.bundle
    check_registry(spec.ref, bundle)
    mode = bundle.verify_mode(oci.profile)
    verdict = None
    verify = oci.policy.verify_image
    if mode != "disabled" and verify is not None:
        verdict = await trio.to_thread.run_sync(verify, spec.ref)
    return source_image_trust(spec, mode, verdict, oci.profile)


async def materialise_oci(spec: SourceSpec, oci: OciContext | None, home: Path,
                          *, refreshed_at: float, observer: Observer = UNOBSERVED
                          ) -> SourceState:
    """Check, pull (``on-add``), extract and validate the add-on; cache its manifest.

    ``observer`` is told of the pull (its outcome and time) and of a manifest that
    is missing or invalid.

    Cancellation: a pull or extraction in flight is stopped (the extraction
    container removed); the cached manifest is replaced atomically or not at all.

    Raises:
        ImageRegistryNotAllowed, ImageSignatureRequired, SourceSignatureInvalid,
        ContainerRuntimeUnavailable, OciFailed, AddonManifestInvalid — see the module
        docstring for the order.
    """
    oci = oci or OciContext(None)
    trust = await check_image_policy(spec, oci)
    runtime = oci.runtime
    if runtime is None:
        if oci.unavailable is not None:
            raise oci.unavailable
        raise ContainerRuntimeUnavailable(
            f"oci source {spec.name!r} needs a container runtime to read its manifest",
            hint="install podman (preferred) or docker; a server started with "
                 "--no-containers cannot add oci sources")
    steps = add_steps(spec)
    repository = image_repository(spec.ref)
    digest: str | None = None
    info: ImageInfo | None = None
    image = spec.ref
    if steps.pull:
        started = trio.current_time()
        failure = await pull_image(runtime, spec.ref, oci.env)
        observer.image_pulled("ok" if failure is None else "error",
                              trio.current_time() - started)
        if failure is not None:
            raise OciFailed(f"oci pull failed: {failure}",
                            hint="check the image reference, that the registry is reachable, "
                                 "and the runtime's registries configuration",
                            errors=[{"arg": "ref", "message": failure}])
        info = await inspect_image(runtime, spec.ref, repository, oci.env)
        if info is None or info.digest is None:
            raise OciFailed(f"image inspect failed: no registry digest for {spec.ref}",
                            hint="the image must come from a registry to be pinned; "
                                 "use pull_policy on-run for a local image")
        digest = info.digest
        image = pinned_image(spec.ref, digest)
    try:
        text = await ManifestExtractor(runtime, image, oci.profile, spec.name, oci.env).run()
        manifest = parse_manifest(text)
    except AddonManifestInvalid:
        observer.manifest_invalid()
        raise
    if not steps.pin:
        info = await inspect_image(runtime, spec.ref, repository, oci.env)
    await trio.to_thread.run_sync(write_manifest, home, text)
    return SourceState(status="ready", root=str(home), checkout_path=str(home),
                       refreshed_at=refreshed_at, digest=digest,
                       image_id=info.image_id if info is not None else None,
                       manifest=manifest.summary_json(),
                       created=info.created if info is not None else None,
                       size_bytes=info.size_bytes if info is not None else None,
                       labels=info.labels if info is not None else None,
                       image_trust=trust.source_json() if trust is not None else None)


def write_manifest(home: Path, text: bytes) -> None:
    """Cache the manifest as ``<home>/manifest.yaml`` (0600), replacing any older one."""
    home.mkdir(parents=True, exist_ok=True)
    temporary = home / f".{MANIFEST_FILE}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        os.replace(temporary, home / MANIFEST_FILE)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_manifest(home: Path) -> AddonManifest:
    """The cached manifest, validated again (blocking).

    Raises:
        AddonManifestInvalid: missing or invalid.
    """
    try:
        text = (home / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        raise AddonManifestInvalid(f"cached add-on manifest unreadable: {exc}",
                                   hint="refresh the source",
                                   errors=[{"arg": "manifest", "message": str(exc)}]) from None
    return parse_manifest(text)

