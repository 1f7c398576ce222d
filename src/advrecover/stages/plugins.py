"""Stage ``plugins``: the code of the methods and the classifier that come from other packages, as
small stamp files that the stages running them depend on.

A plugin (an entry point in a family's group, ``advrecover.registry.load_modules``) or a victim
built from an import path (``victim.mode: module``) lives outside this repository, where neither
runner can see it. This stage writes, under ``--out``, one JSON file per defence entry
(``defences/<name>.json``), one for the victim (``victim.json``) and one per other family
(``attacks.json``, ...), each holding the SHA-256 of every source file of the plugin's modules (the
module an entry point names and the modules of its own package that it imports). A file is
rewritten only when its content changes, so editing a plugin re-runs exactly the stages that run
it. DVC runs the stage at every ``dvc repro`` (``always_changed``: it reads code DVC cannot track);
Snakemake runs the same command when it parses the workflow. The modules are found and read, not
run (Python runs a plugin package's ``__init__`` to find its submodules), so the stage takes well
under a second where the plugin's ``__init__`` imports nothing heavy.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
from importlib import metadata
from pathlib import Path

from ..io import atomic_path

FAMILIES = ("attacks", "purifiers", "ssl", "adaptive")  # one stamp each; defences get one per entry


def module_files(module: str) -> dict[str, str]:
    """``module`` and the modules of its top-level package that it imports, transitively, with
    their packages' ``__init__`` files: module name -> SHA-256 of its source."""
    top, found, todo = module.split(".")[0], {}, [module]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"plugin module {name!r} cannot be found: {exc}") from exc
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise ValueError(f"plugin module {name!r}: no Python source of it on sys.path (is its package installed?)")
        source = Path(spec.origin).read_bytes()
        found[name] = hashlib.sha256(source).hexdigest()
        package = name if spec.submodule_search_locations is not None else name.rpartition(".")[0]
        todo += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        todo += _imports(source, package, top)
    return dict(sorted(found.items()))


def _imports(source: bytes, package: str, top: str) -> list[str]:
    """Absolute names of the modules of package ``top`` that ``source`` imports (a ``from`` import of
    a package also names the submodules it imports). Only ``top``'s own modules are looked up: finding
    another package's submodule would import that package."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names if alias.name.split(".")[0] == top]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module) if p)
            if target.split(".")[0] != top:
                continue
            names.append(target)
            if _is_package(target):
                names += [f"{target}.{a.name}" for a in node.names
                          if importlib.util.find_spec(f"{target}.{a.name}") is not None]
    return names


def _is_package(name: str) -> bool:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.submodule_search_locations is not None


def plugin_code(family: str) -> dict[str, dict]:
    """Method name -> its distribution and module files, for every entry point of ``family``'s group."""
    found = {}
    for entry in metadata.entry_points(group=f"advrecover.{family}"):
        dist = f"{entry.dist.name} {entry.dist.version}" if getattr(entry, "dist", None) else None
        found[entry.name] = {"distribution": dist, "modules": module_files(entry.module)}
    return dict(sorted(found.items()))


def stamps(p: dict) -> dict[str, dict]:
    """Relative stamp path -> content, for the validated params ``p``."""
    defences = plugin_code("defences")
    out = {f"{family}.json": {"plugins": plugin_code(family)} for family in FAMILIES}
    for name, entry in p["evaluate"]["defences"].items():
        method = entry["method"]
        out[f"defences/{name}.json"] = {"method": method, **defences.get(method, {"distribution": "advrecover"})}
    victim = p["victim"]
    out["victim.json"] = {"mode": victim["mode"]}
    if victim["mode"] == "module":
        module = victim["module"].partition(":")[0]
        out["victim.json"].update(module=victim["module"], modules=module_files(module))
    return out


def workload(p: dict, job) -> list:
    """No network runs here (file work only): nothing for benchmarks/scale.py to cost."""
    return []


def run(*, p: dict, out_dir: str | Path) -> list[str]:
    """Write the stamps of ``p`` under ``out_dir`` (only those whose content changed) and remove
    those of defences no longer in the params; the paths written."""
    out_dir, written = Path(out_dir), []
    wanted = {rel: json.dumps(obj, indent=2, sort_keys=True) + "\n" for rel, obj in stamps(p).items()}
    for rel, text in wanted.items():
        path = out_dir / rel
        if not path.is_file() or path.read_text() != text:
            with atomic_path(path) as tmp:
                tmp.write_text(text)
            written.append(rel)
    for stale in out_dir.glob("defences/*.json"):
        if str(stale.relative_to(out_dir)) not in wanted:
            stale.unlink()
    return written
