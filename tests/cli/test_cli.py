"""The entry points run end to end as a user runs them."""

import subprocess
import sys

from hydra import compose, initialize_config_dir
from PIL import Image

from qwenvl.cli import eval as eval_cli
from qwenvl.cli import predict, train
from qwenvl.evaluation.load import load_for_eval
from qwenvl.paths import CONF_DIR


def _run(args, cwd):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_smoke_builds_answers_and_round_trips(tmp_path):
    r = _run(["qwenvl.cli.smoke", f"out_dir={tmp_path}/smoke", "max_new_tokens=4"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "identical logits: True" in r.stdout
    assert (tmp_path / "smoke" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "smoke" / "scene_truth.png").is_file()


def test_predict_answers_a_prompt_about_an_image(tmp_path, run_app):
    Image.new("RGB", (120, 90), "orange").save(tmp_path / "img.png")
    args = [f"image={tmp_path}/img.png", "prompt=What colour?", "task=vqa", "max_new_tokens=3"]
    r = run_app(predict.main, *args)
    assert r.code == 0, r.err[-2000:]
    assert "answer:" in r.out and "Answer:" in r.out


def test_predict_names_a_missing_image(tmp_path, run_app):
    r = run_app(predict.main, f"image={tmp_path}/nope.png")
    assert r.code != 0 and f"image not found: {tmp_path}/nope.png" in str(r.code)


def test_predict_answers_from_a_training_checkpoint_as_evaluation_loads_it(tmp_path, run_app):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["logger=none", "callbacks.progress=null", "callbacks.benchmark_validation=null"]
            + [f"paths.output_dir={tmp_path}", "max_steps=2", "data.batch_size=2", "data.val.size=2"],
        )
    ckpt = train.train(cfg)["checkpoint"]
    Image.new("RGB", (120, 90), "orange").save(tmp_path / "img.png")
    args = ["image=" + str(tmp_path / "img.png"), "prompt=What colour?", "task=vqa", "max_new_tokens=4"]
    r = run_app(predict.main, f"ckpt={ckpt}", *args)
    assert r.code == 0, r.err[-2000:]
    model, processor = load_for_eval(ckpt)  # what evaluation reads from the same file
    image = processor.load_image(tmp_path / "img.png")
    prompt = processor.build_prompt("What colour?", 1, task="vqa", fmt="plain", lang="en")
    assert f"answer: {predict.predict(model, processor, image, prompt, max_new_tokens=4)!r}" in r.out


def test_lightnings_cloud_logger_advert_is_dropped_and_its_other_messages_kept():
    import logging

    import qwenvl.cli.train  # noqa: F401  (installs the filter)

    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")

    def record(msg):
        return logging.LogRecord(lightning_log.name, logging.INFO, __file__, 1, msg, None, None)

    assert not lightning_log.filter(record("💡 Tip: ... try installing [litlogger](https://...)"))
    assert lightning_log.filter(record("GPU available: False, used: False"))


def _model_dir_and_tokenizer_with_one_more_token(tmp_path, vocab_size):
    """A model directory saved without its processor (`QwenVLModel.save_pretrained`) with
    `vocab_size` embedding rows, and the built-in tokenizer plus the word "zqxj" as token 4096."""
    from qwenvl.models.build import build_model
    from qwenvl.tokenizer import QwenVLTokenizer

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="predict", overrides=["image=x.png", f"llm.vocab_size={vocab_size}"])
    build_model(cfg).save_pretrained(tmp_path / "model")
    tokenizer = QwenVLTokenizer.default()
    assert tokenizer.backend.add_tokens(["zqxj"]) == 1
    tokenizer.save_pretrained(tmp_path / "tok")
    Image.new("RGB", (120, 90), "orange").save(tmp_path / "img.png")
    return tmp_path / "model", tmp_path / "tok"


def test_predict_reads_a_model_directory_with_the_tokenizer_given(tmp_path, run_app):
    model_dir, tok_dir = _model_dir_and_tokenizer_with_one_more_token(tmp_path, vocab_size=4160)
    _, processor = load_for_eval(model_dir, tokenizer=tok_dir)
    assert processor.tokenizer.encode_text("zqxj") == [4096]
    assert len(load_for_eval(model_dir)[1].tokenizer.encode_text("zqxj")) > 1  # the built-in BPE
    args = [f"image={tmp_path}/img.png", "prompt=zqxj", "task=vqa", "max_new_tokens=2"]
    r = run_app(predict.main, f"ckpt={model_dir}", f"tokenizer={tok_dir}", *args)
    assert r.code == 0, r.err[-2000:]
    assert "answer:" in r.out


def test_a_tokenizer_larger_than_the_models_embedding_is_refused_with_both_sizes(tmp_path, run_app):
    model_dir, tok_dir = _model_dir_and_tokenizer_with_one_more_token(tmp_path, vocab_size=4096)
    args = [f"image={tmp_path}/img.png", "prompt=zqxj", "task=vqa", "max_new_tokens=2"]
    r = run_app(predict.main, f"ckpt={model_dir}", f"tokenizer={tok_dir}", *args)
    assert r.code != 0
    assert "the tokenizer has 4097 tokens with <imgpad> = 11, and the model 4096 embedding rows" in r.err


def test_eval_reads_a_model_directory_with_the_tokenizer_given(tmp_path, run_app):
    model_dir, tok_dir = _model_dir_and_tokenizer_with_one_more_token(tmp_path, vocab_size=4096)
    args = [
        f"ckpt={model_dir}",
        "benchmarks=[synthetic_vqa]",
        "limit=2",
        "gallery=0",
        f"out_dir={tmp_path}/e",
    ]
    assert run_app(eval_cli.main, *args).code == 0  # the built-in tokenizer fits the model
    r = run_app(eval_cli.main, *args, f"tokenizer={tok_dir}")
    assert r.code != 0
    assert "the tokenizer has 4097 tokens with <imgpad> = 11, and the model 4096 embedding rows" in r.err


def test_a_tokenizer_given_for_a_model_that_brings_its_processor_is_named_as_unused(tmp_path, caplog):
    model_dir, tok_dir = _model_dir_and_tokenizer_with_one_more_token(tmp_path, vocab_size=4160)
    model, processor = load_for_eval(model_dir)
    processor.save_pretrained(model_dir)  # the built-in tokenizer, saved beside the model
    _, processor = load_for_eval(model_dir, tokenizer=tok_dir)
    assert len(processor.tokenizer.encode_text("zqxj")) > 1  # the saved processor's, not tok_dir's
    assert (
        f"tokenizer={tok_dir} is not used: ckpt={model_dir} brings the processor saved there" in caplog.text
    )


def test_predict_answers_a_prompt_about_two_pictures_and_names_a_missing_one(tmp_path, run_app):
    Image.new("RGB", (120, 90), "orange").save(tmp_path / "a.png")
    Image.new("RGB", (60, 60), "blue").save(tmp_path / "b.png")
    args = ["prompt=What changed?", "task=vqa", "max_new_tokens=3"]
    r = run_app(predict.main, f"image=[{tmp_path}/a.png,{tmp_path}/b.png]", *args)
    assert r.code == 0, r.err[-2000:]
    assert "Picture 1: <img></img>" in r.out and "Picture 2: <img></img>" in r.out and "answer:" in r.out
    r = run_app(predict.main, f"image=[{tmp_path}/a.png,{tmp_path}/c.png]", *args)
    assert f"image not found: {tmp_path}/c.png" in str(r.code)
