"""Stage ``plugins``: stamps of the code of plugins and of a module victim, found without running it,
rewritten only when that code changes."""

from __future__ import annotations

import json
import sys

import pytest

from advrecover.stages import plugins

PACKAGE = {
    "__init__.py": "",
    "defence.py": "from . import helpers\nfrom .tools import scale\nimport json\n",
    "helpers.py": "import mypkg.deep\n",
    "deep.py": "",
    "tools/__init__.py": "",
    "tools/scale.py": "",
    "unrelated.py": "",
}


@pytest.fixture
def mypkg(tmp_path, monkeypatch):
    """A package ``mypkg`` on sys.path: an entry module importing, relatively and absolutely, modules
    of its own package (and one of the standard library)."""
    for rel, text in PACKAGE.items():
        (tmp_path / "mypkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mypkg" / rel).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "mypkg"
    for name in [m for m in sys.modules if m.split(".")[0] == "mypkg"]:
        del sys.modules[name]


def test_the_stamp_covers_the_modules_of_its_package_that_it_imports(mypkg):
    files = plugins.module_files("mypkg.defence")
    assert set(files) == {"mypkg", "mypkg.defence", "mypkg.helpers", "mypkg.deep", "mypkg.tools", "mypkg.tools.scale"}
    assert "mypkg.defence" not in sys.modules  # read, not run
    (mypkg / "unrelated.py").write_text("y = 2\n")
    assert plugins.module_files("mypkg.defence") == files
    (mypkg / "deep.py").write_text("x = 1\n")
    changed = plugins.module_files("mypkg.defence")
    assert {k for k in files if changed[k] != files[k]} == {"mypkg.deep"}


def test_a_missing_module_is_a_clear_error(mypkg):
    with pytest.raises(ValueError, match="'mypkg.nowhere'"):
        plugins.module_files("mypkg.nowhere")
    with pytest.raises(ValueError, match="'nopkg'"):
        plugins.module_files("nopkg.defence")


def test_stamps_are_rewritten_only_when_they_change_and_stale_ones_go(tmp_path, params):
    """The example plugin (installed by `make install`) stamps its defence; a built-in defence's stamp
    names its method only (its files are the stage's own dvc.yaml deps)."""
    params["evaluate"]["defences"]["bit_depth"] = {"method": "bit_depth", "bits": 3}
    out = tmp_path / "stamps"
    written = plugins.run(p=params, out_dir=out)
    assert {"defences/bit_depth.json", "defences/none.json", "victim.json", "attacks.json"} <= set(written)
    stamp = json.loads((out / "defences/bit_depth.json").read_text())
    assert stamp["distribution"].startswith("advrecover-example ") and "advrecover_example.bitdepth" in stamp["modules"]
    assert json.loads((out / "defences/none.json").read_text()) == {"method": "none", "distribution": "advrecover"}
    times = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}
    assert plugins.run(p=params, out_dir=out) == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} == times
    del params["evaluate"]["defences"]["bit_depth"]
    params["victim"].update(mode="module", module="advrecover_example.classifier:SmallCNN")
    assert plugins.run(p=params, out_dir=out) == ["victim.json"]
    assert not (out / "defences/bit_depth.json").exists()
    victim = json.loads((out / "victim.json").read_text())
    assert set(victim["modules"]) == {"advrecover_example", "advrecover_example.classifier"}
