"""The sections of the daemon's HTTP surfaces: [callback] (Gladia's callbacks and webhooks),
[integrations] (media-server webhooks) and [metrics] (Prometheus), each a `listen` address checked here.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from urllib.parse import urlsplit

from transcribed.config.model import (
    CallbackConfig,
    IntegrationsConfig,
    MetricsConfig,
    PathMapping,
    Secret,
    split_listen,
)
from transcribed.config.sections import MISSING, Section


def _is_svix_secret(text: str) -> bool:
    try:
        return text.startswith("whsec_") and bool(base64.b64decode(text.removeprefix("whsec_"), validate=True))
    except (binascii.Error, ValueError):
        return False


def parse_callback(s: Section) -> CallbackConfig:
    # Setting public_url is what turns callbacks on; `enabled = false` keeps them off while keeping the URL.
    explicit = "enabled" in s.table
    enabled = s.boolean("enabled", False)
    listen = s.string("listen", CallbackConfig.listen)
    try:
        port_ok = split_listen(listen)[1] > 0
    except ValueError:
        port_ok = False
    if not port_ok:
        s.problems.append(f"callback.listen: expected host:port (IPv6 as [::1]:8787, port 1-65535), got {listen!r}")
    public_url = s.string("public_url", "").rstrip("/")
    if public_url:
        try:
            parts = urlsplit(public_url)
            usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:
            usable = False
        if not usable or parts.username or parts.password or parts.query or parts.fragment:
            shown = "a URL with credentials" if usable and (parts.username or parts.password) else repr(public_url)
            s.problems.append(f"callback.public_url: expected an http(s) URL without credentials, query or "
                              f"fragment, e.g. https://host.example/transcribed, got {shown}")
    elif enabled:
        s.problems.append("callback.public_url: required when callback.enabled = true (the address Gladia "
                          "calls, e.g. https://host.example/transcribed)")
    secret_text = s.optional_string("webhook_secret")
    if secret_text is not None and not _is_svix_secret(secret_text):
        # The value is a secret: never repeated in the message.
        s.problems.append('callback.webhook_secret: expected a Svix secret "whsec_<base64>" (as Gladia shows it)')
        secret_text = None
    if not explicit and public_url:
        enabled = True
    config = CallbackConfig(
        enabled=enabled,
        listen=listen,
        public_url=public_url,
        method=s.string("method", "POST", ("POST", "PUT")),  # type: ignore[arg-type]
        webhook_secret=Secret(secret_text) if secret_text else None,
        max_body_bytes=s.integer("max_body_bytes", CallbackConfig.max_body_bytes, minimum=64 * 1024,
                                 maximum=1024 * 1024 * 1024),
        safety_poll_seconds=s.number("safety_poll_seconds", 60.0, minimum=1.0),
    )
    s.finish()
    return config


def parse_integrations(s: Section, warnings: list[str]) -> IntegrationsConfig:
    listen = s.string("listen", "")
    token = s.optional_string("token")
    if listen:
        try:
            host, port = split_listen(listen)
            if port == 0:
                raise ValueError(listen)
        except ValueError:
            s.problems.append(f"integrations.listen: expected host:port (IPv6 as [::1]:9000, port 1-65535) or \"\" "
                              f"(off), got {listen!r}")
        else:
            if token is None and not _is_loopback(host):
                s.problems.append(f"integrations.token: required when integrations.listen is not a loopback "
                                  f"address ({listen!r}): every endpoint then lives under /<token>/")
    if token is not None and not all(c.isascii() and (c.isalnum() or c in "-_.~") for c in token):
        # The value is a secret: never repeated in the message.
        s.problems.append("integrations.token: expected letters, digits and - _ . ~ only (it is a URL path segment)")
        token = None
    if token is not None and len(token) < 16:
        warnings.append("integrations.token is short (under 16 characters): anyone who can guess it can make "
                        "transcribed pay for jobs; use e.g. `openssl rand -hex 16`")
    mappings: list[PathMapping] = []
    raw = s.raw("path_map")
    if raw is not MISSING:
        ok = isinstance(raw, list) and all(isinstance(m, dict) and set(m) == {"from", "to"} and all(
            isinstance(m[k], str) and m[k].startswith("/") for k in ("from", "to")) for m in raw)
        if not ok:
            s.bad("path_map", 'a list of { from = "/tv", to = "/srv/media/tv" } with absolute paths', raw)
        else:
            mappings = [PathMapping(m["from"].rstrip("/") or "/", m["to"].rstrip("/") or "/") for m in raw]
    config = IntegrationsConfig(
        listen=listen,
        token=Secret(token) if token else None,
        library_paths=tuple(s.resolve(t) for t in s.strings("library_paths", ())),
        path_map=tuple(sorted(mappings, key=lambda m: -len(m.source))),
        max_body_mb=s.number("max_body_mb", IntegrationsConfig.max_body_mb, above=True),
    )
    s.finish()
    return config


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_metrics(s: Section) -> MetricsConfig:
    listen = s.string("listen", "")
    if listen:
        try:
            port_ok = split_listen(listen)[1] > 0
        except ValueError:
            port_ok = False
        if not port_ok:
            s.problems.append(f"metrics.listen: expected host:port (IPv6 as [::1]:9464, port 1-65535) or \"\" "
                              f"(off), got {listen!r}")
    s.finish()
    return MetricsConfig(listen=listen)
