"""--api-key and CORS: the official `openai` client with the right key, a wrong one and none;
/health and /metrics open without a key; CORS headers only where origins are configured."""
import httpx
import openai
import pytest
from server_harness import HTTP_TIMEOUT, MODEL_NAME, engine_config, serve_in_thread

from server.options import ServerOptions

KEYS = ("first-key", "second-key")
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def secured_url(demo_model):
    options = ServerOptions(api_keys=KEYS, allowed_origins=(ORIGIN,))
    with serve_in_thread(engine_config(demo_model), options) as url:
        yield url


def client(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, timeout=HTTP_TIMEOUT,
                         max_retries=0)


def complete(openai_client: openai.OpenAI):
    return openai_client.completions.create(model=MODEL_NAME, prompt="The river", max_tokens=2)


@pytest.mark.parametrize("key", KEYS)
def test_each_configured_key_works(secured_url, key):
    assert complete(client(secured_url, key)).usage.completion_tokens >= 1
    assert [m.id for m in client(secured_url, key).models.list().data] == [MODEL_NAME]


@pytest.mark.parametrize("key", ["wrong-key", "first-ke", "first-key2", "FIRST-KEY"])
def test_a_wrong_key_is_401_in_openai_shape(secured_url, key):
    with pytest.raises(openai.AuthenticationError) as raised:
        complete(client(secured_url, key))
    assert raised.value.status_code == 401
    error = raised.value.body
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == 401


def test_a_missing_key_is_401(secured_url):
    for path in ("/v1/models", "/v1/completions", "/v1/chat/completions", "/v1/nothing"):
        response = httpx.post(f"{secured_url}{path}", json={}, timeout=HTTP_TIMEOUT) \
            if path != "/v1/models" else httpx.get(f"{secured_url}{path}", timeout=HTTP_TIMEOUT)
        assert response.status_code == 401, path
        assert response.json()["error"]["type"] == "AuthenticationError"
        assert response.headers["www-authenticate"] == "Bearer"


def test_health_and_metrics_need_no_key(secured_url):
    assert httpx.get(f"{secured_url}/health", timeout=HTTP_TIMEOUT).status_code == 200
    assert httpx.get(f"{secured_url}/metrics", timeout=HTTP_TIMEOUT).status_code == 200


def test_cors_headers_when_origins_are_configured(secured_url):
    preflight = httpx.options(f"{secured_url}/v1/completions", timeout=HTTP_TIMEOUT, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200  # a browser's preflight carries no key
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    # The 401 carries them too, so the page can read why it was refused.
    refused = httpx.get(f"{secured_url}/v1/models", headers={"Origin": ORIGIN},
                        timeout=HTTP_TIMEOUT)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.get(f"{secured_url}/health", headers={"Origin": "https://evil.example"},
                      timeout=HTTP_TIMEOUT)
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_and_no_key_by_default(base_url):
    response = httpx.get(f"{base_url}/v1/models", timeout=HTTP_TIMEOUT,
                         headers={"Origin": ORIGIN, "Authorization": "Bearer anything"})
    assert response.status_code == 200
    assert not any(name.startswith("access-control-") for name in response.headers)
