"""The job pipeline, between the inbox and the edges: what happens to a file once it is ready.

`pool` runs the workers (queue, drain, shutdown); `job` is one content's state machine (prepare, upload,
create, wait, publish), recording each step in the ledger before the next side effect, with its steps in
`upload`, `create`, `wait` and `finish` and what they are given in `context`; `prepare` wraps
media/ for a job; `skip` decides which files are not sent (subtitles already there); `lister` shares one
job-list poll among the jobs in flight; `settled` and `adopt` read what the ledger and the disk already hold.
Everything it uses (client, ledger, media tools) is passed in.
"""
