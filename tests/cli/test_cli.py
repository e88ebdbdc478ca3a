"""The entry points run end to end as a user runs them."""

import subprocess
import sys

from PIL import Image


def _run(args, cwd):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_smoke_builds_answers_and_round_trips(tmp_path):
    r = _run(["qwenvl.cli.smoke", f"out_dir={tmp_path}/smoke", "max_new_tokens=4"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "identical logits: True" in r.stdout
    assert (tmp_path / "smoke" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "smoke" / "scene_truth.png").is_file()


def test_predict_answers_a_prompt_about_an_image(tmp_path):
    Image.new("RGB", (120, 90), "orange").save(tmp_path / "img.png")
    r = _run(
        ["qwenvl.cli.predict", "image=img.png", "prompt=What colour?", "task=vqa", "max_new_tokens=3"],
        tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "answer:" in r.stdout and "Answer:" in r.stdout


def test_predict_names_a_missing_image(tmp_path):
    r = _run(["qwenvl.cli.predict", "image=nope.png"], tmp_path)
    assert r.returncode != 0 and "image not found: nope.png" in r.stderr


def test_lightnings_cloud_logger_advert_is_dropped_and_its_other_messages_kept():
    import logging

    import qwenvl.cli.train  # noqa: F401  (installs the filter)

    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")

    def record(msg):
        return logging.LogRecord(lightning_log.name, logging.INFO, __file__, 1, msg, None, None)

    assert not lightning_log.filter(record("💡 Tip: ... try installing [litlogger](https://...)"))
    assert lightning_log.filter(record("GPU available: False, used: False"))
