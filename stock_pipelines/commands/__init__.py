"""One module per `stock-pipelines` subcommand; each exposes `add_parser(subparsers)`."""


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2, no traceback."""
