"""sdshape's denoising loop against diffusers' own pipeline call, per model family, on the same components.

For each tiny shape, one eager fp32 session on the CPU is built; then, in alternation, sdshape's
``denoise_loop`` stage and the family's diffusers pipeline (same components, embeddings, initial noise and
steps, ``output_type="latent"``) are timed, round after round, so that the machine's drift hits both alike.
The pipeline call includes what diffusers does around its loop (input checks, latent preparation, the
timestep schedule); sdshape's loop sets its schedule each round too. The two must give the same latents
(checked once), and sdshape's loop must not be slower by more than 2% (the median ratio, printed).

    python bench/loop_vs_diffusers.py [--steps 20] [--resolution 64] [--rounds 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from sdshape.config.plan import resolve
from sdshape.models.families.base import reference_latents
from sdshape.run.session import Session

SHAPES = ("tiny", "tiny-xl", "tiny-pixart", "tiny-sd3", "tiny-flux", "tiny-flux-schnell")


def _iqr(values: list[float]) -> float:
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[2] - quartiles[0]


def measure(shape: str, steps: int, resolution: int, rounds: int) -> dict:
    plan = resolve(shape=shape, device="cpu", steps=steps, resolution=resolution, rounds=1, warmup=0)
    with Session(plan, "eager") as session:
        session.build()
        built, loop = session.built, session.stages["denoise_loop"]

        def ours() -> torch.Tensor:
            return loop.run()

        def theirs() -> torch.Tensor:
            return reference_latents(built.family, built.modules, loop, steps, plan.guidance, resolution)

        with torch.inference_mode():
            torch.testing.assert_close(ours(), theirs(), rtol=1e-5, atol=1e-5)  # also the warm-up of both
            times: dict[str, list[float]] = {"sdshape": [], "diffusers": []}
            for index in range(2 * rounds):
                name, call = (("sdshape", ours), ("diffusers", theirs))[index % 2]
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    ours_s, theirs_s = statistics.median(times["sdshape"]), statistics.median(times["diffusers"])
    return {
        "shape": shape,
        "family": built.family.name,
        "steps": steps,
        "resolution": resolution,
        "rounds": rounds,
        "sdshape_median_s": ours_s,
        "diffusers_median_s": theirs_s,
        "ratio": ours_s / theirs_s,
        "sdshape_iqr_s": statistics.quantiles(times["sdshape"], n=4)[2]
        - statistics.quantiles(times["sdshape"], n=4)[0],
        "diffusers_iqr_s": statistics.quantiles(times["diffusers"], n=4)[2]
        - statistics.quantiles(times["diffusers"], n=4)[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    rows = []
    print(f"{'shape':<18} {'family':<7} {'sdshape':>10} {'diffusers':>10} {'ratio':>7}")
    for shape in args.shapes.split(","):
        row = measure(shape, args.steps, args.resolution, args.rounds)
        rows.append(row)
        print(
            f"{shape:<18} {row['family']:<7} {row['sdshape_median_s'] * 1e3:>8.1f}ms "
            f"{row['diffusers_median_s'] * 1e3:>8.1f}ms {row['ratio']:>7.3f}",
            flush=True,
        )
    info = {"torch_threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(info, handle, indent=2)


if __name__ == "__main__":
    main()
