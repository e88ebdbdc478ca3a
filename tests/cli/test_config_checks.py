"""A misspelt value fails before any work, naming what was wrong and what is valid."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from qwenvl.cli import pipeline as pipeline_cli
from qwenvl.cli.eval import evaluate
from qwenvl.cli.train import check_evaluation
from qwenvl.paths import CONF_DIR
from qwenvl.training.stages import StageConfig


@pytest.fixture
def hydra_conf():
    """Compose configs (and let the pipeline's checks compose theirs) as the entry points do."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda name, overrides=(): compose(config_name=name, overrides=list(overrides))


@pytest.mark.parametrize(
    "field, message",
    [
        (
            {"trainable": {"encoder": True, "adapter": True, "llm": "flase"}},
            "stage.trainable.llm='flase'; expected true",
        ),
        ({"text_only": "no"}, "stage.text_only='no'; expected true or false"),
        ({"fmt": "chatm"}, "stage.fmt='chatm'; expected one of ('plain', 'chatml')"),
        ({"image_size": "448px"}, "stage.image_size='448px'; expected a whole number >= 1"),
        ({"lr": "fast"}, "stage.lr='fast'; expected a number >= 0"),
        ({"tasks": ["vqa", "groundng"]}, "unknown or no tasks ['groundng']; the tasks: ("),
        ({"tasks": ["vqa", "ocr"], "task_weights": [1.0]}, "1 weights for 2 tasks (['vqa', 'ocr'])"),
    ],
)
def test_a_wrong_stage_value_is_refused_naming_it(field, message):
    # bool("flase") is True: unchecked, a part meant to be frozen would train
    with pytest.raises(ValueError) as e:
        StageConfig(**field)
    assert message in str(e.value)


def test_every_stage_file_builds():
    from qwenvl.cli.pipeline import stage_options

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for stage in stage_options():
            cfg = compose(config_name="train", overrides=[f"stage={stage}"])
            assert StageConfig.from_mapping(cfg.stage).name == stage


def _check_pipeline(conf, overrides):
    overrides = [
        *overrides,
        "out_dir=/nonexistent",
    ]  # out_dir is Hydra's run dir otherwise; nothing is written
    pipeline_cli.check_stages(conf("pipeline", overrides), overrides)


def test_a_wrong_value_for_a_late_stage_fails_before_the_first_trains(hydra_conf):
    bad = "per_stage.multitask=['stage.lr_scale.encoder=0.1','stage.loss_mean=samples']"
    with pytest.raises(ValueError, match=r"stage 5 \(multitask\): stage.loss_mean='samples'"):
        _check_pipeline(hydra_conf, [bad])
    _check_pipeline(hydra_conf, ["per_stage.multitask=['stage.loss_mean=sample']"])  # the right one passes


@pytest.mark.parametrize(
    "override, use",
    [("max_steps=5", "steps.<stage>=N"), ("+per_stage.sft=['max_steps=10']", "steps.<stage>=N"),
     ("stage=sft", "stages=[...]")],
)  # fmt: skip
def test_what_the_pipeline_sets_per_stage_cannot_be_overridden_silently(hydra_conf, override, use):
    with pytest.raises(
        ValueError, match="the pipeline sets .* for each stage; use " + use.replace("[", r"\[")
    ):
        _check_pipeline(hydra_conf, [override])


def test_a_stage_without_steps_is_refused(hydra_conf):
    with pytest.raises(ValueError, match=r"steps.pretrain=0; a stage trains at least 1 step"):
        _check_pipeline(hydra_conf, ["steps.pretrain=0"])


def test_the_pipelines_benchmarks_and_gap_tasks_are_checked_first(hydra_conf):
    with pytest.raises(
        ValueError, match=r"no benchmark \['synthetic_vqaa'\] in .*known: \[.*'synthetic_vqa'"
    ):
        pipeline_cli.check_eval(
            hydra_conf("pipeline", ["eval.benchmarks=[synthetic_vqa,synthetic_vqaa]"]).eval
        )
    with pytest.raises(ValueError, match=r"eval.gap_tasks names \['vqaa'\], which are no task"):
        pipeline_cli.check_eval(hydra_conf("pipeline", ["eval.gap_tasks=[caption,vqaa]"]).eval)
    pipeline_cli.check_eval(hydra_conf("pipeline").eval)


def test_train_checks_its_benchmarks_and_optimize_before_training(hydra_conf):
    with pytest.raises(ValueError, match=r"no benchmark \['synthetic_vqaa'\]"):
        check_evaluation(hydra_conf("train", ["evaluate.benchmarks=[synthetic_vqaa]"]))
    with pytest.raises(
        ValueError, match=r"optimize='synthetic_ocr/acc': expected .* among evaluate.benchmarks"
    ):
        check_evaluation(
            hydra_conf("train", ["evaluate.benchmarks=[synthetic_vqa]", "optimize=synthetic_ocr/acc"])
        )
    check_evaluation(
        hydra_conf("train", ["evaluate.benchmarks=[synthetic_vqa]", "optimize=synthetic_vqa/acc"])
    )
    check_evaluation(hydra_conf("train"))  # val/loss


def test_eval_checks_every_benchmark_before_loading_the_checkpoint(tmp_path):
    # the checkpoint does not exist: were it loaded first, that error would come instead
    with pytest.raises(ValueError, match=r"no benchmark \['synthetic_vqaa'\]"):
        evaluate(str(tmp_path / "missing.ckpt"), ["synthetic_vqa", "synthetic_vqaa"], tmp_path)


def test_an_experiment_wins_over_the_search_it_runs_under(hydra_conf):
    cfg = hydra_conf("train", ["hparams_search=optuna", "experiment=ablation_llm_frozen"])
    assert cfg.optimize == "synthetic_caption/cider"
    assert cfg.evaluate.limit == 100 and "synthetic_caption" in cfg.evaluate.benchmarks


@pytest.mark.parametrize(
    "config, override, message",
    [
        ("train", "+evaluate.limt=3", "evaluate.limt: no such setting"),
        ("train", "+parallel.param_dtyp=bf16", "parallel.param_dtyp: no such setting"),
        ("train", "+max_step=5", "max_step: no such setting"),
        ("pipeline", "+eval.limt=3", "eval.limt: no such setting"),
    ],
)
def test_a_setting_added_with_a_plus_that_nothing_reads_is_refused(hydra_conf, config, override, message):
    from qwenvl.cli.known_keys import check_known_keys

    with pytest.raises(ValueError, match=message) as e:
        check_known_keys(hydra_conf(config, [override]), config, [override])
    assert "limit" in str(e.value) or "param_dtype" in str(e.value) or "max_steps" in str(e.value)


@pytest.mark.parametrize(
    "config, overrides",
    [
        ("train", ["+stage.max_objects={grounding: 1}"]),  # a group's node takes new keys
        ("pipeline", ["+steps.x_locate=5", "+per_stage.sft=['stage.lr=1e-4']"]),  # new stages
        ("pipeline", ["experiment=pipeline_long"]),
        ("train", ["experiment=ablation_queries"]),
    ],
)
def test_settings_that_are_read_pass(hydra_conf, config, overrides):
    from qwenvl.cli.known_keys import check_known_keys

    check_known_keys(hydra_conf(config, overrides), config, overrides)


def test_an_experiment_on_the_users_search_path_may_add_settings(hydra_conf, tmp_path):
    from qwenvl.cli.known_keys import check_known_keys

    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\nmy_setting: 3\n")
    searchpath, overrides = f"hydra.searchpath=[file://{tmp_path}]", ["experiment=mine"]
    cfg = hydra_conf("train", [searchpath, *overrides])
    assert cfg.my_setting == 3
    check_known_keys(cfg, "train", overrides, [searchpath])


def _experiment_stages(hydra_conf, experiment: str) -> dict:
    """Each stage of a pipeline experiment composed as the pipeline composes it, after its checks."""
    overrides = [f"experiment={experiment}", "out_dir=/nonexistent"]
    cfg = hydra_conf("pipeline", overrides)
    pipeline_cli.check_stages(cfg, overrides)
    return {
        name: pipeline_cli._compose_stage(cfg, overrides, i, name) for i, name in enumerate(cfg.stages, 1)
    }


def test_the_grounding_experiment_gives_each_stage_its_settings(hydra_conf):
    stages = _experiment_stages(hydra_conf, "pipeline_grounding")
    assert list(stages) == ["objects", "warmup", "pretrain", "multitask_224", "locate", "remix_224",
                            "multitask", "sft"]  # fmt: skip
    for composed in stages.values():  # the adapter is built the same way in every stage
        assert composed.adapter.local_bias == 4.0 and composed.adapter.pos_out is True
    locate = StageConfig.from_mapping(OmegaConf.to_container(stages["locate"].stage, resolve=True))
    assert locate.tasks == ["grounding"] and not locate.trainable["encoder"] and locate.min_lr_ratio == 1.0
    remix = StageConfig.from_mapping(OmegaConf.to_container(stages["remix_224"].stage, resolve=True))
    assert remix.image_size == 224 and remix.lr == 3.0e-4 and remix.task_weights[2] == 3
    multitask = stages["multitask"].stage
    assert multitask.lr == 5.0e-4 and multitask.lr_scale.encoder == 0.1 and multitask.image_size == 448
    # the default keeps Qwen-VL's adapter
    default = hydra_conf("pipeline", ["out_dir=/nonexistent"])
    assert default.adapter.local_bias == 0.0 and default.adapter.pos_out is False


def test_the_lookups_experiment_gives_each_stage_its_settings(hydra_conf):
    stages = _experiment_stages(hydra_conf, "pipeline_lookups")
    assert list(stages) == ["objects", "warmup", "pretrain", "multitask_224", "lookups", "remix_224",
                            "multitask", "sft"]  # fmt: skip
    for composed in stages.values():  # model and tokenizer are built the same way in every stage
        assert composed.adapter.local_bias == 4.0 and composed.adapter.pos_out is True
        assert composed.encoder.stem == "conv" and composed.tokenizer == "letters"
    lookups = StageConfig.from_mapping(OmegaConf.to_container(stages["lookups"].stage, resolve=True))
    assert dict(zip(lookups.tasks, lookups.task_weights, strict=True)) == {
        "caption": 0.5,
        "vqa": 0.5,
        "grounding": 2,
        "ocr": 2,
    }
    assert not lookups.trainable["encoder"] and lookups.min_lr_ratio == 1.0 and lookups.image_size == 224
    for name in ("remix_224", "multitask"):
        stage = StageConfig.from_mapping(OmegaConf.to_container(stages[name].stage, resolve=True))
        assert dict(zip(stage.tasks, stage.task_weights, strict=True))["ocr"] == 2
    sft = StageConfig.from_mapping(OmegaConf.to_container(stages["sft"].stage, resolve=True))
    assert "ocr" in sft.tasks and sft.trainable["encoder"] is False
    default = hydra_conf("pipeline", ["out_dir=/nonexistent"])  # the default: patch stem, built-in BPE
    assert default.encoder.stem == "patch" and default.tokenizer is None
