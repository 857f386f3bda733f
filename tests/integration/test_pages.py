"""The pages and static files served by onair (`onair.api.pages`)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

CONFIG = re.compile(r'<script id="onair-config" type="application/json">(.*?)</script>', re.S)


def page_config(response: httpx.Response) -> dict:
    match = CONFIG.search(response.text)
    assert match, "page carries no config"
    return json.loads(match.group(1))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_pages_carry_the_client_config(app_client: httpx.AsyncClient) -> None:
    home = await app_client.get("/")
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    config = page_config(home)
    assert config["page"] == "home" and config["anon_key"] and config["media_mode"] == "local"
    web = config["web"]
    assert web["reconnect"]["maxAttempts"] >= 1
    assert 0 < web["reconnect"]["baseMs"] <= web["reconnect"]["capMs"]
    assert web["reconnect"]["slowRetryMs"] == 30_000  # ONAIR_WEB_RECONNECT_SLOW, in ms for JS timers
    assert web["media"] == {"firstFrameTimeoutMs": 20_000, "agoraJoinTimeoutMs": 12_000}  # ONAIR_WEB_MEDIA_TIMEOUT, ONAIR_WEB_AGORA_JOIN_TIMEOUT
    assert web["stream_topic"] == "stream:{id}"
    for page in ("studio", "watch"):
        response = await app_client.get(f"/{page}/0192abc-DEF_1")
        assert response.status_code == 200
        config = page_config(response)
        assert config["page"] == page and config["stream_id"] == "0192abc-DEF_1"
        assert f'src="/static/pages/{page}.js"' in response.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_hostile_stream_id_never_reaches_the_page(app_client: httpx.AsyncClient) -> None:
    for bad in ("a%3C%2Fscript%3E", "x" * 65, "a.b"):
        response = await app_client.get(f"/watch/{bad}")
        assert response.status_code in (404, 422), response.text
        assert "<script" not in response.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_config_json_cannot_close_its_script_tag(app_client: httpx.AsyncClient, ctx) -> None:
    ctx.settings.ice_servers = [{"urls": "stun:x", "username": "</script><script>alert(1)</script>"}]
    response = await app_client.get("/")
    config = page_config(response)
    assert config["ice_servers"][0]["username"] == "</script><script>alert(1)</script>"
    assert response.text.count("</script>") == 2  # the config's and the module's own tags


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_static_modules_are_served_as_javascript(app_client: httpx.AsyncClient) -> None:
    for path in ("/static/client/serializer.js", "/static/client/media/agora.js", "/static/pages/watch.js",
                 "/static/styles.css"):
        response = await app_client.get(path)
        assert response.status_code == 200, path
    js = await app_client.get("/static/client/connection_manager.js")
    assert "javascript" in js.headers["content-type"]
    assert (await app_client.get("/static/nope.js")).status_code == 404
    assert (await app_client.get("/static/../settings.py")).status_code == 404
