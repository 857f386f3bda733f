"""Import contract: the protocol core stays sans-I/O (STYLE §1)."""

from __future__ import annotations

import ast
import pathlib

import onair.realtime.protocol as protocol

FORBIDDEN = {"asyncio", "time", "socket", "starlette", "fastapi", "sqlalchemy", "redis", "websockets", "uvicorn", "os", "datetime"}


def test_protocol_package_imports_no_io() -> None:
    root = pathlib.Path(protocol.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("onair.") and not node.module.startswith("onair.realtime.protocol"):
                offenders.append(f"{path.name}: {node.module}")
    assert len(list(root.glob("*.py"))) >= 8
    assert offenders == []
