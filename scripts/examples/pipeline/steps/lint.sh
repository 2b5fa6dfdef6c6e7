#!/usr/bin/env bash
echo "pipeline: lint done (run ${FLWD_RUN_ID})"
