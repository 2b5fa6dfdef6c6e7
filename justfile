# flwd developer recipes (https://just.systems). `just --list` shows them.

venv := ".venv"
python := venv / "bin/python"

# Create the virtualenv and install flwd with its development tools. An editable install
# writes no .pyc of flwd's own modules (a normal `pip install` compiles them): compile them
# here, or each start compiles what it imports (PYTHONDONTWRITEBYTECODE=1 keeps it so).
# `editable_mode=compat`: the checkout on sys.path through a plain .pth, not setuptools'
# import finder, which every Python start of the venv imports (~12 ms: pathlib…).
setup:
    python3 -m venv {{venv}}
    {{venv}}/bin/pip install -e '.[dev]' --config-settings editable_mode=compat
    {{python}} -m compileall -q flwd actors

# Run the whole test suite.
test *args:
    {{python}} -m pytest {{args}}

# Linters: ruff (with the ASYNC rules) and mypy --strict.
lint:
    {{venv}}/bin/ruff check .
    {{venv}}/bin/mypy

# Run every benchmark under bench/ and write bench/REPORT.md (each figure beside its
# baseline measured in the same run). Any one alone: python bench/NAME.py --help.
bench:
    {{python}} bench/run_all.py

# Retake the web UI's screenshots in docs/images (light/dark, desktop/phone) with the
# browser tests' own tooling (Debian's chromium).
screenshots:
    FLWD_UI_SCREENSHOTS=docs/images {{python}} -m pytest -q tests/ui/test_ui_screenshots.py

# Start the server (serve mode) on loopback with the dev token.
serve:
    {{venv}}/bin/flwd :serve --bind 127.0.0.1:8080 --dev
