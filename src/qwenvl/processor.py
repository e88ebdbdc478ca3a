"""QwenVLProcessor: markup + images -> model inputs, and tokens -> text.

    >>> proc = QwenVLProcessor.from_model(model)          # or .from_pretrained(dir)
    >>> prompt = proc.build_prompt("What colour is the circle?", num_images=1, task="vqa")
    >>> inputs = proc([prompt], images=[[image]])          # input_ids, attention_mask, pixel_values
    >>> proc.batch_decode(model.generate(**inputs))

Every empty image slot `<img></img>` in markup becomes `<img>` + Q x `<imgpad>` + `</img>`; the
images of a batch are stacked in order of appearance, which is the order the model fills pads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as T

from qwenvl.data import templates
from qwenvl.data.sample import Message, Sample
from qwenvl.tokenizer import IMG_END, IMG_PAD, IMG_START, QwenVLTokenizer, escape

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONFIG_FILE = "processor_config.json"


class QwenVLProcessor:
    def __init__(
        self,
        tokenizer: QwenVLTokenizer,
        image_size: int = 224,
        image_tokens: int = 256,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        max_pixels: int = 89_478_485,  # PIL's own decompression-bomb limit
    ):
        self.tokenizer, self.image_size, self.image_tokens = tokenizer, image_size, image_tokens
        self.mean, self.std, self.max_pixels = tuple(mean), tuple(std), max_pixels
        self._ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (IMG_START, IMG_END, IMG_PAD)}
        # Qwen-VL squashes to a square with bicubic resampling (no crop: a crop would cut boxes off).
        self._resize = T.Resize(
            (image_size, image_size), interpolation=T.InterpolationMode.BICUBIC, antialias=True
        )
        self._mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)

    @classmethod
    def from_model(cls, model, tokenizer: QwenVLTokenizer | None = None) -> QwenVLProcessor:
        """The processor for `model`'s resolution and image tokens, with `tokenizer` (None: the
        built-in BPE), refused when it cannot be the model's own: ids past the model's embedding
        rows (an index error in the first forward pass) or another <imgpad> id (the pictures would
        never reach the language model)."""
        tokenizer = tokenizer or QwenVLTokenizer.default()
        rows = model.llm.get_input_embeddings().num_embeddings
        pad = tokenizer.convert_tokens_to_ids(IMG_PAD)
        if tokenizer.vocab_size > rows or pad != model.config.image_pad_id:
            raise ValueError(
                f"the tokenizer has {tokenizer.vocab_size} tokens with {IMG_PAD} = {pad}, and the model "
                f"{rows} embedding rows with {IMG_PAD} = {model.config.image_pad_id}: it is not the "
                "tokenizer this model was trained with; give that one (tokenizer=DIR)"
            )
        return cls(tokenizer, model.image_size, model.image_tokens)

    # -- images ------------------------------------------------------------------------------
    def load_image(self, image: Image.Image | str | Path) -> Image.Image:
        """A PIL image or a local path -> RGB PIL image, refusing decompression bombs."""
        if isinstance(image, Image.Image):
            pil = image
        else:
            with Image.open(image) as f:
                if f.width * f.height > self.max_pixels:
                    raise ValueError(
                        f"{image}: {f.width}x{f.height} exceeds the {self.max_pixels}-pixel limit"
                    )
                f.load()
                pil = f
        return pil.convert("RGB")

    def transform(self, image: Image.Image | str | Path) -> torch.Tensor:
        """-> [3, S, S] float32, CLIP-normalized: (pixel / 255 - mean) / std per channel."""
        pil = self._resize(self.load_image(image))
        # The float conversion writes channels-first contiguous memory, so the float ops run on it:
        # faster than torchvision's ToImage + ToDtype + Normalize on the strided view, and the same
        # operations in the same order, so the same bits. np.array: a writable copy of the pixels.
        hwc = torch.from_numpy(np.array(pil))
        pixels = hwc.permute(2, 0, 1).to(torch.float32, memory_format=torch.contiguous_format)
        return pixels.mul_(1.0 / 255).sub_(self._mean).div_(self._std)

    # -- text --------------------------------------------------------------------------------
    def encode(self, markup: str) -> list[int]:
        """Token ids of markup with every `<img></img>` expanded to Q image pads."""
        ids = self.tokenizer.encode(markup)
        start, end, pad = self._ids[IMG_START], self._ids[IMG_END], self._ids[IMG_PAD]
        out: list[int] = []
        for i, t in enumerate(ids):
            if t == pad:
                raise ValueError("markup must not contain <imgpad>: write an empty <img></img> slot instead")
            out.append(t)
            if t == start:
                if i + 1 >= len(ids) or ids[i + 1] != end:
                    raise ValueError("an <img> slot must be empty (<img></img>); put image paths in `images`")
                out.extend([pad] * self.image_tokens)
        return out

    def count_images(self, markup: str) -> int:
        return self.tokenizer.encode(markup).count(self._ids[IMG_START])

    def encode_segments(self, segments: Sequence[templates.Segment]) -> tuple[list[int], list[int]]:
        """Rendered template segments -> (input ids, labels) with -100 on unsupervised tokens."""
        ids: list[int] = []
        labels: list[int] = []
        for seg in segments:
            piece = self.encode(seg.markup)
            ids += piece
            labels += piece if seg.supervised else [-100] * len(piece)
        # Image pads are never targets: the model cannot predict adapter outputs.
        labels = [-100 if t == self._ids[IMG_PAD] else lab for t, lab in zip(ids, labels, strict=True)]
        return ids, labels

    def build_prompt(
        self, text: str, num_images: int = 1, task: str | None = None, fmt: str = "plain", lang: str = "en"
    ) -> str:
        """Markup for generation from a user's plain text (escaped here), optionally inside a task template.

        `task="vqa"` wraps the text as a question, `task="grounding"` as a referring expression,
        `task="caption"` ignores the text; None uses the text as is.
        """
        field = {"vqa": "question", "grounding": "expression"}.get(task or "")
        if task is None:
            content = escape(text)
        elif field:
            content = templates.prompt(task, lang, **{field: escape(text)})
        else:
            content = templates.prompt(task, lang)
        sample = Sample(
            task="dialog", messages=[Message("user", content, num_images)], images=[None] * num_images
        )
        return "".join(s.markup for s in templates.render(sample, fmt, with_target=False))

    # -- batches -----------------------------------------------------------------------------
    def __call__(
        self,
        text: str | Sequence[str],
        images: Sequence | None = None,
        padding_side: str = "left",
        return_tensors: str = "pt",
    ) -> dict[str, torch.Tensor]:
        """Markup strings (+ image lists) -> input_ids, attention_mask [B, T], pixel_values [N, 3, S, S].

        Left padding is the default because generation appends on the right.
        """
        if return_tensors != "pt":
            raise ValueError("only return_tensors='pt' is supported")
        texts = [text] if isinstance(text, str) else list(text)
        if images is None:
            per_text: list[list] = [[] for _ in texts]
        elif texts and len(texts) == 1 and images and not isinstance(images[0], (list, tuple)):
            per_text = [list(images)]
        else:
            per_text = [list(x) for x in images]
        if len(per_text) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(per_text)} image lists")
        rows = []
        for i, (markup, imgs) in enumerate(zip(texts, per_text, strict=True)):
            ids = self.encode(markup)  # tokenized once; the slots are counted in the ids
            slots = ids.count(self._ids[IMG_START])
            if slots != len(imgs):
                raise ValueError(f"text {i} has {slots} <img></img> slots but {len(imgs)} images were given")
            rows.append(ids)
        batch = self.pad(rows, padding_side=padding_side)
        flat = [img for imgs in per_text for img in imgs]
        if flat:
            batch["pixel_values"] = torch.stack([self.transform(img) for img in flat])
        return batch

    def pad(
        self,
        rows: Sequence[Sequence[int]],
        labels: Sequence[Sequence[int]] | None = None,
        padding_side: str = "left",
    ) -> dict[str, torch.Tensor]:
        """Pad id rows (and optional label rows with -100) to one length."""
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        width = max((len(r) for r in rows), default=0)
        pad_id = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        lab = torch.full((len(rows), width), -100, dtype=torch.long) if labels is not None else None
        for i, r in enumerate(rows):
            sl = slice(width - len(r), width) if padding_side == "left" else slice(0, len(r))
            ids[i, sl], mask[i, sl] = torch.tensor(r, dtype=torch.long), 1
            if lab is not None:
                lab[i, sl] = torch.tensor(labels[i], dtype=torch.long)
        out = {"input_ids": ids, "attention_mask": mask}
        if lab is not None:
            out["labels"] = lab
        return out

    def batch_decode(self, ids, skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(row, skip_special_tokens) for row in ids]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        ids = [int(i) for i in ids if int(i) < self.tokenizer.vocab_size]  # padded embedding rows
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    # -- persistence -------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(directory)
        cfg = {
            "image_size": self.image_size,
            "image_tokens": self.image_tokens,
            "mean": self.mean,
            "std": self.std,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(cfg, indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> QwenVLProcessor:
        directory = Path(directory)
        path = directory / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{directory}: no {CONFIG_FILE}; expected a directory from save_pretrained"
            )
        cfg = json.loads(path.read_text())
        return cls(QwenVLTokenizer.from_pretrained(directory), **cfg)
