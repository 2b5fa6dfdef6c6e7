#!/usr/bin/env bash
echo "pipeline: build done (run ${FLWD_RUN_ID})"
