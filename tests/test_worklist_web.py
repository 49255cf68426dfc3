"""The worklist's JSON API under the web server (pacscore/adapters/web_worklist.py): search,
add, read and remove items over real HTTP, behind the auth hook; 400, 404, 409, 413 and 415
answers with messages naming what was wrong, and nothing written for a refused request."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

import pacscore

from .expected_warnings import BAD_DATES
from .worklist_items import make_item

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")

from pacscore.adapters.dicomweb import bearer_token_auth, create_app  # noqa: E402

from .web_helpers import serving  # noqa: E402

TOKEN = "s3cret-token"
JSON = {"Content-Type": "application/dicom+json"}


@pytest.fixture
def web(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        arc.worklist.add(make_item("P1", "1.2.3.1", "S1", "CT", "20260315", name="Doe^John"))
        arc.worklist.add(make_item("P2", "1.2.3.2", "S2", "MR", "20260316", name="Roe^Jane"))
        app = create_app(arc, prefix="", max_body=64 * 1024)
        with serving(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield arc, client


def patient_ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    return [item["00100020"]["Value"][0] for item in response.json()]


def test_get_lists_every_item_and_searches_with_query_parameters(web):
    _arc, client = web
    assert patient_ids(client.get("/worklist")) == ["P1", "P2"]
    assert patient_ids(client.get("/worklist", params={"Modality": "MR"})) == ["P2"]
    assert patient_ids(client.get("/worklist", params={"ScheduledProcedureStepSequence.Modality": "CT"})) == ["P1"]
    assert patient_ids(client.get("/worklist", params={"PatientName": "doe*"})) == ["P1"]
    params = {"ScheduledProcedureStepStartDate": "20260316-", "ScheduledProcedureStepStatus": "SCHEDULED"}
    assert patient_ids(client.get("/worklist", params=params)) == ["P2"]
    assert patient_ids(client.get("/worklist", params={"limit": "1"})) == ["P1"]
    [item] = client.get("/worklist", params={"PatientID": "P2"}).json()
    assert item["00400100"]["Value"][0]["00400001"]["Value"] == ["CT01"]  # the whole stored item


def test_post_adds_items_and_delete_removes_one(web):
    arc, client = web
    new = [make_item("P3", "1.2.3.3", "S3").to_json_dict(), make_item("P4", "1.2.3.4", "S4").to_json_dict()]
    answer = client.post("/worklist", content=json.dumps(new), headers=JSON)
    assert answer.status_code == 201 and answer.json() == {"keys": ["1.2.3.3:S3", "1.2.3.4:S4"]}
    got = client.get("/worklist/" + quote("1.2.3.3:S3", safe=""))
    assert got.status_code == 200 and got.json()["00100020"]["Value"] == ["P3"]
    assert client.delete("/worklist/1.2.3.3:S3").status_code == 204
    assert client.get("/worklist/1.2.3.3:S3").status_code == 404
    assert arc.worklist.keys() == ["1.2.3.1:S1", "1.2.3.2:S2", "1.2.3.4:S4"]


def test_a_list_with_one_item_already_there_adds_none(web):
    arc, client = web
    body = json.dumps(
        [make_item("P5", "1.2.3.5", "S5").to_json_dict(), make_item("P1", "1.2.3.1", "S1").to_json_dict()]
    )
    answer = client.post("/worklist", content=body, headers=JSON)
    assert answer.status_code == 409 and "nothing was added" in answer.text
    assert arc.worklist.keys() == ["1.2.3.1:S1", "1.2.3.2:S2"]


def test_a_duplicate_is_409_unless_replace(web):
    arc, client = web
    again = make_item("P1", "1.2.3.1", "S1", name="New^Name").to_json_dict()
    answer = client.post("/worklist", content=json.dumps(again), headers=JSON)
    assert answer.status_code == 409 and "1.2.3.1:S1" in answer.text and "replace=true" in answer.text
    assert str(arc.worklist.get("1.2.3.1:S1").PatientName) == "Doe^John"
    answer = client.post("/worklist", params={"replace": "true"}, content=json.dumps(again), headers=JSON)
    assert answer.status_code == 201
    assert str(arc.worklist.get("1.2.3.1:S1").PatientName) == "New^Name"


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        ("{}", {"Content-Type": "text/plain"}, 415, "application/dicom+json"),
        ("{}", {}, 415, "no Content-Type"),
        ("{not json", JSON, 400, "not JSON"),
        ("[]", JSON, 400, "no item"),
        (json.dumps({"PatientID": "P9"}), JSON, 400, "PatientID: not a DICOM JSON attribute"),
        ("nostep", JSON, 400, "item 1: ScheduledProcedureStepSequence: required in a worklist item; nothing was added"),
        ("badtime", JSON, 400, "ScheduledProcedureStepStartDate: '20261340'"),
        ("x" * (65 * 1024), JSON, 413, "exceeds the limit"),
    ],
)
@BAD_DATES
def test_bad_posts_are_refused_and_add_nothing(web, body, headers, status, message):
    arc, client = web
    good = make_item("P8", "1.2.3.8", "S8").to_json_dict()
    if body == "nostep":
        bad = make_item("P9", "1.2.3.9", "S9")
        del bad.ScheduledProcedureStepSequence
        body = json.dumps([good, bad.to_json_dict()])
    elif body == "badtime":
        bad = make_item("P9", "1.2.3.9", "S9").to_json_dict()
        bad["00400100"]["Value"][0]["00400002"]["Value"] = ["20261340"]
        body = json.dumps(bad)
    answer = client.post("/worklist", content=body, headers=headers)
    assert answer.status_code == status and message in answer.text, answer.text
    assert arc.worklist.keys() == ["1.2.3.1:S1", "1.2.3.2:S2"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"ScheduledProcedureStepStartDate": "2026-13"}, "ScheduledProcedureStepStartDate"),
        ({"NoSuchKeyword": "x"}, "NoSuchKeyword"),
        ({"limit": "-1"}, "limit"),
    ],
)
def test_a_bad_search_is_400_naming_the_parameter(web, params, message):
    _arc, client = web
    answer = client.get("/worklist", params=params)
    assert answer.status_code == 400 and message in answer.text, answer.text


def test_unknown_keys_and_methods(web):
    _arc, client = web
    assert client.delete("/worklist/1.2.9:S9").status_code == 404
    assert "no worklist item" in client.get("/worklist/1.2.9:S9").text
    answer = client.put("/worklist", content="{}", headers=JSON)
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, POST"


def test_the_auth_hook_guards_the_worklist(tmp_path):
    with pacscore.open(tmp_path / "arc") as arc:
        arc.worklist.add(make_item())
        app = create_app(arc, prefix="", auth=bearer_token_auth(TOKEN))
        with serving(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/worklist").status_code == 401
            assert client.delete("/worklist/x", headers={"Authorization": "Bearer wrong"}).status_code == 401
            body = json.dumps(make_item(step_id="S2").to_json_dict())
            assert client.post("/worklist", content=body, headers=JSON).status_code == 401
            assert len(arc.worklist) == 1
            ok = client.get("/worklist", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200 and len(ok.json()) == 1
