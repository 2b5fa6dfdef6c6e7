"""The container and add-on metrics (issue 14 item 6) against a real registry and Podman:
a pull is counted when an image comes from the registry — when an oci source is added
``on-add``, or when a container step needs an image that is not there — never for a run
of an image already present; invalid manifests and new oci sources are counted.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import scrape

from .conftest import AUTH, AddonImage, add, events, podman

pytestmark = pytest.mark.usefixtures("no_containers_at_all")


def value(url: str, name: str, **labels: str) -> float:
    return scrape(url)[(name, frozenset(labels.items()))]


def test_pulls_runs_manifests_and_oci_sources_are_counted(
        addon_server: Any, addon_images: dict[str, AddonImage]) -> None:
    server = addon_server()
    url = server.url
    assert value(url, "flwd_container_pulls_total", outcome="ok") == 0

    # Each add pulls first (on-add), then reads the manifest.
    for name in ("invalid", "nomanifest"):
        refused = add(server, {"type": "oci", "ref": addon_images[name].ref, "trusted": True})
        assert refused.json()["code"] == "E_ADDON_MANIFEST", refused.text
    assert value(url, "flwd_addon_manifest_invalid_total") == 2
    missing = add(server, {"type": "oci", "ref": addon_images["missing"].ref, "trusted": True})
    assert missing.json()["code"] == "E_OCI", missing.text
    assert value(url, "flwd_container_pulls_total", outcome="error") == 1
    assert value(url, "flwd_sources_added_total", type="oci") == 0

    image = addon_images["addon"]
    added = add(server, {"type": "oci", "ref": image.ref, "trusted": True,
                         "pull_policy": "on-add"})
    assert added.status_code == 201, added.text
    assert value(url, "flwd_sources_added_total", type="oci") == 1
    assert value(url, "flwd_addon_manifest_invalid_total") == 2
    assert value(url, "flwd_container_pulls_total", outcome="ok") == 3

    # A run of an image that is present pulls nothing.
    body = {"job_id": "addon/greet", "args": {"who": "Ann"}}
    run = httpx.post(f"{url}/runs", json=body, headers=AUTH, timeout=60)
    assert run.status_code == 201, run.text
    assert events(server, run.json()["id"])[-1]["data"]["status"] == "completed"
    assert value(url, "flwd_container_runs_total") == 1
    assert value(url, "flwd_container_pulls_total", outcome="ok") == 3

    # Gone from local storage: the step pulls it (by its pinned digest) and is timed.
    podman("rmi", "--force", image.ref)
    run = httpx.post(f"{url}/runs", json=body, headers=AUTH, timeout=60)
    assert events(server, run.json()["id"])[-1]["data"]["status"] == "completed"
    assert value(url, "flwd_container_runs_total") == 2
    assert value(url, "flwd_container_pulls_total", outcome="ok") == 4
    assert value(url, "flwd_container_pull_seconds_count") == 4
    assert value(url, "flwd_container_pulls_total", outcome="error") == 1
