"""Every API list has a largest page (500 rows), and a page size or offset that is not a number in
range is refused with 400 naming the parameter, never ignored and never a 500 (issues 12, 13)."""

import pytest

from dms_admin.urls import router
from tests.factories import ServerFactory

CURSOR_LISTS = {"events", "deliveries", "audit"}  # keyset pages: `page_size` and `cursor`
LISTS = [f"/api/v1/{prefix}/" for prefix, _, _ in router.registry if prefix not in CURSOR_LISTS]
SIZE = {**{url: "limit" for url in LISTS}, **{f"/api/v1/{prefix}/": "page_size" for prefix in CURSOR_LISTS}}


@pytest.mark.parametrize("url", sorted(SIZE))
@pytest.mark.parametrize("value", ["501", "0", "abc", ""])
def test_a_page_size_out_of_range_or_not_a_number_is_refused(admin_api, url, value):
    parameter = SIZE[url]

    response = admin_api.get(f"{url}?{parameter}={value}")

    assert response.status_code == 400, (url, value, response.status_code)
    assert parameter in response.json()


@pytest.mark.parametrize("url", sorted(SIZE))
def test_the_largest_page_is_served(admin_api, url):
    assert admin_api.get(f"{url}?{SIZE[url]}=500").status_code == 200


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("value", ["-1", "x", str(2**63)])
def test_a_bad_offset_is_refused(admin_api, url, value):
    response = admin_api.get(f"{url}?offset={value}")

    assert response.status_code == 400 and "offset" in response.json()


def test_limit_and_offset_page_through_a_list(admin_api):
    ServerFactory.create_batch(3)

    page = admin_api.get("/api/v1/servers/?limit=2&offset=2").json()

    assert page["count"] == 3 and len(page["results"]) == 1


def test_the_schema_states_the_bounds(admin_api):
    schema = admin_api.get("/api/schema/?format=json").json()

    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/servers/"]["get"]["parameters"]}
    events = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/events/"]["get"]["parameters"]}
    assert parameters["limit"]["minimum"] == 1 and parameters["limit"]["maximum"] == 500
    assert parameters["offset"]["minimum"] == 0
    assert events["page_size"]["maximum"] == 500
