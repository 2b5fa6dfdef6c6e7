#!/usr/bin/env bash
echo "pipeline: test done (run ${FLWD_RUN_ID})"
