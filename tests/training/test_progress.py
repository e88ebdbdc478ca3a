"""The progress bar names the stage, not an epoch count of -1."""

from types import SimpleNamespace

from qwenvl.training.progress import StageProgressBar


def _bar(max_epochs):
    bar = StageProgressBar()
    stage = SimpleNamespace(name="multitask")
    bar._trainer = SimpleNamespace(max_epochs=max_epochs, lightning_module=SimpleNamespace(stage=stage))
    return bar


def test_a_step_budgeted_run_is_labelled_by_its_stage():
    label = _bar(-1)._get_train_description(0)
    assert label.strip() == "multitask"
    assert len(label) >= len("Validation")  # padded like Lightning's, so the bar does not jump


def test_a_run_with_an_epoch_budget_keeps_lightnings_label():
    assert _bar(3)._get_train_description(1).strip() == "Epoch 1/2"
