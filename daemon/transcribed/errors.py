"""The exception tree. Stdlib only: every other module may import it.

Callers decide by type, never by message text.
"""

from __future__ import annotations


class TranscribedError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(TranscribedError):
    """The configuration is unusable. `problems` holds one line per problem, each naming its dotted key."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(self.problems))


class ApiError(TranscribedError):
    """An answer (or no answer) from the Gladia API that is not what the call needed.

    Carries what Gladia's error envelope said: statusCode, message, request_id, validation_errors.
    `status` is 0 when no HTTP response arrived at all.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        request_id: str | None = None,
        validation_errors: list[str] | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.message = message
        self.status = status
        self.request_id = request_id
        self.validation_errors = list(validation_errors or [])
        self.method = method
        self.path = path
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line: what failed, Gladia's message and the debug id, never a secret."""
        parts = [self.message]
        if self.validation_errors:
            parts.append("; ".join(self.validation_errors))
        where = f"{self.method} {self.path}".strip()
        if self.status:
            where = f"{where} -> {self.status}".strip()
        if where:
            parts.append(f"({where})")
        if self.request_id:
            parts.append(f"[{self.request_id}]")
        return " ".join(parts)


class TransientApiError(ApiError):
    """Worth retrying later: connection problems, timeouts, 408, 429, 5xx, malformed bodies.

    `retry_after` is Gladia's Retry-After in seconds when it sent one.
    `body_sent` is True when the request may have reached the server (its outcome is unknown).
    """

    def __init__(self, message: str, *, retry_after: float | None = None, body_sent: bool = False,
                 **kwargs: object) -> None:
        self.retry_after = retry_after
        self.body_sent = body_sent
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ApiUnavailableError(TransientApiError):
    """Not sent: the API has been failing and is probed about once a minute until it answers again."""


class PermanentApiError(ApiError):
    """Retrying the same request cannot help: 400, 403, 404, 413, 422 and other 4xx."""


class AuthenticationError(PermanentApiError):
    """401: the API key is missing or wrong. Stops all new work until the key is fixed."""


class JobFailedError(TranscribedError):
    """A Gladia job ended with status "error". `error_code` is Gladia's HTTP-like code (400-599)."""

    def __init__(self, job_id: str, error_code: int | None, message: str = "") -> None:
        self.job_id = job_id
        self.error_code = error_code
        self.message = message or f"Gladia job ended in error (error_code {error_code})"
        super().__init__(f"{self.message} [job {job_id}]")

    @property
    def retryable(self) -> bool:
        """A 5xx (or unknown) code is Gladia's own trouble: a new job may succeed. 4xx is about the input."""
        return self.error_code is None or self.error_code >= 500


class MalformedResultError(TranscribedError):
    """A Gladia response body did not have the shape the spec promises (hostile or truncated)."""


class MediaError(TranscribedError):
    """A file cannot be transcribed as it is (no audio, undecodable, over the limits)."""


class NotMediaError(MediaError):
    """A file whose extension other kinds of files use too (`x.ts`: TypeScript) holds no media: it is set
    aside (ledger state skipped, with this reason), never failed, and nothing of it is sent."""
