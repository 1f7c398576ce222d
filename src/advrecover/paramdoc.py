"""Write the parameter reference (``docs/parameters.md``) from the params JSON schema.

The schema (``workflow/schemas/params.schema.yaml``) is the contract the CLI and the Snakefile
enforce; this page lists each of its keys with the type, the constraints and the description
the schema gives, so the reference cannot drift from it (a test fails while the page is stale):

    python -m advrecover.paramdoc          # rewrite docs/parameters.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from .params import schema

HEADER = """# Parameters

Every key of `params.yaml`, generated from `workflow/schemas/params.schema.yaml` by
`python -m advrecover.paramdoc` (do not edit: a test fails while this page is stale). Every key is
required and unknown keys are errors; the CLI and the Snakefile check the file before any work,
and each registry (attacks, defences, purifiers, self-supervised tasks, adaptive attacks) checks
its entries' methods and parameters against the builders' signatures. `<name>` stands for a key
you choose (a pool, an attack instance, a defence). `params.yaml`'s own comments give the quick
profile's choices; [Presets](presets.md) the paper's.
"""
CONSTRAINTS = ("enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern",
               "minItems", "minLength", "minProperties", "uniqueItems")


def _resolve(node: dict, defs: dict) -> dict:
    """``node`` with its ``$ref`` and ``allOf`` parts folded in (properties, required, description)."""
    if "$ref" in node:
        node = {**_resolve(defs[node["$ref"].split("/")[-1]], defs), **{k: v for k, v in node.items() if k != "$ref"}}
    out = dict(node)
    for part in node.get("allOf", []):
        part = _resolve(part, defs)
        out["properties"] = {**part.get("properties", {}), **out.get("properties", {})}
        out.setdefault("description", part.get("description"))
    return out


def _type(node: dict, defs: dict) -> str:
    node = _resolve(node, defs)
    kind = node.get("type", "object" if "properties" in node else "")
    if kind == "array":
        return f"list of {_type(node.get('items', {}), defs) or 'values'}"
    return " or ".join(kind) if isinstance(kind, list) else kind


def _constraints(node: dict) -> str:
    parts = [f"{k} {node[k]}" for k in CONSTRAINTS if k in node and k != "enum"]
    if "enum" in node:
        parts.insert(0, "one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    return "; ".join(parts)


def rows(node: dict, defs: dict, path: str) -> list[tuple[str, str, str, str]]:
    """(key path, type, constraints, description) of ``node`` and of every key below it."""
    node = _resolve(node, defs)
    description = " ".join(str(node.get("description") or "").split())
    out = [(path, _type(node, defs), _constraints(node), description)] if path else []
    for key, child in node.get("properties", {}).items():
        out += rows(child, defs, f"{path}.{key}" if path else key)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out += rows(extra, defs, f"{path}.<name>")
    return out


def keys() -> list[str]:
    """Every key path of the schema (what the page must list)."""
    doc = schema()
    return [r[0] for r in rows(doc, doc["$defs"], "")]


def page() -> str:
    doc = schema()
    lines, section = [HEADER], None
    for path, kind, constraints, description in rows(doc, doc["$defs"], ""):
        top = path.split(".")[0]
        if top != section:
            section = top
            lines += [f"\n## `{top}`\n", "| key | type | constraints | description |", "| --- | --- | --- | --- |"]
        lines.append(f"| `{path}` | {kind} | {constraints.replace('|', '&#124;')} | {description.replace('|', '&#124;')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    out = Path(argv[0] if argv else "docs/parameters.md")
    out.write_text(page())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
