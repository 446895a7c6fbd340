"""Kinds of text encoder, declared once: which token stream each reads, how long a prompt it takes, whether
it has a pooled output, and where its hidden width lives in its config.

Families, the call-input shapes and the ONNX Runtime backend ask this registry instead of testing class
names for "T5". A new kind of text encoder (a decoder LLM such as Sana's Gemma 2, Lumina's Gemma or
HunyuanDiT's mT5) is one more :class:`TextEncoderKind` here; nothing else changes for the stages that do
not combine its outputs in a new way.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdshape.models.specs import ComponentSpec


@dataclass(frozen=True)
class TextEncoderKind:
    """One kind of text encoder.

    ``classes``: the library classes of this kind (transformers' names). Encoders of one kind share one
    token stream, as pipelines tokenize them with one tokenizer (SDXL's and SD3's two CLIP towers read the
    same 77 ids); each kind reads its own.
    ``length_key``: the config field holding the longest prompt the encoder takes (its learned position
    table), or None where positions are relative or rotary and the pipeline chooses the length.
    ``pooled``: whether the encoder returns a pooled output (CLIP's ``pooler_output``/``text_embeds``).
    ``width_keys``: the config fields that may hold its hidden width, in order.
    """

    name: str
    classes: tuple[str, ...]
    length_key: str | None
    pooled: bool
    width_keys: tuple[str, ...] = ("hidden_size",)

    def length_limit(self, spec: ComponentSpec) -> int | None:
        """The longest token sequence this encoder's position table holds, or None if it has none."""
        if self.length_key is None:
            return None
        limit = spec.config.get(self.length_key)
        return int(limit) if limit else None

    def width(self, spec: ComponentSpec) -> int:
        for key in self.width_keys:
            if key in spec.config:
                return int(spec.config[key])
        raise KeyError(f"{spec.name}: none of {', '.join(self.width_keys)} in its {spec.library_class} config")


CLIP = TextEncoderKind(
    "clip", ("CLIPTextModel", "CLIPTextModelWithProjection"), length_key="max_position_embeddings", pooled=True
)
T5 = TextEncoderKind(
    "t5", ("T5EncoderModel", "UMT5EncoderModel"), length_key=None, pooled=False, width_keys=("d_model",)
)
DECODER_LLM = TextEncoderKind(
    "decoder_llm", ("Gemma2Model", "GemmaModel", "Qwen2Model", "LlamaModel"), length_key=None, pooled=False
)
KINDS: tuple[TextEncoderKind, ...] = (CLIP, T5, DECODER_LLM)
_BY_CLASS = {cls: kind for kind in KINDS for cls in kind.classes}


def kind_of_class(library_class: str) -> TextEncoderKind:
    """The kind of a text encoder by its library class name; an unknown class names the known ones."""
    try:
        return _BY_CLASS[library_class]
    except KeyError:
        raise ValueError(
            f"text encoder class {library_class!r} is of no known kind; known: {', '.join(sorted(_BY_CLASS))} "
            "(add a TextEncoderKind in sdshape/models/text_kinds.py)"
        ) from None


def kind_of(spec: ComponentSpec) -> TextEncoderKind:
    """The kind of one text encoder (not a stack: see ``families.base.text_parts``)."""
    return kind_of_class(spec.library_class)
