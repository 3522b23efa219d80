"""Targets: the named places where an Order's Fulfillment may live, as the order controller's
operator declares them (a Temporal Nexus endpoint's Kubernetes form).

Pure: the declaration (a YAML file the chart renders from its ``targets`` value), and which
target an Order gets. A target is a namespace of this cluster, or a namespace of another cluster
reached through a kubeconfig kept in a Secret (as Flux's ``spec.kubeConfig.secretRef`` and Argo
CD's cluster Secrets do). Each says which Order namespaces may use it; an Order only names one,
so an Order cannot make the controller act in a place its operator did not declare.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Label = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class SecretKeyRef(_Model):
    """A kubeconfig kept in a Secret of the order controller's own namespace."""

    name: Label
    key: str = Field(default="kubeconfig", min_length=1, max_length=253)


class Target(_Model):
    name: Label
    namespace: Label = Field(description="Where its Fulfillments live.")
    kubeconfig_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Another cluster, reached with the kubeconfig in this Secret; unset: this cluster."
    )
    allowed_namespaces: tuple[str, ...] = Field(
        min_length=1, description="The Order namespaces that may use it; '*' for all."
    )

    @property
    def remote(self) -> bool:
        return self.kubeconfig_secret_ref is not None

    def allows(self, namespace: str) -> bool:
        return "*" in self.allowed_namespaces or namespace in self.allowed_namespaces


class Declaration(_Model):
    targets: tuple[Target, ...] = ()

    @model_validator(mode="after")
    def _names_once(self) -> Declaration:
        names = [t.name for t in self.targets]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"target names must be unique: {', '.join(twice)} declared more than once")
        return self


class TargetsError(Exception):
    """The declaration cannot be used: the controller does not start, and says why."""


def load(path: Path | None) -> Declaration:
    if path is None:
        return Declaration()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return Declaration.model_validate(raw)
    except OSError as exc:
        raise TargetsError(f"cannot read the targets file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise TargetsError(f"the targets file {path} is not YAML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise TargetsError(f"the targets file {path} cannot be used: {problems}") from None


@dataclasses.dataclass(frozen=True)
class Place:
    """Where an Order's Fulfillment lives: a declared target, or (target None) the Order's own
    namespace of this cluster, as before targets existed."""

    namespace: str
    target: Target | None = None

    @property
    def name(self) -> str | None:
        return self.target.name if self.target else None


@dataclasses.dataclass(frozen=True)
class Refusal:
    reason: str  # TargetUnknown, TargetNotAllowed
    message: str


def place_of(declaration: Declaration, order_namespace: str, requested: str | None) -> Place | Refusal:
    if requested is None:
        return Place(order_namespace)
    target = next((t for t in declaration.targets if t.name == requested), None)
    if target is None:
        known = ", ".join(t.name for t in declaration.targets if t.allows(order_namespace)) or "none"
        return Refusal(
            "TargetUnknown",
            f"spec.target {requested!r} is not a target the order controller knows; "
            f"targets this namespace may use: {known}",
        )
    if not target.allows(order_namespace):
        return Refusal(
            "TargetNotAllowed",
            f"target {requested!r} does not allow Orders of namespace {order_namespace!r}; "
            "its operator lists the namespaces that may use it",
        )
    return Place(target.namespace, target)


NAME_MAX = 253


def fulfillment_name(order_namespace: str, order_name: str, place: Place) -> str:
    """Deterministic, so a retried create finds the first one. In the Order's own namespace, the
    Order's name (as always); in a target, which Orders of several namespaces share, the Order's
    namespace and name, with a hash of both when that is too long for a name."""
    if place.target is None:
        return order_name
    name = f"{order_namespace}.{order_name}"
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: NAME_MAX - len(digest) - 1].rstrip('.-')}-{digest}"
