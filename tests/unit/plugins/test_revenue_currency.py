"""Revenue and prices carry the contract's currency (``evaluation.currency``), or say they are in price units.

The seeded world (``world.py``) has outcomes with revenue on 03-29 and 03-31, served by v2; the
pages read the reference contract of the repo's dags/ (``currency: EUR``) unless the DAGs
folder holds none.
"""

from __future__ import annotations

import re

import pytest

from tests.unit.plugins.world import auth


def get(client, tokens, path: str, **params):
    return client.get(path, params=params, headers=auth(tokens["viewer"]))


def revenue_header(html: str) -> str:
    return re.search(r'<th class="num" id="revenue-unit"[^>]*>[^<]*</th>', html).group(0)


def test_the_recommendations_page_shows_revenue_and_prices_in_the_contracts_currency(client, tokens):
    html = get(client, tokens, "/ml/recommendations", user="u0").text
    header = revenue_header(html)
    assert ">revenue (EUR)</th>" in header and "evaluation.currency" in header
    assert html.count('<th class="num">price (EUR)</th>') == 2  # the top items and the user's list
    assert get(client, tokens, "/ml/api/recommendations").json()["revenue_unit"] == "EUR"


def test_the_version_page_shows_revenue_in_the_contracts_currency(client, tokens):
    assert ">revenue (EUR)</th>" in revenue_header(get(client, tokens, "/ml/models/recsys/v2").text)


def test_without_a_contract_revenue_says_it_is_in_the_items_price_unit(client, tokens, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))  # no pipeline.yaml: no currency known
    html = get(client, tokens, "/ml/recommendations").text
    header = revenue_header(html)
    assert ">revenue (item price units)</th>" in header and "set evaluation.currency" in header
    assert '<th class="num">price</th>' in html


@pytest.mark.parametrize("value", ["eur", "EURO", "€"])
def test_a_currency_that_is_not_an_iso_code_is_refused_naming_the_key(tmp_path, value):
    from airflow_ml_provider.core.contract.spec import load_spec
    from airflow_ml_provider.exceptions import MLProviderError
    from tests.paths import PIPELINE

    text = PIPELINE.read_text().replace("  currency: EUR ", f"  currency: '{value}' ", 1)
    assert f"currency: '{value}'" in text
    path = tmp_path / "recsys" / "pipeline.yaml"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(MLProviderError, match=r"evaluation\.currency: .*not an ISO 4217 currency code"):
        load_spec(path)
