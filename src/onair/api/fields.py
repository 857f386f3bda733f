"""The text rule of :mod:`onair.domain.text` as pydantic types, for every string a client sends.

Request models, query and path parameters use these types, so a refused string is an ordinary
422 ``validation-error`` naming the field. The hot routes, which bypass FastAPI's parameter
parsing, call :func:`checked_path_param`, which raises the same problem FastAPI would.
``tests/security/test_bad_bytes.py`` checks that every string a route accepts has one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from onair.domain.text import TextKind, TextRejected, clean_text
from onair.errors import field_problem


def _validator(kind: TextKind) -> Callable[[str], str]:
    def check(value: str) -> str:
        try:
            return clean_text(value, kind)
        except TextRejected as rejected:
            raise PydanticCustomError(f"text_{rejected.reason.replace('-', '_')}",
                                      rejected.detail) from None

    check.__name__ = check.__qualname__ = f"check_{kind.value}"
    return check


check_line = _validator(TextKind.LINE)
check_multiline = _validator(TextKind.MULTILINE)
check_identifier = _validator(TextKind.ID)
TEXT_VALIDATORS = frozenset({check_line, check_multiline, check_identifier})

# Display text on one line: NFC, whitespace folded, something visible.
Line = Annotated[str, AfterValidator(check_line)]
# An opaque id: no controls, whitespace or invisible characters, never rewritten.
Identifier = Annotated[str, AfterValidator(check_identifier)]
UserId = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(check_identifier)]
# Stream and message ids in paths. Any other well-formed string is a 404 (not found), not a 422.
IdPath = Annotated[str, Path(max_length=255), AfterValidator(check_identifier)]
UserIdPath = Annotated[str, Path(min_length=1, max_length=255), AfterValidator(check_identifier)]


def checked_path_param(path_params: Mapping[str, str], name: str) -> str:
    """``path_params[name]`` checked as an id; the 422 FastAPI gives for an ``IdPath`` param."""
    value = path_params[name]
    if len(value) > 255:
        raise field_problem(("path", name), "String should have at most 255 characters")
    try:
        return clean_text(value, TextKind.ID)
    except TextRejected as rejected:
        raise field_problem(("path", name), rejected.detail) from None
