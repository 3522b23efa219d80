"""Types both kinds share: items, addresses, conditions, and the base model's conventions.

Models are the source of truth for the CRDs: field descriptions become ``kubectl explain`` text,
constraints become OpenAPI validation, and ``x-kubernetes-validations`` carry CEL rules.
"""

from __future__ import annotations

import datetime
import enum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict, JsonValue

from orderflow.api.countries import ISO_3166_ALPHA2

GROUP = "orderflow.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "orderflow"

HISTORY_LIMIT = 20
MAX_ITEMS = 100


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> JsonDict:
    """One ``x-kubernetes-validations`` entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def unchanged(field: str, old: str = "oldSelf", new: str = "self") -> str:
    """CEL: an optional field is as it was (present with the same value, or absent in both)."""
    return f"has({new}.{field}) == has({old}.{field}) && (!has({new}.{field}) || {new}.{field} == {old}.{field})"


def one_way(field: str, what: str) -> JsonDict:
    """A transition rule: once the flag is true it stays true (a one-way signal)."""
    return cel(
        f"!has(oldSelf.{field}) || !oldSelf.{field} || (has(self.{field}) && self.{field})",
        f"spec.{field} cannot be set back to false: {what}",
        field_path=f".{field}",
    )


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields ignored (the API server prunes)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        use_enum_values=False,
        extra="ignore",
    )

    def wire(self) -> dict[str, Any]:
        """The JSON the API server stores: aliases, no unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def copied(self) -> Self:
        """A deep copy of a valid model, made by validating a dump of it: every list, dict and
        model in it is new. ``model_copy(deep=True)`` goes through ``copy.deepcopy`` and costs
        several times more (``python -m orderflow.dev.bench.copies``); a decision copies the
        observed status of every object it looks at, a restart every object there is. A model
        changed since it was validated may no longer validate: copy those with ``model_copy``."""
        return self.model_validate(self.model_dump())


Sku = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Stock keeping unit: letters, digits, '.', '_' and '-', starting with a letter or digit. "
        "SKUs are not case-sensitive: 'pen-1' and 'PEN-1' are the same product.",
    ),
]

# At least one letter, digit, punctuation mark or symbol: a field of only spaces or invisible
# characters (a zero-width space, say) says nothing a carrier can use. RE2 (the API server) and
# pydantic's regex engine both know Unicode categories; the pattern is unanchored, as OpenAPI's is.
VISIBLE = r"[\p{L}\p{N}\p{P}\p{S}]"

# One line of text: no control character (C0 such as a line break, a tab or ESC; DEL; C1) and no
# line or paragraph separator anywhere in it. Such characters are no part of a name or an address,
# and on a terminal or in a log they forge lines and run escape sequences. Anchored, so the whole
# value is checked; RE2 and pydantic's engine know these categories alike.
_NO_CONTROL = r"[^\p{Cc}\p{Zl}\p{Zp}]"
ONE_LINE = rf"^{_NO_CONTROL}*$"
VISIBLE_LINE = rf"^{_NO_CONTROL}*{VISIBLE}{_NO_CONTROL}*$"
# The API server quotes the pattern when it refuses a value; this rule says why in words, beside it.
# (A Kubernetes object name, as in orderRef.name: DNS-1123 subdomain, as the API server checks.)
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ONE_LINE_RULES: list[JsonValue] = [
    cel(
        "!self.matches('[\\\\p{Cc}\\\\p{Zl}\\\\p{Zp}]')",
        "must be one line of text: no line breaks, tabs or other control characters",
    )
]

# An address a mail server takes: no spaces and nothing invisible (control and format characters
# such as a zero-width space, private-use characters), which would make two addresses that look
# the same differ. `\s` is not used: RE2's is ASCII only, Python's and rust's are Unicode.
_EMAIL_PART = r"[^@\p{Cc}\p{Cf}\p{Co}\p{Z}]+"
Email = Annotated[
    str,
    Field(
        max_length=254,
        pattern=rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$",
        description="The customer's e-mail address, for shipping notices: no spaces, control or invisible characters.",
    ),
]


class Item(Model):
    """One line of an order: a SKU and how many of it."""

    sku: Sku
    quantity: int = Field(ge=1, le=10_000, description="How many units; at least 1.")


ITEMS_FIELD_RULES: list[JsonValue] = [
    cel(
        "self.all(i, self.exists_one(j, j.sku.lowerAscii() == i.sku.lowerAscii()))",
        "each SKU may appear only once (SKUs are not case-sensitive); add the quantities into one item instead",
    )
]


class ShippingAddress(Model):
    """Where the parcel goes."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.country in [" + ", ".join(f"'{c}'" for c in ISO_3166_ALPHA2) + "]",
                    "country must be an ISO 3166-1 alpha-2 code in capitals, such as US, DE or JP",
                    field_path=".country",
                )
            ]
        }
    )

    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=VISIBLE_LINE,
        description="Recipient's full name.",
        json_schema_extra={"x-kubernetes-validations": ONE_LINE_RULES},
    )
    street: str = Field(
        min_length=1,
        max_length=200,
        pattern=VISIBLE_LINE,
        description="Street and house number.",
        json_schema_extra={"x-kubernetes-validations": ONE_LINE_RULES},
    )
    line2: str | None = Field(
        default=None,
        max_length=200,
        pattern=VISIBLE_LINE,
        description="Apartment, suite or c/o line.",
        json_schema_extra={"x-kubernetes-validations": ONE_LINE_RULES},
    )
    city: str = Field(
        min_length=1,
        max_length=100,
        pattern=VISIBLE_LINE,
        description="City or town.",
        json_schema_extra={"x-kubernetes-validations": ONE_LINE_RULES},
    )
    postal_code: str = Field(
        min_length=1, max_length=20, pattern=r"^[A-Za-z0-9 -]+$", description="Postal or ZIP code."
    )
    region: str | None = Field(
        default=None,
        max_length=100,
        pattern=VISIBLE_LINE,
        description="State, province or region, where used.",
        json_schema_extra={"x-kubernetes-validations": ONE_LINE_RULES},
    )
    country: str = Field(
        min_length=2,
        max_length=2,
        description="ISO 3166-1 alpha-2 country code in capitals, e.g. US, DE, JP.",
    )


class StepDurations(Model):
    """How long each timed step takes, in seconds; zero is allowed (tests and benchmarks)."""

    picking: float | None = Field(default=None, ge=0, le=86_400, description="Seconds the Picking step takes.")
    packing: float | None = Field(default=None, ge=0, le=86_400, description="Seconds the Packing step takes.")


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


CONDITION_MESSAGE_MAX = 32_768  # metav1.Condition's limit


class Condition(Model):
    """A metav1.Condition: one aspect of the object's current state."""

    type: str = Field(
        min_length=1, max_length=316, description="Condition type: Ready, Reconciling, Stalled, Paused, ..."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this condition was computed from."
    )
    last_transition_time: datetime.datetime = Field(description="When status last changed.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="A CamelCase word saying why.",
    )
    message: str = Field(default="", max_length=CONDITION_MESSAGE_MAX, description="A sentence for a person.")


CONDITIONS_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


class HistoryEntry(Model):
    """One transition of the workflow, kept in status (bounded) besides the Event it also emits."""

    time: datetime.datetime = Field(description="When it happened.")
    phase: str = Field(description="The phase after the transition.")
    reason: str = Field(description="What happened: Started, Picked, Packed, Shipped, Paused, Resumed, ...")
    message: str = Field(default="", description="A sentence for a person.")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


TTL_MAX = 2_147_483_647  # as Job's ttlSecondsAfterFinished (int32)
TTL_DESCRIPTION = (
    "Delete this object this many seconds after it finished (status.completedAt), as a Job's "
    "ttlSecondsAfterFinished does; 0 deletes it as soon as it finishes. Unset: the controller's "
    "default (--ttl-seconds-after-finished), and without one it is kept."
)


DEADLINE_MAX = 2_147_483_647  # seconds; Job's activeDeadlineSeconds is an int64, this is plenty


def active_deadline_description(what: str) -> str:
    return (
        f"Seconds, from this object's creation (metadata.creationTimestamp), within which {what} must "
        "have finished, as a Job's activeDeadlineSeconds. Wall-clock time: paused time counts. Past it "
        "the workflow ends Failed with reason DeadlineExceeded. May be raised or lowered while it runs; "
        "final once it has passed."
    )


def due_at(created: datetime.datetime | None, seconds: int | None) -> datetime.datetime | None:
    """When a workflow with ``activeDeadlineSeconds`` is due: None without a deadline (or before
    the API server has given the object a creation time)."""
    if created is None or seconds is None:
        return None
    return created + datetime.timedelta(seconds=seconds)


def seconds_until_expiry(
    completed_at: datetime.datetime | None, ttl: int | None, now: datetime.datetime
) -> float | None:
    """Retention: None while there is nothing to expire (not finished, or kept), else how long
    until the object is due for deletion (<= 0: due now)."""
    if completed_at is None or ttl is None:
        return None
    return (completed_at + datetime.timedelta(seconds=ttl) - now).total_seconds()
