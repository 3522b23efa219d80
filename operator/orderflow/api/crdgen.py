"""Generate the CustomResourceDefinitions from the pydantic models, as controller-gen does from Go types.

The API server needs a *structural* schema: every node typed, no ``$ref``, no ``anyOf`` for
optionality, defaults that validate. Pydantic's JSON Schema is close; this module inlines the
references, folds ``X | None`` into an optional ``X`` and keeps what Kubernetes understands
(descriptions, enums, ranges, patterns, formats, defaults, ``x-kubernetes-*`` extensions).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from orderflow.api import fulfillment, order
from orderflow.api.common import CATEGORY, GROUP, VERSION

# Keywords that pass from pydantic's JSON Schema into the OpenAPI v3 schema unchanged.
_KEPT = (
    "description",
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "required",
)


@dataclasses.dataclass(frozen=True)
class KindSpec:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[dict[str, Any], ...]
    chart: str  # the Helm chart of the controller that serves this kind
    rules: tuple[dict[str, Any], ...] = ()  # CEL rules on the whole object (they may read status)

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def filename(self) -> str:
        return f"{self.name}.yaml"


def _age() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _ready() -> tuple[dict[str, Any], ...]:
    """Ready and its message last, as Flux and cert-manager show them: a Failed or Invalid phase
    comes with its reason on the same line."""
    ready = '.status.conditions[?(@.type=="Ready")]'
    return (
        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
        {"name": "Message", "type": "string", "jsonPath": f"{ready}.message"},
    )


KINDS = (
    KindSpec(
        kind=order.KIND,
        plural=order.PLURAL,
        short_names=("ord",),
        description="An Order: what a customer asked for. Its controller starts one Fulfillment, "
        "drives it through the Fulfillment's spec and mirrors its status.",
        spec=order.OrderSpec,
        status=order.OrderStatus,
        columns=(
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": "Target",
                "type": "string",
                "jsonPath": ".spec.target",
                "description": "Where its Fulfillment lives (spec.target); empty: this namespace",
            },
            {"name": "Fulfillment", "type": "string", "jsonPath": ".status.fulfillment.phase"},
            {
                "name": "Progress",
                "type": "integer",
                "jsonPath": ".status.fulfillment.percent",
                "description": "Fulfillment progress in percent",
            },
            {"name": "Tracking", "type": "string", "jsonPath": ".status.fulfillment.trackingNumber", "priority": 1},
            {
                "name": "Due",
                "type": "string",  # a date column prints a time to come as "<invalid>"
                "jsonPath": ".status.dueAt",
                "description": "When the order is due (spec.activeDeadlineSeconds after creation)",
                "priority": 1,
            },
            _age(),
            *_ready(),
        ),
        chart="order-controller",
        rules=order.ORDER_RULES,
    ),
    KindSpec(
        kind=fulfillment.KIND,
        plural=fulfillment.PLURAL,
        short_names=("ful", "fulfil"),
        description="A Fulfillment: an independent workflow (Pending, Picking, Packing, Shipped) "
        "driven only by its spec (signals) and observed only through its status (queries).",
        spec=fulfillment.FulfillmentSpec,
        status=fulfillment.FulfillmentStatus,
        columns=(
            {"name": "Order", "type": "string", "jsonPath": ".spec.orderRef.name"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": "Progress",
                "type": "integer",
                "jsonPath": ".status.progress.percent",
                "description": "Progress in percent",
            },
            {"name": "Paused", "type": "boolean", "jsonPath": ".status.paused"},
            {"name": "Tracking", "type": "string", "jsonPath": ".status.trackingNumber", "priority": 1},
            _age(),
            *_ready(),
        ),
        chart="fulfillment-controller",
    ),
)


class SchemaError(ValueError):
    """A model uses a construct that has no structural OpenAPI equivalent."""


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model, references inlined."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _convert(schema, defs)


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # Keywords beside the reference (a field's description, default) win over the type's.
        node = {**target, **node}
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise SchemaError(f"only `X | None` unions are supported, got {options}")
        if node.get("default", ...) is None:
            del node["default"]  # optional: absent, not null
        node = {**_convert(options[0], defs), **{k: v for k, v in node.items() if k != "anyOf"}}
    if "allOf" in node:
        (only,) = node.pop("allOf")
        node = {**_convert(only, defs), **node}

    out: dict[str, Any] = {k: node[k] for k in _KEPT if k in node}
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" or "properties" in node:
        out["type"] = "object"
        props = node.get("properties", {})
        if props:
            out["properties"] = {name: _convert(sub, defs) for name, sub in props.items()}
        # A default for an object is the API server's business only when written out in full.
        out.pop("default", None) if props else None
    if out.get("type") == "array":
        out["items"] = _convert(node["items"], defs)
        if out.get("default") == []:
            del out["default"]  # an empty list is the same as none, and keeps objects small
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            out[key] = value
    if "type" not in out:
        raise SchemaError(f"schema node without a type: {node}")
    return out


def crd(spec: KindSpec) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": spec.description,
        "properties": {
            "apiVersion": {"type": "string", "description": "The API version: orderflow.dev/v1alpha1."},
            "kind": {"type": "string", "description": f"The kind: {spec.kind}."},
            "metadata": {"type": "object"},
            "spec": structural(spec.spec),
            "status": structural(spec.status),
        },
        "required": ["spec"],
    }
    if spec.rules:
        root["x-kubernetes-validations"] = list(spec.rules)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": spec.name,
            # Static labels only: Helm adds its own (managed-by) when a release adopts the CRD.
            "labels": {"app.kubernetes.io/part-of": "orderflow", "app.kubernetes.io/component": "crd"},
            "annotations": {"orderflow.dev/generated-by": "orderflow crds (from orderflow.api models)"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": spec.kind,
                "listKind": f"{spec.kind}List",
                "plural": spec.plural,
                "singular": spec.kind.lower(),
                "shortNames": list(spec.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(spec.columns),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


HEADER = "# Generated by `orderflow crds` from the models in operator/orderflow/api. Do not edit.\n"


def render(spec: KindSpec) -> str:
    return HEADER + yaml.safe_dump(crd(spec), sort_keys=False, width=100, allow_unicode=True)


def render_chart_template(spec: KindSpec) -> str:
    """The same CRD as a chart template: Helm never upgrades a chart's crds/ folder, so the CRD is
    a template (installed and upgraded with the release), kept on uninstall so that removing a
    controller never deletes everyone's objects."""
    document = crd(spec)
    document["metadata"]["annotations"]["helm.sh/resource-policy"] = "keep"
    document["metadata"]["labels"] = _LABELS_PLACEHOLDER
    body = yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)
    # The chart's own labels (chart, release, version), from the chart's helper: e.g. "oc" for
    # order-controller.
    helper = "".join(word[0] for word in spec.chart.split("-")) + ".crdLabels"
    body = body.replace(f"labels: {_LABELS_PLACEHOLDER}", f'labels:\n    {{{{- include "{helper}" . | nindent 4 }}}}')
    return "{{- if .Values.crds.install }}\n" + HEADER + body + "{{- end }}\n"


_LABELS_PLACEHOLDER = "LABELS-FROM-THE-CHART"


def outputs(crds_dir: Path, charts_dir: Path) -> dict[Path, str]:
    """Every generated file and its content."""
    files = {}
    for spec in KINDS:
        files[crds_dir / spec.filename] = render(spec)
        files[charts_dir / spec.chart / "templates" / "crd.yaml"] = render_chart_template(spec)
    return files


def write(crds_dir: Path, charts_dir: Path) -> list[Path]:
    written = []
    for path, content in outputs(crds_dir, charts_dir).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


def stale(crds_dir: Path, charts_dir: Path) -> list[Path]:
    return [
        path
        for path, content in outputs(crds_dir, charts_dir).items()
        if not path.is_file() or path.read_text() != content
    ]
