#!/bin/sh
# Runs inside the container: the job dir is mounted read-only, the run dir read-write.
echo "Hello ${ARG_NAME} from inside a container!"
if [ -n "${ARG_SECRET_TOKEN_FILE:-}" ] && [ -r "$ARG_SECRET_TOKEN_FILE" ]; then
  echo "a secret is available at $ARG_SECRET_TOKEN_FILE"
fi
