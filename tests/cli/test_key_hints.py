"""A misspelt key's error names the keys that exist where it went, closest first."""

from qwenvl.cli import pipeline, train
from qwenvl.cli.key_hints import hints, missing_keys


def test_each_misspelt_key_gets_a_line_naming_the_keys_of_its_node():
    lines = missing_keys("train", ["trainer.max_stepz=5", "max_steps=3", "stage.lrr=1", "traner.x=1"])
    assert len(lines) == 3
    assert lines[0].startswith("trainer.max_stepz: no such key. Did you mean max_steps?")
    assert "The keys under trainer: " in lines[0] and "accumulate_grad_batches" in lines[0]
    assert lines[1].startswith("stage.lrr: no such key. Did you mean lr?")
    assert lines[2].startswith("traner.x: no such key. Did you mean trainer?")
    assert "The keys at the top level: " in lines[2]


def test_keys_are_looked_up_under_the_group_options_chosen():
    # `max_objects` is a key of the `locate` stage alone, `stem` of the tiny encoder alone: the
    # lookup applies the group options first, wherever they stand on the command line.
    assert missing_keys("train", ["stage.max_objects={grounding:2}", "stage=locate"]) == []
    assert missing_keys("train", ["stage.max_objects={grounding:2}"])[0].startswith(
        "stage.max_objects: no such key."
    )
    assert missing_keys("train", ["encoder.stem=conv"]) == []
    assert "The keys under encoder: " in missing_keys("train", ["encoder.stem=conv", "encoder=vit_l_14"])[0]
    assert missing_keys("pipeline", ["steps.objects=3", "stages=[objects]"]) == []


def test_sweeps_are_looked_up_at_their_first_value_and_bad_values_get_no_line():
    assert missing_keys("train", ["trainer.max_stepz=5,6"])[0].startswith("trainer.max_stepz:")
    assert missing_keys("train", ["max_steps=abc", "stage=multitsk"]) == []  # Hydra names these
    assert missing_keys("train", ["experiment=nope", "debug=fdrr"]) == []  # groups unset by default
    assert hints("train", ["--config-dir", "/elsewhere", "stage.lrr=1"]) == []  # not reproducible


def test_a_failed_app_prints_the_lines_after_hydras_message(run_app):
    r = run_app(train.main, "trainer.max_stepz=5")
    assert r.code == 1
    assert "Key 'max_stepz' is not in struct" in r.err  # Hydra's own message stays
    assert r.err.index("not in struct") < r.err.index("Did you mean max_steps?")


def test_a_misspelt_key_in_per_stage_names_its_stage_and_the_keys_there(run_app, tmp_path):
    misspelt = "per_stage.multitask=['stage.lr_scale.encodr=0.1']"
    r = run_app(pipeline.main, f"hydra.run.dir={tmp_path}", misspelt)
    assert r.code == 1
    assert "stage 5 (multitask), with per_stage.multitask=['stage.lr_scale.encodr=0.1']" in r.err
    assert "stage.lr_scale.encodr: no such key. Did you mean encoder? The keys under stage.lr_scale:" in r.err
    assert not (tmp_path / "1_objects").exists()  # refused before the first stage trains
