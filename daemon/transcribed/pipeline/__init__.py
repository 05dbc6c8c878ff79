"""The job pipeline, between the inbox and the edges: what happens to a file once it is ready.

`pool` runs the workers (queue, drain, shutdown); `job` is one content's state machine (prepare, upload,
create, wait, publish), recording each step in the ledger before the next side effect, with its steps in
`upload`, `create`, `wait` and `finish` and what they are given in `context`; `prepare` wraps
media/ for a job; `skip` decides which files are not sent (subtitles already there); `lister` shares one
job-list poll among the jobs in flight; `settled` and `adopt` read what the ledger and the disk already hold.
The pool's parts: `identify` records complete files in the ledger; `holds` keeps the files waiting for
the audio budget or for valid folder settings.
Everything it uses (client, ledger, media tools) is passed in.
"""
