"""A resumed online run logs on to its W&B run; an offline one keeps a run of its own."""

from omegaconf import OmegaConf

from qwenvl.training.wandb_resume import WANDB_TARGET, previous_run_id, resume_kwargs


def _cfg(tmp_path, offline):
    return OmegaConf.create({"_target_": WANDB_TARGET, "save_dir": str(tmp_path), "offline": offline})


def test_the_newest_run_folder_gives_the_id(tmp_path):
    assert previous_run_id(tmp_path) is None
    for name in ("run-20261101_101010-aaaa1111", "run-20261102_090000-bbbb2222", "latest-run"):
        (tmp_path / "wandb" / name).mkdir(parents=True)
    (tmp_path / "wandb" / "offline-run-20261101_120000-cccc3333").mkdir()
    assert previous_run_id(tmp_path) == "bbbb2222"  # by time, whatever the folder's prefix
    (tmp_path / "wandb" / "run-20261102_090000-dddd4444-1").mkdir()  # same second, W&B's suffix
    assert previous_run_id(tmp_path) == "dddd4444"


def test_only_an_online_resume_of_a_run_that_logged_continues_it(tmp_path):
    (tmp_path / "wandb" / "run-20261101_101010-aaaa1111").mkdir(parents=True)
    assert resume_kwargs(_cfg(tmp_path, False), resuming=True) == {"id": "aaaa1111", "resume": "allow"}
    assert resume_kwargs(_cfg(tmp_path, False), resuming=False) == {}  # a fresh start: a new run
    assert resume_kwargs(_cfg(tmp_path, True), resuming=True) == {}  # offline: W&B cannot resume it
    assert resume_kwargs(_cfg(tmp_path / "elsewhere", False), resuming=True) == {}  # never logged
    csv = OmegaConf.create({"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": str(tmp_path)})
    assert resume_kwargs(csv, resuming=True) == {}
