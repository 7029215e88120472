"""The Lua scripts of `lua/` (one operation per file, compiled into `skedulr._core`), with their shared
helpers pasted in: a script's line `--- @include _lib` is replaced by `lua/_lib.lua`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

from .. import _core

_INCLUDE = "--- @include "


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str


@cache
def load(name: str) -> Script:
    lines = []
    for line in _core.LUA_SCRIPTS[name].splitlines():
        if line.startswith(_INCLUDE):
            lines.append(_core.LUA_SCRIPTS[line[len(_INCLUDE) :].strip()])
        else:
            lines.append(line)
    source = "\n".join(lines) + "\n"
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())
