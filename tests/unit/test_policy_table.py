"""Policy table, sans-IO: each profile × each override × a bundle that allows or denies it,
through plan building, with the journaled ``policy.decision`` event and the denial metric."""

from __future__ import annotations

from pathlib import Path

import pytest

from flwd.containers import Runtime
from flwd.engine._decisions import decision_records
from flwd.errors import (
    ContainerRuntimeUnavailable,
    FlwdError,
    ImageRefInvalid,
    ImageRegistryNotAllowed,
    ImageSignatureRequired,
    ResourcesInvalid,
)
from flwd.events import POLICY_DECISION
from flwd.http._metrics import Metrics, observe_policy_and_containers
from flwd.jobs import bind_cli, discover
from flwd.plan import Plan, build_plan
from flwd.policy import (
    Ceilings,
    OverrideAllowances,
    PolicyBundle,
    PolicyContext,
    Verdict,
    decisions_of,
)

PODMAN = Runtime("podman", "/usr/bin/podman")
IMAGE = "localhost/flwd-test/busybox:1"

#: override → (job config lines, bundle overrides that allow it, subject)
OVERRIDES = {
    "network": ("  network: bridge\n", OverrideAllowances(network=("bridge",)),
                "container.network"),
    "rootfs": ("  rootfs_writable: true\n", OverrideAllowances(rootfs_writable=True),
               "container.rootfs"),
    "caps": ("  capabilities: [NET_ADMIN]\n", OverrideAllowances(caps=("NET_ADMIN",)),
             "container.capabilities"),
    "env": ("env_inheritance: true\n", OverrideAllowances(env_inheritance=True),
            "env.inheritance"),
    "extra_args": ("  extra_args: [--hostname, box]\n",
                   OverrideAllowances(extra_args=("--hostname",)), "container.extra_args"),
    "extra_network": ("  extra_args: ['--network=host']\n",
                      OverrideAllowances(network=("host",)), "container.network"),
}


def _job(tmp_path: Path, override: str, *, image: str = IMAGE, extra: str = ""):
    lines, _, _ = OVERRIDES[override] if override else ("", None, None)
    top = lines if lines.startswith("env_") else ""
    block = "" if top else lines
    root = tmp_path / "scripts"
    job_dir = root / "boxed"
    (job_dir / "config.d").mkdir(parents=True)
    (job_dir / "config.d" / "config.yaml").write_text(
        f"executor: container\n{top}container:\n  image: '{image}'\n{block}{extra}")
    script = job_dir / "100_main.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    job = discover(root).get("boxed")
    return job, bind_cli(job.config.args, {}, job_id=job.id), root


def _plan(tmp_path, override, profile, bundle, **kwargs) -> Plan:
    job, binding, root = _job(tmp_path, override, **kwargs)
    return build_plan(job, binding, profile=profile, workspace=tmp_path, scripts_root=root,
                      policy=PolicyContext(bundle), runtime=PODMAN)


#: (profile, bundle allows?) → (decision, reason fragment, finding level)
EXPECTED = {
    ("secure", True): ("denied", "not permitted in secure profile", "info"),
    ("secure", False): ("denied", "not permitted in secure profile", "info"),
    ("permissive", True): ("allowed", "allowed by policy", "info"),
    ("permissive", False): ("denied", "", "info"),
    ("disabled", True): ("allowed", "allowed (profile disabled)", "warning"),
    ("disabled", False): ("allowed", "allowed (profile disabled)", "warning"),
}


@pytest.mark.parametrize("allows", [True, False], ids=["bundle-allows", "bundle-denies"])
@pytest.mark.parametrize("override", list(OVERRIDES))
@pytest.mark.parametrize("profile", ["secure", "permissive", "disabled"])
def test_policy_table(tmp_path, profile, override, allows):
    _, allowances, subject = OVERRIDES[override]
    bundle = PolicyBundle(verify_signatures="disabled",
                          overrides=allowances if allows else OverrideAllowances())
    decision, fragment, level = EXPECTED[(profile, allows)]
    metrics = Metrics(profile)
    if decision == "denied":
        with pytest.raises(FlwdError) as info:
            _plan(tmp_path, override, profile, bundle)
        error = info.value
        assert error.problem.code == "policy.denied"
        assert error.problem.status == 422
        taken = decisions_of(error)
        run_id = ""
    else:
        plan = _plan(tmp_path, override, profile, bundle)
        taken = plan.decisions
        run_id = "run-x"
    assert [d.subject for d in taken] == [subject]
    made = taken[-1]
    assert (made.decision, made.level) == (decision, level)
    assert fragment in made.reason
    # The journaled event and the metric the serve tap derives from it.
    records = decision_records(run_id, "boxed", profile, taken)
    assert [r.type for r in records] == [POLICY_DECISION]
    data = records[0].data
    assert {k: data[k] for k in ("run_id", "subject", "decision", "code", "reason")} == {
        "run_id": run_id or None, "subject": subject, "decision": decision,
        "code": "policy.denied" if decision == "denied" else "policy.override.allowed",
        "reason": made.reason}
    for record in records:
        observe_policy_and_containers(metrics, record)
    denials = metrics.registry.get_sample_value("flwd_policy_denials_total",
                                                {"reason": "policy.denied"})
    assert (denials or 0) == (1 if decision == "denied" else 0)


def test_allowed_overrides_reach_the_container_plan(tmp_path):
    bundle = PolicyBundle(verify_signatures="disabled", overrides=OverrideAllowances(
        network=("host",), caps=("NET_ADMIN",)))
    job, binding, root = _job(tmp_path, "extra_network",
                              extra="  capabilities: [net_admin]\n")
    plan = build_plan(job, binding, profile="permissive", workspace=tmp_path,
                      scripts_root=root, policy=PolicyContext(bundle), runtime=PODMAN)
    container = plan.steps[0].container
    assert container is not None
    assert (container.network, container.capabilities, container.extra_args) == (
        "host", ("NET_ADMIN",), ())
    preview = plan.to_json()["executor_preview"]
    assert preview["runtime"] == "podman"
    assert preview["container"]["network"] == "host"


def test_secure_defaults_without_any_override(tmp_path):
    plan = _plan(tmp_path, "", "secure", PolicyBundle(verify_signatures="disabled"))
    container = plan.steps[0].container
    assert container is not None
    assert (container.network, container.rootfs_writable, container.capabilities) == (
        "none", False, ())
    assert plan.decisions == []
    assert plan.steps[0].argv == [str(plan.job.dir / "100_main.sh")]


def test_image_checks_come_first_and_are_journaled_as_denials(tmp_path):
    metrics = Metrics("secure")
    bundle = PolicyBundle(allowed_registries=("ghcr.io",))
    with pytest.raises(ImageRegistryNotAllowed) as info:
        _plan(tmp_path, "network", "secure", bundle)
    (denial,) = decisions_of(info.value)
    assert (denial.subject, denial.code) == ("image.registry", "image.registry.not.allowed")
    for record in decision_records("", "boxed", "secure", [denial]):
        observe_policy_and_containers(metrics, record)
    assert metrics.registry.get_sample_value(
        "flwd_policy_denials_total", {"reason": "image.registry.not.allowed"}) == 1


def test_signature_required_without_a_verifier_and_permissive_warning(tmp_path):
    with pytest.raises(ImageSignatureRequired) as info:
        _plan(tmp_path, "", "secure", PolicyBundle())
    assert decisions_of(info.value)[-1].code == "image.signature.required"
    plan = _plan(tmp_path / "p", "", "permissive", PolicyBundle())
    assert [(d.code, d.level) for d in plan.decisions] == [
        ("image.signature.permissive", "warning")]


def test_a_verified_signature_is_an_allowed_decision(tmp_path):
    job, binding, root = _job(tmp_path, "")
    seen = []

    def verifier(ref: str) -> Verdict:
        seen.append(ref)
        return Verdict(True)

    plan = build_plan(job, binding, profile="secure", workspace=tmp_path, scripts_root=root,
                      policy=PolicyContext(PolicyBundle(), verifier), runtime=PODMAN)
    assert seen == [IMAGE]
    assert [(d.subject, d.decision) for d in plan.decisions] == [
        ("image.signature", "allowed")]


def test_ceilings_apply_before_the_overrides(tmp_path):
    bundle = PolicyBundle(verify_signatures="disabled", ceilings=Ceilings(500, 64 << 20))
    extra = "  resources: {cpu: '2', memory: 32Mi}\n"
    with pytest.raises(ResourcesInvalid, match="requested cpu 2000m exceeds ceiling 500m"):
        _plan(tmp_path, "network", "secure", bundle, extra=extra)
    plan = _plan(tmp_path / "ok", "", "secure", bundle)
    container = plan.steps[0].container
    assert container is not None
    assert (container.cpu_millis, container.memory_bytes) == (500, 64 << 20)


def test_an_image_ref_with_a_scheme_is_refused(tmp_path):
    with pytest.raises(ImageRefInvalid, match="has a scheme"):
        _plan(tmp_path, "", "disabled", PolicyBundle(), image="https://ghcr.io/org/app:1")


def test_a_container_job_without_a_runtime_fails_fast(tmp_path):
    job, binding, root = _job(tmp_path, "")
    with pytest.raises(ContainerRuntimeUnavailable) as info:
        build_plan(job, binding, profile="secure", workspace=tmp_path, scripts_root=root)
    assert info.value.problem.code == "container.runtime.unavailable"
