"""Argument types shared by the subcommands: a bad number is a one-line usage error (exit 2),
never a traceback from deep inside a socket or clock call."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one line on stderr, exit 2, like `UsageError` in every command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, not {value}")
        return value

    parse.__name__ = "int"
    return parse


def positive_number(high: float) -> Callable[[str], float]:
    """A finite number in (0, high]: inf and nan are refused here, not by a clock much later."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(f"must be a number in (0, {high:g}], not {text}")
        return value

    parse.__name__ = "float"
    return parse


tcp_port = int_range(0, 65_535)  # 0: any free port
listen_port = int_range(1, 65_535)  # a port a person will type into a browser
