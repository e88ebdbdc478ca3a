"""The pipeline's per-stage record: read back as written, refused when it is not one or not ours."""

import pytest

from qwenvl.training.stage_record import StageMismatch, read_record, write_record

OVERRIDES = ["stage=warmup", "max_steps=12"]


def test_a_record_reads_back_and_an_absent_one_is_none(tmp_path):
    assert read_record(tmp_path, "warmup", OVERRIDES) is None
    write_record(tmp_path, "warmup", OVERRIDES, "trained", {"val/loss": 1.5})
    record = read_record(tmp_path, "warmup", OVERRIDES)
    assert record["status"] == "trained" and record["metrics"] == {"val/loss": 1.5}
    assert not (tmp_path / "stage.tmp").exists()  # written through a temporary file, then renamed


def test_other_settings_or_another_stage_are_refused_naming_the_difference(tmp_path):
    write_record(tmp_path, "warmup", OVERRIDES, "done")
    differs = r"only there: \['max_steps=12'\].*only in this run: \['max_steps=13'\]"
    with pytest.raises(StageMismatch, match=differs):
        read_record(tmp_path, "warmup", ["stage=warmup", "max_steps=13"])
    with pytest.raises(StageMismatch, match="'warmup'"):
        read_record(tmp_path, "sft", OVERRIDES)


def test_a_file_that_is_not_a_record_names_itself(tmp_path):
    (tmp_path / "stage.json").write_text("{not json")
    with pytest.raises(ValueError, match="stage.json: not a stage record"):
        read_record(tmp_path, "warmup", OVERRIDES)
    (tmp_path / "stage.json").write_text('{"status": "half"}')
    with pytest.raises(ValueError, match="status must be one of"):
        read_record(tmp_path, "warmup", OVERRIDES)
    with pytest.raises(ValueError, match="status must be one of"):
        write_record(tmp_path, "warmup", OVERRIDES, "half")
