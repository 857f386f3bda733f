"""The embedded default's JWT secret: generated once, kept in the data dir with mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_FILE = "jwt-secret"


def load_or_create_secret(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text().strip()
        if len(secret) < 32:
            raise ValueError(f"{path} holds a secret shorter than 32 characters") from None
        return secret
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret
