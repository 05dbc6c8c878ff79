"""A local, protocol-faithful Gladia v2 pre-recorded server: for the tests, benchmarks and an offline try.

A server of its own: it imports nothing of the daemon but the request schema (`transcribed.gladia.schema`).
`app` assembles it (Emulator, serve); `httpd` speaks HTTP/1.1; `routes` answers each endpoint; `jobs`
keeps jobs and their timing; `multipart`, `media` and `query` read requests; `validation` checks create
bodies against the schema; `transcript` makes deterministic results; `notify` sends callbacks and
webhooks; `faults` holds the fault switches and counters.

Exposes: Emulator, EmulatorSettings, Faults, serve.
"""

from transcribed.emulator.app import Emulator, EmulatorSettings, Faults, serve

__all__ = ["Emulator", "EmulatorSettings", "Faults", "serve"]
