"""One decoding step of a Llama-architecture model, without transformers' layers.

Decoding one token of SmolLM2-135M on a CPU reads ~135 MB of int8 weights (~10 ms here);
going through transformers' module stack added ~10 ms more of Python and ~70 small tensor
operations per layer. This step computes the same function from the same weights with
~25 operations per layer: query, key and value (and gate and up) come from one fused
product each, rotary embedding turns queries and keys together, attention is two small
grouped products. The products are torch's int8 kernel for int8 weights and a plain
``linear`` for float32, float16 or bfloat16 ones: CPUs without native bfloat16 keep float
weights, and the module stack's overhead is theirs too, beside slower weight reads.
Teacher-forced over a reply, it picks transformers' next token (tests/test_llm_fast_paths.py).
Prompts (many tokens at once) still go through transformers, and both fill the same cache,
so the two interleave freely.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from assistant.llm import torch_compat
from assistant.llm.decode_attention import grouped_attention
from assistant.llm.int8_weights import Int8Linear


@dataclass(frozen=True)
class _Product:
    """A weight for ``x @ weight.T``: int8 with a per-row scale, or a float tensor."""

    weight: torch.Tensor
    scale: torch.Tensor | None = None  # int8 weights only

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is None:
            return functional.linear(x, self.weight)
        return torch_compat.int8_mm(x, self.weight, self.scale)


@dataclass(frozen=True)
class _Layer:
    qkv: _Product  # query, key and value rows stacked
    out: _Product
    gate_up: _Product  # gate and up rows stacked
    down: _Product
    attention_norm: torch.Tensor
    mlp_norm: torch.Tensor


class LlamaStep:
    """``step(token, cache, position)``: logits for the next token after ``token``."""

    def __init__(self, model) -> None:
        config = model.config
        self._heads = config.num_attention_heads
        self._kv_heads = config.num_key_value_heads
        self._head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads
        )
        self._inner = config.intermediate_size
        self._eps = config.rms_norm_eps
        self._scaling = self._head_dim**-0.5
        rotary = model.model.rotary_emb
        self._inv_freq = rotary.inv_freq.float()
        self._rope_scaling = rotary.attention_scaling
        self._embed = model.model.embed_tokens.weight
        self._final_norm = model.model.norm.weight
        self._head = _product(model.lm_head)
        self._dtype = self._embed.dtype
        self._layers = [_fuse(layer) for layer in model.model.layers]

    @staticmethod
    def supports(model) -> bool:
        """Exactly the Llama computation this step implements, with every linear layer
        bias-free and all of them int8 or all of them float."""
        return LlamaStep.unsupported(model) is None

    @staticmethod
    def unsupported(model) -> str | None:
        """Why the step cannot run ``model`` (a few words for an error), None if it can."""
        try:
            return _unsupported(model)
        except AttributeError:  # a transformers release that names its modules otherwise
            return f"{type(model).__name__}'s modules are not laid out as this step expects"

    def __call__(self, token: int, cache, position: int) -> torch.Tensor:
        heads, kv_heads, dim = self._heads, self._kv_heads, self._head_dim
        with torch.inference_mode():
            hidden = self._embed[token].unsqueeze(0)
            cos, sin = self._rotation(position)
            half = dim // 2
            for index, layer in enumerate(self._layers):
                qkv = layer.qkv(self._norm(hidden, layer.attention_norm))
                qk = qkv[0, : (heads + kv_heads) * dim].view(heads + kv_heads, dim)
                turned = torch.cat((-qk[:, half:], qk[:, :half]), dim=-1)
                qk = qk * cos + turned * sin
                key = qk[heads:].view(1, kv_heads, 1, dim)
                value = qkv[0, (heads + kv_heads) * dim :].view(1, kv_heads, 1, dim)
                keys, values = cache.update(key, value, index)
                query = qk[:heads].view(kv_heads, heads // kv_heads, dim)
                attended = grouped_attention(query, keys[0], values[0], self._scaling)
                hidden = hidden + layer.out(attended.reshape(1, heads * dim))
                gate_up = layer.gate_up(self._norm(hidden, layer.mlp_norm))
                inner = functional.silu(gate_up[:, : self._inner]) * gate_up[:, self._inner :]
                hidden = hidden + layer.down(inner)
            return self._head(self._norm(hidden, self._final_norm))[0]

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # As LlamaRMSNorm: normalised in float32, scaled in the model's dtype.
        normed = functional.rms_norm(x.float(), (x.shape[-1],), eps=self._eps)
        return normed.to(self._dtype) * weight

    def _rotation(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position * self._inv_freq
        angles = torch.cat((freqs, freqs))
        cos = (angles.cos() * self._rope_scaling).to(self._dtype)
        sin = (angles.sin() * self._rope_scaling).to(self._dtype)
        return cos, sin


def _unsupported(model) -> str | None:
    config = model.config
    if type(model).__name__ != "LlamaForCausalLM" or config.model_type != "llama":
        return f"{type(model).__name__} is not a Llama model"
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        return "the model has biased projections"
    if config.hidden_act != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return f"the model uses {config.hidden_act} or tensor-parallel slicing"
    rotary = model.model.rotary_emb
    if getattr(rotary, "rope_type", None) != "default":
        return f"the model uses {getattr(rotary, 'rope_type', None)} rotary scaling"
    _read = (rotary.inv_freq, rotary.attention_scaling, model.model.norm.weight)  # or raise
    linears = [model.lm_head]
    for layer in model.model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        _read = (layer.input_layernorm.weight, layer.post_attention_layernorm.weight)
        linears += (attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj)
        linears += (mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    kinds = {type(x) for x in linears}
    if kinds not in ({Int8Linear}, {nn.Linear}) or any(x.bias is not None for x in linears):
        return "its linear layers are not all plain or all int8, without bias"
    dtype = model.model.embed_tokens.weight.dtype
    if kinds == {nn.Linear} and {x.weight.dtype for x in linears} != {dtype}:
        return "its weights mix dtypes"  # float products take the activations' dtype
    if config.num_attention_heads % config.num_key_value_heads:
        return "its query heads do not group evenly over the key/value heads"
    return None


def _product(linear) -> _Product:
    if isinstance(linear, Int8Linear):
        return _Product(linear.weight, linear.scale)
    return _Product(linear.weight)


def _fuse(layer) -> _Layer:
    attention, mlp = layer.self_attn, layer.mlp

    def stack(*linears) -> _Product:
        """One weight for several layers; they keep row views of it, so nothing doubles."""
        weight = torch.cat([x.weight.detach() for x in linears])
        int8 = isinstance(linears[0], Int8Linear)
        scale = torch.cat([x.scale for x in linears]) if int8 else None
        start = 0
        for linear in linears:
            rows = slice(start, start + linear.out_features)
            if int8:
                linear.weight, linear.scale = weight[rows], scale[rows]
            else:
                linear.weight = nn.Parameter(weight[rows], requires_grad=False)
            start = rows.stop
        return _Product(weight, scale)

    return _Layer(
        qkv=stack(attention.q_proj, attention.k_proj, attention.v_proj),
        out=_product(attention.o_proj),
        gate_up=stack(mlp.gate_proj, mlp.up_proj),
        down=_product(mlp.down_proj),
        attention_norm=layer.input_layernorm.weight,
        mlp_norm=layer.post_attention_layernorm.weight,
    )
