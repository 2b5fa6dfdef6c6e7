"""Any interpreter works: a .py script runs with python3."""
import json
import os

args = json.loads(os.environ["FLWD_ARGS_JSON"])
for i in range(args["count"]):
    print(f"python: {args['mode']} line {i + 1}")
