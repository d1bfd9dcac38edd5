"""One batch worker process: runs :func:`dagtier.batch_ray.drain` (what each Ray actor runs)
with the WorkerConfig given as JSON, and prints what it did as JSON.

Usage: python _drain_worker.py CONFIG_JSON
"""

from __future__ import annotations

import json
import sys

import anyio

from dagtier.batch_ray import WorkerConfig, drain


def main() -> None:
    config = WorkerConfig(**json.loads(sys.argv[1]))
    done = anyio.run(drain, config)
    print(json.dumps({"ran": done.ran, "exhausted": done.exhausted}))


if __name__ == "__main__":
    main()
