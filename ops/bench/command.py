"""`checkout-saga bench` from start to exit code: pick or start the stack, run, print the report."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import typer

from ops.bench.report import build_report
from ops.bench.run import BenchOptions, BenchRun
from ops.bench.stack import Stack, new_fleet, owned_servers, running_stack, scratch_dir
from ops.devstack import quiet_client_logs


def _log(line: str) -> None:
    # Progress goes to stderr: stdout carries only the JSON report.
    typer.echo(line, err=True)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # SIGTERM (a timeout, an orchestrator) unwinds like Ctrl-C, so the spawned services, the
    # embedded PostgreSQL and Tansu are stopped instead of outliving the bench.
    raise SystemExit(128 + signum)


def run_bench(options: BenchOptions, json_out: Path | None) -> int:
    """Run the bench; print the JSON report (and write it to json_out); 1 when a check failed."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    quiet_client_logs()
    configured = running_stack()
    if configured is not None and options.history:
        # Seeding writes tens of thousands of rows: never into a database the bench did not make.
        _log("--history needs a stack the bench starts itself; stop the running one or unset it")
        return 2
    with scratch_dir() as scratch:
        if configured is not None:
            _log(f"driving the running stack at {configured.kafka.bootstrap_servers}")
            stack = Stack(configured, owned=False)
            report = _run(stack, options)
        else:
            report = _owned_run(Path(scratch), options)
    text = json.dumps(report, indent=2)
    typer.echo(text)
    if json_out is not None:
        json_out.write_text(text + "\n")
    problems = report["outcomes"]["problems"] if isinstance(report["outcomes"], dict) else []
    for problem in problems:
        _log(f"FAILED: {problem}")
    return 0 if report["ok"] else 1


def _owned_run(scratch: Path, options: BenchOptions) -> dict[str, object]:
    """Start the servers, spawn the services, run; log tails on stderr when the run fails."""
    with owned_servers(scratch) as (settings, infra):
        fleet = new_fleet(settings, options.payer, options.processes, scratch / "logs")
        stack = Stack(settings, owned=True, infra=infra, fleet=fleet)
        try:
            report = _run(stack, options)
        except BaseException:
            print(fleet.tails(), file=sys.stderr)
            raise
        if not report["ok"]:
            print(fleet.tails(), file=sys.stderr)
        return report


def _run(stack: Stack, options: BenchOptions) -> dict[str, object]:
    measured = asyncio.run(BenchRun(stack, options, _log).run())
    return build_report(measured)
