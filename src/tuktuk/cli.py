"""The `tuktuk` console script: Django's management commands with the project's settings.

Loading the settings creates the data dir and generates secrets into it (tuktuk.config), so
the data dir is checked before Django starts. Run from the wrong directory, a command would
otherwise work on a new empty SQLite file, or with a new secret key and callback token that
Safaricom does not know: `migrate` creates a missing data dir, the help and the Daraja
simulator need none, every other command refuses to run without one.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

from django.core.management import ManagementUtility, get_commands, load_command_class
from django.core.management.base import BaseCommand
from django.core.management.color import color_style

from tuktuk.config import DATA_DIR_VARIABLE, DEFAULT_DATA_DIR, data_dir_path

# The secrets generated into the data dir when the environment does not give them.
GENERATED_SECRETS = ("TUKTUK_SECRET_KEY", "TUKTUK_CALLBACK_TOKEN")
# Commands that set up a data dir: they create it when it is missing.
CREATE_DATA_DIR = {"migrate"}
# Commands that read nothing from the data dir (no database, no secrets).
NO_DATA_DIR = {"daraja_sim"}
HELP_COMMANDS = {"help", "version", "--version", "--help", "-h"}
EXIT_NO_DATA_DIR = 2
_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])\s+[A-Z]")


def database_is_external() -> bool:
    """TUKTUK_DATABASE_URL names PostgreSQL or MariaDB, not the SQLite file."""
    url = os.environ.get("TUKTUK_DATABASE_URL", "").strip()
    return bool(url) and not url.lower().startswith("sqlite")


def data_dir_needed() -> bool:
    """False only when nothing we need lives in the data dir: the database is external and
    every secret comes from the environment (it then holds just the collected static files)."""
    secrets_given = all(os.environ.get(name, "").strip() for name in GENERATED_SECRETS)
    return not (database_is_external() and secrets_given)


def command_name(raw: str) -> str:
    """Our commands are spelled with hyphens (close-day); Django's modules use underscores."""
    return raw if raw.startswith("-") else raw.replace("-", "_")


def is_ours(app_name: str) -> bool:
    return app_name == "tuktuk" or app_name.startswith("tuktuk.")


def summary(text: str) -> str:
    """The first line of a command's help, cut to its first sentence: one line in the list."""
    line = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    sentence = _FIRST_SENTENCE.match(line)
    return sentence.group(1) if sentence else line


def data_dir_source() -> str:
    if os.environ.get(DATA_DIR_VARIABLE, "").strip():
        return f"from {DATA_DIR_VARIABLE}"
    return f"{DATA_DIR_VARIABLE} unset: ./{DEFAULT_DATA_DIR}"


def describe_data_dir(path: Path, source: str) -> str:
    if path.is_dir():
        return f"Data dir: {path} ({source})"
    return f"Data dir: {path} ({source}), missing: 'tuktuk migrate' creates it"


def refusal(path: Path) -> str:
    if path.exists():
        return f"tuktuk: the data dir {path} ({DATA_DIR_VARIABLE}) is not a directory"
    if database_is_external():
        return (
            f"tuktuk: no data dir at {path} ({DATA_DIR_VARIABLE}) with the generated secret key "
            "and callback token; cd to the project, set TUKTUK_SECRET_KEY and "
            "TUKTUK_CALLBACK_TOKEN, or run 'tuktuk migrate' to create one"
        )
    return (
        f"tuktuk: no data dir at {path} ({DATA_DIR_VARIABLE}); run 'tuktuk migrate' to create "
        "one, or cd to the project"
    )


class Utility(ManagementUtility):
    """Django's manage.py with our commands listed first and hyphenated names accepted."""

    def __init__(self, argv: list[str], *, data_dir: Path, data_dir_source: str) -> None:
        super().__init__(argv)
        if self.prog_name == "python -m django":  # run as `python -m tuktuk`
            self.prog_name = "python -m tuktuk"
        self.data_dir = data_dir
        self.data_dir_source = data_dir_source

    def fetch_command(self, subcommand: str) -> BaseCommand:
        commands = get_commands()
        if subcommand not in commands and command_name(subcommand) in commands:
            subcommand = command_name(subcommand)
        return super().fetch_command(subcommand)

    def main_help_text(self, commands_only: bool = False) -> str:
        if commands_only:
            return super().main_help_text(commands_only=True)
        style = color_style()
        ours: dict[str, str] = {}
        django: dict[str, list[str]] = defaultdict(list)
        for name, app in get_commands().items():
            if isinstance(app, str) and is_ours(app):
                ours[name.replace("_", "-")] = self._description(app, name)
            else:
                label = "django" if app == "django.core" else str(app).rpartition(".")[-1]
                django[label].append(name)
        width = max((len(name) for name in ours), default=0) + 2
        lines = [
            f"Usage: {self.prog_name} <command> [options] [args]",
            f"Type '{self.prog_name} help <command>' for help on a specific command.",
            "",
            describe_data_dir(self.data_dir, self.data_dir_source),
            "",
            style.NOTICE("TukTuk Ledger commands:"),
            *(f"    {name:<{width}}{ours[name]}".rstrip() for name in sorted(ours)),
            "",
            style.NOTICE("Django commands:"),
        ]
        for label in sorted(django):
            lines += ["", style.NOTICE(f"[{label}]"), *(f"    {n}" for n in sorted(django[label]))]
        if self.settings_exception is not None:
            lines.append(
                style.NOTICE(
                    "Note that only Django core commands are listed as settings are not "
                    f"properly configured (error: {self.settings_exception})."
                )
            )
        return "\n".join(lines)

    @staticmethod
    def _description(app: str, name: str) -> str:
        try:
            return summary(load_command_class(app, name).help)
        except Exception as exc:  # one broken command must not hide the others' help
            return f"(cannot load: {type(exc).__name__}: {exc})"


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tuktuk.settings")
    args = list(sys.argv if argv is None else argv)
    subcommand = command_name(args[1]) if len(args) > 1 else "help"
    path, source = data_dir_path(), data_dir_source()
    asks_for_help = subcommand in HELP_COMMANDS or "--help" in args[2:] or "-h" in args[2:]
    with ExitStack() as stack:
        if not path.is_dir():
            if asks_for_help or subcommand in NO_DATA_DIR:
                # Django loads the settings even to print help: give them a throwaway data
                # dir so nothing is created where the command was merely looked up.
                scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="tuktuk-"))
                os.environ[DATA_DIR_VARIABLE] = scratch
            elif path.exists():
                sys.stderr.write(refusal(path) + "\n")
                sys.exit(EXIT_NO_DATA_DIR)
            elif subcommand in CREATE_DATA_DIR:
                sys.stderr.write(f"tuktuk: creating the data dir {path} ({DATA_DIR_VARIABLE})\n")
            elif data_dir_needed():
                sys.stderr.write(refusal(path) + "\n")
                sys.exit(EXIT_NO_DATA_DIR)
        Utility(args, data_dir=path, data_dir_source=source).execute()
