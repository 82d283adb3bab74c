"""Weight-only int8 for the chat model's linear layers on the CPU.

Decoding one token reads every weight once, so on a CPU a small LLM is bound by memory
bandwidth, not arithmetic: SmolLM2-135M in float32 moves ~540 MB per token. Storing the
linear weights as int8 with one scale per output channel moves a quarter of that, while
activations stay in bfloat16, so replies match the float model's (activation quantisation,
as in ``torch.ao``'s dynamic int8, visibly derails a model this small).

The kernel is ``torch._weight_int8pack_mm`` (through torch_compat.py), the CPU kernel
torchao's int8 weight-only mode calls; torchao itself adds tensor-subclass overhead in eager
mode that cancels the gain.
"""

from __future__ import annotations

import torch
from torch import nn

from assistant.llm import torch_compat


def int8_supported() -> bool:
    """Whether this torch and CPU run the int8 kernel with bfloat16 activations.

    Without native bfloat16 the kernel falls back to a path several times slower than
    plain float32, so such CPUs keep float32; so does a torch without the kernel, where
    torch_compat.int8_mm widens the weights on every call.
    """
    if not torch_compat.has_int8_kernel() or not torch_compat.bf16_native():
        return False
    try:
        probe = Int8Linear(nn.Linear(64, 8, bias=False))
        probe(torch.ones(1, 64, dtype=torch.bfloat16))
    except RuntimeError:
        return False
    return torch_compat.has_int8_kernel()  # False if the probe found the kernel failing


class Int8Linear(nn.Module):
    """A linear layer whose weight is int8 with a per-output-channel scale."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        quantized = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.register_buffer("weight", quantized)
        self.register_buffer("scale", scale.to(torch.bfloat16))
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = torch_compat.int8_mm(flat, self.weight, self.scale.to(x.dtype))
        out = out.reshape(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias.to(x.dtype)


def quantize_linears(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` with an ``Int8Linear`` and move the rest to bfloat16.

    A head tied to the input embeddings is untied first: the embedding lookup keeps its
    bfloat16 table while the head (a fifth of SmolLM2's weights) becomes int8.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                setattr(parent, name, Int8Linear(child))
    if hasattr(model.config, "tie_word_embeddings"):
        model.config.tie_word_embeddings = False
    return model.to(torch.bfloat16)
