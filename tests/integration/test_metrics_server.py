"""The metrics exposition and its HTTP server: the text format, route labels, and a server that answers
only GET /metrics and cuts off a client that trickles its request."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest

from transcribed.receiver.metrics import Metrics, MetricsServer, Sample, render, route_name, status_class


@pytest.mark.parametrize(("method", "path", "route"), [
    ("POST", "/v2/upload", "upload"), ("POST", "/v2/pre-recorded", "create"), ("GET", "/v2/pre-recorded", "list"),
    ("GET", "/v2/pre-recorded/abc", "get"), ("DELETE", "/v2/pre-recorded/abc", "delete"),
    ("POST", "/v2/transcription", "create"), ("GET", "/v2/pre-recorded/abc/file", "other"), ("GET", "/", "other"),
])
def test_route_names(method: str, path: str, route: str) -> None:
    assert route_name(method, path) == route


def test_status_classes() -> None:
    assert [status_class(s) for s in (200, 201, 404, 503, None)] == ["2xx", "2xx", "4xx", "5xx", "error"]


def test_render_follows_the_text_format() -> None:
    text = render([Sample("transcribed_files", 3, {"state": "done"}),
                   Sample("transcribed_budget_left_seconds", float("inf"), {"period": "month"}),
                   Sample("transcribed_audio_seconds_total", 12.5),
                   Sample("transcribed_files", 1, {"state": 'we"ird\\\n'})])
    lines = text.splitlines()
    assert "# TYPE transcribed_files gauge" in lines
    assert lines.index("# TYPE transcribed_files gauge") < lines.index('transcribed_files{state="done"} 3')
    assert 'transcribed_budget_left_seconds{period="month"} +Inf' in lines
    assert "transcribed_audio_seconds_total 12.5" in lines
    assert 'transcribed_files{state="we\\"ird\\\\\\n"} 1' in lines
    assert "# HELP transcribed_jobs_created_total Jobs created at Gladia" in text   # every family, even empty
    assert text.endswith("\n")


def test_counters_and_a_failing_collector() -> None:
    metrics = Metrics()
    metrics.observe_api("POST", "/v2/pre-recorded", 201)
    metrics.observe_api("POST", "/v2/pre-recorded", 201)
    metrics.observe_api("GET", "/v2/pre-recorded/x", None)

    def broken() -> Iterator[Sample]:
        raise RuntimeError("boom")
        yield Sample("never", 0)

    metrics.register(broken)
    metrics.register(lambda: [Sample("transcribed_queue_depth", 4)])
    text = metrics.exposition()
    assert 'transcribed_api_requests_total{route="create",status_class="2xx"} 2' in text
    assert 'transcribed_api_requests_total{route="get",status_class="error"} 1' in text
    assert "transcribed_queue_depth 4" in text
    assert "transcribed_upload_bytes_total 0" in text


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    metrics = Metrics()
    running = MetricsServer(metrics, "127.0.0.1", 0, request_seconds=0.5)
    running.start()
    yield running
    running.stop()


def test_get_metrics_and_nothing_else(server: MetricsServer) -> None:
    host, port = server.address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        assert b"# TYPE transcribed_uploads_total counter" in response.read()
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 405")
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")


def test_a_client_that_trickles_its_request_is_cut_off(server: MetricsServer) -> None:
    host, port = server.address
    with socket.create_connection((host, port), timeout=10) as raw:
        started = time.monotonic()
        raw.sendall(b"GET /metrics HTTP/1.1\r\n")
        closed = False
        while time.monotonic() - started < 8:
            try:
                raw.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            raw.settimeout(0.2)
            try:
                if raw.recv(100) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        assert closed
