"""Link files (.url, .webloc): reading the URL, normalising it, and the ledger key (pure, with a tmp file)."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from transcribed.inbox.filters import NameFilter
from transcribed.inbox.links import LinkError, is_link, link_key, normalise, read_link, shown, url_of


@pytest.mark.parametrize(("given", "expected"), [
    ("HTTP://Example.COM/Talk.mp3", "http://example.com/Talk.mp3"),
    ("https://example.com:443/a?b=1&c=2#t=30", "https://example.com/a?b=1&c=2"),
    ("http://example.com:80", "http://example.com/"),
    ("http://example.com:8080/x", "http://example.com:8080/x"),
    ("https://[2001:DB8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
    ("http://127.0.0.1:9/a.wav?", "http://127.0.0.1:9/a.wav"),
])
def test_normalise(given: str, expected: str) -> None:
    assert normalise(given) == expected
    assert link_key(given) == link_key(expected)
    assert link_key(expected).startswith("url:")


@pytest.mark.parametrize(("given", "reason"), [
    ("file:///etc/passwd", "only http and https URLs"),
    ("ftp://example.com/a.mp3", "only http and https URLs"),
    ("javascript:alert(1)", "only http and https URLs"),
    ("example.com/a.mp3", "can be transcribed (no scheme)"),
    ("http:///nohost", "no host"),
    ("http://example.com:99999/", "not a valid URL"),
    ("http://exa mple.com/", "spaces"),
])
def test_refused_urls_say_why(given: str, reason: str) -> None:
    with pytest.raises(LinkError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        normalise(given)


def test_internet_shortcut_forms() -> None:
    assert url_of("a.url", b"[InternetShortcut]\r\nURL=https://e.com/a\r\n") == "https://e.com/a"
    assert url_of("a.URL", b"[DEFAULT]\nBASEURL=x\n[internetshortcut]\nIconIndex=0\nurl = https://e.com/b\n") \
        == "https://e.com/b"
    utf16 = "[InternetShortcut]\r\nURL=https://e.com/c\r\n".encode("utf-16")
    assert url_of("a.url", utf16) == "https://e.com/c"
    with pytest.raises(LinkError, match="no URL= line"):
        url_of("a.url", b"URL=https://e.com/outside-any-section\n")


def test_webloc_xml_and_binary() -> None:
    for fmt in (plistlib.FMT_XML, plistlib.FMT_BINARY):
        assert url_of("a.webloc", plistlib.dumps({"URL": "https://E.com/x#y"}, fmt=fmt)) == "https://E.com/x#y"
    with pytest.raises(LinkError, match="not a property list"):
        url_of("a.webloc", b"garbage")
    with pytest.raises(LinkError, match="only http and https"):
        url_of("a.webloc", plistlib.dumps({"URL": "javascript:alert(1)"}))
    with pytest.raises(LinkError, match="no URL string"):
        url_of("a.webloc", plistlib.dumps({"Other": 1}))


def test_read_link_refuses_big_files(tmp_path: Path) -> None:
    big = tmp_path / "big.url"
    big.write_bytes(b"[InternetShortcut]\nURL=https://e.com/\n" + b"x" * 70_000)
    with pytest.raises(LinkError, match="too large"):
        read_link(big)


def test_link_names_are_taken_and_credentials_never_shown() -> None:
    names = NameFilter()
    assert names.accepts_file("Talk.url") and names.accepts_file("Talk.WEBLOC")
    assert not names.accepts_file(".hidden.url")
    assert is_link(Path("/x/a.Url")) and not is_link("/x/a.wav")
    assert shown("https://user:secret@e.com/a?b") == "https://e.com/a?b"
