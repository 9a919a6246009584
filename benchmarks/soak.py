"""The multi-day soak as a benchmark: `python benchmarks/soak.py [--quick] [--run-dir DIR] ...`,
the same as `stock-pipelines soak` (docs/reliability.md)."""

import sys

from stock_pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main(["soak", *sys.argv[1:]]))
