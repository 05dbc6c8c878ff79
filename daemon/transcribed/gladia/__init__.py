"""Gladia v2 pre-recorded API: the client, its retry policy, result types and a local emulator."""
