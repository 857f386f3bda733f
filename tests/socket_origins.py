"""Where each socket of the test process was made, named in the report of one that was never closed.

A socket left open is reported ("unclosed <socket.socket …>") when the garbage collector frees it,
which can be several tests later: the report names only the socket's addresses, and the test it
fails is an innocent one. Every ``socket.socket`` made in this process records the stack that made
it, and the unraisable-exception report for an unclosed socket carries that stack.
"""

from __future__ import annotations

import socket
import sys
import traceback
import weakref
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

_RUNNER_FILES = ("runner.py", "_caller.py", "_manager.py", "_execution.py", "python.py",
                 "main.py", "config/__init__.py", "plugin.py")  # pytest's and pluggy's frames
_KEEP = 20_000  # recorded origins before the dead ones are pruned
_prune_above = _KEEP  # doubles with what survives a prune: O(1) amortized per socket
_origins: dict[int, tuple[weakref.ref[socket.socket], traceback.StackSummary]] = {}
_original_init = socket.socket.__init__


def _recording_init(self: socket.socket, *args: Any, **kwargs: Any) -> None:
    global _prune_above
    _original_init(self, *args, **kwargs)
    if len(_origins) >= _prune_above:
        for key in [key for key, (ref, _) in _origins.items() if ref() is None]:
            del _origins[key]
        _prune_above = max(_KEEP, 2 * len(_origins))
    # not popped by a weakref callback: the collector clears weak references before it runs the
    # finalizer that reports the socket, and the origin must still be there then
    frames = ((frame, line) for frame, line in traceback.walk_stack(sys._getframe(1))
              if not frame.f_code.co_filename.endswith(_RUNNER_FILES))
    stack = traceback.StackSummary.extract(frames, limit=16, lookup_lines=False)  # lines if reported
    _origins[id(self)] = (weakref.ref(self), stack)


def origin_of(obj: object) -> str | None:
    if not isinstance(obj, socket.socket):
        return None
    entry = _origins.get(id(obj))
    return "".join(reversed(entry[1].format())) if entry is not None else None


def install() -> None:
    """Record origins from now on and name them in unraisable-exception reports (call after
    pytest has installed its own hook, which this one wraps)."""
    socket.socket.__init__ = _recording_init  # type: ignore[method-assign]
    previous: Callable[[Any], object] = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        previous(annotated(unraisable))

    sys.unraisablehook = hook


def annotated(unraisable: Any) -> Any:
    """``unraisable`` (a ``sys.UnraisableHookArgs``), its message naming where its socket was made."""
    origin = origin_of(unraisable.object)
    if origin is None:
        return unraisable
    said = unraisable.err_msg or "Exception ignored in"
    return SimpleNamespace(exc_type=unraisable.exc_type, exc_value=unraisable.exc_value,
                           exc_traceback=unraisable.exc_traceback, object=unraisable.object,
                           err_msg=f"{said} (a socket made at:\n{origin}\n)")
