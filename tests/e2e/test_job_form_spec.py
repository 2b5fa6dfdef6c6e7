"""``GET /jobs/{id}`` gives a form everything it needs of each argument (the web UI builds
its forms from it), and never a secret's value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import write_job

DEV = {"Authorization": "Bearer dev-token"}
FORM = """interpreter: bash
argspec:
  args:
    - {name: name, type: string, required: true, description: Who to greet,
       minLength: 1, maxLength: 20, pattern: "^[A-Za-z ]+$"}
    - {name: level, type: string, enum: [debug, info, warn], default: info}
    - {name: count, type: integer, minimum: 1, maximum: 10, default: 3}
    - {name: ratio, type: number, minimum: 0, maximum: 1}
    - {name: loud, type: boolean, default: false}
    - {name: tags, type: array, items_type: integer, items_enum: [1, 2, 3]}
    - {name: meta, type: object, value_type: boolean}
    - {name: api_token, type: string, format: secret, description: API token}
    - {name: key, type: string, secret: true}
"""


def test_every_argument_carries_what_its_form_needs(server_factory: Any,
                                                    workspace: Path) -> None:
    write_job(workspace, "form", FORM, {})
    server = server_factory("--dev")
    job = httpx.get(f"{server.url}/jobs/form", headers=DEV, timeout=30).json()
    assert job["args"] == [
        {"name": "name", "type": "string", "required": True, "description": "Who to greet",
         "minLength": 1, "maxLength": 20, "pattern": "^[A-Za-z ]+$"},
        {"name": "level", "type": "string", "default": "info",
         "enum": ["debug", "info", "warn"]},
        {"name": "count", "type": "integer", "default": 3, "minimum": 1, "maximum": 10},
        {"name": "ratio", "type": "number", "minimum": 0, "maximum": 1},
        {"name": "loud", "type": "boolean", "default": False},
        {"name": "tags", "type": "array", "items_type": "integer", "items_enum": [1, 2, 3]},
        {"name": "meta", "type": "object", "value_type": "boolean"},
        # A secret says so in one member however it was declared, and has no default.
        {"name": "api_token", "type": "string", "format": "secret", "secret": True,
         "description": "API token"},
        {"name": "key", "type": "string", "secret": True},
    ]
    # The plan preview shows the same argspec; a secret given is shown as a mark.
    plan = httpx.post(f"{server.url}/plans", headers=DEV, timeout=30, json={
        "job_id": "form", "args": {"name": "Ann", "api_token": "s3cr3t-token-value"}})
    assert plan.status_code == 200, plan.text
    assert plan.json()["effective_argspec"]["args"] == job["args"]
    assert plan.json()["resolved_args"]["api_token"] == "[secret]"
    assert "s3cr3t-token-value" not in plan.text
