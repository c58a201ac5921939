"""Device choice and dtype policy.

Half precision helps on CUDA and Apple GPUs (MPS) and hurts on CPUs, where fp16/bf16 matmuls are
slower than fp32. ``use_fp16`` therefore means "half precision where the device does it well";
``dtype`` forces a precision on any device.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from .errors import CrossrankWarning, warn_once  # noqa: F401 - re-exported

DeviceLike = Union[str, torch.device, None]
DTypeLike = Union[str, torch.dtype, None]

_SUPPORTED_TYPES = ("cpu", "cuda", "mps")
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: DeviceLike = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda[:n]" | "mps"`` into a :class:`torch.device` that exists here.

    ``"auto"`` (or ``None``) picks CUDA, then MPS, then CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except RuntimeError:
            dev = None
        if dev is None or dev.type not in _SUPPORTED_TYPES:
            raise ValueError(
                f"device={device!r} is not a device crossrank knows; "
                "use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
            )
    else:
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    if dev.type not in _SUPPORTED_TYPES:
        raise ValueError(
            f"device={str(dev)!r} is not supported; use 'auto', 'cpu', 'cuda' or 'mps'"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(dev)!r} was requested but CUDA is not available on this machine; "
                "use device='auto' or device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={str(dev)!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    if dev.type == "mps" and not _mps_available():
        raise ValueError(
            "device='mps' was requested but MPS is not available on this machine; "
            "use device='auto' or device='cpu'"
        )
    return dev


def parse_dtype(dtype: DTypeLike) -> Optional[torch.dtype]:
    """``"float16" | "bfloat16" | "float32"`` (or a torch dtype) → torch dtype; ``None`` stays None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        if isinstance(dtype, torch.dtype) and dtype not in _DTYPES.values():
            raise ValueError(f"dtype={dtype} is not supported; use float32, float16 or bfloat16")
        return dtype
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.lower().removeprefix("torch.")]
    raise ValueError(f"dtype={dtype!r} is not supported; use 'float32', 'float16' or 'bfloat16'")


def dtype_name(dtype: Union[torch.dtype, str]) -> str:
    """The name settings, cache keys and messages use for a dtype (the inverse of parse_dtype).

    >>> dtype_name(torch.bfloat16)
    'bfloat16'
    """
    return str(dtype).replace("torch.", "")


def choose_dtype(
    device: torch.device, use_fp16: Optional[bool] = None, dtype: DTypeLike = None
) -> torch.dtype:
    """Pick the compute dtype for ``device``.

    An explicit ``dtype`` wins on every device. Otherwise ``use_fp16`` (``None`` = automatic) gives
    float16 on CUDA and MPS and float32 on CPU; ``use_fp16=True`` on CPU is ignored with a one-time
    note, because float16 is slower than float32 there. The note says when the CPU computes
    bfloat16 natively (AVX512-BF16, AMX, SVE-BF16), where ``dtype="bfloat16"`` is about twice as
    fast as float32 (measured in benchmarks/RESULTS.md) at the cost of slightly moved scores.
    """
    explicit = parse_dtype(dtype)
    if explicit is not None:
        return explicit
    if device.type in ("cuda", "mps"):
        return torch.float32 if use_fp16 is False else torch.float16
    if use_fp16:
        if cpu_has_native_bf16():
            advice = (
                "this CPU computes bfloat16 natively: pass dtype='bfloat16' for about twice the "
                "speed (scores move slightly; check the ranking on your data)"
            )
        else:
            advice = "pass dtype='bfloat16' to force half precision"
        warn_once(
            "fp16-on-cpu",
            "use_fp16=True is ignored on CPU, where float16 is slower than float32; crossrank runs "
            f"float32 there ({advice}).",
        )
    return torch.float32


def cpu_has_native_bf16() -> bool:
    """True where the CPU has bfloat16 matrix instructions (AVX512-BF16, AMX-BF16, SVE-BF16)."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.9
    if get_capabilities is None:
        return False
    try:
        capabilities = get_capabilities()
    except Exception:  # noqa: BLE001 - a capability probe must never break loading
        return False
    return any(capabilities.get(name) for name in ("avx512_bf16", "amx_bf16", "sve_bf16", "bf16"))


def is_out_of_memory(error: BaseException) -> bool:
    """True for an accelerator out-of-memory error (worth a smaller batch), False otherwise."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def share_cpu_threads(replicas: int) -> None:
    """Give each CPU replica its share of torch's threads (a process-wide setting, noted once)."""
    threads = max(1, torch.get_num_threads() // replicas)
    if threads != torch.get_num_threads():
        warn_once(
            f"cpu-threads-{replicas}",
            f"{replicas} CPU replicas: torch.set_num_threads({threads}) for this process, so the "
            "replicas share the cores instead of fighting over them.",
        )
        torch.set_num_threads(threads)


# TEI's default max_batch_tokens is 16,384; crossrank's own models are small enough that a larger
# forward keeps a big GPU busier, and 65,536 tokens of bge-base activations still fit ~2 GiB.
MAX_BATCH_TOKENS = 65536
# Share of the free accelerator memory one forward's activations may take (the rest: the allocator's
# fragmentation, other models, the other replicas' prefetched batches).
MEMORY_SHARE = 0.5


def max_batch_tokens(
    config,
    dtype: torch.dtype,
    free_bytes: int,
    max_length: int,
    share: float = MEMORY_SHARE,
    cap: int = MAX_BATCH_TOKENS,
) -> int:
    """Tokens (rows × padded length) one forward may hold on a device with ``free_bytes`` free.

    Like TEI's ``max_batch_tokens``, derived from the model's shape: an inference forward keeps
    about one layer's activations at a time, per token ``6 × hidden`` (hidden states in and out,
    query, key, value, attention output) ``+ 2 × intermediate`` (feed-forward in and out)
    ``+ heads × max_length`` (attention weights where the kernel materializes them), doubled for
    the allocator's slack. The budget is at least one full-length pair and at most ``cap``.

    >>> from types import SimpleNamespace
    >>> bert_base = SimpleNamespace(hidden_size=768, intermediate_size=3072, num_attention_heads=12)
    >>> max_batch_tokens(bert_base, torch.float16, free_bytes=80 * 2**30, max_length=512)
    65536
    >>> max_batch_tokens(bert_base, torch.float16, free_bytes=2**30, max_length=512)
    7943
    """
    if free_bytes < 0:
        raise ValueError(f"free_bytes must be >= 0, got {free_bytes}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model", 0) or 1024)
    intermediate = int(
        getattr(config, "intermediate_size", 0) or getattr(config, "d_ff", 0) or 4 * hidden
    )
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "num_heads", 0) or 16)
    element = torch.finfo(dtype).bits // 8 if dtype.is_floating_point else 4
    per_token = 2 * element * (6 * hidden + 2 * intermediate + heads * max_length)
    fits = int(free_bytes * share) // per_token
    return max(max_length, min(cap, fits))


def free_device_memory(device: torch.device) -> Optional[int]:
    """Free bytes on an accelerator (CUDA), None on a CPU or where the driver cannot tell."""
    if device.type != "cuda":
        return None
    try:
        free, _total = torch.cuda.mem_get_info(device)
    except Exception:  # noqa: BLE001 - a memory probe must never break scoring
        return None
    return int(free)
