"""The image gap: answer loss with grey pictures minus with the pictures."""

import copy

import pytest
import torch

from qwenvl.data.collate import Collator
from qwenvl.evaluation.image_gap import answer_losses, image_gap, main, synthetic_samples


@pytest.fixture(scope="module")
def samples(model):
    return synthetic_samples(["caption", "vqa"], 6, model.image_size)


def test_answer_loss_is_the_models_token_mean(model, proc, samples):
    collator = Collator(proc)
    batch = collator(samples["caption"])
    with torch.no_grad():
        expected = model(
            **{k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values", "labels")}
        ).loss
    # split into uneven batches: still one mean over every answer token
    assert answer_losses(model, collator, samples["caption"], batch_size=4)["all"][0] == pytest.approx(
        float(expected), rel=1e-5
    )


def test_a_random_model_reacts_to_the_pictures(model, proc, samples):
    gaps = image_gap(model, proc, samples)
    assert set(gaps) == {"caption", "vqa"}
    for g in gaps.values():
        assert g["samples"] == 6
        assert g["gap"] == pytest.approx(g["loss_swapped"] - g["loss"])
        assert g["gap"] != 0 and g["loss_blind"] != g["loss"]  # other and grey pictures reached it


def test_a_model_that_ignores_pictures_has_no_gap(model, proc, samples):
    blind_model = copy.deepcopy(model)
    with torch.no_grad():
        blind_model.adapter.proj.zero_()  # every image embedding is 0, whatever the pixels
    gaps = image_gap(blind_model, proc, samples)
    for g in gaps.values():
        assert g["gap"] == pytest.approx(0.0, abs=1e-6)
        assert g["loss_blind"] == pytest.approx(g["loss"], abs=1e-6)
    assert not blind_model.training  # left as it was found (eval)


def test_cli_reads_a_saved_model(model, tmp_path, capsys):
    model.save_pretrained(tmp_path / "m")
    gaps = main([str(tmp_path / "m"), "--tasks", "vqa", "--samples", "3"])
    assert gaps["vqa"]["samples"] == 3 and '"loss_blind"' in capsys.readouterr().out


def test_word_classes_hold_the_first_token_of_each_colour_and_shape_word(proc):
    from qwenvl.evaluation.image_gap import synthetic_word_classes

    classes = synthetic_word_classes(proc)
    tok = proc.tokenizer
    assert tok.encode_text(" red")[0] in classes["colour"] and tok.encode_text(" star")[0] in classes["shape"]
    assert tok.encode_text(" crosses")[0] in classes["shape"]
    assert not classes["colour"] & classes["shape"]
    assert tok.encode_text(" and")[0] not in classes["colour"] | classes["shape"]


def test_gaps_per_word_class_are_measured_on_those_tokens_alone(model, proc, samples):
    from qwenvl.evaluation.image_gap import synthetic_word_classes

    classes = synthetic_word_classes(proc)
    collator = Collator(proc)
    losses = answer_losses(model, collator, samples["caption"], 4, classes)
    # every English caption names a colour and a shape for each object group
    assert losses["colour"][1] >= 6 and losses["shape"][1] >= 6
    assert losses["colour"][1] + losses["shape"][1] < losses["all"][1]
    gaps = image_gap(model, proc, samples, classes=classes)
    assert gaps["caption"]["tokens_colour"] == losses["colour"][1]
    assert gaps["caption"]["gap_colour"] != 0 and gaps["caption"]["gap_shape"] != 0
    blind_model = copy.deepcopy(model)
    with torch.no_grad():
        blind_model.adapter.proj.zero_()
    blind = image_gap(blind_model, proc, samples, classes=classes)
    assert blind["caption"]["gap_shape"] == pytest.approx(0.0, abs=1e-6)
    assert blind["caption"]["gap_colour"] == pytest.approx(0.0, abs=1e-6)
