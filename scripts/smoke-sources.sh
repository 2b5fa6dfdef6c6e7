#!/usr/bin/env bash
# Smoke test of job sources against a running `flwd :serve` (README, "Sources").
#
# Registers a source, plans JOB_ID with the `source` hint, starts a run, waits
# for it, prints the provenance and the first NDJSON events, checks the run
# completed and removes the source. Any failed step exits non-zero with a
# message naming the step (and the server's problem detail).
#
#   FLWD_URL      server (default http://127.0.0.1:8080)
#   FLWD_TOKEN    bearer token (default dev-token: `flwd :serve --dev`)
#   SOURCE_TYPE   local (default) or git
#   SOURCE_NAME   default smoke-<type>
#   SOURCE_REF    local: the folder holding the jobs, relative to the server's
#                 scripts root or absolute; it must be inside the scripts root
#                 or an `:serve --allow-path` (default examples: the bundled
#                 scripts/examples, inside the scripts root, so the defaults
#                 pass against `flwd :serve --dev` run in the repository)
#   SOURCE_URL    git: the repository (file:// needs an --allow-path; other
#                 hosts a --git-allow-host)
#   GIT_REF       git: branch, tag or commit (default main)
#   JOB_ID        the job, without the source prefix (default vars, the job
#                 scripts/examples/vars; a git source needs its own)
#   JOB_ARGS      its arguments as a JSON object (default {})
#   EVENTS        how many events to print (default 10)
#   TIMEOUT       seconds to wait for the run (default 60)
#
# Examples:
#   scripts/smoke-sources.sh      # against `flwd :serve --dev` in the repository
#   SOURCE_REF=$HOME/extra-scripts JOB_ID=hello JOB_ARGS='{"name": "Alice"}' \
#     scripts/smoke-sources.sh    # with `:serve --dev --allow-path ~/extra-scripts`
#   SOURCE_TYPE=git SOURCE_URL=file:///path/to/repo GIT_REF=main JOB_ID=gitjob \
#     scripts/smoke-sources.sh
set -euo pipefail

FLWD_URL=${FLWD_URL:-http://127.0.0.1:8080}
FLWD_URL=${FLWD_URL%/}
FLWD_TOKEN=${FLWD_TOKEN:-dev-token}
SOURCE_TYPE=${SOURCE_TYPE:-local}
SOURCE_NAME=${SOURCE_NAME:-smoke-$SOURCE_TYPE}
JOB_ID=${JOB_ID:-vars}
JOB_ARGS=${JOB_ARGS:-"{}"}
EVENTS=${EVENTS:-10}
TIMEOUT=${TIMEOUT:-60}

step="setup"
registered=""
work=$(mktemp -d)

fail() {
    echo "smoke-sources: FAILED at step '$step': $*" >&2
    exit 1
}

cleanup() {
    local status=$?
    # A failure after registration must not leave the smoke source behind.
    if [[ -n $registered ]]; then
        curl -sS -o /dev/null -X DELETE -H "Authorization: Bearer $FLWD_TOKEN" \
            "$FLWD_URL/sources/$registered" || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

# api METHOD PATH [BODY] EXPECTED-CODES...: the response body in $work/body.
api() {
    local method=$1 path=$2 body=$3 code status
    shift 3
    local args=(-sS --fail-with-body -o "$work/body" -w '%{http_code}' -X "$method"
                -H "Authorization: Bearer $FLWD_TOKEN" -H 'Accept: application/json')
    if [[ -n $body ]]; then
        args+=(-H 'Content-Type: application/json' --data-binary "$body")
    fi
    status=0
    code=$(curl "${args[@]}" "$FLWD_URL$path" 2>"$work/curl.err") || status=$?
    if [[ $status -ne 0 && $status -ne 22 ]]; then
        fail "$method $path: cannot reach $FLWD_URL ($(tr '\n' ' ' <"$work/curl.err"))"
    fi
    local expected
    for expected in "$@"; do
        [[ $code == "$expected" ]] && return 0
    done
    local detail
    detail=$(jq -r '(.detail // .title // empty) + (if .hint then " (" + .hint + ")" else "" end)' \
        "$work/body" 2>/dev/null || true)
    fail "$method $path answered HTTP $code (expected $*): ${detail:-$(head -c 300 "$work/body")}"
}

step="check tools"
for tool in curl jq; do
    command -v "$tool" >/dev/null || fail "$tool is required"
done
[[ $JOB_ARGS == "{}" ]] || jq -e 'type == "object"' <<<"$JOB_ARGS" >/dev/null 2>&1 ||
    fail "JOB_ARGS must be a JSON object (got $JOB_ARGS)"

step="reach server"
api GET /healthz "" 200 204

step="register source"
case $SOURCE_TYPE in
    local)
        request=$(jq -nc --arg name "$SOURCE_NAME" --arg ref "${SOURCE_REF:-examples}" \
            '{type: "local", name: $name, ref: $ref}') ;;
    git)
        [[ -n ${SOURCE_URL:-} ]] || fail "SOURCE_TYPE=git needs SOURCE_URL"
        request=$(jq -nc --arg name "$SOURCE_NAME" --arg url "$SOURCE_URL" \
            --arg ref "${GIT_REF:-main}" '{type: "git", name: $name, url: $url, ref: $ref}') ;;
    *)
        fail "SOURCE_TYPE must be local or git (got $SOURCE_TYPE)" ;;
esac
api POST /sources "$request" 201 200
registered=$SOURCE_NAME
echo "== source $SOURCE_NAME ($SOURCE_TYPE): $(jq -c '{status, jobs, resolved_ref}' "$work/body")"

step="plan $JOB_ID"
run_request=$(jq -nc --arg job "$JOB_ID" --argjson args "$JOB_ARGS" --arg name "$SOURCE_NAME" \
    '{job_id: $job, args: $args, source: {name: $name}}')
api POST /plans "$run_request" 200
echo "== plan provenance"
jq '.provenance' "$work/body"
jq -e '.provenance.source.name == $name' --arg name "$SOURCE_NAME" "$work/body" >/dev/null ||
    fail "the plan's provenance.source does not name $SOURCE_NAME"

step="start run"
api POST /runs "$run_request" 201 200 202
run_id=$(jq -r '.id // empty' "$work/body")
[[ -n $run_id ]] || fail "no run id in the answer"
echo "== run $run_id"

step="wait for run $run_id"
deadline=$((SECONDS + TIMEOUT))
while :; do
    api GET "/runs/$run_id" "" 200
    status=$(jq -r '.status' "$work/body")
    case $status in
        completed | failed | canceled | interrupted) break ;;
    esac
    ((SECONDS < deadline)) || fail "still $status after ${TIMEOUT}s"
    sleep 0.2
done
echo "== run provenance"
jq '.provenance' "$work/body"
cp "$work/body" "$work/run"

step="read events of run $run_id"
api GET "/runs/$run_id/events.ndjson" "" 200
echo "== first $EVENTS events"
head -n "$EVENTS" "$work/body"

step="check run $run_id"
[[ $status == completed ]] ||
    fail "the run ended $status: $(jq -r '.error // "exit code \(.exit_code)"' "$work/run")"

step="remove source"
api DELETE "/sources/$SOURCE_NAME" "" 204
registered=""

echo "== smoke-sources: OK ($SOURCE_TYPE source $SOURCE_NAME, job $JOB_ID, run $run_id)"
