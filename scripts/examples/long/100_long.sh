#!/usr/bin/env bash
# A leader that waits on a background grandchild. Cancelling the run must
# terminate both, even when the grandchild ignores SIGTERM.
set -u
if [ "${ignore_term}" = true ]; then
  bash -c 'trap "" TERM; echo "long: grandchild $$ ignores SIGTERM"; while :; do sleep 1; done' &
else
  bash -c 'echo "long: grandchild $$ started"; exec sleep '"${seconds}" &
fi
echo "long: leader $$ running for ${seconds}s"
for ((i = 1; i <= seconds; i++)); do
  sleep 1
  echo "long: tick ${i}"
done
wait
