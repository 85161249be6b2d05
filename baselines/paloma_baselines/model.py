"""The decoder of the Paloma baselines, written out in full (OLMo's architecture as of late 2023).

Pre-norm blocks with LayerNorm that has no learnable parameters, fused q/k/v projection, RoPE on halves
(GPT-NeoX style), causal attention, a SwiGLU MLP (one 2·h-wide input projection split into value and
gate), biases on every linear layer, an untied output layer (with its own bias), no dropout. Module
names follow OLMo's (`transformer.wte`, `blocks.N.att_proj`, `ff_proj`, ...), so OLMo checkpoints map
onto this model key for key.

`transformers`' own `OlmoForCausalLM` cannot hold these weights: its MLP and output layer have no biases.
`paloma.eval.olmo` writes them as an equivalent stock architecture instead (see docs/baselines.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from paloma.eval.olmo import weight_shapes
from paloma_baselines.config import ModelConfig


def layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm without weight or bias, computed in float32 as OLMo does under mixed precision."""
    return F.layer_norm(x.float(), (x.shape[-1],), eps=eps).to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_tables(head_dim: int, seq_len: int, theta: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (seq_len, head_dim): frequency i on dims i and i + head_dim/2."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos(), angles.sin()


class Block(nn.Module):
    """x + attention(LN(x)), then x + SwiGLU-MLP(LN(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, bias = config.d_model, config.bias
        self.n_heads = config.n_heads
        self.eps = config.layer_norm_eps
        self.att_proj = nn.Linear(d, 3 * d, bias=bias)
        self.attn_out = nn.Linear(d, d, bias=bias)
        self.ff_proj = nn.Linear(d, 2 * config.mlp_hidden, bias=bias)
        self.ff_out = nn.Linear(config.mlp_hidden, d, bias=bias)

    def attention(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        batch, seq, d = x.shape
        q, k, v = self.att_proj(x).split(d, dim=-1)
        q, k, v = (t.view(batch, seq, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        q = (q.float() * cos + rotate_half(q.float()) * sin).to(v.dtype)
        k = (k.float() * cos + rotate_half(k.float()) * sin).to(v.dtype)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.attn_out(y.transpose(1, 2).reshape(batch, seq, d))

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.ff_proj(x).chunk(2, dim=-1)  # OLMo's order: value first, gate second
        return self.ff_out(F.silu(gate) * value)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(layer_norm(x, self.eps), cos, sin)
        return x + self.mlp(layer_norm(x, self.eps))


def _chunk_nll(hidden: torch.Tensor, head: nn.Linear, targets: torch.Tensor) -> torch.Tensor:
    logits = head(hidden)  # in the autocast dtype (bf16 on GPUs) ...
    return F.cross_entropy(logits.float(), targets, reduction="sum")  # ... upcast for one chunk only


def summed_nll(hidden: torch.Tensor, head: nn.Linear, targets: torch.Tensor, chunk_tokens: int) -> torch.Tensor:
    """Σ −ln softmax(head(hidden))[target] over all positions, `chunk_tokens` positions at a time.

    Each chunk's logits are recomputed in the backward pass instead of being kept (activation checkpointing
    of the loss), so at most one chunk of fp32 logits exists at once: for the 1B recipe's micro-batch of
    8 × 2048 tokens and a 50304 vocabulary that is 0.8 GB at 4096 tokens instead of 3.3 GB for the batch
    (plus the bf16 logits autograd would keep).
    """
    flat_hidden, flat_targets = hidden.flatten(0, 1), targets.flatten()
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, flat_targets.numel(), chunk_tokens):
        part = slice(start, start + chunk_tokens)
        if torch.is_grad_enabled():
            total = total + checkpoint(_chunk_nll, flat_hidden[part], head, flat_targets[part], use_reentrant=False)
        else:
            total = total + _chunk_nll(flat_hidden[part], head, flat_targets[part])
    return total


class Transformer(nn.Module):
    """Token ids in, next-token logits out; or, given targets, the summed negative log-likelihood.

    `_no_split_modules` names the unit FSDP shards and gathers as a whole (accelerate's transformer-based
    wrapping reads it, as it does for `transformers` models): one `Block`, as OLMo's `wrapping_strategy:
    by_block`. `activation_checkpointing` recomputes each block's activations in the backward pass.
    """

    _no_split_modules: ClassVar[list[str]] = ["Block"]

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.activation_checkpointing = False
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.d_model),
                "blocks": nn.ModuleList(Block(config) for _ in range(config.n_layers)),
                "ff_out": nn.Linear(config.d_model, config.vocab_size, bias=config.bias),
            }
        )
        self.reset_parameters()

    def forward(
        self, input_ids: torch.Tensor, targets: torch.Tensor | None = None, loss_chunk_tokens: int = 4096
    ) -> torch.Tensor:
        """Logits (batch, seq, vocab) or, with `targets` (batch, seq), Σ −ln p(target) in float32.

        The loss goes through the model's forward (not computed outside it) so that DDP and FSDP see the
        output layer used inside their hooks; it never builds the logits of the whole batch (`summed_nll`).
        """
        hidden = self.final_hidden(input_ids)
        if targets is None:
            return self.transformer.ff_out(hidden)
        return summed_nll(hidden, self.transformer.ff_out, targets, loss_chunk_tokens)

    def final_hidden(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The normalised output of the last block, the input of the output layer."""
        seq = input_ids.shape[1]
        head_dim = self.config.d_model // self.config.n_heads
        cos, sin = rope_tables(head_dim, seq, self.config.rope_theta, input_ids.device)
        x = self.transformer.wte(input_ids)
        for block in self.transformer.blocks:
            if self.activation_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, cos, sin, use_reentrant=False)
            else:
                x = block(x, cos, sin)
        return layer_norm(x, self.config.layer_norm_eps)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """OLMo's "mitchell" initialisation (truncated normals at 3σ, zero biases), or plain normal(init_std).

        Mitchell: inputs of a block at 1/√d_in; the projections back into the residual stream shrink with
        depth, 1/√(2·d_in·(layer+1)); embeddings and the output layer at 1/√d_model.
        """
        c = self.config

        def init(weight: torch.Tensor, std: float) -> None:
            if c.init == "normal":
                std = c.init_std
            nn.init.trunc_normal_(weight, std=std, a=-3 * std, b=3 * std)

        init(self.transformer.wte.weight, c.d_model**-0.5)
        init(self.transformer.ff_out.weight, c.d_model**-0.5)
        for i, block in enumerate(self.transformer.blocks):
            init(block.att_proj.weight, c.d_model**-0.5)
            init(block.attn_out.weight, (2 * c.d_model * (i + 1)) ** -0.5)
            init(block.ff_proj.weight, c.d_model**-0.5)
            init(block.ff_out.weight, (2 * c.mlp_hidden * (i + 1)) ** -0.5)
        for module in self.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.zero_()


@dataclass(frozen=True)
class ParameterCount:
    """Parameters of a model, split as Paloma submissions report them."""

    total: int
    embedding: int  # the input embedding matrix
    output: int  # the untied output layer (weight and bias)

    @property
    def non_embedding(self) -> int:
        """Everything but the vocabulary-sized matrices (input embedding and output layer)."""
        return self.total - self.embedding - self.output


def count_parameters(config: ModelConfig) -> ParameterCount:
    """The architecture's parameters from its shapes (`paloma.eval.olmo.weight_shapes`), without building it
    (a 1B model needs 5 GB of memory to build)."""
    sizes = {name: math.prod(shape) for name, shape in weight_shapes(config).items()}
    output = sizes["transformer.ff_out.weight"] + sizes.get("transformer.ff_out.bias", 0)
    return ParameterCount(total=sum(sizes.values()), embedding=sizes["transformer.wte.weight"], output=output)


def flops_per_token(config: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token: 6 per weight, plus attention's 12·layers·d·seq (PaLM's MFU formula)."""
    weights = count_parameters(config).total - config.vocab_size * config.d_model  # the lookup costs nothing
    return 6.0 * weights + 12.0 * config.n_layers * config.d_model * seq_len


def init_from_larger(model: Transformer, source: dict[str, torch.Tensor], keep_layers: list[int]) -> None:
    """Initialise `model` from a larger model's state dict, keeping the listed layers in order.

    Embeddings, the output layer and the kept blocks are copied; widths must agree. This is the
    "truncate, then continue pretraining" start of teacher-free distillation.
    """
    if len(keep_layers) != model.config.n_layers:
        raise ValueError(f"keep {len(keep_layers)} layers, but the model has {model.config.n_layers}")
    mapped = {}
    for name in model.state_dict():
        if name.startswith("transformer.blocks."):
            _, _, index, rest = name.split(".", 3)
            mapped[name] = source[f"transformer.blocks.{keep_layers[int(index)]}.{rest}"]
        else:
            mapped[name] = source[name]
    for name, tensor in mapped.items():
        expected = model.state_dict()[name].shape
        if tensor.shape != expected:
            raise ValueError(f"{name}: the source has shape {tuple(tensor.shape)}, the model {tuple(expected)}")
    model.load_state_dict(mapped)
