"""Transcript outputs: render (pure: result -> file text), write (naming, atomic writes), hooks."""
