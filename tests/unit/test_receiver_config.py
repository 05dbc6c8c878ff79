"""[callback]: off by default, every key read, bad values reported with their dotted key, and the webhook
secret never shown (repr, problems, `config show`)."""

from __future__ import annotations

import base64
import textwrap
import tomllib

import pytest

from transcribed import config
from transcribed.errors import ConfigError

SECRET = "whsec_" + base64.b64encode(b"a webhook signing secret").decode()


def parse(text: str) -> config.Config:
    loaded, _ = config.parse(tomllib.loads(textwrap.dedent(text)), None, {})
    return loaded


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.parse(tomllib.loads(textwrap.dedent(text)), None, {})
    return caught.value.problems


def test_off_by_default() -> None:
    callback = parse("").callback
    assert callback == config.CallbackConfig()
    assert not callback.enabled
    assert callback.address() == ("127.0.0.1", 8787)
    assert callback.method == "POST" and callback.webhook_secret is None
    assert callback.safety_poll_seconds == 60.0 and callback.max_body_bytes == 16 * 1024 * 1024


def test_every_key_is_read() -> None:
    callback = parse(f"""
        [callback]
        enabled = true
        listen = "[::1]:9000"
        public_url = "https://host.example/transcribed/"
        method = "PUT"
        webhook_secret = "{SECRET}"
        max_body_bytes = 1048576
        safety_poll_seconds = 120
    """).callback
    assert callback.enabled and callback.method == "PUT"
    assert callback.address() == ("::1", 9000)
    assert callback.public_url == "https://host.example/transcribed"  # no trailing slash: routes are appended
    assert callback.webhook_secret is not None and callback.webhook_secret.reveal() == SECRET
    assert (callback.max_body_bytes, callback.safety_poll_seconds) == (1048576, 120.0)


@pytest.mark.parametrize("listen", ["8787", "127.0.0.1", "::1:8787", "[::1]", "[nothost]:80", "host:port",
                                    "host:0", "host:65536", "a b:80", ":80", "[]:80"])
def test_bad_listen_addresses_are_refused(listen: str) -> None:
    assert any(p.startswith("callback.listen:") for p in problems_of(f'[callback]\nlisten = "{listen}"'))


@pytest.mark.parametrize("listen", ["0.0.0.0:8787", "localhost:1", "[::]:65535", "host.example:443"])
def test_good_listen_addresses_are_accepted(listen: str) -> None:
    assert parse(f'[callback]\nlisten = "{listen}"').callback.listen == listen


def test_enabled_needs_a_public_http_url() -> None:
    assert any(p.startswith("callback.public_url: required") for p in problems_of("[callback]\nenabled = true"))
    for url in ["ftp://host/x", "host.example/x", "https://host/x?a=1", "https://host/x#f", "https://[::1/x"]:
        assert any(p.startswith("callback.public_url:") for p in problems_of(f'[callback]\npublic_url = "{url}"'))
    found = problems_of('[callback]\npublic_url = "https://user:hunter2@host/x"')
    assert any(p.startswith("callback.public_url:") for p in found)
    assert "hunter2" not in "\n".join(found)


def test_method_and_limits_are_checked() -> None:
    found = problems_of("""
        [callback]
        method = "PATCH"
        max_body_bytes = 10
        safety_poll_seconds = 0
        bogus = 1
    """)
    for key in ("method", "max_body_bytes", "safety_poll_seconds", "bogus"):
        assert any(p.startswith(f"callback.{key}:") for p in found), key


@pytest.mark.parametrize("secret", ["plain-secret-value", "whsec_not*base64!", "whsec_" + "=" * 8])
def test_a_malformed_secret_is_refused_without_being_repeated(secret: str) -> None:
    found = problems_of(f'[callback]\nwebhook_secret = "{secret}"')
    assert any(p.startswith("callback.webhook_secret:") for p in found)
    assert secret not in "\n".join(found)


def test_the_secret_is_never_shown() -> None:
    loaded = parse(f'[callback]\nwebhook_secret = "{SECRET}"')
    assert SECRET not in repr(loaded)
    shown = config.to_toml_dict(loaded)["callback"]
    assert shown["webhook_secret"] == "********"
    assert SECRET not in repr(config.to_toml_dict(loaded))
    assert "webhook_secret" not in config.to_toml_dict(parse(""))["callback"]


def test_setting_public_url_turns_callbacks_on_unless_disabled_explicitly() -> None:
    import tomllib

    from transcribed import config

    on, _ = config.parse(tomllib.loads('[callback]\npublic_url = "https://h.example/t"'), None, {})
    assert on.callback.enabled
    off, _ = config.parse(tomllib.loads('[callback]\npublic_url = "https://h.example/t"\nenabled = false'), None, {})
    assert not off.callback.enabled
    assert not config.parse({}, None, {})[0].callback.enabled
