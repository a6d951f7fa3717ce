"""An ini key for every option of the mcis-claims group: `mcis_<dest>` (`--n-prompts` -> `mcis_n_prompts`),
read as the option's own text would be, the command line winning.
"""
from __future__ import annotations

import pytest


# Options with no ini key: one-shot actions, which a setting in pytest.ini would turn into a trap
# (every run lists and exits; every run rewrites the baseline; every run is the same shard; every
# run is judged at one family, whatever its grid).
_NO_INI = {"list_claims", "update_baseline", "shard", "family"}
_INI_KEYS: dict[str, tuple[str, object]] = {}  # option dest -> (ini key, the option's argparse Argument)


def add_ini_keys(parser, group) -> None:
    """Every option of the group also has an ini key, `mcis_<dest>` (`--n-prompts` -> `mcis_n_prompts`).

    The ini value is read as the option's text would be (same type, same choices, same checks), and
    only when the option is not on the command line (`apply_ini_keys`)."""
    for option in group.options:
        if option.dest in _NO_INI or option.dest in _INI_KEYS or not option.names()[0].startswith("--"):
            continue  # a second flag for one dest (--fixed-n beside --sequential) shares the first one's key
        key = f"mcis_{option.dest}"
        _INI_KEYS[option.dest] = (key, option)
        parser.addini(key, f"{option.names()[0]}: {option.attrs().get('help') or ''}")


def apply_ini_keys(config) -> None:
    """Fill each option left off the command line from its ini key; the command line wins.

    A bad ini value fails with the same one-line usage error as the option would (its value
    checks then run on it unchanged), naming the option and the key."""
    for dest, (key, option) in _INI_KEYS.items():
        if getattr(config.option, dest, None) not in (None, option.attrs().get("default")):
            continue  # given on the command line (--fixed-n gives False)
        raw = config.getini(key)
        if raw is None or not str(raw).strip():
            continue
        raw, flag, attrs = str(raw).strip(), option.names()[0], option.attrs()
        if attrs.get("nargs") == 0:  # an on/off flag
            if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise pytest.UsageError(f"{key} = {raw}: {flag} is on or off; use true or false")
            value = raw.lower() in ("1", "true", "yes", "on")
        elif option.type in (int, float):
            try:
                value = option.type(raw)
            except ValueError:
                raise pytest.UsageError(f"argument {flag}: invalid {option.type.__name__} value: {raw!r} "
                                        f"(from the ini key {key})") from None
        else:
            value = raw
        choices = attrs.get("choices")
        if choices and value not in choices:
            raise pytest.UsageError(f"argument {flag}: invalid choice: {value!r} (choose from "
                                    f"{', '.join(map(str, choices))}; from the ini key {key})")
        setattr(config.option, dest, value)
