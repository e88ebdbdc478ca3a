"""Where the Hydra configs live: the repository's top-level `conf/` (editable installs)."""

from pathlib import Path

import qwenvl.resolvers  # noqa: F401  (registers the resolvers every config may use)

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"
BENCH_DIR = ROOT / "evaluation" / "benchmarks"  # one YAML file per benchmark
