"""The daemon's own HTTP surface: where Gladia (and, later, other programs) reach the daemon.

`server` is a hardened stdlib HTTP receiver (bounded connections, whole-request deadlines, 413 before
reading); `verify` holds its pure checks (per-job tokens, Svix webhook signatures); `hub` is where workers
wait for a job's notice. The receiver reaches the pipeline only through what the composition root passes in.

`listener` is what the three servers (callbacks here, integrations and metrics below) share: the bounded
threading server (503 at once over the limit, open connections cut at stop) and its start/stop/address.

The media-server integrations (issue 14) live beside it and are imported on their own (only when
[integrations] is on): `integrations` (the endpoint for Bazarr, Sonarr, Radarr and `enqueue`), `contract`
(pure: query strings, routes, webhook bodies, path mapping), `confine` (where a webhook may point) and
`multipart` (a form field streamed to a file).

Exposes: CallbackHub, CallbackServer, Verdict.
"""

from transcribed.receiver.hub import CallbackHub
from transcribed.receiver.server import CallbackServer
from transcribed.receiver.verify import Verdict

__all__ = ["CallbackHub", "CallbackServer", "Verdict"]
