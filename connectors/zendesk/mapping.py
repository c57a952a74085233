"""Zendesk records (as the Support API returns them) to canonical rows.

Any value that cannot become its canonical type raises :class:`MappingError`, so the
reader quarantines that one record with the reason instead of failing the sync or
guessing. First response and solve times come from the ticket's metric set (sideloaded
with ``include=metric_sets``), never from comments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.canonical import Customer, Rating, Ticket, unchecked
from connectors.canonical import Record as Identity

SOURCE = "zendesk"

Record = Mapping[str, Any]

TICKET_STATUSES = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "pending",  # on hold: waiting on a third party, still not the agent's move
    "solved": "solved",
    "closed": "closed",
}
UNANSWERED = ("offered", "unoffered")


class MappingError(ValueError):
    """A field holds a value that cannot become the canonical type."""


def parse_time(value: Any) -> datetime:
    """An aware datetime from Zendesk's ISO 8601 form (``2026-01-05T10:00:00Z``)."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError(
            f"{value!r} lacks a time-zone offset (Z or ±HH:MM): its instant is unknown"
        )
    return parsed


def _timestamp(record: Record, name: str) -> datetime:
    value = record.get(name)
    if value is None:
        raise MappingError(f"{name} is missing")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise MappingError(f"{name} {exc}") from None


def _optional_timestamp(record: Record, name: str) -> datetime | None:
    return None if record.get(name) is None else _timestamp(record, name)


def _id(record: Record, name: str) -> str:
    value = record.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MappingError(f"{name} {value!r} is not an integer id")


def _optional_id(record: Record, name: str) -> str | None:
    return None if record.get(name) is None else _id(record, name)


def _common(record: Record) -> Identity:
    return {
        "source": SOURCE,
        "source_id": _id(record, "id"),
        "source_modified_at": _timestamp(record, "updated_at"),
        "deleted_at": None,
    }


def organization_to_customer(record: Record) -> Customer:
    """An organization is a customer; its ``external_id`` is the CRM's id for it."""
    domains = record.get("domain_names") or []
    if not isinstance(domains, list):
        raise MappingError(f"domain_names {domains!r} is not a list")
    fields = record.get("organization_fields") or {}
    if not isinstance(fields, Mapping):
        raise MappingError(f"organization_fields {fields!r} is not an object")
    return {
        **_common(record),
        "name": unchecked(record.get("name")),
        "owner_id": None,
        "segment": fields.get("industry"),
        "created_at": _timestamp(record, "created_at"),
        "became_customer_on": None,
        "churned_on": None,
        "domain": domains[0] if domains else None,
        "external_id": record.get("external_id"),
    }


def _minutes(metric_set: Record, name: str) -> int | float | None:
    block = metric_set.get(name)
    if block is None:
        return None
    value = block.get("calendar") if isinstance(block, Mapping) else block
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e9:
        return value
    raise MappingError(f"metric_sets {name}.calendar {value!r} is not a number of minutes")


def ticket_to_ticket(record: Record, metric_set: Record | None) -> Ticket:
    """A ticket; a ``deleted`` one becomes a tombstone (its former status is unknown)."""
    row = _common(record)
    status = record.get("status")
    if status == "deleted":
        row["deleted_at"] = row["source_modified_at"]
        canonical = None
    elif status in TICKET_STATUSES:
        canonical = TICKET_STATUSES[status]
    else:
        raise MappingError(f"status {status!r} is not a Zendesk ticket status")
    priority = record.get("priority")
    if priority is not None and not isinstance(priority, str):
        raise MappingError(f"priority {priority!r} is not text")
    via = record.get("via")
    created = _timestamp(record, "created_at")
    metrics = metric_set or {}
    reply = _minutes(metrics, "reply_time_in_minutes")
    return {
        **row,
        "customer_id": _optional_id(record, "organization_id"),
        "status": canonical,
        "priority": priority.lower() if priority else None,
        "channel": via.get("channel") if isinstance(via, Mapping) else None,
        "created_at": created,
        "first_response_at": None if reply is None else created + timedelta(minutes=reply),
        "solved_at": _optional_timestamp(metrics, "solved_at"),
    }


def _score(value: Any) -> tuple[Decimal | None, int | None, bool | None]:
    """(score, scale_max, good) of a survey answer: good/bad, or 1-5 on a numeric survey."""
    if value in UNANSWERED:
        return None, None, None
    if value == "good":
        return Decimal(1), 1, True
    if value == "bad":
        return Decimal(0), 1, False
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is not None and 1 <= number <= 5:
        return Decimal(number), 5, number >= 4
    raise MappingError(f"score {value!r} is not good, bad, offered, unoffered or 1-5")


def rating_to_rating(record: Record, organization_id: Any) -> Rating:
    """A satisfaction rating; offered/unoffered ones carry no answer (score and good None)."""
    score, scale_max, good = _score(record.get("score"))
    return {
        **_common(record),
        "ticket_id": _id(record, "ticket_id"),
        "customer_id": None if organization_id is None else str(organization_id),
        "score": score,
        "scale_max": scale_max,
        "good": good,
        "rated_at": _timestamp(record, "created_at"),
    }


# --- the current CSAT: survey responses ------------------------------------------------

CSAT_SUB_TYPE = "customer_satisfaction"
"""``sub_type`` of the survey question that asks for the satisfaction rating."""
GOOD_ABOVE = {2: 1, 3: 2, 5: 3}
"""Scale → the highest rating that is not good, where Zendesk leaves ``rating_category``
out: on 5 points 4-5 are good (as Zendesk counts them for its good/bad reports), on 2 and
3 points only the top rating."""


@dataclass(frozen=True)
class CsatQuestion:
    """The rating question of one CSAT survey: its id and how many points its scale has."""

    survey_id: str
    question_id: str
    points: int


def _points(question: Record) -> int | None:
    """Points of a rating question's scale, from its options' ``rating`` (1..n)."""
    options = question.get("options")
    if not isinstance(options, list) or not options:
        return None
    ratings = [o.get("rating") if isinstance(o, Mapping) else None for o in options]
    whole = [r for r in ratings if isinstance(r, int) and not isinstance(r, bool)]
    if len(whole) != len(ratings) or sorted(whole) != list(range(1, len(whole) + 1)):
        raise MappingError(f"rating options {ratings!r} are not 1..{len(ratings)}")
    return len(whole)


def csat_questions(surveys: Iterable[Record]) -> dict[str, CsatQuestion]:
    """The rating question of each survey listed by ``GET /api/v2/guide/{locale}/surveys``,
    by question id; a survey without a readable rating question is left out."""
    found: dict[str, CsatQuestion] = {}
    for survey in surveys:
        for question in survey.get("questions") or []:
            if not isinstance(question, Mapping) or question.get("sub_type") != CSAT_SUB_TYPE:
                continue
            try:
                points = _points(question)
            except MappingError:
                continue
            if points is not None and isinstance(question.get("id"), str):
                found[question["id"]] = CsatQuestion(str(survey.get("id")), question["id"], points)
    return found


def _ticket_of(record: Record) -> str | None:
    """The ticket a response rates: ``subjects`` (``{"type": "ticket", "id": "99"}``) or
    ``subject_zrns`` (``zen:ticket:99``); None for a subject that is no ticket (a
    messaging conversation)."""
    for subject in record.get("subjects") or []:
        if isinstance(subject, Mapping) and subject.get("type") == "ticket":
            value = str(subject.get("id"))
            if value.isdigit():
                return value
            raise MappingError(f"subject ticket id {subject.get('id')!r} is not an integer id")
    for zrn in record.get("subject_zrns") or []:
        kind, _, value = str(zrn).rpartition(":")
        if kind.endswith(":ticket"):
            if value.isdigit():
                return value
            raise MappingError(f"subject_zrns {zrn!r} does not end in a ticket id")
    return None


def _rating_answer(answers: list[Record], questions: Mapping[str, CsatQuestion]) -> Record | None:
    """The answer (or skip) to the satisfaction question: by ``sub_type``, else by the id of
    a known rating question, else the one answer of type ``rating_scale``."""
    for answer in answers:
        question = answer.get("question")
        if not isinstance(question, Mapping):
            continue
        if question.get("sub_type") == CSAT_SUB_TYPE or question.get("id") in questions:
            return answer
    scaled = [answer for answer in answers if answer.get("type") == "rating_scale"]
    return scaled[0] if len(scaled) == 1 else None


def _answer_points(answer: Record, questions: Mapping[str, CsatQuestion]) -> int:
    question = answer.get("question") or {}
    points = _points(question)
    if points is None and question.get("id") in questions:
        points = questions[question["id"]].points
    if points is None:
        raise MappingError(
            f"the scale of rating question {question.get('id')!r} is unknown (it is not in "
            "the account's surveys and the answer does not list its options)"
        )
    return points


def _survey_score(
    answer: Record, questions: Mapping[str, CsatQuestion]
) -> tuple[Decimal | None, int | None, bool | None]:
    """(score, scale_max, good) of the rating answer; a skipped question has no answer.

    Two points are good/bad (score 1/0 on scale 1, as the legacy CSAT); three and five
    keep their rating on their own scale.
    """
    if answer.get("type") == "skipped":
        return None, None, None
    rating = answer.get("rating")
    if not isinstance(rating, int) or isinstance(rating, bool):
        raise MappingError(f"rating {rating!r} is not a whole number")
    points = _answer_points(answer, questions)
    if points not in GOOD_ABOVE:
        raise MappingError(f"a {points}-point scale is not one okr-sync understands (2, 3, 5)")
    if not 1 <= rating <= points:
        raise MappingError(f"rating {rating} is outside the survey's 1-{points} scale")
    derived = rating > GOOD_ABOVE[points]
    category = answer.get("rating_category")
    if category is not None:
        if category not in ("good", "neutral", "bad"):
            raise MappingError(f"rating_category {category!r} is not good, neutral or bad")
        if (category == "good") != derived:
            raise MappingError(
                f"rating {rating} is {category!r} at Zendesk but not on a {points}-point "
                "scale: the survey's scale changed since it was answered"
            )
    if points == 2:
        return Decimal(rating - 1), 1, derived
    return Decimal(rating), points, derived


def _answer_times(answers: list[Record]) -> list[datetime]:
    times = []
    for answer in answers:
        for name in ("created_at", "updated_at"):
            if answer.get(name) is not None:
                try:
                    times.append(parse_time(answer[name]))
                except ValueError:
                    raise MappingError(
                        f"answer {name} {answer[name]!r} is not a timestamp"
                    ) from None
    return times


def survey_response_to_rating(record: Record, questions: Mapping[str, CsatQuestion]) -> Rating:
    """A current-CSAT survey response (``GET /api/v2/guide/survey_responses``) as a rating.

    The response has no timestamps of its own: it changed when its latest answer did, and
    it was rated when its rating was first given. ``questions`` are the account's rating
    questions (:func:`csat_questions`), for the scale an answer does not carry.
    """
    source_id = record.get("id")
    if not isinstance(source_id, str) or not source_id:
        raise MappingError(f"id {source_id!r} is not a survey response id")
    answers = [a for a in record.get("answers") or [] if isinstance(a, Mapping)]
    times = _answer_times(answers)
    if not times:
        raise MappingError("no answer carries a time: an offered survey not yet answered")
    answer = _rating_answer(answers, questions)
    score, scale_max, good = (
        (None, None, None) if answer is None else _survey_score(answer, questions)
    )
    rated = _optional_timestamp(answer, "created_at") if answer is not None else None
    return {
        "source": SOURCE,
        "source_id": source_id,
        "source_modified_at": max(times),
        "deleted_at": None,
        "ticket_id": _ticket_of(record),
        "customer_id": None,
        "score": score,
        "scale_max": scale_max,
        "good": good,
        "rated_at": rated or min(times),
    }
