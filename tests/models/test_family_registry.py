"""The family registration seam: a family module from outside sdshape (the toy Sana family in
``tests/families/sana/``) joins the zoo with one line, or is found through its entry point; what would make
two families shadow each other is refused in one line naming it."""

from __future__ import annotations

import types
from importlib.metadata import EntryPoint

import pytest

from sdshape.core.errors import UsageError
from sdshape.models import families, zoo
from tests.families import sana


def _module(name: str, **members) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in members.items():
        setattr(module, key, value)
    return module


def _like_sana(name: str, **changes) -> types.ModuleType:
    members = {m: getattr(sana, m) for m in families.REQUIRED_MEMBERS}
    return _module(name, **{**members, "COMPONENTS": (), "SHAPES": (), **changes})


def _one_line_error(call) -> str:
    with pytest.raises(UsageError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_registered_family_joins_the_zoo_and_leaves_it():
    assert "tiny-pixart" in zoo.all_shapes()  # the zoo's lookups are cached before the registration
    families.register(sana)
    try:
        assert zoo.get_shape("tiny-sana").denoiser == "tiny-sana"
        assert zoo.get_component("tiny-gemma2").library_class == "Gemma2Model"
        assert families.family_of(zoo.get_component("tiny-sana")).name == "sana"
        assert [m.NAME for m in families.registered()] == ["unet", "pixart", "sd3", "flux", "sana"]
        assert families.added_modules() == ("tests.families.sana",)
    finally:
        families.unregister("sana")
    assert "tiny-sana" not in _one_line_error(lambda: zoo.get_shape("tiny-sana")).split("valid choices")[1]
    assert "SanaTransformer2DModel" in _one_line_error(lambda: families.family_name_of("SanaTransformer2DModel"))


@pytest.mark.parametrize(
    ("module", "named"),
    [
        (_module("half_a_family", NAME="half"), "lacks DENOISER_CLASSES, COMPONENTS, SHAPES, make_family"),
        (_like_sana("another_pixart", NAME="pixart"), "a family named 'pixart' is registered"),
        (
            _like_sana("dit_thief", NAME="thief", DENOISER_CLASSES=("PixArtTransformer2DModel",)),
            "denoiser class 'PixArtTransformer2DModel' is run by family 'pixart'",
        ),
        (_like_sana("t5_again", NAME="t5", COMPONENTS=(zoo.get_component("tiny-t5"),)), "component named 'tiny-t5'"),
        (_like_sana("shape_again", NAME="again", SHAPES=(zoo.get_shape("tiny-flux"),)), "shape named 'tiny-flux'"),
        (_like_sana("not_callable", NAME="nc", make_family=None), "make_family is a NoneType, not callable"),
    ],
    ids=["missing-members", "duplicate-name", "claimed-denoiser", "component-name", "shape-name", "make-family"],
)
def test_registration_refuses_what_would_shadow_a_family(module, named):
    message = _one_line_error(lambda: families.register(module))
    assert named in message and module.__name__ in message
    assert module not in families.registered()


def test_a_family_registers_once_and_unregisters_only_what_was_added():
    families.register(sana)
    try:
        assert "a family named 'sana' is registered" in _one_line_error(lambda: families.register(sana))
        assert "added: sana" in _one_line_error(lambda: families.unregister("pixart"))
    finally:
        families.unregister("sana")
    assert "added: none" in _one_line_error(lambda: families.unregister("sana"))


def test_installed_plugins_are_found_through_their_entry_point_group(monkeypatch):
    def group(found: list[EntryPoint]):
        return lambda group: found if group == families.ENTRY_POINT_GROUP else []

    plugin = EntryPoint(name="sana", value="tests.families.sana", group=families.ENTRY_POINT_GROUP)
    monkeypatch.setattr(families, "entry_points", group([plugin]))
    monkeypatch.setattr(families, "_plugins", None)
    try:
        assert families.registered()[-1] is sana
        assert zoo.get_shape("tiny-sana").vae == "tiny-dc-ae"
        broken = EntryPoint(name="gone", value="tests.families.gone", group=families.ENTRY_POINT_GROUP)
        monkeypatch.setattr(families, "entry_points", group([broken]))
        monkeypatch.setattr(families, "_plugins", None)
        message = _one_line_error(families.registered)
        assert "family plugin entry point 'gone' (tests.families.gone)" in message and "failed to load" in message
    finally:
        families._forget_lookups()
