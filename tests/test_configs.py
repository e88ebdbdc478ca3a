"""Every model config group option composes, instantiates, and builds (big ones on the meta device)."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from qwenvl.models.build import build_model
from qwenvl.paths import CONF_DIR

ENCODERS = sorted(p.stem for p in (CONF_DIR / "encoder").glob("*.yaml"))
ADAPTERS = sorted(p.stem for p in (CONF_DIR / "adapter").glob("*.yaml"))
LLMS = sorted(p.stem for p in (CONF_DIR / "llm").glob("*.yaml"))


def _compose(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="smoke", overrides=overrides)


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("llm", LLMS)
def test_every_encoder_and_llm_instantiates(encoder, llm):
    cfg = _compose([f"encoder={encoder}", f"llm={llm}"])
    assert instantiate(cfg.encoder).width > 0
    assert instantiate(cfg.llm).hidden_size > 0


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_each_adapter_builds_a_tiny_model(adapter):
    model = build_model(
        _compose([f"adapter={adapter}", "adapter.hidden=null" if adapter == "mlp" else "seed=0"])
    )
    assert model.image_tokens in (256, 64)  # resampler queries, or one token per patch (8x8 at 224 px)


def test_real_shapes_build_on_meta():
    cfg = _compose(["encoder=vit_l_14", "encoder.image_size=448", "llm=qwen2_0_5b"])
    with torch.device("meta"):
        model = build_model(cfg)
    assert 0.7e9 < model.num_parameters() < 1.0e9


def test_misspelt_key_fails_naming_it():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="widht"):
        _compose(["encoder.widht=3"])
    with pytest.raises(Exception, match="resampler"):
        _compose(["adapter=resamplr"])
