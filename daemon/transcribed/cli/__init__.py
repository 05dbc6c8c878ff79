"""The shell and composition root: the `transcribed` command and its subcommands.

`main` parses arguments and dispatches; `daemon` (run, once) wires the house: ledger, Gladia client,
workers, watcher, receiver, sd_notify; `ledger` (status, explain, retry, forget, render), `transcribe`
(one-off files and URLs), `configure` (config check/init/show) and `emulator` are the other command groups;
`shell` holds what they share (exit codes, config loading, signals, logging). The only package that reads
the environment or credentials, installs signal handlers, configures logging and exits.
"""
