"""transcribed: a folder that transcribes, built on Gladia's v2 pre-recorded API."""

__version__ = "0.1.0"
