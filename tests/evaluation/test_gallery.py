"""The predictions gallery: boxes where the model and the reference put them, text that fits."""

from PIL import Image

from qwenvl.data.sample import Message, Sample
from qwenvl.evaluation import gallery
from qwenvl.evaluation.benchmark import load_benchmark
from qwenvl.paths import ROOT

BENCH_DIR = ROOT / "evaluation" / "benchmarks"


def _grounding_sample(sid="g/0", image=None):
    image = image if image is not None else Image.new("RGB", (448, 448), "white")
    ask = Message("user", "<ref>the red circle</ref><box>", 1)
    messages = [ask, Message("assistant", "(1,1),(2,2)</box>")]
    meta = {"expression": "the red circle"}
    return Sample("grounding", messages, [image], [], [(600, 600, 900, 900)], "en", sid, meta)


def _pixel(card, x_norm, y_norm):
    side = gallery.CELL
    return card.getpixel((round(x_norm / 1000 * side), round(y_norm / 1000 * side)))


def test_card_draws_the_model_box_in_red_and_the_reference_in_green():
    record = {"id": "g/0", "prediction": "(100,100),(500,500)</box>", "boxes": [[600, 600, 900, 900]]}
    card = gallery.card(_grounding_sample(), record)
    assert card.width == gallery.CELL and card.height > gallery.CELL  # text below the picture
    assert _pixel(card, 300, 500) == gallery.MODEL  # the bottom edge of the predicted box
    assert _pixel(card, 750, 900) == gallery.TRUTH  # the bottom edge of the reference box
    assert _pixel(card, 300, 300) == (255, 255, 255)  # inside the box: the picture untouched
    assert _pixel(card, 750, 300) == (255, 255, 255)  # nowhere near either box


def test_card_survives_an_unreadable_picture_and_an_answer_without_a_box(tmp_path):
    sample = _grounding_sample(image=str(tmp_path / "missing.png"))
    record = {"id": "g/0", "prediction": "no idea", "boxes": [[600, 600, 900, 900]]}

    def load(path):
        return Image.open(path)

    card = gallery.card(sample, record, load)  # the picture area says why it is empty
    assert card.size[0] == gallery.CELL
    colours = {card.getpixel((x, y)) for x in range(gallery.CELL) for y in range(0, gallery.CELL, 4)}
    assert gallery.MODEL not in colours  # nothing parsed, nothing drawn in the model's colour


def test_long_text_wraps_within_the_card_and_is_cut_with_an_ellipsis():
    font = gallery._font()
    text = "a red circle, " * 40 + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 4
    lines = gallery._lines(text, "model: ", 200, font, 3)
    assert len(lines) == 3 and lines[0].startswith("model: ") and lines[-1].endswith("…")
    assert all(font.getlength(line) <= 200 for line in lines)
    word = gallery._lines("X" * 200, "", 100, font, 10)  # one word wider than the card is cut
    assert len(word) > 1 and all(font.getlength(line) <= 100 for line in word)


def test_gallery_pairs_predictions_by_id_and_lays_cards_in_a_grid(tmp_path):
    bench = load_benchmark("synthetic_multi_image", BENCH_DIR, image_size=224)
    samples = [bench.dataset[i] for i in range(6)]
    records = [{"id": s.id, "prediction": "Picture 1", "answers": s.answers, "boxes": []} for s in samples]
    del records[2]  # a sample with no prediction is left out, not drawn empty
    path = gallery.write_gallery(samples, records[::-1], tmp_path / "g" / "multi.png", "title", columns=4)
    image = Image.open(path)
    card_w, card_h = gallery.card(samples[0], records[0]).size
    assert image.width == 4 * (card_w + 6) + 6  # 5 cards: 4 columns, 2 rows
    assert image.height == gallery.FONT_SIZE * 2 + 8 + 2 * (card_h + 6) + 6
    assert gallery.write_gallery(samples, [], tmp_path / "none.png", "t") is None
    assert not (tmp_path / "none.png").exists()
