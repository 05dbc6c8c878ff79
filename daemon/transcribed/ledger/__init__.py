"""The ledger: what the daemon knows about every content it has seen, kept in SQLite, crash-safe.

The only package that touches the database. `store.Ledger` is the one object the rest of the daemon holds
(every state transition its own durable transaction); `reads` serves its queries, `rows` maps rows to
`Entry`, `schema` creates and migrates the tables, `connection` opens (or recovers) the file, `repair`
keeps a damaged file aside and salvages what is intact, `errors` is the one place sqlite3 errors are
translated.

Exposes: Ledger, Entry, State, Recovery and the ledger's exceptions.
"""

from transcribed.ledger.connection import Recovery
from transcribed.ledger.errors import LedgerDamagedError, LedgerError, LedgerTransitionError, LedgerVersionError
from transcribed.ledger.rows import Entry, State
from transcribed.ledger.spending import BudgetRefused, Spend, Usage
from transcribed.ledger.store import Ledger

__all__ = [
    "BudgetRefused", "Entry", "Ledger", "LedgerDamagedError", "LedgerError", "LedgerTransitionError",
    "LedgerVersionError", "Recovery", "Spend", "State", "Usage",
]
