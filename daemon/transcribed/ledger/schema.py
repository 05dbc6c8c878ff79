"""The ledger's SQLite schema: tables, the version it carries, migrations, and the invariants of a row.

The database itself refuses rows that break the state machine's invariants (CHECK constraints), so a bug
or a torn write elsewhere cannot leave, say, a "submitted" row without the job id it promises. Paths are
stored as the bytes the filesystem uses (os.fsencode), so names that are not valid UTF-8 round-trip.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 3
READABLE_FROM = 2     # read-only commands (status, explain) read ledgers from this version on
APPLICATION_ID = 0x54524E53  # "TRNS": tells our file apart from any other SQLite database

STATES = ("discovered", "uploading", "uploaded", "submitted", "done", "failed", "skipped")
IN_FLIGHT_STATES = ("uploading", "uploaded", "submitted")
ACTIVE_STATES = ("discovered", *IN_FLIGHT_STATES)

_STATE_LIST = ", ".join(f"'{state}'" for state in STATES)

SPENDING = """
-- Audio sent to Gladia, one row per create request (attempt id), written in the same transaction as the
-- intent: 'reserved' while the job's creation is under way (it counts against the budget at once, so
-- workers side by side cannot overshoot together), 'spent' once Gladia created the job, 'released' when it
-- certainly was not. `day`/`month` are the local periods the row counts in. Kept after `forget`: it is the
-- history of what was paid for.
CREATE TABLE spending (
    id INTEGER PRIMARY KEY,
    attempt_id TEXT NOT NULL UNIQUE,
    content INTEGER REFERENCES contents (id) ON DELETE SET NULL,
    seconds REAL NOT NULL CHECK (seconds >= 0),
    estimated INTEGER NOT NULL DEFAULT 0 CHECK (estimated IN (0, 1)),
    state TEXT NOT NULL CHECK (state IN ('reserved', 'spent', 'released')),
    day TEXT NOT NULL,
    month TEXT NOT NULL,
    reserved_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
-- No index by period: a reservation sums one scan of these rows (a row per job: milliseconds for a
-- library's lifetime), and every extra b-tree would sit in front of the older tables' pages.

-- Contents held back on purpose (kind 'budget': waiting for the next period), with the reason shown by
-- `status` and `explain`. A held content is not pending, and any transition of it lifts the hold.
CREATE TABLE holds (
    content INTEGER PRIMARY KEY REFERENCES contents (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    held_at REAL NOT NULL
);
"""

SCHEMA = f"""
CREATE TABLE contents (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ({_STATE_LIST})),
    size INTEGER NOT NULL CHECK (size >= 0),
    duration REAL,
    audio_url TEXT,
    job_id TEXT,
    result_url TEXT,
    attempt_id TEXT,
    job_attempts INTEGER NOT NULL DEFAULT 0 CHECK (job_attempts >= 0),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_retry_at REAL,
    reason TEXT,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    CHECK (state <> 'uploaded' OR audio_url IS NOT NULL),
    CHECK (state <> 'submitted' OR (job_id IS NOT NULL AND attempt_id IS NOT NULL)),
    CHECK (job_id IS NULL OR attempt_id IS NOT NULL),
    CHECK (state NOT IN ('failed', 'skipped') OR reason IS NOT NULL),
    CHECK (state = 'failed' OR next_retry_at IS NULL)
);
CREATE INDEX contents_by_state ON contents (state, created_at);
CREATE INDEX contents_by_retry ON contents (next_retry_at) WHERE state = 'failed';

-- Rowid tables throughout (no WITHOUT ROWID): rows sit in the order they were written, so a file cut short
-- or damaged in one place loses the rows on those pages, not a scattering of rows from everywhere.
CREATE TABLE paths (
    path BLOB PRIMARY KEY NOT NULL,
    content INTEGER NOT NULL REFERENCES contents (id) ON DELETE CASCADE,
    root BLOB NOT NULL,
    device INTEGER,
    inode INTEGER,
    size INTEGER,
    mtime_ns INTEGER,
    seen_at REAL NOT NULL
);
CREATE INDEX paths_by_content ON paths (content, seen_at);
CREATE INDEX paths_by_stat ON paths (inode, device, size, mtime_ns);

CREATE TABLE intents (
    attempt_id TEXT PRIMARY KEY NOT NULL,
    content INTEGER NOT NULL REFERENCES contents (id) ON DELETE CASCADE,
    job_id TEXT,
    created_at REAL NOT NULL,
    closed_at REAL
);
CREATE INDEX intents_by_content ON intents (content);

CREATE TABLE results (
    content INTEGER PRIMARY KEY REFERENCES contents (id) ON DELETE CASCADE,
    body BLOB NOT NULL,
    stored_at REAL NOT NULL
);

-- Keyed by the content key, not the id: a record of what we wrote outlives `forget`, and the same bytes
-- seen again (a new id) still own their old outputs. `source` is the source path they were written for
-- (NULL when unknown: written before version 3): new content at that path takes them over.
CREATE TABLE outputs (
    path BLOB PRIMARY KEY NOT NULL,
    key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    written_at REAL NOT NULL,
    source BLOB
);
CREATE INDEX outputs_by_key ON outputs (key);
CREATE INDEX outputs_by_source ON outputs (source);

CREATE TABLE conflicts (
    content INTEGER NOT NULL REFERENCES contents (id) ON DELETE CASCADE,
    output_path BLOB NOT NULL,
    reason TEXT NOT NULL,
    noted_at REAL NOT NULL,
    PRIMARY KEY (content, output_path)
);

CREATE TABLE meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
{SPENDING}"""

# Every table's columns, parents before children (the order salvage copies them in).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "contents": (
        "id", "key", "state", "size", "duration", "audio_url", "job_id", "result_url", "attempt_id",
        "job_attempts", "attempts", "next_retry_at", "reason", "last_error", "created_at", "updated_at",
    ),
    "paths": ("path", "content", "root", "device", "inode", "size", "mtime_ns", "seen_at"),
    "intents": ("attempt_id", "content", "job_id", "created_at", "closed_at"),
    "results": ("content", "body", "stored_at"),
    # `source` (version 3) is left out: a damaged file kept aside may be version 1; salvaged rows go unknown.
    "outputs": ("path", "key", "sha256", "written_at"),
    "conflicts": ("content", "output_path", "reason", "noted_at"),
    "meta": ("name", "value"),
    "spending": ("id", "attempt_id", "content", "seconds", "estimated", "state", "day", "month", "reserved_at",
                 "updated_at"),
    "holds": ("content", "kind", "reason", "held_at"),
}
# Migrations: MIGRATIONS[n] brings a version n-1 database to version n. Version 1 is SCHEMA itself.
# Version 2 adds spending and holds (budget); jobs created before it count as spent (their duration when known, in
# the local day of their create request).
MIGRATIONS: dict[int, str] = {
    2: SPENDING + """
INSERT OR IGNORE INTO spending
    (attempt_id, content, seconds, estimated, state, day, month, reserved_at, updated_at)
SELECT intents.attempt_id, intents.content, COALESCE(contents.duration, 0), contents.duration IS NULL, 'spent',
       date(intents.created_at, 'unixepoch', 'localtime'),
       strftime('%Y-%m', intents.created_at, 'unixepoch', 'localtime'),
       intents.created_at, intents.created_at
FROM intents JOIN contents ON contents.id = intents.content WHERE intents.job_id IS NOT NULL;
""",
    # Outputs record the source path they were written for. A content seen at exactly one path wrote its
    # outputs for that path; any other is left unknown (NULL), which keeps the old rules for those rows.
    3: """
ALTER TABLE outputs ADD COLUMN source BLOB;
CREATE INDEX outputs_by_source ON outputs (source);
UPDATE outputs SET source = (SELECT paths.path FROM paths JOIN contents ON contents.id = paths.content
                             WHERE contents.key = outputs.key)
 WHERE (SELECT COUNT(*) FROM paths JOIN contents ON contents.id = paths.content
        WHERE contents.key = outputs.key) = 1;
""",
}


class SchemaError(Exception):
    """The file is a readable SQLite database but not a ledger this code can use.

    `newer` is True when it is a ledger written by a newer version (refuse, never move it aside).
    """

    def __init__(self, message: str, *, newer: bool = False) -> None:
        self.newer = newer
        super().__init__(message)


def create(conn: sqlite3.Connection) -> None:
    """Create every table of the current version in an empty database, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def ensure(conn: sqlite3.Connection) -> None:
    """Given an open ledger, bring it to the current version or raise SchemaError.

    An older ledger is migrated in one transaction; a newer one raises SchemaError(newer=True); another
    program's database, or a ledger missing tables, raises SchemaError.
    """
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    application = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if application != APPLICATION_ID:
        raise SchemaError(f"not a transcribed ledger (application_id {application:#x})")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"ledger schema version {version} is newer than this program's {SCHEMA_VERSION}: upgrade transcribed",
            newer=True,
        )
    if version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[target]):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    missing = set(TABLE_COLUMNS) - {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    if missing:
        raise SchemaError(f"ledger is missing tables {sorted(missing)}")


def check_version(conn: sqlite3.Connection) -> None:
    """For a read-only connection: raise SchemaError unless the database is a ledger whose version this program
    reads (an older one that the running daemon has not migrated yet is read as it is)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    application = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if application != APPLICATION_ID:
        raise SchemaError(f"not a transcribed ledger (application_id {application})")
    if not READABLE_FROM <= version <= SCHEMA_VERSION:
        raise SchemaError(
            f"ledger schema version {version}, this program reads {READABLE_FROM} to {SCHEMA_VERSION}",
            newer=version > SCHEMA_VERSION,
        )


def verify(conn: sqlite3.Connection) -> list[str]:
    """Return every problem found in a ledger (empty when sound): page-level checks, dangling references,
    and rows that break the state machine's invariants (which CHECK constraints should make impossible).
    """
    problems = [row[0] for row in conn.execute("PRAGMA integrity_check") if row[0] != "ok"]
    problems += [f"dangling reference in {row[0]}" for row in conn.execute("PRAGMA foreign_key_check")]
    # The f-string inserts only the constant list of states.
    invariants = f"""SELECT key, state FROM contents WHERE state NOT IN ({_STATE_LIST})
            OR (state = 'uploaded' AND audio_url IS NULL)
            OR (state = 'submitted' AND (job_id IS NULL OR attempt_id IS NULL))
            OR (job_id IS NOT NULL AND attempt_id IS NULL)
            OR (state IN ('failed', 'skipped') AND reason IS NULL)
            OR (state <> 'failed' AND next_retry_at IS NOT NULL)"""  # noqa: S608
    bad_rows = conn.execute(invariants)
    problems += [f"content {row[0]} breaks the invariants of state {row[1]!r}" for row in bad_rows]
    return problems


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]
