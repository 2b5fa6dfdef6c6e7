# A library function available to the job's bash scripts.
greet() {
  local text="${EXAMPLES_GREETING}, $1${PUNCTUATION}"
  if [ "${SHOUT}" = yes ]; then text="${text^^}"; fi
  echo "vars: ${text}"
}
