"""qwenvl-bench: time training steps of a model config on synthetic inputs.

    qwenvl-bench                                            # tiny model on CPU, seconds
    qwenvl-bench stage=sft batch_size=8 text_tokens=512     # stage 3's freezing (encoder frozen)
    qwenvl-bench experiment=bench_proxy_1b5                 # ViT-L/14 448 px + Qwen2-1.5B shape, GPU
    qwenvl-bench experiment=bench_proxy_1b5 dry_run=true    # parameters and FLOPs only (meta device)

Every sample is one image plus `text_tokens` text tokens with random ids, the text supervised,
built once before timing: the loop measures forward, backward, clipping and the AdamW step, never
data loading. Reports the median step time over `steps` (after `warmup` untimed steps), tokens/s
(all LLM positions, image tokens included), samples/s, peak memory and, where the device's peak
rate is known, MFU = model FLOPs per second / peak (see qwenvl.training.flops). Weights are
random: a step's speed does not depend on them.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from qwenvl.cli.key_hints import with_key_hints
from qwenvl.host_memory import BYTES_PER_PARAM, BYTES_PER_TRAINED_PARAM, available_host_memory
from qwenvl.models.build import build_model, load_tokenizer
from qwenvl.models.qwen_vl import QwenVLModel
from qwenvl.paths import CONF_DIR
from qwenvl.tokenizer import IMG_END, IMG_PAD, IMG_START, SPECIAL_TOKENS, QwenVLTokenizer
from qwenvl.training.flops import PARTS, StepFlops, model_step_flops
from qwenvl.training.optim import build_optimizer
from qwenvl.training.stages import StageConfig, apply_freezing

# Dense bf16 peak TFLOP/s from NVIDIA's datasheets (the sparse figures are twice these). Looked up
# by substring of torch.cuda.get_device_name, first match wins: PCIe and NVL H100s are slower
# than the SXM part whose name is plain "NVIDIA H100 80GB HBM3".
PEAK_BF16_TFLOPS = (
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("A100", 312.0),
)  # fmt: skip


def peak_tflops_for(device_name: str) -> float | None:
    """Dense bf16 peak of a known accelerator in TFLOP/s, None when unknown."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in device_name), None)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("qwenvl-bench: device=cuda but no CUDA device is visible")
    return torch.device(name)


def resolve_autocast(dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain float32."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if dtype in ("bfloat16", "bf16"):
        return torch.bfloat16
    if dtype in ("float32", "fp32"):
        return None
    raise ValueError(f"dtype must be auto, float32 or bfloat16, got {dtype!r}")


def model_config(cfg: DictConfig) -> DictConfig:
    """The encoder/adapter/llm groups with the bench's resolution, random weights, nothing loaded."""
    node = OmegaConf.create(
        {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("encoder", "adapter", "llm")}
    )
    node.encoder.image_size = int(cfg.image_size)
    node.encoder.checkpoint = None
    node.llm.pretrained = None  # the shape is the config's; a checkpoint would only slow the build
    return node


def build(cfg: DictConfig, tokenizer: QwenVLTokenizer, device: torch.device | str) -> QwenVLModel:
    """The model on `device` ("meta" allocates nothing), frozen per `stage.trainable`."""
    with torch.device(device):
        model = build_model(model_config(cfg), tokenizer)
    apply_freezing(model, trainable_stage(cfg))
    return model


def trainable_stage(cfg: DictConfig) -> StageConfig:
    stage = OmegaConf.to_container(cfg.stage, resolve=True)
    return StageConfig.from_mapping(stage)


def synthetic_batch(
    model: QwenVLModel, tokenizer: QwenVLTokenizer, batch_size: int, text_tokens: int, seed: int
) -> dict[str, torch.Tensor]:
    """One image and `text_tokens` text tokens per row: `<img>`, Q pads, `</img>`, random text.

    The two image markers are text tokens, so each row is exactly Q + text_tokens long; the
    random text (ordinary ids only: a stray `<imgpad>` would break the image count) is the target.
    """
    if text_tokens < 3:
        raise ValueError(f"text_tokens must be >= 3 (the two image markers and a target), got {text_tokens}")
    g = torch.Generator().manual_seed(seed)
    special = {tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    ordinary = torch.tensor([i for i in range(tokenizer.vocab_size) if i not in special])
    text = ordinary[torch.randint(len(ordinary), (batch_size, text_tokens - 2), generator=g)]
    ids = [tokenizer.convert_tokens_to_ids(t) for t in (IMG_START, IMG_PAD, IMG_END)]
    q = model.image_tokens
    image_span = torch.tensor([ids[0]] + [ids[1]] * q + [ids[2]]).expand(batch_size, -1)
    input_ids = torch.cat([image_span, text], dim=1)
    labels = input_ids.clone()
    labels[:, : q + 2] = -100  # the image span is never a target
    size = model.image_size
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": labels,
        "pixel_values": torch.randn(batch_size, 3, size, size, generator=g),
    }


def available_memory(device: torch.device) -> int | None:
    """Free bytes on the device (MemAvailable on a Linux host), None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return available_host_memory()


def peak_memory(device: torch.device) -> tuple[int, str]:
    """(bytes, what was measured): the CUDA allocator's peak, or this process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "CUDA max allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss if sys.platform == "darwin" else rss * 1024), "peak RSS"  # Linux reports KiB


def time_steps(
    model: QwenVLModel, batch: dict, cfg: DictConfig, device: torch.device, amp: torch.dtype | None
) -> list[float]:
    """Seconds per training step for `cfg.steps` timed steps after `cfg.warmup` untimed ones."""
    stage = trainable_stage(cfg)
    total_steps = cfg.warmup + cfg.steps
    opt, sched = build_optimizer(
        model, stage.lr, stage.weight_decay, stage.betas, 0, total_steps, 1.0, stage.lr_scale
    )
    trained = [p for p in model.parameters() if p.requires_grad]
    forward = torch.compile(model) if cfg.compile else model
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model.train()
    times = []
    for step in range(total_steps):
        sync()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = forward(**batch).loss
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        sync()  # CUDA work is asynchronous: wait for it before reading the clock
        if step >= cfg.warmup:
            times.append(time.perf_counter() - t0)
    if not torch.isfinite(loss.detach()):
        raise SystemExit(f"qwenvl-bench: the loss became {loss.item()}; the timings are meaningless")
    return times


def _fmt(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M' (SI prefixes up to P)."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}{unit}"
    return f"{n:.3g} {unit}".rstrip()


def _choices() -> str:
    if not HydraConfig.initialized():
        return ""
    choices = HydraConfig.get().runtime.choices
    groups = ("encoder", "adapter", "llm", "stage", "experiment")
    return " ".join(f"{g}={choices[g]}" for g in groups if choices.get(g) is not None)


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def describe(model: QwenVLModel, flops: StepFlops, cfg: DictConfig, seq_len: int) -> list[tuple[str, str]]:
    """Table rows about the model and the work of one step (needs no timing)."""
    per_part = ", ".join(
        f"{p} {_fmt(sum(x.numel() for x in getattr(model, p).parameters()))}"
        f"{'' if flops[p].trained else ' (frozen)'}"
        for p in PARTS
    )
    trained = model.num_parameters(trainable_only=True)
    return [
        ("parameters", f"{_fmt(model.num_parameters())} ({per_part}); {_fmt(trained)} trained"),
        ("batch", f"{cfg.batch_size} x ({model.image_tokens} image + {cfg.text_tokens} text) = "
                  f"{cfg.batch_size * seq_len} tokens, {model.image_size} px"),
        ("FLOPs/step", f"{_fmt(flops.total, 'FLOP')} (forward {_fmt(flops.forward)}, "
                       f"backward {_fmt(flops.backward)}; "
                       + ", ".join(f"{p.name} {_fmt(p.total)}" for p in flops.parts) + ")"),
    ]  # fmt: skip


def run(cfg: DictConfig) -> dict:
    """Build, (optionally) time, print the table; returns the figures as a dict."""
    if cfg.steps < 1 or cfg.warmup < 0 or cfg.batch_size < 1:
        raise ValueError(f"need steps >= 1, warmup >= 0, batch_size >= 1; got {cfg.steps}, {cfg.warmup}, "
                         f"{cfg.batch_size}")  # fmt: skip
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.tokenizer)
    trainable = trainable_stage(cfg).trainable
    # The meta build costs no memory: parameters and FLOPs are known before anything is allocated.
    meta = build(cfg, tokenizer, "meta")
    seq_len = meta.image_tokens + cfg.text_tokens
    supervised = cfg.text_tokens - 2  # every token of the random text after `</img>` is a target
    flops = model_step_flops(meta, cfg.batch_size, seq_len, supervised, trainable)
    result = {
        "config": _choices(),
        "batch_size": cfg.batch_size,
        "image_tokens": meta.image_tokens,
        "text_tokens": cfg.text_tokens,
        "image_size": meta.image_size,
        "parameters": meta.num_parameters(),
        "trained_parameters": meta.num_parameters(trainable_only=True),
        "tokens_per_step": cfg.batch_size * seq_len,
        "flops_per_step": flops.total,
    }
    rows = describe(meta, flops, cfg, seq_len)
    print(f"qwenvl-bench {result['config']}".rstrip())
    if cfg.dry_run:
        print(_table(rows + [("dry run", "built on the meta device; nothing timed")]))
        return result

    device = resolve_device(cfg.device)
    amp = resolve_autocast(cfg.dtype, device)
    need = meta.num_parameters() * BYTES_PER_PARAM + result["trained_parameters"] * BYTES_PER_TRAINED_PARAM
    free = available_memory(device)
    if free is not None and need > free:
        print(_table(rows))
        raise SystemExit(
            f"qwenvl-bench: weights, gradients and AdamW state need {need / 2**30:.1f} GiB before any "
            f"activation, but {device.type} has {free / 2**30:.1f} GiB free; use a bigger device, a smaller "
            "config, or dry_run=true for parameters and FLOPs alone"
        )
    del meta
    model = build(cfg, tokenizer, device)
    if cfg.activation_checkpointing:
        model.encoder.transformer.grad_checkpointing = True  # open_clip's own switch
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    batch = synthetic_batch(model, tokenizer, cfg.batch_size, cfg.text_tokens, cfg.seed)
    batch = {k: v.to(device) for k, v in batch.items()}  # built once: no data work in the timed loop
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = time_steps(model, batch, cfg, device, amp)
    step = statistics.median(times)
    mem, mem_kind = peak_memory(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = cfg.peak_tflops if cfg.peak_tflops is not None else peak_tflops_for(name)
    mfu = flops.total / step / (peak * 1e12) if peak else None
    result.update(
        device=name, dtype=str(amp or torch.float32).removeprefix("torch."), step_s=step,
        step_min_s=min(times), step_max_s=max(times), tokens_per_s=result["tokens_per_step"] / step,
        samples_per_s=cfg.batch_size / step, peak_memory_bytes=mem, peak_tflops=peak, mfu=mfu,
        compile=bool(cfg.compile), activation_checkpointing=bool(cfg.activation_checkpointing),
    )  # fmt: skip
    rows += [
        ("device", f"{name}, {result['dtype']}{', compiled' if cfg.compile else ''}"
                   f"{', activation checkpointing' if cfg.activation_checkpointing else ''}"),
        ("step time", f"{step * 1e3:.1f} ms median ({min(times) * 1e3:.1f}-{max(times) * 1e3:.1f}; "
                      f"{cfg.steps} timed after {cfg.warmup} warmup)"),
        ("tokens/s", f"{result['tokens_per_s']:,.0f}"),
        ("samples/s", f"{result['samples_per_s']:,.2f}"),
        ("achieved", f"{_fmt(flops.total / step, 'FLOP/s')}"),
        ("peak memory", f"{mem / 2**30:.2f} GiB ({mem_kind})"),
        ("MFU", f"{mfu:.1%} of {peak:g} TFLOP/s" if mfu is not None
                else f"n/a (no peak rate known for {name!r}; set peak_tflops=...)"),
    ]  # fmt: skip
    print(_table(rows))
    if HydraConfig.initialized():
        out = Path(HydraConfig.get().runtime.output_dir) / "bench.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"  saved {out}")
    return result


@with_key_hints("bench")
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="bench")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
