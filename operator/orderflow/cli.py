"""The ``orderflow`` command: run a controller, write the CRDs, describe an Order's story.

The dev wing (``packaging/orderflow-dev``) adds ``cluster``, ``image``, ``kind`` and ``demo`` through the
``orderflow.commands`` entry points; this module never imports it."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from orderflow import DEV_INSTALL, DISTRIBUTION

DEFAULT_PEERING_LIFETIME = 15  # orderflow.runtime.peering.DEFAULT_LIFETIME, without importing the runtime here
# The dev wing's commands: named when it is missing, so `orderflow demo` says how to get it.
DEV_COMMANDS = ("cluster", "image", "kind", "demo")


def _crds(args: argparse.Namespace) -> int:
    from orderflow.api import crdgen

    if args.check:
        out_of_date = crdgen.stale(args.output, args.charts)
        if out_of_date:
            print(
                f"generated files out of date, run `orderflow crds`: {', '.join(map(str, out_of_date))}",
                file=sys.stderr,
            )
            return 1
        return 0
    for path in crdgen.write(args.output, args.charts):
        print(f"wrote {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from orderflow.runtime.client import Kube
    from orderflow.runtime.retry import RetryPolicy
    from orderflow.runtime.runner import RunOptions, run

    options = RunOptions(
        namespaces=args.namespace,
        log_format=args.log_format,
        liveness=args.liveness,
        readiness=args.readiness,
        peering=args.peering,
        priority=args.priority,
        peering_lifetime=args.peering_lifetime,
        metrics_port=args.metrics_port,
        metrics_bind_address=args.metrics_bind_address,
        verbose=args.verbose,
    )
    try:
        retry = RetryPolicy(
            initial_interval=args.retry_initial_interval,
            factor=args.retry_backoff_factor,
            max_interval=args.retry_max_interval,
            max_attempts=args.retry_max_attempts,
        )
    except ValueError as exc:
        print(f"orderflow run {args.controller}: {exc}", file=sys.stderr)
        return 2
    kube = Kube.from_env()
    # Readiness lists the kind the controller owns, not the other one: the order controller runs,
    # and is ready, without the Fulfillment CRD (its Orders then report the missing API).
    if args.controller == "fulfillment":
        from orderflow.api.fulfillment import PLURAL as FULFILLMENTS
        from orderflow.fulfillment import controller as fulfillment

        fc = fulfillment.FulfillmentController(
            kube, args.step_seconds, args.workers, args.ttl, default_deadline=args.active_deadline_seconds, retry=retry
        )
        options.controller = fulfillment.COMPONENT
        kube.identify(fulfillment.COMPONENT)
        options.settings = {"workers": args.workers, "stepSeconds": args.step_seconds}
        if args.active_deadline_seconds is not None:
            options.settings["activeDeadlineSeconds"] = args.active_deadline_seconds
        options.settings["retryPolicy"] = retry.describe()
        run(fulfillment.build_registry(fc), options, kube, FULFILLMENTS)
    else:
        from orderflow.api.order import PLURAL as ORDERS
        from orderflow.order import controller as order
        from orderflow.order import targets

        try:
            declaration = targets.load(args.targets)
        except targets.TargetsError as exc:
            print(f"orderflow run order: {exc}", file=sys.stderr)
            return 2
        oc = order.OrderController(
            kube,
            ack_timeout=args.ack_timeout,
            workers=args.workers,
            default_ttl=args.ttl,
            retry=retry,
            declaration=declaration,
            secrets_namespace=args.secrets_namespace,
            allow_exec_kubeconfigs=args.allow_exec_kubeconfigs,
            cluster=args.cluster_name,
        )
        options.controller = order.COMPONENT
        kube.identify(order.COMPONENT)
        options.settings = {
            "workers": args.workers,
            "ackTimeoutSeconds": args.ack_timeout,
            "retryPolicy": retry.describe(),
        }
        if declaration.targets:
            options.settings["targets"] = ",".join(t.name for t in declaration.targets)
        run(order.build_registry(oc), options, kube, ORDERS)
    return 0


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _http_endpoint(url: str) -> str:
    """An argparse type: reject a bad endpoint URL as a usage error, before anything starts."""
    from orderflow.runtime.readiness import parse_endpoint

    try:
        parse_endpoint(url)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return url


def _peering_lifetime(value: str) -> int:
    """An argparse type: a peering lifetime Kopf can keep (a usage error otherwise)."""
    from orderflow.runtime.peering import check_lifetime

    try:
        return check_lifetime(int(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


DESCRIPTION = (
    "Orders and Fulfillments as Kubernetes custom resources: run a controller, write the CRDs, or describe "
    "an Order's story. The dev wing (packaging/orderflow-dev) adds cluster, image and demo."
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        from orderflow import __version__

        return __version__


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="orderflow", description=DESCRIPTION)
    top.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    # Not required here, so that `orderflow --bogus` is told about --bogus, not about the command;
    # parse() asks for the command when none was given.
    sub = top.add_subparsers(dest="command", metavar="COMMAND")

    crds = sub.add_parser("crds", help="write the CRDs generated from the API models")
    crds.add_argument("--output", type=Path, default=Path("crds"))
    crds.add_argument("--charts", type=Path, default=Path("charts"), help="also write each chart's CRD template")
    crds.add_argument("--check", action="store_true", help="fail if the files differ from the models")
    crds.set_defaults(func=_crds)

    common = argparse.ArgumentParser(add_help=False)  # what both controllers take
    common.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=env_list("ORDERFLOW_NAMESPACES"),
        help="watch this namespace (repeatable; env ORDERFLOW_NAMESPACES, comma-separated); default: all",
    )
    common.add_argument(
        "--log-format", choices=["text", "json"], default=os.environ.get("ORDERFLOW_LOG_FORMAT", "text")
    )
    common.add_argument(
        "--liveness",
        default=os.environ.get("ORDERFLOW_LIVENESS") or None,
        help="serve Kopf's health endpoint (liveness), e.g. http://0.0.0.0:8080/healthz",
    )
    common.add_argument(
        "--readiness",
        type=_http_endpoint,
        default=os.environ.get("ORDERFLOW_READINESS") or None,
        help="serve readiness (200 only while Kopf has started and the API server answers the "
        "controller's own list requests; 503 and why otherwise), e.g. http://0.0.0.0:8081/readyz "
        "(env ORDERFLOW_READINESS)",
    )
    common.add_argument(
        "--peering",
        default=os.environ.get("ORDERFLOW_PEERING") or None,
        help="Kopf peering name, one per controller, e.g. order-controller-peering (needs Kopf's "
        "peering CRDs; the objects are created); default: standalone",
    )
    common.add_argument(
        "--priority",
        type=int,
        default=_env_int("ORDERFLOW_PRIORITY"),
        help="Kopf peering priority: the live replica of highest priority works (env ORDERFLOW_PRIORITY); "
        "default: by start time, so the longest-running replica works; 0 or more outranks every default",
    )
    common.add_argument(
        "--peering-lifetime",
        type=_peering_lifetime,
        # A string default goes through the type too: a bad ORDERFLOW_PEERING_LIFETIME is a usage error.
        default=os.environ.get("ORDERFLOW_PEERING_LIFETIME") or str(DEFAULT_PEERING_LIFETIME),
        metavar="SECONDS",
        help="with --peering: how long a replica's record lasts unless renewed, so how soon after a crash "
        f"the standby takes over (env ORDERFLOW_PEERING_LIFETIME; default {DEFAULT_PEERING_LIFETIME}, at least "
        "10; Kopf renews it every lifetime minus 5-10 s)",
    )
    common.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("ORDERFLOW_METRICS_PORT", "0")),
        help="serve Prometheus metrics on this port (0: off; env ORDERFLOW_METRICS_PORT)",
    )
    common.add_argument(
        "--metrics-bind-address",
        default=os.environ.get("ORDERFLOW_METRICS_BIND_ADDRESS") or "127.0.0.1",
        help="serve metrics on this address (env ORDERFLOW_METRICS_BIND_ADDRESS); default 127.0.0.1, this "
        "machine only; 0.0.0.0 in a Pod, for the metrics Service",
    )
    common.add_argument("--workers", type=int, default=int(os.environ.get("ORDERFLOW_WORKERS", "4")))
    common.add_argument(
        "--ttl-seconds-after-finished",
        dest="ttl",
        type=int,
        default=int(os.environ["ORDERFLOW_TTL_SECONDS_AFTER_FINISHED"])
        if os.environ.get("ORDERFLOW_TTL_SECONDS_AFTER_FINISHED")
        else None,
        help="delete finished objects that set no spec.ttlSecondsAfterFinished this long after they finished "
        "(env ORDERFLOW_TTL_SECONDS_AFTER_FINISHED); default: keep them. The fulfillment controller applies it "
        "only to Fulfillments that serve no Order",
    )
    # The retry policy of the controller's API actions (the order controller's create, signal and
    # delete of Fulfillments; the fulfillment controller's status writes). Defaults: as before.
    common.add_argument(
        "--retry-initial-interval",
        type=float,
        default=_env_float("ORDERFLOW_RETRY_INITIAL_INTERVAL", 0.5),
        help="seconds before the first retry of a failed action (env ORDERFLOW_RETRY_INITIAL_INTERVAL; default 0.5)",
    )
    common.add_argument(
        "--retry-backoff-factor",
        type=float,
        default=_env_float("ORDERFLOW_RETRY_BACKOFF_FACTOR", 2.0),
        help="each retry waits this many times longer than the one before (env ORDERFLOW_RETRY_BACKOFF_FACTOR; "
        "default 2)",
    )
    common.add_argument(
        "--retry-max-interval",
        type=float,
        default=_env_float("ORDERFLOW_RETRY_MAX_INTERVAL", 60.0),
        help="the longest wait between retries, in seconds (env ORDERFLOW_RETRY_MAX_INTERVAL; default 60)",
    )
    common.add_argument(
        "--retry-max-attempts",
        type=int,
        default=int(os.environ.get("ORDERFLOW_RETRY_MAX_ATTEMPTS") or 10),
        help="attempts in a row, the first included, before the object is marked Stalled and waits for a "
        "change to its spec (env ORDERFLOW_RETRY_MAX_ATTEMPTS; default 10). Errors retrying cannot mend "
        "(400, 422) are never retried",
    )
    common.add_argument("-v", "--verbose", action="store_true")
    runp = sub.add_parser("run", help="run one controller (uses KUBECONFIG, or in-cluster credentials)")
    controllers = runp.add_subparsers(dest="controller", required=True, metavar="{order,fulfillment}")
    # Each controller's own options are its own: `run fulfillment --ack-timeout 9` is a usage error.
    order = controllers.add_parser("order", parents=[common], help="the order controller")
    order.add_argument(
        "--ack-timeout",
        type=float,
        default=_env_float("ORDERFLOW_ACK_TIMEOUT", 30.0),
        help="seconds before an unacknowledged signal is reported (env ORDERFLOW_ACK_TIMEOUT)",
    )
    order.add_argument(
        "--targets",
        type=Path,
        default=Path(os.environ["ORDERFLOW_TARGETS_FILE"]) if os.environ.get("ORDERFLOW_TARGETS_FILE") else None,
        help="a YAML file declaring the targets Orders may name in spec.target: other namespaces, or namespaces "
        "of other clusters through a kubeconfig in a Secret (env ORDERFLOW_TARGETS_FILE; docs/targets.md)",
    )
    order.add_argument(
        "--secrets-namespace",
        default=os.environ.get("ORDERFLOW_SECRETS_NAMESPACE") or os.environ.get("POD_NAMESPACE") or None,
        help="where the targets' kubeconfig Secrets are (env ORDERFLOW_SECRETS_NAMESPACE, else POD_NAMESPACE); "
        "default: the namespace of the controller's own login",
    )
    order.add_argument(
        "--allow-exec-kubeconfigs",
        action="store_true",
        default=os.environ.get("ORDERFLOW_ALLOW_EXEC_KUBECONFIGS", "").lower() in ("1", "true"),
        help="accept target kubeconfigs that log in by running a program (exec, auth-provider); default: refused",
    )
    order.add_argument(
        "--cluster-name",
        default=os.environ.get("ORDERFLOW_CLUSTER_NAME") or None,
        help="this cluster's name, written into the orderRef of Fulfillments made in targets, for people reading "
        "them (env ORDERFLOW_CLUSTER_NAME)",
    )
    fulfillment = controllers.add_parser("fulfillment", parents=[common], help="the fulfillment controller")
    fulfillment.add_argument(
        "--step-seconds",
        type=float,
        default=_env_float("ORDERFLOW_STEP_SECONDS", 5.0),
        help="default duration of each step (env ORDERFLOW_STEP_SECONDS)",
    )
    fulfillment.add_argument(
        "--active-deadline-seconds",
        type=int,
        default=_env_int("ORDERFLOW_ACTIVE_DEADLINE_SECONDS"),
        help="the deadline of Fulfillments that set no spec.activeDeadlineSeconds, in seconds from their creation "
        "(env ORDERFLOW_ACTIVE_DEADLINE_SECONDS); default: none. Recorded in each one's status.dueAt when first seen",
    )
    runp.set_defaults(func=_run)

    from orderflow.describe import command as describe_command  # standard library only at import

    describep = sub.add_parser("describe", help="an Order's or Fulfillment's story: one timeline of both objects")
    describe_command.add_arguments(describep)
    describep.set_defaults(func=describe_command.run)
    for command in entry_points(group="orderflow.commands"):
        command.load()(sub)  # the dev wing's, when installed
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DEV_COMMANDS and argv[0] not in entry_points(group="orderflow.commands").names:
        print(
            f"orderflow {argv[0]} is part of the dev wing, which is not installed: {DEV_INSTALL}",
            file=sys.stderr,
        )
        return 2
    args = parse(parser(), argv)
    code: int = args.func(args)
    return code


def parse(top: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    args = top.parse_args(argv)
    if args.command is None:
        commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices
        top.error(f"give a command: {', '.join(commands)} (orderflow COMMAND --help for each)")
    return args


PLUGIN = "kubectl orderflow"


def kubectl_plugin(argv: list[str] | None = None) -> int:
    """The ``kubectl-orderflow`` executable: ``kubectl orderflow ARGS`` is ``orderflow ARGS``."""
    top = parser()
    _rename(top, PLUGIN)
    args = parse(top, sys.argv[1:] if argv is None else argv)
    code: int = args.func(args)
    return code


def _rename(parser: argparse.ArgumentParser, prog: str) -> None:
    """Usage and errors name the command as typed: ``kubectl orderflow describe ...``."""
    old = parser.prog
    parser.prog = prog
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.prog = sub.prog.replace(old, prog, 1)


if __name__ == "__main__":
    sys.exit(main())
