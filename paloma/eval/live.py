"""A model in memory, as trainers hold it: what the Evaluator scores and how ranks share the work.

- `ModelAdapter` presents any causal LM to the scorer the way a transformers model is presented: a function
  from input ids to logits, or to final hidden states plus the output layer (only scored rows then go
  through the output layer, as for transformers models with a plain head).
- `scoring_model` unwraps what trainers wrap: DDP (`.module`: its forward may broadcast buffers, a collective),
  `torch.compile` (`._orig_mod`: every new batch shape would recompile). FSDP-sharded models are scored through
  their own forward, which gathers the parameters.
- `Ranks` is the initialized `torch.distributed` group (or one process): barriers and float64 sums.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from paloma.errors import PalomaError


class ModelAdapter(torch.nn.Module):
    """A plain `nn.Module` causal LM, presented to the evaluator.

    Give exactly one of:
    - `logits`: input ids [batch, seq] → logits [batch, seq, vocab];
    - `hidden_states` and `output_layer`: input ids → final hidden states [batch, seq, d], and the layer
      (usually an `nn.Linear`) that turns them into logits; only scored positions go through it.

    Batches are right-padded and the adapter gets no attention mask: a causal model's scored positions never
    see the padding after them, so none is needed.
    """

    base_model_prefix = "body"

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
        hidden_states: Callable[[torch.Tensor], torch.Tensor] | None = None,
        output_layer: torch.nn.Module | None = None,
        vocab_size: int | None = None,
    ):
        super().__init__()
        if (logits is None) == (hidden_states is None) or (hidden_states is None) != (output_layer is None):
            raise PalomaError("ModelAdapter: give `logits`, or `hidden_states` with `output_layer`")
        self.module = module
        self._logits, self._hidden, self.output_layer = logits, hidden_states, output_layer
        vocab = vocab_size or getattr(output_layer, "out_features", None) or _config_vocab(module)
        if vocab is None:
            raise PalomaError("ModelAdapter: pass vocab_size (it cannot be read from the module)")
        self.config = SimpleNamespace(vocab_size=int(vocab), model_type=None)
        self.body = _HiddenStates(hidden_states) if hidden_states is not None else None

    @property
    def plain_head(self) -> bool:
        return self.output_layer is not None

    def forward(self, input_ids: torch.Tensor, attention_mask=None, use_cache=False) -> SimpleNamespace:
        if self._logits is not None:
            return SimpleNamespace(logits=self._logits(input_ids))
        return SimpleNamespace(logits=self.output_layer(self._hidden(input_ids)))

    def get_output_embeddings(self) -> torch.nn.Module | None:
        return self.output_layer

    def get_input_embeddings(self) -> SimpleNamespace:
        """Where inputs go (the scorer reads `.weight.device`): the device of the module's first parameter."""
        return SimpleNamespace(weight=next(self.module.parameters()))


class _HiddenStates(torch.nn.Module):
    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.function = function

    def forward(self, input_ids: torch.Tensor, attention_mask=None, use_cache=False) -> SimpleNamespace:
        return SimpleNamespace(last_hidden_state=self.function(input_ids))


def _config_vocab(module: torch.nn.Module) -> int | None:
    return getattr(getattr(module, "config", None), "vocab_size", None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module to score: DDP's `.module`, a compiled model's original module (FSDP1 stays wrapped: its
    forward gathers the parameters)."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether any part of the model is FSDP-sharded (FSDP1 wrapper or FSDP2 `fully_shard`)."""
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    return any(isinstance(m, FSDPModule | FullyShardedDataParallel) for m in model.modules())


def scoring_model(model: torch.nn.Module) -> tuple[torch.nn.Module, bool | None]:
    """The module the scorer calls and whether it may take the plain-head path (None: let the scorer decide).

    A transformers model is scored as is; any other module through `ModelAdapter(model, logits=model)`.
    A sharded model always goes through its own (root) forward: calling its base model or output layer
    directly would skip the root's parameter gathering.
    """
    sharded = is_sharded(model)
    if isinstance(model, ModelAdapter):
        return model, model.plain_head and not sharded
    if hasattr(model, "get_output_embeddings") and hasattr(model, "config"):
        return model, False if sharded else None
    return ModelAdapter(model, logits=model), False


def parameter_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype the model computes in: its floating-point parameters' (they must agree)."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) != 1:
        raise PalomaError(f"the model's parameters have several dtypes ({sorted(map(str, dtypes))}): cast it to one")
    return dtypes.pop()


@dataclass
class Ranks:
    """This process's place in an initialized `torch.distributed` group (one process when there is none)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Ranks:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def max(self, value: int, device: torch.device) -> int:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return int(tensor.item())
