"""Link files: `NAME.url` (Windows Internet Shortcut) and `NAME.webloc` (Apple property list) stand for a
recording online. Gladia fetches the URL itself (it is passed as `audio_url`, as the file writes it):
nothing is downloaded or uploaded. The ledger keys such content by the normalised URL ("url:" + sha256),
so the same URL again (another link file, a restart) costs no new job.

Pure functions on bytes and strings, plus `read_link` (one small read).
"""

from __future__ import annotations

import hashlib
import plistlib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from transcribed.errors import TranscribedError
from transcribed.inbox.filters import LINK_EXTENSIONS

KEY_PREFIX = "url:"
MAX_LINK_BYTES = 64 * 1024      # a link file is a few hundred bytes; anything much bigger is not one
DEFAULT_PORTS = {"http": 80, "https": 443}


class LinkError(TranscribedError):
    """A link file that cannot be used: malformed, or a URL that is not http(s). The message says why."""


def is_link(path: Path | str) -> bool:
    """True when the name ends in a link file extension (.url, .webloc; any case)."""
    name = str(path)
    dot = name.rfind(".")
    return dot > 0 and name[dot + 1:].lower() in LINK_EXTENSIONS


def is_link_key(key: str) -> bool:
    return key.startswith(KEY_PREFIX)


def url_from_shortcut(data: bytes) -> str:
    """The URL of a Windows Internet Shortcut: `URL=` in the `[InternetShortcut]` section. Raise LinkError."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    else:
        text = data.decode("utf-8-sig", errors="replace")
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
        elif section == "internetshortcut" and "=" in line:
            name, _, value = line.partition("=")
            if name.strip().lower() == "url" and value.strip():
                return value.strip()
    raise LinkError("not an Internet Shortcut: no URL= line in an [InternetShortcut] section")


def url_from_webloc(data: bytes) -> str:
    """The URL of an Apple .webloc (XML or binary property list, key "URL"). Raise LinkError."""
    try:
        found = plistlib.loads(data)
    except Exception as exc:   # plistlib raises several types (InvalidFileException, ExpatError, ValueError...)
        raise LinkError(f"not a property list ({exc.__class__.__name__})") from None
    url = found.get("URL") if isinstance(found, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise LinkError("the property list holds no URL string (<key>URL</key><string>...</string>)")
    return url.strip()


def url_of(name: str, data: bytes) -> str:
    """The URL a link file called `name` holds, as written (checked with `normalise`). Raise LinkError."""
    url = url_from_webloc(data) if name.lower().endswith(".webloc") else url_from_shortcut(data)
    normalise(url)
    return url


def read_link(path: Path) -> str:
    """Read a link file and return its http(s) URL as written. Raise LinkError (or OSError)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_LINK_BYTES + 1)
    if len(data) > MAX_LINK_BYTES:
        raise LinkError(f"too large for a link file ({MAX_LINK_BYTES // 1024} KiB at most)")
    return url_of(path.name, data)


def normalise(url: str) -> str:
    """Scheme and host lowercased, the default port dropped, the fragment dropped; path and query kept.

    Raise LinkError for anything but an http(s) URL with a host.
    """
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise LinkError("the URL holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise LinkError(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = f"{scheme}:" if scheme else "no scheme"
        raise LinkError(f"only http and https URLs can be transcribed ({shown})")
    host = (parts.hostname or "").lower()
    if not host:
        raise LinkError("the URL has no host")
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def link_key(url: str) -> str:
    """The ledger key of content reached by `url`: "url:" + sha256 of its normalised form, so the same URL
    written differently (scheme or host case, default port, fragment) is the same content."""
    return KEY_PREFIX + hashlib.sha256(normalise(url).encode("utf-8")).hexdigest()


def shown(url: str) -> str:
    """The URL for logs and messages, without any user:password part."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
