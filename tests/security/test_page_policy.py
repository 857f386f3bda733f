"""The pages' CSP names the Agora SDK's origin exactly as the browser code loads it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from onair.api.page_policy import AGORA_SDK_ORIGIN, content_security_policy
from onair.web import STATIC_DIR


def test_the_agora_sdk_origin_is_the_one_agora_js_loads() -> None:
    source = (STATIC_DIR / "client" / "media" / "agora.js").read_text()
    url = re.search(r'AGORA_SDK_URL = "([^"]+)"', source).group(1)  # type: ignore[union-attr]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == AGORA_SDK_ORIGIN
    assert AGORA_SDK_ORIGIN in content_security_policy(True)
    assert AGORA_SDK_ORIGIN not in content_security_policy(False)


def test_the_policy_can_be_replaced() -> None:
    assert content_security_policy(False, "default-src 'none'") == "default-src 'none'"
