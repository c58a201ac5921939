"""The torch backend: inference mode, half precision with a float32 fallback, out-of-memory splits."""

from __future__ import annotations

import copy
import threading
from typing import Callable, Dict, List, Optional

import torch

from ..devices import dtype_name, free_device_memory, is_out_of_memory, max_batch_tokens
from ..errors import warn_once

Forward = Callable[[object, Dict[str, torch.Tensor]], torch.Tensor]
# Compiled forwards (compile=True) run one at a time: dynamo compiles on first use of a shape and
# its compilation is not thread-safe. On a CPU one forward already takes every intra-op thread.
_COMPILED_FORWARD = threading.Lock()


class TorchBackend:
    """Runs a transformers model on a torch device; ``logits(batch)`` is all the pipeline sees.

    Args:
        model: the loaded model (moved to ``device`` and ``dtype`` here).
        forward: the model family's ``forward(model, batch) -> logits``.
        device, dtype: where and in which precision to run.
        reload: loads the weights again in float32, for the fallback when a half-precision forward
            fails (reloading rather than upcasting avoids keeping the half-precision rounding).
        on_dtype_change: told the new dtype after a fallback (the reranker's settings follow it).
        compile_model: run the forward through ``torch.compile`` (dynamic shapes; on CPU with
            inductor's freezing: weights folded and prepacked for oneDNN, about 1.2x float32
            speed). Compiled forwards run one at a time in the process (dynamo's compilation
            is not thread-safe); the first one compiles.

    >>> backend = TorchBackend(model, family.forward, torch.device("cpu"), torch.float32)  # doctest: +SKIP
    >>> backend.logits(collate(features, pad_id))                                          # doctest: +SKIP
    tensor([[0.73], [-2.1]])
    """

    name = "torch"

    def __init__(
        self,
        model,
        forward: Forward,
        device: torch.device,
        dtype: torch.dtype,
        reload: Optional[Callable[[], object]] = None,
        on_dtype_change: Optional[Callable[[torch.dtype], None]] = None,
        compile_model: bool = False,
    ) -> None:
        self.model = model.to(device=device, dtype=dtype)
        self.forward = forward
        self.device = device
        self.dtype = dtype
        self._reload = reload
        self._on_dtype_change = on_dtype_change
        self._lock = threading.Lock()
        self._compile = compile_model
        self._compiled = self._compiled_model(self.model) if compile_model else None
        self._budgets: Dict[int, int] = {}  # max_length -> tokens per forward (accelerators)

    @property
    def prefetch(self) -> bool:
        """Whether the pipeline should prepare batches on a worker thread: on an accelerator,
        where the host mostly waits for the device; on a CPU the forward takes every core."""
        return self.device.type == "cuda"

    def max_batch_tokens(self, max_length: int) -> Optional[int]:
        """Tokens one forward may hold, from the model's shape and the device's free memory when
        first asked (fixed afterwards, so batches do not change from call to call); None on a CPU,
        where the caller's ``batch_size`` rules."""
        if max_length not in self._budgets:
            free = free_device_memory(self.device)
            if free is None:
                return None
            self._budgets[max_length] = max_batch_tokens(
                getattr(self.model, "config", None), self.dtype, free, max_length
            )
        return self._budgets[max_length]

    def stage(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``batch`` ready to copy to the device: in pinned host memory on CUDA, so that the copy
        in :meth:`logits` runs asynchronously (called on the prefetching worker thread)."""
        if self.device.type != "cuda":
            return batch
        return {k: v.pin_memory() for k, v in batch.items()}

    def _compiled_model(self, model):
        # Freezing treats the weights as constants: only for inference, which is all this runs.
        options = {"freezing": True} if self.device.type == "cpu" else None
        return torch.compile(model, dynamic=True, options=options)

    def logits(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits ``(rows, k)`` in float32 on the CPU for a padded batch of int64 tensors.

        The inputs go to the device without waiting (at once where :meth:`stage` pinned them);
        the logits, and nothing else, come back in one copy, which waits for the forward.
        """
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        return self._split_on_oom(batch).to("cpu", torch.float32)

    def _split_on_oom(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Run a batch; on accelerator out-of-memory, run it in halves (recursively).

        The retry happens after the ``except`` block: inside it, the exception's traceback still
        holds the failed forward's frames and with them every activation it had allocated, so a
        retry there would run with that memory still taken (and fail again, down to one row).
        """
        rows = next(iter(batch.values())).shape[0]
        try:
            return self._run(batch)
        except RuntimeError as error:
            if not is_out_of_memory(error) or rows == 1:
                raise
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        warn_once(
            "oom-split",
            f"out of memory on {self.device} for a batch of {rows} pairs; splitting batches "
            "that do not fit (pass a smaller batch_size to avoid the retries).",
        )
        half = rows // 2
        first = self._split_on_oom({k: v[:half] for k, v in batch.items()})
        return torch.cat([first, self._split_on_oom({k: v[half:] for k, v in batch.items()})])

    def _run(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        model = self.model  # one model for the whole forward, even if another thread swaps it
        compiled = self._compiled
        try:
            if compiled is not None:
                with _COMPILED_FORWARD, torch.inference_mode():
                    return self.forward(compiled, batch)
            with torch.inference_mode():
                return self.forward(model, batch)
        except RuntimeError as error:
            if is_out_of_memory(error) or self.dtype == torch.float32 or self._reload is None:
                raise
            failure = error.with_traceback(None)  # keeps type and text, drops the frames
        # Out of the except block (see _split_on_oom): the failed forward's memory is free.
        self._fall_back_to_fp32(failure)
        return self._run(batch)  # now in float32, which raises rather than falls back

    def _fall_back_to_fp32(self, error: BaseException) -> None:
        text = str(error).strip()
        reason = text.splitlines()[0][:200] if text else ""
        warn_once(
            f"fp32-fallback-{self.device.type}",
            f"a {dtype_name(self.dtype)} forward failed on {self.device} "
            f"({type(error).__name__}: {reason}); crossrank switched this model to float32 and "
            "its scores are correct. Pass use_fp16=False to start in float32.",
        )
        if self.use_float32() and self._on_dtype_change is not None:
            self._on_dtype_change(torch.float32)

    def use_float32(self) -> bool:
        """Run float32 from now on (weights reloaded); False if it already did."""
        with self._lock:
            if self.dtype == torch.float32 or self._reload is None:
                return False
            # Reload rather than upcast: upcasting keeps the half-precision rounding.
            self.model = self._reload().to(device=self.device, dtype=torch.float32).eval()
            if self._compile:
                self._compiled = self._compiled_model(self.model)
            self.dtype = torch.float32
            self._budgets = {}  # float32 activations take twice the memory
            return True


def build_torch_backends(
    settings, family, checkpoint, on_dtype_change: Optional[Callable[[torch.dtype], None]] = None
) -> List[TorchBackend]:
    """Load the weights of ``checkpoint`` once and put them behind one backend per device.

    Replicas on CPU share the weights (a forward in inference mode changes nothing, so threads can
    run one model at once); each accelerator gets its own copy. Float32 CPU models run their
    linear layers through oneDNN where that is faster (see :mod:`crossrank.backends.cpu_linear`).
    """
    from ..loading import load_weights
    from .cpu_linear import use_onednn_linear, wanted

    onednn = (
        not settings.compile  # inductor's freezing picks its own kernels
        and any(device.type == "cpu" for device in settings.devices)
        and wanted(settings.dtype)
    )

    def prepared(loaded):
        if onednn:
            use_onednn_linear(loaded)  # float32 CPU inference only; see cpu_linear
        return loaded

    model = prepared(load_weights(checkpoint, family.auto_class(), settings.show_progress_bar))
    backends: List[TorchBackend] = []
    for index, device in enumerate(settings.devices):
        shared = device.type == "cpu" and index > 0
        replica = backends[0].model if shared else (copy.deepcopy(model) if index else model)
        backends.append(
            TorchBackend(
                replica,
                family.forward,
                device,
                settings.dtype,
                reload=lambda: prepared(load_weights(checkpoint, family.auto_class())),
                on_dtype_change=on_dtype_change,
                compile_model=settings.compile,
            )
        )
    return backends
