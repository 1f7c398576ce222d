"""Frozen configuration dataclasses from params sections: how a stage's ``from_params`` turns the
validated params into the typed values its ``run`` takes (built once per job)."""

from __future__ import annotations

import dataclasses
import typing


def section(cls: type, values: dict):
    """The frozen dataclass ``cls`` (e.g. ``VictimConfig``) from a validated params section, built
    once at the CLI: fields by name, lists as tuples; a dataclass-typed field from its own
    sub-section, or from the same flat section when it has none (the training options)."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            own = values.get(field.name)
            kwargs[field.name] = section(kind, own if isinstance(own, dict) else values)
        else:
            value = values[field.name]
            kwargs[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def entry(entries: dict, name: str, flag: str, where: str):
    """``entries[name]``, the entry a job's command-line value (``--flag name``) names, or an error
    naming both."""
    if name not in entries:
        raise ValueError(f"--{flag} {name}: not defined under {where} {list(entries)}")
    return entries[name]
