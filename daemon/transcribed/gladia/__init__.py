"""Gladia v2 pre-recorded API, the daemon's side: the only package that speaks to Gladia.

`client` (the endpoints), `transport` (httpx, retries, the per-route Retry-After gate; errors translated at
this one boundary), `retry` (pure backoff, Retry-After and outage policy), `result` (a typed view of a job
and its transcript), `schema` (the create request's schema, vendored from Gladia's openapi.json; also used by
the emulator, which lives in `transcribed.emulator`).
"""
