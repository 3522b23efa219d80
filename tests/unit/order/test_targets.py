"""Targets: what the order controller's operator declares, and which place an Order gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderflow.order.targets import Declaration, Place, Refusal, TargetsError, fulfillment_name, load, place_of

DECLARED = Declaration.model_validate(
    {
        "targets": [
            {"name": "warehouse", "namespace": "fulfilment", "allowedNamespaces": ["shop"]},
            {
                "name": "eu",
                "namespace": "orders-in",
                "kubeconfigSecretRef": {"name": "eu-kubeconfig"},
                "allowedNamespaces": ["*"],
            },
        ]
    }
)


def test_an_order_without_a_target_stays_in_its_own_namespace() -> None:
    assert place_of(DECLARED, "shop", None) == Place("shop")


def test_a_declared_target_that_allows_the_namespace_is_used() -> None:
    place = place_of(DECLARED, "shop", "warehouse")
    assert isinstance(place, Place)
    assert (place.namespace, place.name) == ("fulfilment", "warehouse")
    eu = place_of(DECLARED, "anywhere", "eu")
    assert isinstance(eu, Place)
    assert eu.target is not None
    assert eu.target.remote
    assert eu.target.kubeconfig_secret_ref is not None
    assert eu.target.kubeconfig_secret_ref.key == "kubeconfig"


def test_an_unknown_or_forbidden_target_is_refused_with_what_may_be_used() -> None:
    unknown = place_of(DECLARED, "shop", "nowhere")
    assert isinstance(unknown, Refusal)
    assert unknown.reason == "TargetUnknown"
    assert "warehouse, eu" in unknown.message
    refused = place_of(DECLARED, "other", "warehouse")
    assert isinstance(refused, Refusal)
    assert refused.reason == "TargetNotAllowed"
    assert "'other'" in refused.message


def test_names_in_a_shared_target_carry_the_orders_namespace_and_fit() -> None:
    place = place_of(DECLARED, "shop", "warehouse")
    assert isinstance(place, Place)
    assert fulfillment_name("shop", "o1", place) == "shop.o1"
    assert fulfillment_name("shop", "o1", Place("shop")) == "o1"
    long = fulfillment_name("n" * 63, "o" * 253, place)
    assert len(long) <= 253
    assert long != fulfillment_name("n" * 63, "o" * 252 + "x", place)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("targets: [{name: a, namespace: b}]", "allowedNamespaces"),
        ("targets: [{name: A_B, namespace: b, allowedNamespaces: ['*']}]", "name"),
        ("targets: [{name: a, namespace: b, allowedNamespaces: ['*'], extra: 1}]", "extra"),
        (
            "targets: [{name: a, namespace: b, allowedNamespaces: ['*']}, {name: a, namespace: c, "
            "allowedNamespaces: ['*']}]",
            "declared more than once",
        ),
        ("targets: [", "not YAML"),
    ],
)
def test_a_declaration_that_cannot_be_used_is_refused_with_a_reason(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    with pytest.raises(TargetsError, match=says):
        load(path)


def test_no_file_no_targets() -> None:
    assert load(None).targets == ()
