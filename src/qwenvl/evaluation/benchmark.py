"""A benchmark: a dataset of Samples, how to prompt and generate, and which metrics to report.

Defined by one YAML in the top-level `evaluation/benchmarks/` (the Hydra group `benchmark`):

    name: synthetic_vqa
    dataset: {_target_: qwenvl.data.synthetic.SyntheticWorld, split: test, tasks: [vqa], ...}
    fmt: plain              # the same templates as training
    max_new_tokens: 10
    min_new_tokens: 0
    postprocess: first_line # how generated text becomes an answer
    metrics: [exact_match]  # names from qwenvl.evaluation.scoring.SCORERS
    limit: null             # score only the first N samples
    kind: generate          # or choice: multiple choice scored by each option's likelihood
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch.utils.data import Dataset


@dataclass
class Benchmark:
    name: str
    dataset: Dataset
    metrics: list[str]
    fmt: str = "plain"
    max_new_tokens: int = 32
    min_new_tokens: int = 0
    postprocess: str = "first_line"
    limit: int | None = None
    kind: str = "generate"  # generate | choice (multiple choice by option likelihood)
    extra: dict = field(default_factory=dict)  # e.g. {"box_scale": 999} for Qwen-VL's grounding script

    def __len__(self) -> int:
        n = len(self.dataset)
        return n if self.limit is None else min(n, self.limit)


def postprocess(text: str, how: str) -> str:
    """Generated text -> the answer that is scored."""
    if how == "none":
        return text
    if how == "strip":
        return text.strip()
    if how == "first_line":
        return text.strip().split("\n")[0].strip()
    raise ValueError(f"unknown postprocess {how!r}; expected none, strip or first_line")


def benchmark_names(directory) -> list[str]:
    """The benchmarks defined in `directory`: its YAML files' names, sorted."""
    from pathlib import Path

    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def check_benchmarks(names, directory) -> None:
    """Every name a benchmark file in `directory`: a misspelt one fails before any work, not after
    the training or the benchmarks before it."""
    known = benchmark_names(directory)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"no benchmark {unknown} in {directory}; known: {known}")


def load_benchmark(name: str, directory, **variables) -> Benchmark:
    """`evaluation/benchmarks/<name>.yaml` -> Benchmark; `variables` fill `${...}` (image_size, data_root)."""
    from pathlib import Path

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    path = Path(directory) / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark {name!r} in {directory}; known: {benchmark_names(directory)}")
    cfg = OmegaConf.merge(OmegaConf.create(variables), OmegaConf.load(path))
    spec = OmegaConf.to_container(cfg, resolve=True)
    for key in variables:
        spec.pop(key, None)
    spec["dataset"] = instantiate(spec["dataset"])
    names = {f for f in Benchmark.__dataclass_fields__}
    unknown = sorted(set(spec) - names)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; valid keys are {sorted(names)}")
    return Benchmark(**spec)
