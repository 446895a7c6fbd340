"""The field chart: how published systems split their parameters, weight bytes and FLOPs, 2022 to 2024.

Torch-free: drawn from rows that ``sdshape.models.inspection`` computes (or the committed ``sdshape/data/field.json``,
``sdshape.feasibility.quality_field.committed_rows``).
"""

from __future__ import annotations

from typing import Any

from sdshape.result.output import figure_png

PARTS = ("text_encoder", "denoise_loop", "vae_decode")
LABELS = {"text_encoder": "text encoders", "denoise_loop": "denoiser", "vae_decode": "VAE"}
COLORS = {"text_encoder": "#4c72b0", "denoise_loop": "#dd8452", "vae_decode": "#55a868"}
METRICS = (("param_share", "parameters"), ("weight_share", "weight bytes (bf16)"), ("flops_share", "FLOPs per image"))


def field_png(rows: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(METRICS), figsize=(13, 4.6), sharey=True)
    names = [f"{row['shape']} ({row['year']})" for row in rows]
    for ax, (key, title) in zip(axes, METRICS, strict=True):
        left = [0.0] * len(rows)
        for part in PARTS:
            values = [100 * row[key][part] for row in rows]
            bars = ax.barh(names, values, left=left, color=COLORS[part], label=LABELS[part])
            labels = [f"{v:.0f}%" if v >= 6 else "" for v in values]
            ax.bar_label(bars, labels=labels, label_type="center", fontsize=7, color="white")
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, 100)
        ax.invert_yaxis()
        ax.set_xlabel("share (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(PARTS), fontsize=9, frameon=False)
    figure.suptitle(
        "How the field re-spent its parameters: published configs at each pipeline's own resolution and steps",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0.06, 1, 0.97))
    return figure_png(figure)
