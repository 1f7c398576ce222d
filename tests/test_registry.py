"""Methods from other installed packages: a distribution with an entry point in a family's group
(here ``advrecover.defences``) registers through the same ``register``, with the same checks."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import advrecover.defences as defences
from advrecover.registry import load_modules

PLUGIN = '''
import torch
from advrecover.defences import Defence, register


class BitDepth(Defence):
    def __init__(self, bits):
        super().__init__()
        self.levels = 2 ** bits - 1

    def recover(self, x):
        return torch.round(x * self.levels) / self.levels


@register("{method}", differentiable=False, random=False)
def build(bits: int = 4):
    """Bit-depth reduction (Xu et al. 2018), a test plugin."""
    return BitDepth(bits)
'''


def install(tmp_path, monkeypatch, *, module: str, entry_name: str, method: str, traits: str = "") -> None:
    """A distribution ``plugin-dist`` on sys.path, as pip would leave it: a module and its dist-info
    with one entry point in the defences' group."""
    source = PLUGIN.format(method=method)
    if traits:
        source = source.replace("differentiable=False, random=False", traits)
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    info = tmp_path / "plugin_dist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-dist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[advrecover.defences]\n{entry_name} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture
def registry():
    """The defences' registry, restored after the test (a plugin's method removed)."""
    saved = {k: dict(getattr(defences.REGISTRY, k)) for k in ("builders", "traits", "sources")}
    yield defences.REGISTRY
    for k, v in saved.items():
        setattr(defences.REGISTRY, k, v)
    for name in [m for m in sys.modules if m.startswith("advrecover_test_plugin")]:
        del sys.modules[name]


def test_a_plugin_defence_registers_with_its_declaration_and_checked_parameters(tmp_path, monkeypatch, registry):
    install(tmp_path, monkeypatch, module="advrecover_test_plugin", entry_name="bitdepth", method="bitdepth")
    load_modules("advrecover.defences", defences.__path__, registry)
    assert registry.sources["bitdepth"] == str(tmp_path / "advrecover_test_plugin.py")
    assert defences.adaptive_needs({"method": "bitdepth"}) == {"differentiable": False, "random": False,
                                                               "surrogate": False}
    defences.check({"bd": {"method": "bitdepth", "bits": 3}})
    with pytest.raises(ValueError, match=r"evaluate.defences.bd.depth: bitdepth takes no parameter 'depth'"):
        defences.check({"bd": {"method": "bitdepth", "depth": 3}})
    defence = defences.build({"method": "bitdepth", "bits": 1}, tmp_path)
    assert torch.equal(defence.recover(torch.tensor([0.2, 0.6])), torch.tensor([0.0, 1.0]))


def test_a_plugin_that_registers_another_name_is_named_in_the_error(tmp_path, monkeypatch, registry):
    install(tmp_path, monkeypatch, module="advrecover_test_plugin2", entry_name="bitdepth", method="bits")
    with pytest.raises(ImportError, match=r"plugin 'bitdepth' \(advrecover_test_plugin2, from plugin-dist\) "
                                          r"registered no defence named 'bitdepth'"):
        load_modules("advrecover.defences", defences.__path__, registry)


def test_a_plugin_must_declare_what_adaptive_attacks_need(tmp_path, monkeypatch, registry):
    install(tmp_path, monkeypatch, module="advrecover_test_plugin3", entry_name="bitdepth", method="bitdepth",
            traits="differentiable=False")
    with pytest.raises(ImportError,
                       match=r"failed to load: defence 'bitdepth': register\(\) must declare \['random'\]"):
        load_modules("advrecover.defences", defences.__path__, registry)


def test_a_plugin_cannot_replace_a_method_of_ours(tmp_path, monkeypatch, registry):
    install(tmp_path, monkeypatch, module="advrecover_test_plugin4", entry_name="jpeg", method="jpeg")
    with pytest.raises(ImportError, match=r"defence 'jpeg' is registered twice: in .*defences/jpeg.py and in "
                                          r".*advrecover_test_plugin4.py"):
        load_modules("advrecover.defences", defences.__path__, registry)
