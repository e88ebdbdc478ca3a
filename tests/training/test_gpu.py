"""GPU training: bf16 autocast, SDPA attention, gradient accumulation, MFU logging, FSDP2 on one device
(its export gathered over NCCL, the pipeline's stages chained through it).

Every test here is marked `gpu` and skipped, visibly, without a CUDA device (tests/conftest.py).
"""

import csv
import json
import math
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

from qwenvl import QwenVLModel
from qwenvl.cli import bench
from qwenvl.evaluation.load import load_for_eval
from qwenvl.models import LLMConfig, ResamplerConfig
from qwenvl.paths import CONF_DIR

pytestmark = pytest.mark.gpu

COMMON = [
    "data.batch_size=4",
    "data.train.size=200",
    "data.val.size=4",
    "adapter.num_queries=16",
    "stage=multitask",
    "stage.image_size=224",
    "callbacks.progress=null",
    "callbacks.benchmark_validation=null",
]


def _batch(model, device):
    """Two rows of `<img>` pads then supervised random text, on `device`."""
    tok = bench.load_tokenizer(None)
    b = bench.synthetic_batch(model, tok, batch_size=2, text_tokens=24, seed=0)
    return {k: v.to(device) for k, v in b.items()}


def test_llm_attention_is_sdpa_and_matches_eager_on_cuda():
    torch.manual_seed(0)
    model = QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=16)).cuda().eval()
    assert model.llm.config._attn_implementation == "sdpa"
    # The same weights built with eager attention through the config, as `llm.attn_implementation=eager`
    reference = QwenVLModel.from_config(
        adapter=ResamplerConfig(num_queries=16), llm=LLMConfig(attn_implementation="eager")
    )
    reference.load_state_dict(model.state_dict())
    reference = reference.cuda().eval()
    batch = _batch(model, "cuda")
    with torch.no_grad():
        sdpa = model(**batch).loss.item()
        eager = reference(**batch).loss.item()
    assert math.isfinite(sdpa) and abs(sdpa - eager) < 1e-3 * abs(eager)


def test_bf16_autocast_loss_is_close_to_float32():
    torch.manual_seed(0)
    model = QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=16)).cuda().eval()
    batch = _batch(model, "cuda")
    with torch.no_grad():
        fp32 = model(**batch).loss.item()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(**batch)
    # Autocast runs the matrix products in bf16 (8 bits of mantissa): ~1% on a random model's loss.
    assert abs(out.loss.item() - fp32) < 0.02 * fp32


def test_gpu_trainer_accumulates_to_the_global_batch_and_logs_mfu(tmp_path, train_cli):
    out = tmp_path / "gpu"
    train_cli(out, *COMMON, "trainer=gpu", "logger=csv", "max_steps=6", "trainer.accumulate_grad_batches=2",
           "trainer.log_every_n_steps=1", "callbacks.throughput.window_size=2")  # fmt: skip
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 6  # optimizer steps: 12 micro-batches of 4 at accumulation 2
    assert ckpt["hyper_parameters"]["stage"]["name"] == "multitask"
    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    mfu = [float(r["train/device/mfu"]) for r in rows if r.get("train/device/mfu")]
    loss = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert mfu and all(0 < m < 1 for m in mfu)  # a fraction of the H100/H200/A100 bf16 peak
    assert loss and all(math.isfinite(v) for v in loss)


def test_fsdp2_on_one_gpu_in_bf16_saves_a_sharded_checkpoint(tmp_path, train_cli):
    out = tmp_path / "fsdp"
    r = train_cli(
        out,
        *COMMON,
        "trainer=fsdp",
        "trainer.accelerator=gpu",
        "trainer.devices=1",
        "logger=none",
        "parallel.param_dtype=bf16",
        "max_steps=2",
        "checkpoint_every=2",
        "parallel.rank0_init=true",
    )  # fmt: skip  (its broadcast over NCCL, to the one rank)
    assert "FSDP2: 6 units sharded over 1 ranks" in r.stdout + r.stderr
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_dir() and list(last.glob("*.distcp"))
    # The full model, gathered from the shards over NCCL, equals the shards tensor for tensor.
    exported = out / "checkpoints" / "last.model"
    load_for_eval(exported)  # strict: every weight there, none extra
    full = load_file(exported / "model.safetensors")
    dcp_to_torch_save(last, tmp_path / "consolidated.pt")
    shards = torch.load(tmp_path / "consolidated.pt", weights_only=True)["state_dict"]
    assert full.keys() == {k.removeprefix("model.") for k in shards}
    assert all(torch.equal(v, shards[f"model.{k}"].cpu()) for k, v in full.items())


def test_pipeline_on_one_gpu_chains_fsdp_stages_through_the_exported_model(tmp_path):
    out = tmp_path / "pipeline"
    tiny = ["logger=none", "callbacks.progress=null", "trainer=fsdp", "trainer.accelerator=gpu",
            "trainer.devices=1", "stages=[pretrain,sft]", "steps.pretrain=2", "steps.sft=2",
            "data.batch_size=2", "data.train.size=40", "data.val.size=4", "eval.limit=4",
            "eval.resamples=20", "eval.gallery=0", "eval.gap_samples=4",
            "eval.benchmarks=[synthetic_vqa]", "eval.controls=[swapped]"]  # fmt: skip
    cmd = [sys.executable, "-m", "qwenvl.cli.pipeline", f"hydra.run.dir={out}", *tiny]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    stages = json.loads((out / "summary.json").read_text())["stages"]
    for i, name in enumerate(("pretrain", "sft"), start=1):
        assert stages[name]["checkpoint"] == str(out / f"{i}_{name}" / "checkpoints" / "last.model")
    pretrain = load_file(out / "1_pretrain" / "checkpoints" / "last.model" / "model.safetensors")
    sft = load_file(out / "2_sft" / "checkpoints" / "last.model" / "model.safetensors")
    # sft freezes the encoder: pretrain's weights exactly (its position table re-gridded to 448 px)
    encoder = [k for k in pretrain if k.startswith("encoder.") and k != "encoder.positional_embedding"]
    assert encoder and all(torch.equal(pretrain[k], sft[k]) for k in encoder)
    assert not torch.equal(pretrain["adapter.query"], sft["adapter.query"])


def test_bench_on_cuda_reports_bf16_throughput_and_mfu():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="bench", overrides=["device=cuda", "steps=3", "warmup=1"])
    result = bench.run(cfg)
    assert result["dtype"] == "bfloat16" and result["tokens_per_s"] > 0
    assert result["peak_memory_bytes"] > 0
    if result["peak_tflops"] is not None:  # a known device: H100, H200, A100
        assert 0 < result["mfu"] < 1
