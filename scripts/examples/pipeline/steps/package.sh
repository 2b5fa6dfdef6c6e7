#!/usr/bin/env bash
echo "pipeline: package done (run ${FLWD_RUN_ID})"
