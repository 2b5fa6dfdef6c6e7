#!/usr/bin/env bash
echo "fail: about to fail with status ${code}" >&2
exit "${code}"
