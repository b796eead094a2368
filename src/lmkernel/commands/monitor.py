"""`lmkernel monitor RUN --input FEED` (classify, aggregate, alert) and `lmkernel alerts check|export`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..clikit import DebugOpt, _guard

alerts_app = typer.Typer(help="Alert rules files: check them, export them as Prometheus alerting rules.",
                         no_args_is_help=True)
RulesArg = Annotated[Path, typer.Argument(help="Alert rules YAML file (docs/trust.md, 'Monitoring, alerts and "
                                          "audit').")]


def monitor(
    run: Annotated[Path, typer.Argument(help="Run directory of a classification model (or its model/ folder).")],
    input_: Annotated[str, typer.Option("--input", "-i", help="The feed: JSONL (one object per line with the text "
                                        "and optionally a time) or plain text (one per line); - reads stdin.")],
    alerts: Annotated[Optional[Path], typer.Option(help="Alert rules YAML file; without it the feed is only "
                                                   "aggregated.")] = None,
    webhook: Annotated[Optional[str], typer.Option(help="URL that gets a JSON POST per alert firing or "
                                                   "resolving (retried with back-off).")] = None,
    audit_log: Annotated[Optional[Path], typer.Option("--audit-log", help="Append each classified text (PII "
                                                      "redacted) and alert to this hash-chained JSONL log.")] = None,
    guard: Annotated[Optional[Path], typer.Option("--guard", help="Guard file (a `guard:` section, docs/trust.md) "
                                                  "checked on each text before it is scored, as `serve` does: PII "
                                                  "redacted, findings counted for guard rules; default: the run's "
                                                  "own guard section, if it has one.")] = None,
    text_field: Annotated[str, typer.Option("--text-field", help="The JSONL key holding the text.")] = "text",
    time_field: Annotated[Optional[str], typer.Option("--time-field", help="The JSONL key holding each line's "
                                                      "time (unix seconds or ISO-8601): windows and rules follow "
                                                      "the feed's clock, so a replay alerts the same way every "
                                                      "time.")] = None,
    rate: Annotated[Optional[float], typer.Option(help="Without --time-field: space the lines this many per "
                                                  "second from time 0 (a deterministic replay); default: the "
                                                  "wall clock.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per forward pass.")] = 64,
    json_: Annotated[bool, typer.Option("--json", help="Print each alert as a JSON line, then the summary as "
                                        "one JSON object.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Classify a feed, keep the monitor's windows and drift, raise the alert rules; print alerts as
    they fire or resolve and a summary at the end."""
    with _guard(debug):
        import lmkernel

        from ..errors import LmkError
        from ..serve.monitoring import load_reference
        from ..trust.alerts import load_rules
        from ..trust.audit import AuditLog
        from ..trust.feed import read_feed, replay
        from ..trust.guard import redact_pii
        from ..trust.guardrun import cli_guard
        from ..trust.watch import Watch
        from ..trust.webhook import Webhook

        if batch_size < 1 or (rate is not None and not rate > 0):
            raise LmkError("--batch-size and --rate must be positive", where="--batch-size/--rate")
        rules = load_rules(alerts) if alerts else []
        model = lmkernel.load(run)
        watch = Watch(load_reference(model.path), rules, webhook=Webhook(webhook) if webhook else None,
                      audit=AuditLog(audit_log, redact=redact_pii) if audit_log else None)

        def show(event, n: int) -> None:
            if json_:
                typer.echo(json.dumps({**event.to_json(), "record": n}, ensure_ascii=False))
            else:
                value = "n/a" if event.value is None else f"{event.value:.4g}"
                typer.echo(f"{event.status.upper():8} {event.rule.name}: {event.rule.describe()} "
                           f"(value {value}, {event.count} in window) at record {n}")

        try:
            n = replay(model.predict, read_feed(input_, text_field, time_field, rate), watch, batch_size, show,
                       guard=cli_guard(model, guard))
        finally:
            watch.close(timeout=10.0)
        _summary(watch, n, json_)


def _summary(watch, n: int, as_json: bool) -> None:
    snap = watch.snapshot()
    fired = sum(a["fired"] for a in snap["alerts"])
    if as_json:
        typer.echo(json.dumps({"summary": {"records": n, "alerts_fired": fired, **snap}}, ensure_ascii=False))
        return
    typer.echo(f"{n} record(s); {fired} alert(s) fired")
    widest = max(snap["windows"], key=lambda k: snap["windows"][k]["count"], default=None)
    if widest:
        w = snap["windows"][widest]
        shares = ", ".join(f"{k} {v:.1%}" for k, v in w["label_shares"].items())
        typer.echo(f"last {widest}: {w['count']} record(s); labels: {shares or '-'}; "
                   f"mean confidence {_num(w['confidence']['mean'])}; ood rate {_num(w['ood_rate'])}")
        drift = ", ".join(f"{k} {v['psi']:.3f}" for k, v in w["drift"].items() if v)
        typer.echo(f"drift (PSI): {drift or 'no reference or too few records'}")
    for a in snap["alerts"]:
        typer.echo(f"  {a['name']:24} {a['state']:9} fired {a['fired']}x  {a['rule']}")
    if "webhook" in snap:
        typer.echo(f"webhook: {snap['webhook']}")
    if "audit" in snap:
        typer.echo(f"audit log: {snap['audit']['path']} ({snap['audit']['lines']} lines, head {snap['audit']['head']})")


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


@alerts_app.command("check")
def check(rules: RulesArg, debug: DebugOpt = False) -> None:
    """Validate a rules file and list its rules."""
    with _guard(debug):
        from ..trust.alerts import load_rules

        for rule in load_rules(rules):
            typer.echo(f"{rule.name}: {rule.describe()} (min_count {rule.needed}, for {rule.for_}, "
                       f"cooldown {rule.cooldown})")


@alerts_app.command("export")
def export(rules: RulesArg,
           out: Annotated[Path, typer.Option("--out", "-o", help="The Prometheus rules file to write.")],
           debug: DebugOpt = False) -> None:
    """Write the rules as a Prometheus alerting-rules file over the server's /metrics series."""
    with _guard(debug):
        from ..trust.alerts import load_rules
        from ..trust.prometheus import write_rules

        typer.echo(f"wrote {write_rules(load_rules(rules), out)}")


def register(app: typer.Typer) -> None:
    """`lmkernel monitor` and `lmkernel alerts ...`."""
    app.command("monitor")(monitor)
    app.add_typer(alerts_app, name="alerts")
