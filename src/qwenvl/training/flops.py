"""Model FLOPs of one training step, part by part, with frozen parts counted as they really run.

`6 x params x tokens` is the usual shortcut, but it is wrong here twice over: the three parts
see different token counts (the encoder its patches, the adapter its queries and patches, the LLM
the whole sequence), and a frozen part costs less than a trained one. The estimate used:

forward, per part
    dense      2 x W x T      for every weight matrix W applied to T tokens (the patches, the
                              queries, the sequence; the LM head only to supervised positions,
                              because the model computes logits nowhere else)
    attention  4 x T_q x T_k x d  per layer (QK^T and AV, d = heads x head_dim), halved for the
                              causal LLM (only the lower triangle is needed)

backward, per part
    weight gradients       1 x dense               if the part trains
    activation gradients   1 x dense + 2 x attention  if the part trains or a trained part sits
                           upstream (the gradient must pass through it to reach that part);
                           attention has no weights, but both of its operands need gradients
    so a trained part costs 2 x forward, a frozen one with a trained part upstream 1 x dense +
    2 x attention, and a frozen one with nothing trained upstream nothing (autograd stops there).
    One refinement: the first matmul on a part's input (the patch embedding on pixels; the
    resampler's kv projection on encoder features) needs no input gradient when nothing upstream
    trains, so its activation-gradient term is dropped then.

Upstream follows the forward order encoder -> adapter -> LLM: in stage 1 (LLM frozen) the LLM
still runs a backward pass for the encoder and adapter, in stage 3 (encoder frozen) the encoder
runs none. Elementwise work (norms, activations, softmax, rotary, the loss) and embedding lookups
are left out, as is recomputation under activation checkpointing: these are *model* FLOPs, the
numerator of MFU, not the FLOPs the hardware executes. Bias vectors are left out (no matmul).

All counts are FLOPs (multiply and add counted separately), as floats. The totals equal what
`torch.utils.flop_counter.FlopCounterMode` counts for a real step once its extra work is allowed
for (the math attention kernel computes the whole causal square, then masks half of it).

    >>> flops = model_step_flops(model, batch=8, seq_len=1024, supervised=766, trainable=stage.trainable)
    >>> flops.total, flops["llm"].backward
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenvl.models.encoder import ConvStem
from qwenvl.training.stages import PARTS


@dataclass(frozen=True)
class PartFlops:
    """Forward FLOPs of one part and its role in the backward pass.

    `dense`: weights x activations; `attention`: activations x activations; `input_dense`: the
    share of `dense` done by the first matmul on the part's input.
    """

    name: str
    dense: float
    attention: float
    trained: bool
    upstream_trained: bool  # a part before it in the forward pass trains: its input needs gradients
    input_dense: float = 0.0

    @property
    def forward(self) -> float:
        return self.dense + self.attention

    @property
    def backward(self) -> float:
        if not (self.trained or self.upstream_trained):
            return 0.0
        weight_grads = self.dense if self.trained else 0.0
        skipped = 0.0 if self.upstream_trained else self.input_dense
        return weight_grads + (self.dense - skipped) + 2 * self.attention

    @property
    def total(self) -> float:
        return self.forward + self.backward


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one training step (forward + backward), per part."""

    parts: tuple[PartFlops, ...]

    @property
    def forward(self) -> float:
        return sum(p.forward for p in self.parts)

    @property
    def backward(self) -> float:
        return sum(p.backward for p in self.parts)

    @property
    def total(self) -> float:
        return self.forward + self.backward

    def __getitem__(self, name: str) -> PartFlops:
        return next(p for p in self.parts if p.name == name)


# -- weight-matrix sizes (parameters that multiply activations) ---------------------------------


def vit_weights(
    width: int, layers: int, mlp_hidden: int, patch_size: int, stem: str = "patch"
) -> tuple[int, int]:
    """(weights on the pixels, all the others) of an open_clip ViT, per patch.

    `stem="patch"`: the patchifying conv is a matmul over each patch's pixels. `stem="conv"`
    (`ConvStem`): per 4-px cell a matmul on its pixels (48 -> 16) and a 3x3 conv (16 -> 32), then
    the patch embedding over the patch's cells.
    """
    per_layer = 4 * width**2 + 2 * width * mlp_hidden  # qkv + out projections, MLP in + out
    if stem == "patch":
        return 3 * patch_size**2 * width, layers * per_layer
    k = ConvStem
    cells = (patch_size // k.stride) ** 2
    pixels = cells * 3 * k.stride**2 * k.hidden
    return pixels, cells * (k.hidden * k.channels * 9 + k.channels * width) + layers * per_layer


def qwen2_layer_weights(hidden: int, heads: int, kv_heads: int, head_dim: int, intermediate: int) -> int:
    """Weights of one Qwen2 decoder layer: q, k, v, o projections (GQA) and the gated MLP."""
    attn = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    return attn + 3 * hidden * intermediate


# -- forward FLOPs of each part -----------------------------------------------------------------


def encoder_forward(
    images: int, patches: int, width: int, layers: int, mlp_hidden: int, patch_size: int, stem: str = "patch"
) -> tuple[float, float, float]:
    """(dense, attention, input_dense) forward FLOPs of the ViT over `images` images of `patches` patches."""
    pixel_w, body_w = vit_weights(width, layers, mlp_hidden, patch_size, stem)
    dense = 2.0 * (pixel_w + body_w) * patches * images
    attention = 4.0 * patches**2 * width * layers * images  # bidirectional: the full square
    return dense, attention, 2.0 * pixel_w * patches * images


def resampler_forward(
    images: int, patches: int, queries: int, kv_width: int, width: int
) -> tuple[float, float, float]:
    """(dense, attention, input_dense) forward FLOPs of the cross-attention resampler.

    Per image: the kv projection (when widths differ) and the key/value projections run over the
    patches; the query, output and final projections over the queries; attention is Q x P.
    """
    kv_proj = kv_width * width if kv_width != width else 0  # an identity when the widths agree
    per_patch = kv_proj + 2 * width**2
    per_query = 3 * width**2
    dense = 2.0 * (per_patch * patches + per_query * queries) * images
    attention = 4.0 * queries * patches * width * images
    return dense, attention, 2.0 * kv_proj * patches * images


def mlp_projector_forward(
    images: int, patches: int, kv_width: int, hidden: int, width: int
) -> tuple[float, float, float]:
    """(dense, attention=0, input_dense) forward FLOPs of the two-layer MLP projector, per patch."""
    first = 2.0 * kv_width * hidden * patches * images
    return first + 2.0 * hidden * width * patches * images, 0.0, first


def llm_forward(
    batch: int,
    seq_len: int,
    supervised: int,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    intermediate: int,
    vocab: int,
) -> tuple[float, float]:
    """(dense, attention) forward FLOPs of a Qwen2 decoder over `batch` rows of `seq_len` tokens.

    `supervised`: positions per row that get logits (the LM head runs nowhere else).
    """
    body = layers * qwen2_layer_weights(hidden, heads, kv_heads, head_dim, intermediate)
    dense = 2.0 * body * seq_len * batch + 2.0 * hidden * vocab * supervised * batch
    attention = 4.0 * seq_len**2 * heads * head_dim * layers * batch / 2  # causal: half the square
    return dense, attention


# -- a whole step -------------------------------------------------------------------------------


def step_flops(forwards: dict[str, tuple[float, ...]], trainable: dict[str, bool]) -> StepFlops:
    """Combine per-part forward FLOPs (dense, attention[, input_dense]) with the trainable flags.

    Parts run in the order encoder -> adapter -> LLM; a missing flag means trained.
    """
    parts, upstream = [], False
    for name in PARTS:
        trained = bool(trainable.get(name, True))
        parts.append(PartFlops(name, *forwards[name][:2], trained, upstream, *forwards[name][2:]))
        upstream = upstream or trained
    return StepFlops(tuple(parts))


def model_step_flops(
    model, batch: int, seq_len: int, supervised: int, trainable: dict[str, bool], images: int | None = None
) -> StepFlops:
    """FLOPs of one training step of a built `QwenVLModel` (meta-device models work).

    `batch` rows of `seq_len` LLM positions each (image tokens included), `supervised` the
    positions per row whose next token is a target; `images` the pictures the encoder and adapter
    see in the step (default: one per row; a packed or text-only batch has more or fewer).
    """
    images = batch if images is None else images
    enc = model.config.encoder
    patches = enc.grid**2
    mlp_hidden = int(enc.width * enc.mlp_ratio)  # as open_clip sizes its MLP
    adapter = model.adapter.config
    if hasattr(adapter, "num_queries"):
        adapter_fwd = resampler_forward(images, patches, adapter.num_queries, adapter.kv_width, adapter.width)
    else:
        hidden = adapter.hidden or adapter.width
        adapter_fwd = mlp_projector_forward(images, patches, adapter.kv_width, hidden, adapter.width)
    hf = model.llm.config
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    vocab = model.llm.get_output_embeddings().weight.shape[0]
    llm_fwd = llm_forward(
        batch, seq_len, supervised, hf.hidden_size, hf.num_hidden_layers, hf.num_attention_heads,
        hf.num_key_value_heads, head_dim, hf.intermediate_size, vocab,
    )  # fmt: skip
    forwards = {
        "encoder": encoder_forward(
            images, patches, enc.width, enc.layers, mlp_hidden, enc.patch_size, enc.stem
        ),
        "adapter": adapter_fwd,
        "llm": llm_fwd,
    }
    return step_flops(forwards, trainable)
