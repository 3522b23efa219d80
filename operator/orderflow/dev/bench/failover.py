"""Failover after a crash: how long after the working replica is killed the standby reconciles.

Two replicas of one controller run with Kopf peering while objects of its kind flow in (one a
second by default). Each trial waits a random time (so the kill falls anywhere in the keep-alive
cycle), kills the working replica without a word, and times, from the kill, the first status the
standby writes to an object created after the kill: the moment a user's new Order (or Fulfillment)
is seen handled again. Then a replica takes the dead one's place as the standby, and the next trial
kills the one now at work. Per peering lifetime it reports min / p50 / max over the trials, what
Kopf's rule predicts for each (the dead replica's record lifetime minus its age at the kill), and
the writes to the peering object per minute with both replicas idle-running (counted from a watch
of the object, so the same in both modes).

Two modes:

- processes (the default): a fresh local control plane, the two replicas of ``--controller`` as
  processes with ``--peering-lifetime`` set per ``--lifetimes`` and the other controller as one
  standalone process; a kill is SIGKILL and nothing restarts the dead replica, as when a node is
  lost: the wait is the record's expiry.

      python -m orderflow.dev.bench.failover --lifetimes 60 15 --trials 5

- Pods (``--kubeconfig``): the chart's release ``--release`` in ``--namespace``, set to
  ``replicas=2`` and each lifetime in turn by ``helm upgrade --reuse-values`` (the image must have
  ``--peering-lifetime``); objects are created in ``--objects-namespace``, which the release must
  watch. ``--kill process`` sends SIGKILL to the working Pod's controller process, found on this
  machine by its cgroup (run it on the node, as a user allowed to signal it): the kubelet then
  restarts the container in the same Pod, under the same peering identity, so the standby takes
  over when the record expires or when the restarted container reports in with its new, lower
  priority, whichever comes first. ``--kill pod`` force-deletes the Pod (``--grace-period=0
  --force``); the kubelet still sends SIGTERM first, so Kopf removes its record and that is the
  graceful path, not a crash.

      python -m orderflow.dev.bench.failover --kubeconfig K --namespace order-system --release order \\
          --controller order --kill process --lifetimes 60 15 --trials 5

Results go to bench/results/failover.json (runs of other modes kept) and the ``failover`` section
of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes import client, config, watch

from orderflow.api.common import GROUP, VERSION
from orderflow.dev import manifests
from orderflow.dev.bench import record, sections
from orderflow.dev.bench.run import Watcher, log
from orderflow.dev.cluster import podnode, tools
from orderflow.dev.cluster.controlplane import ControlPlane
from orderflow.dev.harness import ControllerProcess, Controllers
from orderflow.runtime import peering

LABELS = {"orderflow.dev/bench": "failover"}
PLURALS = {"order": "orders", "fulfillment": "fulfillments"}
CHARTS = {"order": "order-controller", "fulfillment": "fulfillment-controller"}
OBJECTS_NS = "failover"


def _now() -> float:
    return time.time()


def _lastseen(record: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(str(record["lastseen"]).replace("Z", "+00:00")).timestamp()


def _expires(record: dict[str, Any]) -> float:
    return _lastseen(record) + int(record.get("lifetime", peering.KOPF_LIFETIME))


class PeeringObject:
    """The controller's peering object, from a watch: its records now, and when it was written."""

    def __init__(self, api: client.CustomObjectsApi, name: str, namespace: str | None) -> None:
        self.api, self.name, self.namespace = api, name, namespace
        self.status: dict[str, dict[str, Any]] = {}
        self.writes: list[float] = []
        self.changed = threading.Condition()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.namespace is None:
                    lister: Callable[..., Any] = self.api.list_cluster_custom_object
                    args: tuple[str, ...] = ("kopf.dev", "v1", peering.CLUSTER_PLURAL)
                else:
                    lister = self.api.list_namespaced_custom_object
                    args = ("kopf.dev", "v1", self.namespace, peering.NAMESPACED_PLURAL)
                for event in watch.Watch().stream(lister, *args, field_selector=f"metadata.name={self.name}"):
                    with self.changed:
                        self.status = dict(event["object"].get("status") or {})
                        if event["type"] == "MODIFIED":  # a re-list's ADDED is no write
                            self.writes.append(_now())
                        self.changed.notify_all()
                    if self._stop.is_set():
                        return
            except Exception as exc:  # a dropped stream: watch again
                if not self._stop.is_set():
                    log(f"watch of the peering object restarted: {exc}")
                    time.sleep(1)

    def live(self) -> dict[str, dict[str, Any]]:
        with self.changed:
            now = _now()
            return {who: rec for who, rec in self.status.items() if rec and _expires(rec) > now}

    def working(self, among: set[str]) -> tuple[str, dict[str, Any]]:
        """The replica that works: of the live records of ``among``, the one of highest priority
        (Kopf's own rule)."""
        live = {who: rec for who, rec in self.live().items() if who in among}
        if not live:
            raise RuntimeError(f"no live record of {sorted(among)} in the peering object {self.name}: {self.status}")
        who = max(live, key=lambda w: int(live[w].get("priority", 0)))
        return who, live[who]

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not within {timeout:.0f}s; peering records: {self.status}")
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


class Flow:
    """Objects of the controller's kind created one every ``1/rate`` s, each with its creation time."""

    def __init__(self, api: client.CustomObjectsApi, namespace: str, which: str, rate: float, prefix: str) -> None:
        self.api, self.namespace, self.which, self.rate, self.prefix = api, namespace, which, rate, prefix
        self.created: dict[str, float] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def body(self, name: str) -> dict[str, Any]:
        steps = {"picking": 0, "packing": 0}
        if self.which == "order":
            return manifests.order(name, labels=LABELS, stepDurationSeconds=steps)
        return manifests.fulfillment(name, labels=LABELS, started=True, stepDurationSeconds=steps)

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(1 / self.rate):
            name = f"{self.prefix}-{i:05d}"
            i += 1
            before = _now()
            try:
                self.api.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURALS[self.which], self.body(name)
                )
            except Exception as exc:  # the API server busy: the next one will do
                log(f"create {name}: {exc}")
                continue
            self.created[name] = before

    def after(self, moment: float) -> list[str]:
        return [name for name, at in list(self.created.items()) if at >= moment]

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


class Replicas(Protocol):
    """Two replicas of one controller, wherever they run."""

    def set_up(self, lifetime: int) -> None: ...  # two replicas with this peering lifetime
    def identities(self) -> set[str]: ...  # the peering identities of the replicas running now
    def kill(self, identity: str) -> str: ...  # kill that one without a word; say how
    def replace(self, identity: str) -> None: ...  # make sure a replica stands by again
    def tear_down(self) -> None: ...


class Processes:
    """The replicas as processes, each with its own peering identity (POD_ID, as the charts set)."""

    def __init__(self, controllers: Controllers, which: str, extra: list[str]) -> None:
        self.controllers, self.which, self.extra = controllers, which, extra
        self.running: dict[str, ControllerProcess] = {}
        self.lifetime = peering.DEFAULT_LIFETIME
        self.count = 0

    def _start(self) -> None:
        self.count += 1
        identity = f"replica-{self.count}"
        args = [
            *("--peering", f"{self.which}-controller-peering", "--peering-lifetime", str(self.lifetime)),
            *self.extra,
        ]
        env = {**self.controllers.env, "POD_ID": identity}
        self.running[identity] = self.controllers.start(self.which, *args, env=env)

    def set_up(self, lifetime: int) -> None:
        self.tear_down()
        self.lifetime = lifetime
        self._start()  # the first started works (the longest-running replica has the highest priority)
        self._start()

    def identities(self) -> set[str]:
        return {who for who, proc in self.running.items() if proc.alive}

    def kill(self, identity: str) -> str:
        self.running.pop(identity).kill()
        return "SIGKILL to the process"

    def replace(self, identity: str) -> None:
        self._start()

    def tear_down(self) -> None:
        for proc in self.running.values():
            proc.terminate()
        for proc in self.running.values():
            proc.stop()
        self.running.clear()


class Pods:
    """The chart's release, its Deployment at replicas=2; the identities are the Pods' names."""

    def __init__(self, env: dict[str, str], namespace: str, release: str, which: str, chart: Path, how: str) -> None:
        self.env, self.namespace, self.release, self.which, self.chart, self.how = (
            env,
            namespace,
            release,
            which,
            chart,
            how,
        )
        self.selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/name={CHARTS[which]}"

    def _kubectl(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(["kubectl", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def pods(self) -> list[dict[str, Any]]:
        found = json.loads(self._kubectl("get", "pods", "-n", self.namespace, "-l", self.selector, "-o", "json"))
        return [p for p in found["items"] if not p["metadata"].get("deletionTimestamp")]

    def _ready(self) -> set[str]:
        def ready(pod: dict[str, Any]) -> bool:
            conditions = pod.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        return {p["metadata"]["name"] for p in self.pods() if ready(p)}

    def set_up(self, lifetime: int) -> None:
        subprocess.run(
            ["helm", "upgrade", self.release, str(self.chart), "-n", self.namespace, "--reuse-values",
             "--set", "replicas=2", "--set", f"peeringLifetimeSeconds={lifetime}", "--wait", "--timeout", "5m"],
            env=self.env, check=True, capture_output=True, text=True, timeout=360,
        )  # fmt: skip
        deployment = f"deployment/{self.release}-{CHARTS[self.which]}"
        self._kubectl("rollout", "status", deployment, "-n", self.namespace, "--timeout=300s", timeout=330)

    def identities(self) -> set[str]:
        return self._ready()

    def kill(self, identity: str) -> str:
        if self.how == "pod":
            self._kubectl(
                "delete", "pod", "-n", self.namespace, identity, "--grace-period=0", "--force", "--wait=false"
            )
            return "kubectl delete pod --grace-period=0 --force"
        (pod,) = [p for p in self.pods() if p["metadata"]["name"] == identity]
        os.kill(podnode.controller_process(pod["metadata"]["uid"])[0], signal.SIGKILL)
        return "SIGKILL to the Pod's controller process (the container restarts)"

    def replace(self, identity: str) -> None:
        # The Deployment (a new Pod) or the kubelet (a restarted container) does it; wait for two Ready.
        deadline = time.monotonic() + 600
        while len(self._ready()) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.selector}: not two Ready Pods again within 600s")
            time.sleep(1)

    def tear_down(self) -> None:
        pass  # the release stays as it was set last


def trial(
    replicas: Replicas, record: PeeringObject, flow: Flow, seen: Watcher, lifetime: int, rng: random.Random
) -> dict[str, Any]:
    record.wait(lambda: replicas.identities() <= set(record.live()) and len(replicas.identities()) >= 2,
                timeout=lifetime + 120, what="both replicas live in the peering object")  # fmt: skip
    # The kill falls anywhere in the working replica's keep-alive cycle.
    time.sleep(rng.uniform(0, lifetime))
    who, rec = record.working(replicas.identities())
    killed_at = _now()
    how = replicas.kill(who)
    age = killed_at - _lastseen(rec)
    predicted = _expires(rec) - killed_at  # the wait Kopf's rule gives: what was left of its record

    def handled() -> bool:
        return any(name in seen.seen for name in flow.after(killed_at))

    seen.wait(handled, timeout=lifetime + 180)
    takeover = min(seen.seen[n] for n in flow.after(killed_at) if n in seen.seen) - killed_at
    outcome = {
        "killed": who,
        "how": how,
        "record_age_s": round(age, 2),
        "predicted_s": round(predicted, 2),
        "takeover_s": round(takeover, 2),
    }
    log(f"lifetime {lifetime}s: {json.dumps(outcome)}")
    replicas.replace(who)
    return outcome


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"min": ordered[0], "p50": ordered[len(ordered) // 2], "max": ordered[-1]}


def measure(
    replicas: Replicas,
    api: client.CustomObjectsApi,
    which: str,
    peering_namespace: str | None,
    objects_ns: str,
    lifetimes: list[int],
    trials: int,
    rate: float,
    steady: float,
) -> list[dict[str, Any]]:
    rng = random.Random()
    record = PeeringObject(api, f"{which}-controller-peering", peering_namespace)
    seen = Watcher(
        api,
        PLURALS[which],
        lambda o: o["metadata"]["name"] if o.get("status") else None,
        namespace=objects_ns,
        clock=time.time,
    )
    results = []
    try:
        for lifetime in lifetimes:
            log(f"lifetime {lifetime}s: two replicas of the {which} controller ...")
            replicas.set_up(lifetime)
            flow = Flow(api, objects_ns, which, rate, prefix=f"l{lifetime}-{int(_now())}")
            try:
                outcomes = [trial(replicas, record, flow, seen, lifetime, rng) for _ in range(trials)]
                # Keep-alive cost: writes to the peering object while both replicas run, after the
                # last takeover's clean-up has settled.
                record.wait(lambda: len(record.live()) == 2, timeout=lifetime + 120, what="two live records")
                since = _now()
                time.sleep(steady)
                writes = sum(1 for at in record.writes if at >= since)
            finally:
                flow.stop()
            renew = peering.renewal_seconds(lifetime)
            results.append(
                {
                    "lifetime_s": lifetime,
                    "renewal_every_s": list(renew),
                    "trials": outcomes,
                    "takeover_s": summary([o["takeover_s"] for o in outcomes]),
                    "predicted_s": summary([o["predicted_s"] for o in outcomes]),
                    "after_expiry_s": summary([round(o["takeover_s"] - o["predicted_s"], 2) for o in outcomes]),
                    "peering_writes_per_minute": round(writes / (steady / 60), 1),
                    "steady_window_s": steady,
                    "objects_per_second": rate,
                }
            )
            log(f"lifetime {lifetime}s: {json.dumps({k: v for k, v in results[-1].items() if k != 'trials'})}")
    finally:
        record.stop()
        seen.stop()
        replicas.tear_down()
    return results


def peering_crds(env: dict[str, str], charts: Path) -> None:
    """Kopf's peering CRDs, as the charts install them with replicas=2."""
    rendered = subprocess.run(
        ["helm", "template", "x", str(charts / "order-controller"), "--set", "replicas=2",
         "--show-only", "templates/kopf-peering-crds.yaml"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    subprocess.run(["kubectl", "apply", "-f", "-"], input=rendered, env=env, check=True, capture_output=True, text=True)
    subprocess.run(
        ["kubectl", "wait", "--for=condition=Established", "crd", "--all"], env=env, check=True, capture_output=True
    )


def run_processes(args: argparse.Namespace) -> list[dict[str, Any]]:
    kubectl, helm = tools.ensure("kubectl"), tools.ensure("helm")
    workdir = Path(tempfile.mkdtemp(prefix="orderflow-bench-failover-"))
    plane = ControlPlane.start(workdir / "kubeconfig", log=log, die_with_parent=True)
    path = os.pathsep.join(dict.fromkeys([str(kubectl.parent), str(helm.parent), os.environ["PATH"]]))
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig), "PATH": path}
    controllers = Controllers(env, workdir)
    try:
        crds = yaml.safe_dump_all(manifests.crds())
        subprocess.run(["kubectl", "apply", "-f", "-"], input=crds, text=True, env=env, check=True, capture_output=True)
        peering_crds(env, args.charts)
        subprocess.run(["kubectl", "create", "namespace", OBJECTS_NS], env=env, check=True, capture_output=True)
        api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(plane.kubeconfig)))
        # Finished objects go after 10 s, so that a takeover's re-list stays the same size trial after trial.
        ttl = ["--ttl-seconds-after-finished", "10"]
        if args.controller == "order":
            controllers.start("fulfillment", "--step-seconds", "0", *ttl)  # the Orders' Fulfillments, standalone
        extra = [*ttl, "--step-seconds", "0"] if args.controller == "fulfillment" else ttl
        replicas = Processes(controllers, args.controller, extra)
        return measure(
            replicas, api, args.controller, None, OBJECTS_NS, args.lifetimes, args.trials, args.rate, args.steady
        )
    finally:
        controllers.stop_all()
        plane.stop()
        log(f"logs kept in {workdir}")


def run_pods(args: argparse.Namespace) -> list[dict[str, Any]]:
    env = {**os.environ, "KUBECONFIG": str(args.kubeconfig)}
    for name in ("kubectl", "helm"):
        found = tools.locate(name)
        if found:
            env["PATH"] = f"{found.parent}{os.pathsep}{env['PATH']}"
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(args.kubeconfig)))
    subprocess.run(["kubectl", "create", "namespace", args.objects_namespace], env=env, capture_output=True)
    chart = args.charts / CHARTS[args.controller]
    replicas = Pods(env, args.namespace, args.release, args.controller, chart, args.kill)
    # A release watching named namespaces peers through a KopfPeering in each: time the objects'.
    # Read from the release's values: the peering object itself appears only once replicas is 2.
    values = subprocess.run(
        ["helm", "get", "values", args.release, "-n", args.namespace, "--all", "-o", "json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    peering_namespace = args.objects_namespace if json.loads(values.stdout).get("watchNamespaces") else None
    try:
        return measure(
            replicas,
            api,
            args.controller,
            peering_namespace,
            args.objects_namespace,
            args.lifetimes,
            args.trials,
            args.rate,
            args.steady,
        )
    finally:
        selector = ",".join(f"{k}={v}" for k, v in LABELS.items())
        plural, namespace = PLURALS[args.controller], args.objects_namespace
        delete = ["kubectl", "delete", plural, "-n", namespace, "-l", selector, "--wait=false"]
        subprocess.run(delete, env=env, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orderflow.dev.bench.failover",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lifetimes", type=int, nargs="+", default=[peering.KOPF_LIFETIME, peering.DEFAULT_LIFETIME])
    parser.add_argument("--trials", type=int, default=5, help="kills per lifetime")
    parser.add_argument("--controller", choices=sorted(PLURALS), default="order", help="whose replicas to kill")
    parser.add_argument("--rate", type=float, default=1.0, help="objects created each second, throughout")
    parser.add_argument("--steady", type=float, default=120.0, help="seconds over which the peering writes are counted")
    parser.add_argument("--kubeconfig", type=Path, help="Pods mode: the cluster where the chart runs")
    parser.add_argument("--namespace", default="order-system", help="Pods mode: the release's namespace")
    parser.add_argument("--release", default="order", help="Pods mode: the release of --controller's chart")
    parser.add_argument("--kill", choices=["process", "pod"], default="process", help="Pods mode: how to kill")
    parser.add_argument(
        "--objects-namespace", default="failover-bench", help="Pods mode: where the objects are made (watched)"
    )
    parser.add_argument("--charts", type=Path, default=Path("charts"))
    parser.add_argument("--output", type=Path, default=Path("bench/results/failover.json"))
    parser.add_argument("--docs", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    for lifetime in args.lifetimes:
        peering.check_lifetime(lifetime)
    mode = "pods" if args.kubeconfig else "processes"
    results = run_pods(args) if args.kubeconfig else run_processes(args)
    document = {
        "mode": mode if mode == "processes" else f"pods, kill {args.kill}",
        "controller": args.controller,
        **record.stamp(__spec__.name, argv if argv is not None else sys.argv[1:]),
        "results": results,
    }
    same = (document["mode"], args.controller)
    runs = record.keep(args.output, document, lambda run: (run["mode"], run["controller"]) == same)
    text = section(runs)
    sections.replace(args.docs, "failover", text)
    print(text)
    return 0


def section(runs: list[dict[str, Any]]) -> str:
    """docs/benchmarks.md's failover section, from every run kept in the results file."""
    lines = [
        "## Failover after a crash",
        "",
        "`python -m orderflow.dev.bench.failover` (`make bench-failover`): two replicas of a controller with",
        "Kopf peering, an object of its kind created every second; each trial waits a random time, kills the",
        "working replica without a word, and times from the kill to the first status the standby writes to",
        "an object created after the kill. *Predicted* is what Kopf's rule gives: the dead replica's record",
        "lifetime minus its age at the kill. *Peering writes* are the writes to the peering object per",
        "minute with both replicas running (every replica's watch receives each). min / p50 / max.",
        "",
        "| mode | lifetime | renewed every | takeover | predicted | takeover minus predicted | peering writes / min "
        "| when, command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run_ in runs:
        for r in run_["results"]:
            t, p, a = r["takeover_s"], r["predicted_s"], r["after_expiry_s"]
            lo, hi = r["renewal_every_s"]
            lines.append(
                f"| {run_['mode']}, {run_['controller']} controller | {r['lifetime_s']} s | {lo}-{hi} s "
                f"| {t['min']:.1f} / {t['p50']:.1f} / {t['max']:.1f} s ({len(r['trials'])}) "
                f"| {p['min']:.1f} / {p['p50']:.1f} / {p['max']:.1f} s "
                f"| {a['min']:.1f} / {a['p50']:.1f} / {a['max']:.1f} s "
                f"| {r['peering_writes_per_minute']:g} | {run_['when']}, `{run_['command']}` |"
            )
    lines += [
        "",
        "What the rows mean. With processes nothing restarts the dead replica, as when its node is lost: the",
        "standby waits for the dead replica's record to expire (Kopf sleeps until that moment, then touches",
        "its own record to wake its watch), then resumes, re-lists and reconciles; *takeover minus predicted* is",
        "that last part. In Pods, a killed container is restarted in the same Pod under the same peering",
        "identity, and the standby takes over as soon as the restarted one reports in with its lower",
        "priority, if that comes before the expiry. docs/deploy.md (High availability) says what to set.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
