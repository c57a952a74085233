"""Zendesk accounts as they really come: on either CSAT generation, without CSAT, and with the
incremental exports' documented quirks (issue 19).

The connector's own client talks HTTPS to the emulator, playing each account profile. The
expected scores are derived here from the raw records the emulator serves, by Zendesk's own
rules (a legacy ``good``/``bad``; a current-CSAT rating of 4 or 5 of 5 is good), never by
the mapping code.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from rich.console import Console
from sqlalchemy import func, select

from connectors.base import Bookmark, Page, StreamInfo
from connectors.canonical import Rating
from connectors.errors import FatalSourceError
from connectors.salesforce.sandbox.data import customer_seeds, generate_org
from connectors.sandbox.server import RunningServer, serve_tls
from connectors.sandbox.world import CompanySeed
from connectors.zendesk import ZendeskReader, ZendeskSettings
from connectors.zendesk.mapping import (
    CsatQuestion,
    MappingError,
    csat_questions,
    parse_time,
    survey_response_to_rating,
)
from connectors.zendesk.sandbox import sandbox_env
from connectors.zendesk.sandbox.data import (
    CSAT_QUESTION_ID,
    Helpdesk,
    csat_survey,
    generate_helpdesk,
    iso,
    survey_response,
)
from connectors.zendesk.sandbox.emulator import SANDBOX_API_TOKEN, SANDBOX_EMAIL, create_app
from connectors.zendesk.streams import ORGANIZATIONS, SATISFACTION_RATINGS, TICKETS
from flows.report import RunReport
from flows.sync import sync_okrs
from okr_sync.cli.runs import streams_table
from okr_targets.models import Rating as MirrorRating
from okr_targets.store import Store

AS_OF = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SWITCHED = AS_OF - timedelta(days=120)
"""When the current-CSAT profile's account left the legacy CSAT."""
GENEROUS = 1_000_000
SURVEYS_URL = "/api/v2/guide/en-us/surveys"

Expected = tuple[Decimal | None, int | None, bool | None]


@pytest.fixture(scope="module")
def companies() -> list[CompanySeed]:
    org = generate_org(seed=11, as_of=AS_OF, accounts=80, opportunities=400)
    return customer_seeds(org)


def helpdesk(companies: list[CompanySeed], profile: str) -> Helpdesk:
    switched = SWITCHED if profile == "current" else None
    return generate_helpdesk(seed=5, as_of=AS_OF, companies=companies, csat_switched_at=switched)


def app_for(desk: Helpdesk, **options: Any) -> Any:
    limits = {"export_page_size": 50, "export_rate_limit": GENEROUS, "rate_limit": GENEROUS}
    return create_app(desk, **{**limits, **options})


def settings(server: RunningServer, **overrides: Any) -> ZendeskSettings:
    return ZendeskSettings(
        base_url=server.base_url,
        email=SANDBOX_EMAIL,
        api_token=SecretStr(SANDBOX_API_TOKEN),
        ca_bundle=server.ca_file,
        requests_per_minute=GENEROUS,
        export_requests_per_minute=GENEROUS,
        **overrides,
    )


def read(
    server: RunningServer, stream: StreamInfo, since: Bookmark | None = None, **overrides: Any
) -> list[Page]:
    reader = ZendeskReader(settings(server, **overrides))
    try:
        return list(reader.read(stream, since))
    finally:
        reader.close()


def ratings_of(pages: list[Page]) -> dict[str, Rating]:
    """The rows read, by source id (typed as ratings: other streams' rows work alike)."""
    return {row["source_id"]: row for page in pages for row in page.rows}  # type: ignore[misc]


def notes_of(pages: list[Page]) -> list[str]:
    return [note for page in pages for note in page.notes]


# --- the oracle: Zendesk's rules over the raw records -----------------------------------------


def legacy_expected(record: dict[str, Any]) -> Expected:
    score = record["score"]
    if score in ("offered", "unoffered"):
        return None, None, None
    if score in ("good", "bad"):
        return Decimal(score == "good"), 1, score == "good"
    return Decimal(score), 5, score >= 4


def current_expected(response: dict[str, Any]) -> Expected:
    """The 5-point survey's rating: Zendesk counts 4 and 5 as good; a skip is no answer."""
    rating = next(a for a in response["answers"] if a["question"]["id"] == CSAT_QUESTION_ID)
    if rating["type"] == "skipped":
        return None, None, None
    return Decimal(rating["rating"]), 5, rating["rating"] >= 4


def expected_ratings(desk: Helpdesk) -> dict[str, Expected]:
    found = {str(i): legacy_expected(r) for i, r in desk.ratings.items()}
    for response_id, response in desk.survey_responses.items():
        if response["answers"]:  # one nobody answered yet has nothing to rate
            found[response_id] = current_expected(response)
    return found


def scores(rows: dict[str, Rating]) -> dict[str, Expected]:
    return {i: (r["score"], r["scale_max"], r["good"]) for i, r in rows.items()}


# --- each CSAT generation ---------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["legacy", "current"])
def test_each_csat_generation_gives_every_rating_with_its_score(
    companies: list[CompanySeed], profile: str
) -> None:
    desk = helpdesk(companies, profile)
    with serve_tls(app_for(desk)) as server:
        pages = read(server, SATISFACTION_RATINGS)
    rows = ratings_of(pages)
    assert not any(page.rejected for page in pages)
    assert scores(rows) == expected_ratings(desk)
    unanswered = sum(1 for r in desk.survey_responses.values() if not r["answers"])
    if profile == "legacy":
        assert not desk.survey_responses
        assert notes_of(pages) == []
    else:
        # the profile holds what real accounts send: both documented shapes, answers
        # without rating_category, responses without responder_id, skipped ratings
        responses = list(desk.survey_responses.values())
        assert any("survey_id" in r for r in responses)
        assert any("survey" in r for r in responses)
        answers = [a for r in responses for a in r["answers"] if a["type"] == "rating_scale"]
        assert any("rating_category" not in a for a in answers)
        assert any("responder_id" not in r for r in responses)
        assert unanswered > 0
        assert notes_of(pages) == [
            f"{unanswered} survey response(s) not answered yet: read once answered"
        ]
        # ratings given after the switch are survey responses, before it legacy ratings
        survey_rows = [rows[i] for i in desk.survey_responses if i in rows]
        assert min(row["rated_at"] for row in survey_rows) >= SWITCHED - timedelta(hours=6)
        assert max(parse_time(r["created_at"]) for r in desk.ratings.values()) < SWITCHED
    # the final page's bookmark is the newest change read, across both lists
    assert pages[-1].bookmark is not None
    assert pages[-1].bookmark.at == max(row["source_modified_at"] for row in rows.values())


def test_survey_responses_name_their_ticket_and_when_they_were_rated(
    companies: list[CompanySeed],
) -> None:
    desk = helpdesk(companies, "current")
    with serve_tls(app_for(desk)) as server:
        rows = ratings_of(read(server, SATISFACTION_RATINGS))
    conversations = 0
    for response_id, response in desk.survey_responses.items():
        if not response["answers"]:
            continue
        row = rows[response_id]
        zrns = response["subject_zrns"]
        assert row["ticket_id"] == (zrns[0].removeprefix("zen:ticket:") if zrns else None)
        conversations += not zrns
        first = response["answers"][0]  # the rating is answered first, the comment after
        assert row["rated_at"] == parse_time(first["created_at"])
        latest = max(parse_time(a["updated_at"]) for a in response["answers"])
        assert row["source_modified_at"] == latest
        assert row["customer_id"] is None  # the rated ticket's row gives it
    assert conversations > 0


def test_answers_given_after_the_bookmark_to_older_surveys_are_read(
    companies: list[CompanySeed],
) -> None:
    desk = helpdesk(companies, "current")
    with serve_tls(app_for(desk)) as server:
        bookmark = read(server, SATISFACTION_RATINGS)[-1].bookmark
        assert bookmark is not None
        offered = int((bookmark.at - timedelta(days=3)).timestamp())
        answered = int(bookmark.at.timestamp()) + 30
        rng = random.Random(3)
        late = desk.add_survey_response(survey_response(rng, offered, 42, 2, answered))
        rows = ratings_of(read(server, SATISFACTION_RATINGS, bookmark))
        assert scores({late["id"]: rows[late["id"]]}) == {late["id"]: (Decimal(2), 5, False)}
        # the survey list filters by when a survey was offered: without the look-back the
        # late answer would be missed
        blind = ratings_of(read(server, SATISFACTION_RATINGS, bookmark, rating_lookback_days=0))
        assert late["id"] not in blind


def test_the_reconcile_lists_survey_responses_too(companies: list[CompanySeed]) -> None:
    desk = helpdesk(companies, "current")
    with serve_tls(app_for(desk)) as server:
        reader = ZendeskReader(settings(server))
        try:
            ids = [i for page in reader.ids(SATISFACTION_RATINGS) for i in page]
        finally:
            reader.close()
    assert sorted(ids) == sorted([str(i) for i in desk.ratings] + list(desk.survey_responses))


# --- accounts whose CSAT cannot be read -------------------------------------------------------


def test_an_account_without_csat_says_so_instead_of_reading_empty(
    companies: list[CompanySeed],
) -> None:
    desk = helpdesk(companies, "legacy")
    with serve_tls(app_for(desk, csat_off=True)) as server:
        pages = read(server, SATISFACTION_RATINGS)
        assert ratings_of(read(server, TICKETS))  # the other streams read as usual
        reader = ZendeskReader(settings(server))
        with pytest.raises(FatalSourceError, match="ratings list \\(ids\\): 403"):
            list(reader.ids(SATISFACTION_RATINGS))  # a reconcile must not tombstone them
        reader.close()
    assert ratings_of(pages) == {}
    [note] = notes_of(pages)
    assert note.startswith("no CSAT can be read, so the ratings key results have no data")
    assert "legacy list: 403 Forbidden" in note
    assert "Support Professional or Suite Growth plan" in note


def test_a_plan_without_the_current_csat_reads_legacy_ratings_and_says_what_it_cannot_see(
    companies: list[CompanySeed],
) -> None:
    desk = helpdesk(companies, "legacy")
    app = app_for(desk)
    with serve_tls(app) as server:
        app.state.faults.inject(404, path=SURVEYS_URL)
        pages = read(server, SATISFACTION_RATINGS)
    assert scores(ratings_of(pages)) == expected_ratings(desk)
    [note] = notes_of(pages)
    assert note.startswith("the current CSAT's surveys cannot be read (404 InvalidEndpoint")
    assert "OKR_SYNC_ZENDESK_CSAT_LOCALE" in note


def test_an_account_on_the_current_csat_whose_legacy_list_is_closed_reads_its_responses(
    companies: list[CompanySeed],
) -> None:
    desk = helpdesk(companies, "current")
    app = app_for(desk)
    with serve_tls(app) as server:
        app.state.faults.inject(403, path="/api/v2/satisfaction_ratings")
        pages = read(server, SATISFACTION_RATINGS)
    rows = ratings_of(pages)
    assert set(rows) == {i for i, r in desk.survey_responses.items() if r["answers"]}
    assert notes_of(pages)[0].startswith("legacy satisfaction ratings cannot be read (403")


# --- the exports' quirks ----------------------------------------------------------------------


def test_a_too_recent_start_time_answered_with_422_means_nothing_new(
    companies: list[CompanySeed],
) -> None:
    desk = helpdesk(companies[:10], "legacy")
    with serve_tls(app_for(desk, too_recent_status=422)) as server:
        future = Bookmark(datetime.now(UTC) + timedelta(days=2))
        assert read(server, TICKETS, future) == []
        assert read(server, ORGANIZATIONS, future) == []


@pytest.mark.parametrize(
    "omits",
    [
        ("end_time",),
        ("end_time", "next_page"),
        ("end_of_stream",),
        ("end_of_stream", "end_time", "next_page"),
    ],
)
def test_export_pages_without_their_paging_fields_still_read_everything(
    companies: list[CompanySeed], omits: tuple[str, ...]
) -> None:
    desk = helpdesk(companies[:30], "legacy")
    with serve_tls(app_for(desk, export_page_size=7, export_omits=omits)) as server:
        organizations = ratings_of(read(server, ORGANIZATIONS))
        tickets = ratings_of(read(server, TICKETS))
    assert set(organizations) == {str(i) for i in desk.organizations}
    assert set(tickets) == {str(i) for i in desk.tickets}


# --- mapping survey responses: the documented shapes and the edges ---------------------------


QUESTIONS = csat_questions([csat_survey()])
STAMP = "2024-08-14T12:00:00.000Z"


def rating_answer(rating: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "rating_scale",
        "rating": rating,
        "question": {"id": "q-rating", "type": "rating_scale_emoji", **extra.pop("q", {})},
        "created_at": STAMP,
        "updated_at": STAMP,
        **extra,
    }


def response(*answers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": "01J1WB51MG6HXTYWE6Q0C93RNW", "answers": list(answers), **fields}


def test_zendesks_documented_example_is_an_unanswered_rating_of_its_ticket() -> None:
    """The example on Zendesk's "CSAT Survey Responses" reference page, as published."""
    example = {
        "answers": [
            {
                "created_at": "2024-08-14T12:00:00.000Z",
                "question": {
                    "alias": "comment",
                    "headline": {
                        "type": "static",
                        "value": "Anything else you would like to share about your experience?",
                    },
                    "id": "01GFYBENPDGN1R6NAA4WRDNVFR",
                    "type": "open_ended",
                },
                "type": "skipped",
                "updated_at": "2024-08-14T12:00:00.000Z",
            }
        ],
        "expires_at": "2024-08-14T12:00:00.000Z",
        "id": "01J1WB51MG6HXTYWE6Q0C93RNW",
        "responder_id": 4398080151295,
        "subject_zrns": ["zen:ticket:99"],
        "subjects": [{"id": "99", "type": "ticket", "zrn": "zen:ticket:99"}],
        "survey": {"id": "01J58KJ9RAE0D2EK7HRVM7Z8F2", "state": "enabled", "version": 3},
    }
    row = survey_response_to_rating(example, {})
    assert (row["score"], row["scale_max"], row["good"]) == (None, None, None)
    assert row["ticket_id"] == "99"
    assert row["source_id"] == "01J1WB51MG6HXTYWE6Q0C93RNW"
    assert row["rated_at"] == row["source_modified_at"] == datetime(2024, 8, 14, 12, tzinfo=UTC)
    # the earlier reference's shape (and its "zrn:" spelling) names the same ticket
    older = {**example, "subject_zrns": ["zrn:ticket:99"], "survey_id": "s", "survey_version": 3}
    del older["subjects"], older["survey"]
    assert survey_response_to_rating(older, {})["ticket_id"] == "99"


def options(points: int) -> list[dict[str, Any]]:
    return [
        {"rating": n, "label": {"type": "static", "value": str(n)}} for n in range(1, 1 + points)
    ]


@pytest.mark.parametrize(
    ("points", "rating", "expected"),
    [
        (2, 1, (Decimal(0), 1, False)),  # two points are good/bad, as the legacy CSAT
        (2, 2, (Decimal(1), 1, True)),
        (3, 2, (Decimal(2), 3, False)),
        (3, 3, (Decimal(3), 3, True)),
        (5, 3, (Decimal(3), 5, False)),
        (5, 4, (Decimal(4), 5, True)),
    ],
)
def test_a_rating_keeps_its_survey_scale(points: int, rating: int, expected: Expected) -> None:
    answer = rating_answer(rating, q={"options": options(points)})
    row = survey_response_to_rating(response(answer), {})
    assert (row["score"], row["scale_max"], row["good"]) == expected


def test_the_scale_an_answer_does_not_carry_comes_from_the_accounts_survey() -> None:
    answer = rating_answer(4, rating_category="good", q={"id": CSAT_QUESTION_ID})
    row = survey_response_to_rating(response(answer), QUESTIONS)
    assert (row["score"], row["scale_max"], row["good"]) == (Decimal(4), 5, True)
    assert {CSAT_QUESTION_ID: CsatQuestion(csat_survey()["id"], CSAT_QUESTION_ID, 5)} == QUESTIONS


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (rating_answer(4, q={"sub_type": "customer_satisfaction"}), "scale of rating question"),
        (rating_answer(6, q={"options": options(5)}), "outside the survey's 1-5 scale"),
        (rating_answer(2, q={"options": options(4)}), "a 4-point scale is not one"),
        (rating_answer(2, rating_category="good", q={"options": options(5)}), "scale changed"),
        (rating_answer(2, rating_category="great", q={"options": options(5)}), "not good"),
        ({**rating_answer(2, q={"options": options(5)}), "rating": "2"}, "not a whole number"),
        ({**rating_answer(5, q={"options": options(5)}), "created_at": "14/08/2024"}, "timestamp"),
    ],
)
def test_responses_that_cannot_be_rated_are_rejected_with_the_reason(
    answer: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MappingError, match=reason):
        survey_response_to_rating(response(answer), {})


def test_a_response_rating_a_conversation_has_no_ticket() -> None:
    answer = rating_answer(5, q={"options": options(5)})
    conversation = "zen:conversation:4295a81b-ccdd-4998-88d9-0eff5e76dc44"
    row = survey_response_to_rating(response(answer, subject_zrns=[conversation]), {})
    assert row["ticket_id"] is None


def test_csat_surveys_without_a_readable_rating_question_give_no_scale() -> None:
    survey = csat_survey()
    broken = {**survey, "questions": [{**survey["questions"][0], "options": options(3)[1:]}]}
    assert csat_questions([broken, {"id": "x", "questions": None}]) == {}


def test_sandbox_timestamps_stay_before_as_of(companies: list[CompanySeed]) -> None:
    desk = helpdesk(companies, "current")
    answered = [
        parse_time(a["updated_at"]) for r in desk.survey_responses.values() for a in r["answers"]
    ]
    assert max(answered) <= AS_OF
    assert iso(int(AS_OF.timestamp())) == "2026-11-27T12:00:00Z"


# --- CSAT key results measure on both generations -------------------------------------------

CSAT_OKRS = """\
company: Test Co
sources:
  zendesk: [customer, ticket, rating]
objectives:
  - id: happy
    title: Keep customers happy
    owner: olivia.hart@acme-demo.example
    period: 2026-Q4
    key_results:
      - {id: csat, title: CSAT, metric: csat, params: {}, target: 90}
      - {id: csat-mean, title: Mean CSAT score, metric: csat_mean_score, params: {}, target: 4.5}
"""
Q4 = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def rated_in_q4(desk: Helpdesk) -> list[tuple[datetime, Expected]]:
    """(rated at, expected score) of every rating, by Zendesk's rules, given in 2026-Q4."""
    found = [(parse_time(r["created_at"]), legacy_expected(r)) for r in desk.ratings.values()]
    for r in desk.survey_responses.values():
        if r["answers"]:
            found.append((parse_time(r["answers"][0]["created_at"]), current_expected(r)))
    return [(at, e) for at, e in found if Q4[0] <= at < Q4[1]]


def run_sync(
    app: Any,
    tmp_path: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    full_refresh: bool = False,
) -> RunReport:
    okr_file = tmp_path / "okrs.yaml"
    okr_file.write_text(CSAT_OKRS, encoding="utf-8")
    with serve_tls(app) as server:
        env = sandbox_env(server, export_rate_limit=GENEROUS, rate_limit=GENEROUS)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        state = sync_okrs(
            okr_file=str(okr_file),
            store_url=sqlite_url,
            full_refresh=full_refresh,
            return_state=True,
        )
    assert state.is_completed(), state.message
    report = state.result()
    assert isinstance(report, RunReport)
    return report


@pytest.mark.usefixtures("prefect_harness", "clock")
@pytest.mark.parametrize("profile", ["legacy", "current"])
def test_csat_key_results_measure_on_either_csat(
    companies: list[CompanySeed],
    profile: str,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desk = helpdesk(companies, profile)
    report = run_sync(app_for(desk), tmp_path, sqlite_url, monkeypatch)
    values = {outcome.key_result_id: outcome for outcome in report.key_results}

    answered = [e for _, e in rated_in_q4(desk) if e[2] is not None]
    good = sum(1 for e in answered if e[2])
    five_point = [float(e[0]) for e in answered if e[1] == 5 and e[0] is not None]
    assert answered, "the profile must have answered ratings in the period"
    assert values["csat"].value == pytest.approx(100 * good / len(answered))
    assert values["csat"].records == len(answered)
    assert values["csat-mean"].value == pytest.approx(sum(five_point) / len(five_point))
    ratings = report.streams["zendesk.satisfaction_ratings"]
    assert ratings.quarantined == 0
    assert ratings.read == len(expected_ratings(desk))


@pytest.mark.usefixtures("prefect_harness", "clock")
def test_a_sync_of_an_account_without_csat_completes_and_its_report_says_why_csat_is_empty(
    companies: list[CompanySeed],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desk = helpdesk(companies, "legacy")
    report = run_sync(app_for(desk, csat_off=True), tmp_path, sqlite_url, monkeypatch)
    assert report.status == "complete", report.reason
    ratings = report.streams["zendesk.satisfaction_ratings"]
    assert ratings.read == 0
    [note] = ratings.notes
    assert note.startswith("no CSAT can be read, so the ratings key results have no data")
    assert report.stream_counts()["zendesk.satisfaction_ratings"]["notes"] == [note]
    shown = Console(width=400, record=True)
    shown.print(streams_table(report.stream_counts()))
    assert "no CSAT can be read" in shown.export_text()  # `okr-sync runs show` prints it
    assert report.streams["zendesk.tickets"].read == len(desk.tickets)
    values = {outcome.key_result_id: outcome for outcome in report.key_results}
    assert values["csat"].value is None


@pytest.mark.usefixtures("prefect_harness", "clock")
def test_a_full_refresh_while_csat_cannot_be_read_keeps_the_ratings_it_had(
    companies: list[CompanySeed],
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ratings stream read nothing because the token lost CSAT access, not because the
    ratings were deleted: a full refresh must not take them for deleted."""
    desk = helpdesk(companies, "legacy")
    first = run_sync(app_for(desk), tmp_path, sqlite_url, monkeypatch)
    read = first.streams["zendesk.satisfaction_ratings"].read
    assert read > 0
    again = run_sync(
        app_for(desk, csat_off=True), tmp_path, sqlite_url, monkeypatch, full_refresh=True
    )
    assert again.streams["zendesk.satisfaction_ratings"].notes
    assert "zendesk.rating" not in again.tombstoned
    with Store(sqlite_url).session() as session:
        live = session.scalar(
            select(func.count())
            .select_from(MirrorRating)
            .where(MirrorRating.source == "zendesk", MirrorRating.deleted_at.is_(None))
        )
    assert live == read
    assert again.tombstoned["zendesk.ticket"] == 0  # the whole streams are still reconciled
