"""What a plan says about images, sans-IO (issue 14 item 9, reference §5 and §12.5):
``executor_preview.container_image``, ``steps[].container_image``, ``image_trust`` (of the
plan and of each step) and an add-on job's ``requirements.tools``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flwd.containers import Runtime
from flwd.jobs import bind_json, discover
from flwd.plan import Plan, build_plan
from flwd.policy import PolicyBundle, PolicyContext, Verdict
from flwd.sources import Source, SourceState, index_source, parse_request

PODMAN = Runtime("podman", "/usr/bin/podman")
SIGNED = "localhost/flwd-test/signed:1"


def verifier(ref: str) -> Verdict:
    """The tests' verifier: images named ``signed`` verify, others do not."""
    return Verdict(True) if "signed" in ref else Verdict(False, f"no signature for {ref}")


def plan_of(tmp_path: Path, config: str, *, mode: Any = None, profile: Any = "permissive",
            scripts: tuple[str, ...] = ("100_main.sh",), image_map: dict[str, str] | None = None,
            ) -> dict[str, Any]:
    root = tmp_path / "scripts"
    job_dir = root / "boxed"
    (job_dir / "config.d").mkdir(parents=True)
    (job_dir / "config.d" / "config.yaml").write_text(config)
    for name in scripts:
        (job_dir / name).write_text("#!/bin/sh\necho hi\n")
    job = discover(root).get("boxed")
    policy = PolicyContext(PolicyBundle(verify_signatures=mode), verifier, image_map or {})
    plan = build_plan(job, bind_json(job.config.args, {}, job_id=job.id), profile=profile,
                      workspace=tmp_path, scripts_root=root, policy=policy, runtime=PODMAN)
    document: dict[str, Any] = plan.to_json()
    return document


def test_a_container_interpreter_job(tmp_path: Path) -> None:
    """Reference test 98: ``interpreter: container:IMAGE`` → executor container + its image."""
    plan = plan_of(tmp_path, f"interpreter: 'container:{SIGNED}'\n", mode="required")
    preview = plan["executor_preview"]
    assert preview["executor"] == "container" and preview["container_image"] == SIGNED
    assert plan["image_trust"] == {"image": SIGNED, "mode": "required", "verified": True}
    (step,) = plan["steps"]
    assert step["container_image"] == SIGNED and step["image_trust"] == plan["image_trust"]


def test_container_image_is_what_the_job_names_and_trust_what_runs(tmp_path: Path) -> None:
    """With FLWD_IMAGE_MAP the job's image is replaced; the check (and the run) is on the
    replacement, ``container_image`` keeps the job's own words."""
    plan = plan_of(tmp_path, "executor: container\ncontainer: {image: 'alpine:3.20'}\n",
                   mode="permissive", scripts=("100_a.sh", "200_b.sh"),
                   image_map={"alpine:3.20": "localhost/other/busybox:1"})
    assert plan["executor_preview"]["container_image"] == "alpine:3.20"
    assert plan["executor_preview"]["container"]["image"] == "localhost/other/busybox:1"
    trust = {"image": "localhost/other/busybox:1", "mode": "permissive", "verified": False,
             "reason": "no signature for localhost/other/busybox:1"}
    assert plan["image_trust"] == trust
    assert [step["container_image"] for step in plan["steps"]] == ["alpine:3.20"] * 2
    assert all(step["image_trust"] == trust for step in plan["steps"])


def test_no_image_trust_when_verification_is_disabled(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, f"executor: container\ncontainer: {{image: '{SIGNED}'}}\n",
                   mode="disabled")
    assert "image_trust" not in plan and "image_trust" not in plan["steps"][0]
    assert plan["steps"][0]["container_image"] == SIGNED


def test_a_host_job_has_no_image(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "interpreter: /bin/sh\n", mode="required")
    assert plan["executor_preview"]["executor"] == "proc"
    assert "container_image" not in plan["executor_preview"]
    assert "image_trust" not in plan and "container_image" not in plan["steps"][0]


def dag(images: list[str], job_image: str | None) -> str:
    config: dict[str, Any] = {"executor": "container", "composition": "steps", "steps": [
        {"id": f"s{index}", "script": f"{index}.sh", "container": {"image": image}}
        for index, image in enumerate(images)]}
    if job_image is not None:
        config["container"] = {"image": job_image}
    return yaml.safe_dump(config)


def test_a_dag_with_two_steps(tmp_path: Path) -> None:
    """Reference test 99: each step its image; no plan-level image_trust for two steps."""
    plan = plan_of(tmp_path, dag([f"{SIGNED}8", f"{SIGNED}9"], f"{SIGNED}0"),
                   mode="required", scripts=("0.sh", "1.sh"))
    preview = plan["executor_preview"]
    assert preview["composition"] == "steps" and preview["container_image"] == f"{SIGNED}0"
    assert [s["container_image"] for s in plan["steps"]] == [f"{SIGNED}8", f"{SIGNED}9"]
    assert [s["image_trust"]["image"] for s in plan["steps"]] == [f"{SIGNED}8", f"{SIGNED}9"]
    assert "image_trust" not in plan


def test_a_dag_of_one_step_has_the_plan_level_trust(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, dag([SIGNED], None), mode="required", scripts=("0.sh",))
    assert "container_image" not in plan["executor_preview"]  # no job-level image
    assert plan["image_trust"] == plan["steps"][0]["image_trust"]
    assert plan["image_trust"]["verified"] is True


MANIFEST = {
    "apiVersion": "flwd.addon/v1", "kind": "AddOn",
    "metadata": {"name": "Example add-on"}, "requires": {},
    "jobs": [{"id": "build", "name": "Build", "summary": "builds", "argspec": {},
              "requirements": {"tools": [{"name": "make", "version": "4"}, {"name": "sh"}]},
              "command": ["/addon/build.sh"]},
             {"id": "look", "name": "Look", "summary": "plans only", "argspec": {}}],
}


def addon_plan(tmp_path: Path, job_id: str, digest: str | None) -> Plan:
    home = tmp_path / "sources" / "addon"
    home.mkdir(parents=True)
    (home / "manifest.yaml").write_text(yaml.safe_dump(MANIFEST))
    spec = parse_request({"type": "oci", "ref": "ghcr.io/example/signed-addon:1.0.0",
                          "trusted": True, "name": "addon"})
    source = Source(spec, SourceState(status="ready", root=str(home), checkout_path=str(home),
                                      digest=digest, labels={"a": "b"}))
    job = index_source(source).catalog.get(job_id)
    policy = PolicyContext(PolicyBundle(verify_signatures="required"), verifier)
    return build_plan(job, bind_json(job.config.args, {}, job_id=job.id), profile="secure",
                      workspace=tmp_path, scripts_root=tmp_path, policy=policy,
                      runtime=PODMAN)


def test_an_addon_plan(tmp_path: Path) -> None:
    """Reference test 114: the ref, the digest, image_trust, one entry per tool."""
    digest = "sha256:" + "e" * 64
    plan = addon_plan(tmp_path, "addon/build", digest).to_json()
    ref = "ghcr.io/example/signed-addon:1.0.0"
    pinned = f"ghcr.io/example/signed-addon@{digest}"
    preview = plan["executor_preview"]
    assert (preview["executor"], preview["container_image"], preview["resolved_digest"]) == (
        "container", ref, digest)
    assert plan["image_trust"] == {"image": pinned, "mode": "required", "verified": True}
    assert plan["requirements"] == {"tools": [{"name": "make", "version": "4"},
                                              {"name": "sh"}], "status": "unknown"}
    (step,) = plan["steps"]
    assert step["container_image"] == ref and step["image_trust"] == plan["image_trust"]
    source = plan["provenance"]["source"]
    assert source["metadata"]["labels"] == {"a": "b"}
    assert source["metadata"]["digest"] == digest


def test_an_addon_job_without_command_or_tools(tmp_path: Path) -> None:
    plan = addon_plan(tmp_path, "addon/look", None).to_json()
    assert plan["steps"] == [] and "requirements" not in plan
    # Planned though not runnable: its image was still checked.
    assert plan["image_trust"]["image"] == "ghcr.io/example/signed-addon:1.0.0"
