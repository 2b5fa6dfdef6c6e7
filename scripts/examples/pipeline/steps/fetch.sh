#!/usr/bin/env bash
echo "pipeline: fetch done (run ${FLWD_RUN_ID})"
