"""One decoding step of an int8 Llama-architecture model, without transformers' layers.

Decoding one token of SmolLM2-135M on a CPU reads ~135 MB of int8 weights (~10 ms here);
going through transformers' module stack added ~10 ms more of Python and ~70 small tensor
operations per layer. This step computes the same function from the same weights with
~25 operations per layer: query, key and value (and gate and up) come from one fused int8
product each, rotary embedding turns queries and keys together, attention is two small
grouped products. 20 -> 16 ms a token; teacher-forced over a reply, it picks transformers'
next token every time (logit cosine 0.9994 on average, tests/test_llm_fast_paths.py).
Prompts (many tokens at once) still go through transformers, and both fill the same
cache, so the two interleave freely.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional

from assistant.llm.decode_attention import grouped_attention
from assistant.llm.int8_weights import Int8Linear


@dataclass(frozen=True)
class _Layer:
    qkv: torch.Tensor  # int8, query, key and value rows stacked
    qkv_scale: torch.Tensor
    out: torch.Tensor
    out_scale: torch.Tensor
    gate_up: torch.Tensor  # int8, gate and up rows stacked
    gate_up_scale: torch.Tensor
    down: torch.Tensor
    down_scale: torch.Tensor
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
        self._head = model.lm_head
        self._dtype = self._embed.dtype
        self._layers = [_fuse(layer) for layer in model.model.layers]

    @staticmethod
    def supports(model) -> bool:
        """Exactly the Llama computation this step implements, on int8 weights."""
        config = model.config
        if type(model).__name__ != "LlamaForCausalLM" or config.model_type != "llama":
            return False
        if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
            return False
        if config.hidden_act != "silu" or getattr(config, "pretraining_tp", 1) != 1:
            return False
        if getattr(model.model.rotary_emb, "rope_type", None) != "default":
            return False
        if not isinstance(model.lm_head, Int8Linear):
            return False
        for layer in model.model.layers:
            attention, mlp = layer.self_attn, layer.mlp
            linears = (attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj)
            linears += (mlp.gate_proj, mlp.up_proj, mlp.down_proj)
            if not all(isinstance(x, Int8Linear) and x.bias is None for x in linears):
                return False
        return config.num_attention_heads % config.num_key_value_heads == 0

    def __call__(self, token: int, cache, position: int) -> torch.Tensor:
        heads, kv_heads, dim = self._heads, self._kv_heads, self._head_dim
        mm = torch._weight_int8pack_mm
        with torch.inference_mode():
            hidden = self._embed[token].unsqueeze(0)
            cos, sin = self._rotation(position)
            half = dim // 2
            for index, layer in enumerate(self._layers):
                qkv = mm(self._norm(hidden, layer.attention_norm), layer.qkv, layer.qkv_scale)
                qk = qkv[0, : (heads + kv_heads) * dim].view(heads + kv_heads, dim)
                turned = torch.cat((-qk[:, half:], qk[:, :half]), dim=-1)
                qk = qk * cos + turned * sin
                key = qk[heads:].view(1, kv_heads, 1, dim)
                value = qkv[0, (heads + kv_heads) * dim :].view(1, kv_heads, 1, dim)
                keys, values = cache.update(key, value, index)
                query = qk[:heads].view(kv_heads, heads // kv_heads, dim)
                attended = grouped_attention(query, keys[0], values[0], self._scaling)
                hidden = hidden + mm(attended.reshape(1, heads * dim), layer.out, layer.out_scale)
                gate_up = mm(self._norm(hidden, layer.mlp_norm), layer.gate_up, layer.gate_up_scale)
                inner = functional.silu(gate_up[:, : self._inner]) * gate_up[:, self._inner :]
                hidden = hidden + mm(inner, layer.down, layer.down_scale)
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


def _fuse(layer) -> _Layer:
    attention, mlp = layer.self_attn, layer.mlp

    def stack(*linears: Int8Linear) -> tuple[torch.Tensor, torch.Tensor]:
        """One weight for several layers; they keep row views of it, so nothing doubles."""
        weight = torch.cat([x.weight for x in linears])
        scale = torch.cat([x.scale for x in linears])
        start = 0
        for linear in linears:
            rows = slice(start, start + linear.out_features)
            linear.weight, linear.scale = weight[rows], scale[rows]
            start = rows.stop
        return weight, scale

    qkv, qkv_scale = stack(attention.q_proj, attention.k_proj, attention.v_proj)
    gate_up, gate_up_scale = stack(mlp.gate_proj, mlp.up_proj)
    return _Layer(
        qkv=qkv,
        qkv_scale=qkv_scale,
        out=attention.o_proj.weight,
        out_scale=attention.o_proj.scale,
        gate_up=gate_up,
        gate_up_scale=gate_up_scale,
        down=mlp.down_proj.weight,
        down_scale=mlp.down_proj.scale,
        attention_norm=layer.input_layernorm.weight,
        mlp_norm=layer.post_attention_layernorm.weight,
    )
