"""One registry for every family of methods (attacks, defences, and the families to come).

A family registers builders explicitly by method name; ``params.yaml`` names *entries* (a
``method`` and its parameters). Methods come from the family's own modules and from other installed
packages: a package that declares an entry point in the family's group (the family's package name,
e.g. ``advrecover.defences``) is imported when the family loads, and registers its builders with the
same ``register`` and the same declarations as ours. The registry checks an entry before any work (unknown method,
a parameter the method does not take, a required one missing: each message names the params
path) and builds it. A builder's signature is the one place its defaults live: it names the
``context`` arguments it uses (the model, a models directory; passed by name), the rest are the
entry's parameters.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from importlib import metadata


class Registry:
    """The methods of one family: ``register(name)`` decorates a builder, ``check`` and ``build``
    take params entries ``{"method": name, **parameters}``."""

    def __init__(self, family: str, context: tuple[str, ...], required_traits: tuple[str, ...] = ()):
        self.family, self.context, self.builders, self.traits = family, context, {}, {}
        self.required_traits, self.sources = required_traits, {}

    def register(self, name: str, **traits):
        """Register ``builder(*context, **parameters)`` under ``name``, with declared ``traits``
        (every one of ``required_traits`` must be declared: a method says what it is)."""
        missing = [t for t in self.required_traits if t not in traits]
        if missing:
            raise TypeError(f"{self.family} {name!r}: register() must declare {missing}")

        def deco(builder):
            source = inspect.getsourcefile(builder)
            if name in self.builders and self.sources[name] != source:
                raise TypeError(f"{self.family} {name!r} is registered twice: in {self.sources[name]} and in {source}")
            self.builders[name], self.traits[name], self.sources[name] = builder, traits, source
            return builder

        return deco

    def parameters(self, method: str) -> dict:
        """Parameter name -> default (``inspect.Parameter.empty`` when required) of a method."""
        params = inspect.signature(self.builders[method]).parameters
        return {k: p.default for k, p in params.items() if k not in self.context}

    def check(self, entries: dict, where: str) -> None:
        """Fail on an unknown method, an unknown parameter or a missing one, naming ``where.entry.key``."""
        for name, spec in entries.items():
            method = spec.get("method")
            if method not in self.builders:
                raise ValueError(f"{where}.{name}.method: unknown {self.family} {method!r}; known: "
                                 f"{sorted(self.builders)}")
            accepted = self.parameters(method)
            for key in spec:
                if key != "method" and key not in accepted:
                    raise ValueError(f"{where}.{name}.{key}: {method} takes no parameter {key!r}; "
                                     f"it takes {list(accepted)}")
            missing = [k for k, v in accepted.items() if v is inspect.Parameter.empty and k not in spec]
            if missing:
                raise ValueError(f"{where}.{name}: {method} needs {missing}")

    def build(self, spec: dict, *context):
        """The method of one entry, given the stage's ``context`` arguments: a builder receives, by
        name, only the context arguments its signature names (a defence without models takes no
        ``models_dir``)."""
        builder = self.builders[spec["method"]]
        named = inspect.signature(builder).parameters
        given = {k: v for k, v in zip(self.context, context) if k in named}
        return builder(**given, **{k: v for k, v in spec.items() if k != "method"})

    def passes(self, spec: dict, **context) -> int:
        """The declared ``passes`` of one entry, called with the entry's parameters over the builder's
        defaults (so the signature stays the one place of the defaults) and ``context``."""
        defaults = {k: v for k, v in self.parameters(spec["method"]).items() if v is not inspect.Parameter.empty}
        entry = {**defaults, **{k: v for k, v in spec.items() if k != "method"}}
        return self.traits[spec["method"]]["passes"](**context, **entry)

    def trait(self, method: str, name: str, default=None):
        return self.traits[method].get(name, default)


def load_modules(package: str, path, registry: Registry) -> None:
    """Import every module of a family's package, then every plugin of its entry-point group
    (``package``), so that each registers its methods; a plugin whose entry point names no method
    it registered is an error naming its distribution."""
    for mod in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{mod.name}")
    for entry in metadata.entry_points(group=package):
        try:
            entry.load()
        except Exception as exc:
            raise ImportError(f"{registry.family} plugin {entry.name!r} ({entry.value}, from "
                              f"{_distribution(entry)}) failed to load: {exc}") from exc
        if entry.name not in registry.builders:
            raise ImportError(f"{registry.family} plugin {entry.name!r} ({entry.value}, from {_distribution(entry)}) "
                              f"registered no {registry.family} named {entry.name!r}: decorate its builder with "
                              f"{package}.register({entry.name!r}, ...)")


def _distribution(entry) -> str:
    return entry.dist.name if getattr(entry, "dist", None) else "an unnamed distribution"
