"""Attention for one new token at a time on a CPU, registered with transformers.

While a reply decodes, each step attends one query to everything cached so far. torch's
CPU flash kernel (what "sdpa" picks) is built for long query blocks; with a single
bfloat16 query its cost per cached token is several times that of two small matrix
products, and over 30 layers a long conversation's attention came to cost more than
reading the weights (docs/performance.md has the measurements).
Short caches, prompts and masked batches keep the stock kernel, which wins there.
"""

from __future__ import annotations

from assistant.llm import torch_compat

NAME = "grouped_decode"
# Below this many cached tokens the stock kernel is as fast or faster (measured crossover
# ~96 with bfloat16 on 2 cores).
_MIN_CACHED = 128
# Extras some architectures pass (soft-capped logits, attention sinks, biases): the stock
# kernels handle or reject them.
_MODIFIERS = ("softcap", "s_aux", "sinks", "position_bias")


_stock = None  # transformers' sdpa attention, found by ``register``


def _attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    batch, heads, length, dim = query.shape
    plain = attention_mask is None and not any(kwargs.get(k) is not None for k in _MODIFIERS)
    if batch != 1 or length != 1 or not plain or key.shape[2] < _MIN_CACHED:
        return _stock(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    groups = key.shape[1]  # key/value heads; each serves heads // groups query heads
    grouped = query.reshape(groups, heads // groups, dim)
    scale = scaling if scaling is not None else dim**-0.5
    out = grouped_attention(grouped, key[0], value[0], scale)
    return out.reshape(1, 1, heads, dim), None


def grouped_attention(query, keys, values, scale: float):
    """One query per head against the cache: (groups, heads per group, dim) queries,
    (groups, cached, dim) keys and values.

    In float32: bfloat16 matrix products go through oneDNN, which builds and keeps a
    kernel for every new shape, and the cache grows by one row a token. Over a long
    conversation that held ~0.6 GB more memory; float32 products do not, at no measurable
    cost for shapes this small.
    """
    import torch

    scores = torch.bmm(query.float(), keys.float().transpose(1, 2)).mul_(scale)
    out = torch.bmm(torch.softmax(scores, dim=-1), values.float())
    return out.to(query.dtype)


def register() -> str:
    """Make ``NAME`` a valid ``attn_implementation`` (idempotent); returns the name to load
    the model with: "sdpa" where this transformers cannot take it (torch_compat.py)."""
    global _stock
    _stock = torch_compat.stock_attention()
    return torch_compat.register_attention(NAME, _attention)
