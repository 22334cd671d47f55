"""Models in the forms users bring them: keyword inputs, transformers from configs, torch.export results.

At module top level, so model-copy processes can import them. transformers is imported inside the
factories: copies of the other models do not pay for it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

VOCAB = 100
SEQ = 8


class KeywordOnly(nn.Module):
    """A Hugging Face style signature: named tensors, one of them optional."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(input_ids)
        if attention_mask is not None:
            x = x * attention_mask.unsqueeze(-1)
        return x.sum(dim=1)


def distilbert() -> nn.Module:
    """A one-layer DistilBERT with random weights, built from its config (nothing is downloaded)."""
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(n_layers=1, dim=32, hidden_dim=64, n_heads=2, vocab_size=VOCAB,
                              max_position_embeddings=64)
    return DistilBertModel(config).eval()


def token_batch(batch: int = 2) -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(0, VOCAB, (batch, SEQ)), "attention_mask": torch.ones(batch, SEQ,
                                                                                           dtype=torch.long)}


def batch_encoding(batch: int = 2) -> Any:
    from transformers import BatchEncoding

    return BatchEncoding(token_batch(batch))


class TokenDataset(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Items are keyword inputs, as a tokenised text dataset yields them."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return token_batch(1)


def tokenize(text: str) -> Any:
    """A tokenizer-like preprocess: text in, a BatchEncoding out."""
    from transformers import BatchEncoding

    ids = torch.tensor([[ord(c) % VOCAB for c in text[:SEQ].ljust(SEQ)]])
    return BatchEncoding({"input_ids": ids, "attention_mask": torch.ones_like(ids)})


def last_hidden_argmax(output: Any) -> torch.Tensor:
    return output.last_hidden_state.argmax(-1)


class Pointwise(nn.Module):
    """Elementwise work inductor turns into a generated C++ kernel (a lone Linear would need no compiler)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.linear(x)) * 2 + 1


class TwoArgs(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * 2 + b


def exported_program() -> torch.export.ExportedProgram:
    return torch.export.export(Pointwise().eval(), (torch.randn(2, 16),))


def exported_module() -> nn.Module:
    """What ``ExportedProgram.module()`` gives: a GraphModule that refuses ``.eval()``."""
    return exported_program().module()


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 8), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def trace_on_cpu(model: Any, inputs: tuple[Any, ...], compiler_args: Any = None, pipeline_size: int = 1) -> Any:
    """A compile_fn for npf.compile that makes TorchScript on the CPU (no Neuron compiler needed)."""
    return torch.jit.trace(model.eval(), inputs)
