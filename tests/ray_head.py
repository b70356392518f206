"""A Ray head for tests: ``python tests/ray_head.py CPUS`` starts a one-node cluster on
127.0.0.1 (no dashboard, no usage statistics), prints ``ADDRESS <gcs address>`` and runs
until its stdin closes, then shuts the whole cluster down. Tying the cluster's life to a pipe
means it cannot outlive the test that started it, even when that test crashes."""

from __future__ import annotations

import logging
import os
import sys

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def main() -> int:
    import ray

    cpus = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    context = ray.init(num_cpus=cpus, num_gpus=0, include_dashboard=False, object_store_memory=100 * 1024 ** 2,
                       _node_ip_address="127.0.0.1", logging_level=logging.WARNING)
    print(f"ADDRESS {context.address_info['gcs_address']}", flush=True)
    try:
        sys.stdin.read()
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
