"""A model too big for the machine's memory is refused, with its sizes, before it is built."""

import pytest

from qwenvl.cli import train
from qwenvl.host_memory import check_host_memory, count_parameters, host_bytes_needed
from qwenvl.models import EncoderConfig, LLMConfig, QwenVLModel, ResamplerConfig
from qwenvl.models.llm import build_llm
from qwenvl.tokenizer import QwenVLTokenizer
from qwenvl.training.stages import StageConfig, apply_freezing

NODES = {  # Hydra nodes as the train config holds them
    "encoder": {"_target_": "qwenvl.models.EncoderConfig"},
    "adapter": {"_target_": "qwenvl.models.ResamplerConfig", "num_queries": 16},
}


def test_bytes_counted_per_process_with_training_state_on_a_cpu_run():
    assert host_bytes_needed(100, 10, processes=1, on_cpu=False) == 400  # float32 weights alone
    assert host_bytes_needed(100, 10, processes=1, on_cpu=True) == 400 + 10 * 12  # + grad, AdamW
    assert host_bytes_needed(100, 10, processes=8, on_cpu=False) == 8 * 400  # each process builds it
    # FSDP: every rank builds it, then the shards hold one model's state across the ranks
    assert host_bytes_needed(100, 10, 8, on_cpu=False, sharded=True) == 8 * 400
    assert host_bytes_needed(100, 10, 2, on_cpu=True, sharded=True) == max(2 * 400, 400 + 120)
    # rank0_init: rank 0's whole model alone, beside the shards it fills on a CPU run
    assert host_bytes_needed(100, 10, 8, on_cpu=False, sharded=True, rank0_init=True) == 400
    assert host_bytes_needed(100, 10, 8, on_cpu=True, sharded=True, rank0_init=True) == 400 + 400 + 120


def test_refused_only_when_it_does_not_fit():
    check_host_memory(100, 10, 1, True, available=520)  # fits exactly
    check_host_memory(100, 10, 1, True, available=None)  # unknown: nothing checked
    with pytest.raises(MemoryError, match=r"need .* GiB of host memory for 2 processes .* is available"):
        check_host_memory(10**9, 0, 2, False, available=2**30)
    with pytest.raises(MemoryError, match=r"parallel.rank0_init=true"):  # named where it would help
        check_host_memory(10**9, 0, 2, False, available=2**30, sharded=True)


@pytest.mark.parametrize("pretrained", [False, True])
def test_the_count_on_the_meta_device_is_the_built_models(tmp_path, pretrained):
    tok = QwenVLTokenizer.default()
    llm = {"_target_": "qwenvl.models.LLMConfig"}
    if pretrained:  # a checkpoint of another shape than the llm fields' defaults, fewer rows too
        other = LLMConfig(hidden_size=64, layers=1, heads=2, kv_heads=1, intermediate_size=96)
        build_llm(other, 1024).save_pretrained(tmp_path / "llm")
        llm["pretrained"] = str(tmp_path / "llm")
    stage = StageConfig.from_mapping({"name": "pretrain", "image_size": 224})
    total, trained = count_parameters(NODES["encoder"], NODES["adapter"], llm, stage, tok)
    model = QwenVLModel.from_config(
        encoder=EncoderConfig(image_size=224),
        adapter=ResamplerConfig(num_queries=16),
        llm=LLMConfig(pretrained=llm.get("pretrained")),
        tokenizer=tok,
    )
    apply_freezing(model, stage)
    assert (total, trained) == (model.num_parameters(), model.num_parameters(trainable_only=True))
    assert 0 < trained < total  # pretrain freezes the LLM


def test_qwenvl_train_refuses_before_building_the_model(run_app, monkeypatch, tmp_path):
    monkeypatch.setattr(train, "available_host_memory", lambda: 2**20)  # a machine of 1 MiB
    r = run_app(train.main, f"hydra.run.dir={tmp_path / 'run'}", "logger=none", "trainer.accelerator=cpu")
    assert r.code == 1
    assert "GiB of host memory for 1 process on this machine, and 0.0 GiB is available" in r.err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_pretrained_llm_directory_without_its_config_is_named(run_app, tmp_path):
    r = run_app(train.main, f"hydra.run.dir={tmp_path / 'run'}", "logger=none", f"llm.pretrained={tmp_path}")
    assert r.code == 1 and "no config.json there (a local HF checkpoint dir)" in r.err


def test_a_saved_model_too_big_to_load_is_refused_before_it_is_built(tmp_path, monkeypatch):
    from qwenvl import host_memory

    model = QwenVLModel.from_config(adapter=ResamplerConfig(num_queries=16))
    model.save_pretrained(tmp_path / "m")
    QwenVLModel.from_pretrained(tmp_path / "m")  # fits
    monkeypatch.setattr(host_memory, "available_host_memory", lambda: 2**20)  # a machine of 1 MiB
    with pytest.raises(MemoryError, match=r"B parameters in float32 need 0.0 GiB of host memory to load"):
        QwenVLModel.from_pretrained(tmp_path / "m")
