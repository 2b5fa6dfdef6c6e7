#!/usr/bin/env bash
set -euo pipefail
greet "${who}"
