"""``stream-ner brands``: read brand leaderboards from Redis, and link a text for debugging."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``brands`` command group."""
    parser = subparsers.add_parser("brands", help="brand leaderboards from Redis; brand linking")
    sub = parser.add_subparsers(dest="brands_command", required=True, metavar="SUBCOMMAND")
    top = sub.add_parser("top", help="the most mentioned brands of a window, read back from Redis")
    top.add_argument("--window", default="1m", help="window family name (default: 1m)")
    top.add_argument(
        "--at", type=_moment, help="a time inside the window (ISO 8601 or epoch s; default: latest)"
    )
    top.add_argument("--n", type=int, default=10, help="how many brands (default: 10)")
    top.add_argument(
        "--sort",
        choices=("mentions", "net-sentiment"),
        default="mentions",
        help="most mentioned first (default), or most negative net sentiment first",
    )
    top.set_defaults(handler=_top)
    link = sub.add_parser("link", help="show the brands the linker finds in a text (no model: untagged only)")
    link.add_argument("text")
    link.set_defaults(handler=_link)


def _moment(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time or epoch seconds: {text!r}") from exc
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _top(args: argparse.Namespace) -> int:
    from stream_ner.settings import load_settings

    return 0 if print_top(load_settings(), args.window, args.at, args.n, sort=args.sort) else 1


def print_top(
    settings: Any, window: str, at: int | None, n: int, console: Any = None, sort: str = "mentions"
) -> bool:
    """Print the leaderboard of ``window`` at ``at`` (latest when ``None``); ``False`` if Redis has none.

    The sentiment columns: ``net`` is (positive - negative) / (positive + negative) of the brand's mentions,
    ``- / = / +`` the mentions per polarity.
    """
    from rich.console import Console
    from rich.table import Table

    from stream_ner import redis_conn
    from stream_ner.aggregate.leaderboard import read_top

    redis_conn.check(settings.redis)
    client = redis_conn.connect(settings.redis)
    board = read_top(client, settings.redis.key_prefix, window, at, n, sort=sort)
    console = console or Console()
    if board is None:
        console.print(f"no '{window}' window in Redis" + (f" at {_iso(at)}" if at else ""))
        return False
    table = Table(title=f"{board.window} window {_iso(board.start)} - {_iso(board.end)}")
    for column in ("#", "brand", "mentions", "posts", "authors", "net", "- / = / +", "final"):
        table.add_column(column, justify="left" if column == "brand" else "right")
    for rank, row in enumerate(board.rows, start=1):
        net = "" if row.net_sentiment is None else f"{row.net_sentiment:+.2f}"
        tones = f"{row.negative} / {row.neutral} / {row.positive}" if row.sentiment_mean is not None else ""
        final = "yes" if row.final else ""
        table.add_row(
            str(rank), row.brand, str(row.mentions), str(row.posts), str(row.authors), net, tones, final
        )
    console.print(table)
    return True


def _link(args: argparse.Namespace) -> int:
    from stream_ner.brands import BrandLinker
    from stream_ner.settings import load_settings

    linker = BrandLinker.from_settings(load_settings().brands)
    for match in linker.find(args.text):
        flag = " (ambiguous)" if match.spelling.ambiguous else ""
        found = args.text[match.start : match.end]
        print(f"{match.start:>5} {match.end:>5}  {found!r} -> {match.spelling.brand}{flag}")
    print("brands:", " ".join(linker.link([args.text], [[]])[0].brands) or "-")
    return 0
