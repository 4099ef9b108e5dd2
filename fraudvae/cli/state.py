"""``fraudvae state load|info|reset``: the online state store of a model trained with --features."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

__all__ = ["add_state_commands", "add_state_option"]

_URL_HELP = (
    "state store URL: sqlite:///path.sqlite (one machine) or redis://host:port/db[?prefix=NAME] (a fleet); "
    "default: FRAUDVAE_STATE_URL, else a SQLite file beside the model directory (MODEL.state.sqlite)"
)


def add_state_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", metavar="URL", help=_URL_HELP)


def _url(args: argparse.Namespace) -> str | None:
    return args.state or os.environ.get("FRAUDVAE_STATE_URL") or None


def _cmd_load(args: argparse.Namespace) -> int:
    from fraudvae.jobs.console import say
    from fraudvae.jobs.state_job import load_state

    out = load_state(args.model, args.data, _url(args), chunk_rows=args.chunk_rows, log=say(args.quiet))
    print(json.dumps(out, indent=2))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from fraudvae.jobs.state_job import state_info

    print(json.dumps(state_info(args.model, _url(args)), indent=2))
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    from fraudvae.jobs.state_job import reset_state

    print(json.dumps(reset_state(args.model, _url(args)), indent=2))
    return 0


def add_state_commands(sub: Any) -> None:
    p = sub.add_parser(
        "state",
        help="the online state of behavioural features: load history, show, reset",
        description="A model trained with --features keeps each entity's recent events in a state store "
        "when it is served; 'fraudvae serve' computes the features of each raw event from it.",
    )
    actions = p.add_subparsers(dest="state_command", required=True, metavar="ACTION")
    q = actions.add_parser(
        "load",
        help="fill the store from past events (a warm start)",
        description="Record the events of a history file (CSV or Parquet, in time order) into the model's state "
        "store, with the batch job's reader: afterwards the service scores the next event as 'fraudvae score "
        "--history FILE' would. A load that is interrupted resumes after its last whole chunk when run again.",
    )
    q.add_argument("--model", required=True, help="model directory trained with --features")
    q.add_argument("--data", required=True, help="history: .csv, .csv.gz or .parquet, in time order")
    q.add_argument("--chunk-rows", type=int, default=20_000, help="events per transaction (default 20000)")
    q.add_argument("--quiet", action="store_true", help="no progress output")
    add_state_option(q)
    q.set_defaults(func=_cmd_load)
    for name, func, text in (
        ("info", _cmd_info, "show the store: kind, entities, events, expiries, latency"),
        ("reset", _cmd_reset, "empty the store (every entity's history and every recorded event id)"),
    ):
        q = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        q.add_argument("--model", required=True, help="model directory (names the default store)")
        add_state_option(q)
        q.set_defaults(func=func)
