"""Files passed over for their extension: one `files_passed_over` line per folder scan, on a real tmp_path."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from transcribed.config import InboxConfig
from transcribed.inbox.filters import NameFilter
from transcribed.inbox.scan import PassedOverLog, scan
from transcribed.inbox.walk import Root, walk


def passed_over(logs: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted((e["folder"], e["count"], e["example"]) for e in logs if e["event"] == "files_passed_over")


def test_a_scan_says_once_per_folder_what_it_passed_over(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "talks").mkdir(parents=True)
    (inbox / "empty").mkdir()
    for name in ("notes.docx", "agenda.pdf", "photo.jpg", "talk.webm", "rec.ts", "talk.srt", ".hidden.docx",
                 "call.webm.part", "Thumbs.db"):
        (inbox / name).write_bytes(b"x")
    (inbox / "talks" / "slides.pptx").write_bytes(b"x")
    (inbox / "talks" / "talk.aiff").write_bytes(b"x")
    with capture_logs() as logs:
        ready, _ = scan(InboxConfig(paths=(inbox,)), settled_before_ns=None)
    assert sorted(item.path.name for item in ready) == ["rec.ts", "talk.aiff", "talk.webm"]
    # Transcripts, hidden, temporary and litter names are not "passed over for their extension".
    assert passed_over(logs) == [(str(inbox), 3, "agenda.pdf"), (str(inbox / "talks"), 1, "slides.pptx")]

    with capture_logs() as quiet:
        scan(InboxConfig(paths=(inbox,)), settled_before_ns=None, report_passed_over=False)
    assert passed_over(quiet) == []


def test_the_watcher_log_repeats_a_folder_only_when_what_it_passed_over_changed(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "b.docx").write_bytes(b"x")
    root, names, said = Root.of(inbox, 0), NameFilter(), PassedOverLog()

    def rescan() -> list[tuple[object, ...]]:
        with capture_logs() as logs:
            for listing in walk(root, recursive=True, names=names):
                said.note(root.text, listing)
            said.forget(root.text, {root.text})
        return passed_over(logs)

    assert rescan() == [(str(inbox), 1, "b.docx")]
    assert rescan() == []                                  # the same folder, unchanged: not repeated
    (inbox / "a.odt").write_bytes(b"x")
    assert rescan() == [(str(inbox), 2, "a.odt")]
    (inbox / "a.odt").unlink()
    (inbox / "b.docx").unlink()
    assert rescan() == []
    (inbox / "b.docx").write_bytes(b"x")                   # back after the folder was clean: said again
    assert rescan() == [(str(inbox), 1, "b.docx")]
