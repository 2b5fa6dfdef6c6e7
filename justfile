# flwd developer recipes (https://just.systems). `just --list` shows them.

venv := ".venv"
python := venv / "bin/python"

# Create the virtualenv and install flwd with its development tools.
setup:
    python3 -m venv {{venv}}
    {{venv}}/bin/pip install -e '.[dev]'

# Run the whole test suite.
test *args:
    {{python}} -m pytest {{args}}

# Linters: ruff (with the ASYNC rules) and mypy --strict.
lint:
    {{venv}}/bin/ruff check .
    {{venv}}/bin/mypy

# Run every benchmark under bench/ and print their figures.
bench:
    {{python}} bench/output_throughput.py
    {{python}} bench/cli_overhead.py
    {{python}} bench/serve_throughput.py
    {{python}} bench/sse_fanout.py
    {{python}} bench/idle_memory.py
    {{python}} bench/container_overhead.py
    {{python}} bench/completion_latency.py

# Start the server (serve mode) on loopback with the dev token.
serve:
    {{venv}}/bin/flwd :serve --bind 127.0.0.1:8080 --dev
