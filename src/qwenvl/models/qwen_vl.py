"""QwenVLModel: encoder -> adapter -> LLM, with the adapter outputs written over the image pads.

text:   Picture 1: <img> <imgpad> x Q </img>\\n Generate the caption in English:
embeds: [ ...text... | adapter(encoder(image)) (Q rows) | ...text... ]  -> Qwen2 -> logits

>>> model = QwenVLModel.from_config(tokenizer=QwenVLTokenizer.default())    # tiny, random
>>> out = model(input_ids, attention_mask, pixel_values=pixels, labels=labels); out.loss
>>> model.generate(**inputs, max_new_tokens=16)                              # new tokens only
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from qwenvl.models.adapter import MLPConfig, ResamplerConfig, build_adapter
from qwenvl.models.config import QwenVLConfig
from qwenvl.models.encoder import EncoderConfig, VisionEncoder
from qwenvl.models.llm import LLMConfig, build_llm, pretrained_dir
from qwenvl.tokenizer import IMG_PAD, QwenVLTokenizer

WEIGHTS_FILE = "model.safetensors"


@dataclass
class QwenVLOutput:
    """Training output: mean loss and per-position loss [B, T-1] (0 where the label is -100)."""

    loss: torch.Tensor
    token_loss: torch.Tensor


class QwenVLModel(nn.Module):
    def __init__(self, config: QwenVLConfig):
        super().__init__()
        self.config = config
        self.encoder = VisionEncoder(config.encoder)
        adapter_cfg = replace(config.adapter, kv_width=config.encoder.width, width=_llm_width(config.llm))
        self.adapter = build_adapter(adapter_cfg)
        self.llm = build_llm(config.llm, config.vocab_size)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        encoder: EncoderConfig | None = None,
        adapter: ResamplerConfig | MLPConfig | None = None,
        llm: LLMConfig | None = None,
        tokenizer: QwenVLTokenizer | None = None,
    ) -> QwenVLModel:
        """Compose a model; vocabulary size and special ids come from the tokenizer (default: built-in)."""
        tokenizer = tokenizer or QwenVLTokenizer.default()
        llm = llm or LLMConfig()
        vocab = llm.vocab_size or -(-tokenizer.vocab_size // 64) * 64  # multiple of 64 for matmul speed
        if vocab < tokenizer.vocab_size:
            raise ValueError(f"llm.vocab_size={vocab} is smaller than the tokenizer ({tokenizer.vocab_size})")
        config = QwenVLConfig(
            encoder=encoder or EncoderConfig(),
            adapter=adapter or ResamplerConfig(),
            llm=llm,
            vocab_size=vocab,
            image_pad_id=tokenizer.convert_tokens_to_ids(IMG_PAD),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_ids=tokenizer.eos_token_ids,
        )
        return cls(config)

    @property
    def image_tokens(self) -> int:
        """Q: embeddings each image contributes to the LLM input."""
        return self.adapter.num_tokens(self.config.encoder.grid**2)

    @property
    def image_size(self) -> int:
        return self.config.encoder.image_size

    # -- forward -----------------------------------------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] CLIP-normalized pixels -> [N, Q, D_llm] image embeddings."""
        return self.adapter(self.encoder(pixel_values.to(self.encoder.conv1.weight.dtype)))

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] ids (+ images in order of appearance) -> [B, T, D] LLM input embeddings."""
        embeds = self.llm.get_input_embeddings()(input_ids)
        is_pad = input_ids == self.config.image_pad_id
        n_pad = int(is_pad.sum())
        if pixel_values is None or pixel_values.shape[0] == 0:
            if n_pad:
                raise ValueError(f"input has {n_pad} image pad tokens but no pixel_values were given")
            return embeds
        feats = self.encode_images(pixel_values)  # (N, Q, D)
        if feats.shape[0] * feats.shape[1] != n_pad:
            raise ValueError(
                f"{pixel_values.shape[0]} images give {feats.shape[0] * feats.shape[1]} embeddings "
                f"({feats.shape[1]} each) but the input has {n_pad} image pad tokens; "
                "build inputs with QwenVLProcessor for this model"
            )
        # Boolean-mask assignment fills pads in row-major order: batch row, then position, which is
        # exactly the order images appear in the batch.
        return embeds.masked_scatter(
            is_pad.unsqueeze(-1), feats.reshape(-1, feats.shape[-1]).to(embeds.dtype)
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs,
    ):
        """Without labels: the LLM's causal-LM output (`.logits` [B, T, V]).

        With labels [B, T] (-100 ignored): a `QwenVLOutput` whose `.loss` is the mean next-token
        loss and `.token_loss` [B, T-1] the loss of each predicted position (0 where ignored). The
        LM head runs only on supervised positions: image pads and prompts are most of a sequence,
        and at a 151,936-word vocabulary their logits would dominate time and memory.
        """
        embeds = self.embed(input_ids, pixel_values)
        if position_ids is None and attention_mask is not None:
            # Positions count real tokens only, so a left-padded row scores as it would alone.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if labels is None:
            return self.llm(
                inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, **kwargs
            )
        hidden = self.llm.model(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        target = labels[:, 1:]
        keep = target != -100  # (B, T-1)
        logits = self.llm.lm_head(hidden[:, :-1][keep]).float()  # (N_supervised, V)
        token_loss = torch.zeros(target.shape, dtype=logits.dtype, device=logits.device)
        token_loss[keep] = F.cross_entropy(logits, target[keep], reduction="none")
        loss = token_loss.sum() / keep.sum().clamp(min=1)
        return QwenVLOutput(loss=loss, token_loss=token_loss)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        **kwargs,
    ) -> torch.Tensor:
        """New tokens only, [B, <= max_new_tokens], padded with the pad id after a row stops.

        Inputs must be left-padded (QwenVLProcessor's default); position ids follow the attention
        mask, so a padded row generates the same tokens as the row alone. Stops at `<|im_end|>` or
        `<|endoftext|>`. Extra kwargs go to transformers' `generate` (temperature, top_p, top_k, ...).
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if not bool(attention_mask[:, -1].all()):
            raise ValueError("generate needs left-padded inputs: call the processor with padding_side='left'")
        embeds = self.embed(input_ids, pixel_values)
        return self.llm.generate(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            pad_token_id=self.config.pad_token_id,
            eos_token_id=list(self.config.eos_token_ids),
            **kwargs,
        )

    # -- persistence -------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """config.json + model.safetensors. External weight paths are dropped: the weights are here now."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.standalone_config().save(directory)
        save_model(self, str(directory / WEIGHTS_FILE))  # dedupes tied embeddings

    def standalone_config(self) -> QwenVLConfig:
        """This model's config without external weight paths, so that it builds the same shapes from
        nothing. An LLM loaded from `llm.pretrained` took its shape from that checkpoint, not from the
        `llm` fields: they are filled from the loaded model's own config."""
        config = copy.deepcopy(self.config)
        if config.llm.pretrained:
            rows = self.llm.get_input_embeddings().num_embeddings
            attn = config.llm.attn_implementation
            config.llm = LLMConfig.from_hf(self.llm.config, rows, attn_implementation=attn)
            config.vocab_size = config.llm.vocab_size
        config.encoder.checkpoint = None
        return config

    @classmethod
    def from_pretrained(cls, directory: str | Path, dtype: torch.dtype | None = None) -> QwenVLModel:
        """Load a directory written by `save_pretrained` (or by `qwenvl-convert`). Never unpickles."""
        from qwenvl.models.convert import is_released_dir, load_released  # convert imports this module

        if is_released_dir(directory):
            return load_released(directory, dtype)
        directory = Path(directory)
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory}: no config.json; expected a directory from save_pretrained")
        config = QwenVLConfig.load(directory)
        _check_fits(cls, config, directory)
        model = cls(config)
        missing, unexpected = load_model(model, str(directory / WEIGHTS_FILE), strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{directory / WEIGHTS_FILE}: missing keys {missing[:8]}, unexpected {unexpected[:8]}"
            )
        return model.to(dtype) if dtype is not None else model

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def _check_fits(cls, config: QwenVLConfig, directory: Path) -> None:
    """Refuse a model this machine cannot hold before building it (it is built in float32, then
    its weights are read in): counted on the meta device, nothing allocated."""
    from qwenvl.host_memory import BYTES_PER_PARAM, available_host_memory, refuse_if_too_big

    with torch.device("meta"):
        n = cls(config).num_parameters()
    what = f"{directory}: its {n / 1e9:.2f} B parameters in float32 need"
    advice = "Load it on a machine with more memory"
    refuse_if_too_big(n * BYTES_PER_PARAM, available_host_memory(), what, "to load", advice)


def _llm_width(llm: LLMConfig) -> int:
    if llm.pretrained:  # the width comes from the checkpoint's own config
        import json

        return int(json.loads((pretrained_dir(llm) / "config.json").read_text())["hidden_size"])
    return llm.hidden_size
