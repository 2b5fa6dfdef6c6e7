"""``Idempotency-SHA256`` on ``POST /runs`` (issue 14 item 2; reference §8.5 step 2, §8.6).

A reference client sends the SHA-256 of its body's canonical JSON; the bodies here
are sent as written (spaces, key order, ``1.0``, HTML characters) and the canonical
bytes are spelled out by hand, as a Go client's ``json.Marshal`` writes them.
"""

from __future__ import annotations

import hashlib

import httpx
import pytest

DEV = {"Authorization": "Bearer dev-token", "Content-Type": "application/json"}
BODY = '{ "job_id": "demo",\n  "args": {"name": "Zoë <&> 😀", "tags": ["b", "a"]} }'
CANONICAL = ('{"args":{"name":"Zoë \\u003c\\u0026\\u003e 😀","tags":["b","a"]},'
             '"job_id":"demo"}')
SHA = hashlib.sha256(CANONICAL.encode()).hexdigest()


def _post(server, body: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}/runs", content=body.encode(), headers={**DEV, **headers},
                      timeout=60)


def _runs(server) -> int:
    return int(httpx.get(f"{server.url}/runs", headers=DEV).headers["X-Total-Count"])


def test_a_matching_hash_starts_the_run_in_either_case(dev_server) -> None:
    for sent in (SHA, SHA.upper()):
        response = _post(dev_server, BODY, **{"Idempotency-SHA256": sent})
        assert response.status_code == 201, response.text
        assert response.json()["result"]["resolved_args"]["name"] == "Zoë <&> 😀"
    assert _runs(dev_server) == 2  # without an Idempotency-Key, each request is a run


def test_with_an_idempotency_key_the_retry_is_a_replay(dev_server) -> None:
    headers = {"Idempotency-SHA256": SHA, "Idempotency-Key": "reference-client-0000000001"}
    first = _post(dev_server, BODY, **headers)
    again = _post(dev_server, BODY, **headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replay"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert _runs(dev_server) == 1


def test_a_number_is_hashed_as_written(dev_server) -> None:
    # `1.0` and `1` are one value to Python and two spellings to the reference.
    body = '{"job_id":"demo","args":{"name":"n","count":1.0}}'
    as_written = hashlib.sha256(b'{"args":{"count":1.0,"name":"n"},"job_id":"demo"}')
    as_python = hashlib.sha256(b'{"args":{"count":1,"name":"n"},"job_id":"demo"}')
    mismatch = _post(dev_server, body, **{"Idempotency-SHA256": as_python.hexdigest()})
    assert mismatch.status_code == 409
    assert mismatch.json()["computed_sha256"] == as_written.hexdigest()


def test_a_mismatch_is_409_with_both_hashes_and_starts_nothing(dev_server) -> None:
    other = hashlib.sha256(b'{"args":{"name":"someone else"},"job_id":"demo"}').hexdigest()
    for headers in ({"Idempotency-SHA256": other},
                    {"Idempotency-SHA256": "0" * 64, "Idempotency-Key": "reference-client-2"}):
        response = _post(dev_server, BODY, **headers)
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["title"] == "idempotency hash mismatch"
        assert problem["code"] == "idempotency-key-conflict"
        assert problem["type"].endswith("/idempotency-key-conflict")
        assert problem["incoming_sha256"] == headers["Idempotency-SHA256"]
        assert problem["computed_sha256"] == SHA
    assert _runs(dev_server) == 0
    # The key of the refused request was not taken: it still starts a run.
    accepted = _post(dev_server, BODY, **{"Idempotency-Key": "reference-client-2"})
    assert accepted.status_code == 201 and "Idempotent-Replay" not in accepted.headers


@pytest.mark.parametrize("sent", ["", "abc", SHA[:63], SHA + "0", "g" * 64, f"sha256:{SHA}",
                                  f"{SHA[:32]} {SHA[32:]}"])
def test_a_malformed_header_is_400(dev_server, sent: str) -> None:
    response = _post(dev_server, BODY, **{"Idempotency-SHA256": sent})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["title"] == "invalid Idempotency-SHA256 header"
    assert problem["code"] == "invalid-idempotency-sha256"
    assert "64 hex digits" in problem["detail"]


def test_the_body_is_checked_before_the_header(dev_server) -> None:
    response = _post(dev_server, '{"job_id": "demo", "unknown": 1}',
                     **{"Idempotency-SHA256": "0" * 64})
    assert response.status_code == 400 and response.json()["code"] == "invalid-request-body"
