"""Configuration: TOML -> frozen dataclasses.

Unknown keys and bad values are errors, all reported at once, each with its dotted path and what was
expected (ConfigError.problems). The file is the public contract documented in config.example.toml.

`model` holds the dataclasses and constants, `sections` the table reader, `api`, `files` and `listeners`
the section parsers, `load` finds and reads the file and puts it together. The names below are the
package's public face: import them from `transcribed.config`.
"""

from __future__ import annotations

from transcribed.config.api import check_combinations, merge_request, transcription_overrides
from transcribed.config.files import FOLDER_OUTPUT_KEYS, parse_output, parse_skip
from transcribed.config.load import find_path, load, parse
from transcribed.config.model import (
    CREDENTIAL_NAME,
    DAEMON_OWNED_FIELDS,
    DEFAULT_PATH,
    EX_CONFIG,
    MEDIA_CODECS,
    OUTPUT_FORMATS,
    AfterMode,
    BudgetConfig,
    CallbackConfig,
    CallbackMethod,
    Config,
    ExtractMode,
    GladiaConfig,
    HooksConfig,
    InboxConfig,
    IntegrationsConfig,
    LedgerConfig,
    LogConfig,
    LogFormat,
    MediaConfig,
    MetricsConfig,
    ObserverMode,
    OutputConfig,
    PathMapping,
    Secret,
    SkipConfig,
    TranscriptionConfig,
    WorkersConfig,
    to_toml_dict,
)
from transcribed.config.sections import merge_section, section_overrides

__all__ = [
    "CREDENTIAL_NAME",
    "DAEMON_OWNED_FIELDS",
    "DEFAULT_PATH",
    "EX_CONFIG",
    "FOLDER_OUTPUT_KEYS",
    "MEDIA_CODECS",
    "OUTPUT_FORMATS",
    "AfterMode",
    "BudgetConfig",
    "CallbackConfig",
    "CallbackMethod",
    "Config",
    "ExtractMode",
    "GladiaConfig",
    "HooksConfig",
    "InboxConfig",
    "IntegrationsConfig",
    "LedgerConfig",
    "LogConfig",
    "LogFormat",
    "MediaConfig",
    "MetricsConfig",
    "ObserverMode",
    "OutputConfig",
    "PathMapping",
    "Secret",
    "SkipConfig",
    "TranscriptionConfig",
    "WorkersConfig",
    "check_combinations",
    "find_path",
    "load",
    "merge_request",
    "merge_section",
    "parse",
    "parse_output",
    "parse_skip",
    "section_overrides",
    "to_toml_dict",
    "transcription_overrides",
]
