"""qwenvl-bench and the data-pipeline benchmark run and report their figures."""

import re

import pytest
from hydra import compose, initialize_config_dir

from qwenvl.cli import bench
from qwenvl.data import bench as data_bench
from qwenvl.paths import CONF_DIR


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="bench", overrides=list(overrides))


def _number(label: str, text: str) -> float:
    match = re.search(rf"{label}\s+([\d,.]+)", text)
    assert match, f"no {label!r} in:\n{text}"
    return float(match.group(1).replace(",", ""))


def test_tiny_bench_on_cpu_reports_throughput(tmp_path, run_app):
    r = run_app(bench.main, "device=cpu", "steps=2", "warmup=1", "batch_size=2", "text_tokens=32")
    assert r.code == 0, r.err[-2000:]
    assert _number("tokens/s", r.out) > 0 and _number("samples/s", r.out) > 0
    assert "peak memory" in r.out and "MFU" in r.out
    assert list(tmp_path.glob("runs/bench/*/*/bench.json"))


def test_proxy_dry_run_counts_parameters_and_flops(capsys):
    result = bench.run(_cfg("experiment=bench_proxy_1b5", "dry_run=true"))
    out = capsys.readouterr().out
    # ViT-L/14 at 448 px 304 M + resampler 14 M + Qwen2-1.5B with tied embeddings 1544 M.
    assert 1.80e9 < result["parameters"] < 1.95e9
    assert re.search(r"parameters\s+1\.8\d G", out), out
    assert result["tokens_per_step"] == 8 * (256 + 768)
    # Everything trained: roughly 6 x 1.31 G non-embedding LLM weights x 8192 tokens and more.
    assert 80e12 < result["flops_per_step"] < 110e12


def test_bench_refuses_a_model_that_cannot_fit(monkeypatch, capsys):
    monkeypatch.setattr(bench, "available_memory", lambda device: 1024)
    with pytest.raises(SystemExit, match="GiB free"):
        bench.run(_cfg("device=cpu", "text_tokens=16"))


def test_synthetic_batch_is_one_image_plus_text_tokens():
    cfg = _cfg("image_size=56", "adapter.num_queries=4")
    tok = bench.load_tokenizer(None)
    model = bench.build(cfg, tok, "meta")
    b = bench.synthetic_batch(model, tok, batch_size=3, text_tokens=10, seed=0)
    assert b["input_ids"].shape == (3, 4 + 10) and b["pixel_values"].shape == (3, 3, 56, 56)
    pad = tok.convert_tokens_to_ids("<imgpad>")
    assert (b["input_ids"] == pad).sum(1).tolist() == [4, 4, 4]
    assert (b["labels"][:, 1:] != -100).sum(1).tolist() == [8, 8, 8]  # text after `</img>`


def test_peak_rates_by_device_name():
    assert bench.peak_tflops_for("NVIDIA H100 80GB HBM3") == 989
    assert bench.peak_tflops_for("NVIDIA H100 PCIe") == 756
    assert bench.peak_tflops_for("NVIDIA H200") == 989
    assert bench.peak_tflops_for("NVIDIA A100-SXM4-80GB") == 312
    assert bench.peak_tflops_for("cpu") is None


def test_data_bench_reports_rates_and_packing(capsys):
    result = data_bench.main(["--samples", "16", "--workers", "0", "--pack-samples", "16"])
    out = capsys.readouterr().out
    assert float(re.search(r"num_workers 0: ([\d.]+) samples/s", out).group(1)) > 0, out
    assert result["loader"][0]["samples"] == 16 and result["loader"][0]["samples_per_s"] > 0
    assert 0 < _number("packing efficiency", out) <= 1
    assert 0 < result["packing"]["efficiency"] <= 1


def test_resume_bench_times_both_ways_of_resuming_a_stream(capsys):
    from qwenvl.data import bench_resume

    args = ["--shards", "2", "--per-shard", "6", "--batches", "3", "--batch-size", "2", "--repeats", "1"]
    result = bench_resume.main(args)
    assert result["at_positions_s"] > 0 and result["reading_past_s"] > 0
    assert "first batch after a resume at 3 batches of 2" in capsys.readouterr().out
