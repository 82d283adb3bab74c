"""Every private or internal torch and transformers API the LLM's fast paths touch.

The fast paths lean on a CPU kernel torch does not document, a oneDNN capability probe,
and transformers' attention registries, which have moved between releases. Each lives
here behind a function with a public fall-back, so a torch or transformers upgrade that
drops one costs speed, with a warning in the log, instead of the assistant's replies.
"""

from __future__ import annotations

import logging

import torch
from torch.nn import functional

log = logging.getLogger(__name__)

_int8_kernel_failed = False  # set once the private kernel has rejected a call


def has_int8_kernel() -> bool:
    """Whether torch has its weight-only int8 CPU kernel (``torch._weight_int8pack_mm``)."""
    return callable(getattr(torch, "_weight_int8pack_mm", None)) and not _int8_kernel_failed


def int8_mm(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T * scale`` for int8 ``weight`` (out x in) and per-row ``scale``.

    The private kernel reads the int8 weight as it is; the fall-back widens it to ``x``'s
    dtype on every call (int8 values are exact in bfloat16 and float16), which is slower
    but the same sum, scaled after it as the kernel does.
    """
    global _int8_kernel_failed
    kernel = None if _int8_kernel_failed else getattr(torch, "_weight_int8pack_mm", None)
    if kernel is not None:
        try:
            return kernel(x, weight, scale)
        except (RuntimeError, NotImplementedError) as exc:
            out = _widened_mm(x, weight, scale)  # raises too if the input, not the kernel, is wrong
            _int8_kernel_failed = True
            log.warning("torch's int8 kernel failed (%s); widening int8 weights instead", exc)
            return out
    return _widened_mm(x, weight, scale)


def _widened_mm(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return functional.linear(x, weight.to(x.dtype)) * scale.to(x.dtype)


def bf16_native() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX); False when
    torch cannot say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def stock_attention():
    """transformers' own "sdpa" attention function, or None if neither place has it."""
    try:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        return ALL_ATTENTION_FUNCTIONS["sdpa"]
    except (ImportError, KeyError, TypeError):
        pass
    try:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
    except ImportError:
        return None
    return sdpa_attention_forward


def _stock_mask():
    try:
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

        return ALL_MASK_ATTENTION_FUNCTIONS["sdpa"]
    except (ImportError, KeyError, TypeError):
        pass
    try:
        from transformers.masking_utils import sdpa_mask
    except ImportError:
        return None
    return sdpa_mask


def register_attention(name: str, function) -> str:
    """Make ``name`` an ``attn_implementation`` running ``function`` with sdpa's masks;
    returns ``name``, or "sdpa" (with a warning) where transformers will not take it."""
    mask = _stock_mask()
    try:
        from transformers import AttentionInterface, AttentionMaskInterface

        if mask is None or stock_attention() is None:
            raise LookupError("no stock sdpa attention or mask to build on")
        AttentionInterface.register(name, function)
        AttentionMaskInterface.register(name, mask)
    except (ImportError, AttributeError, TypeError, LookupError) as exc:
        log.warning("cannot register the %s attention (%s); using sdpa", name, exc)
        return "sdpa"
    return name


def attention_implementation(model) -> str:
    """The attention a loaded model runs ("sdpa", "eager", a registered name...)."""
    config = model.config
    for attribute in ("_attn_implementation", "attn_implementation"):
        value = getattr(config, attribute, None)
        if isinstance(value, str):
            return value
    return "unknown"
