"""Typed, immutable models of the ruleset files.

The published JSON Schema (``oohcore schema``) is generated from these models, so the schema that
editors and CI validate against and the objects the engine runs on cannot drift apart.
Spec paragraphs are cited where a clause shapes a field.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import core_schema

# ---------------------------------------------------------------------------------------------
# Small value types
# ---------------------------------------------------------------------------------------------

ID_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
FIELD_PATTERN = r"^[a-z][a-z0-9_]*$"
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_PATTERN = r"^(?=\d)(\d+h)?(\d+m)?(\d+s)?$"
CLOCK_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$"


MAX_DURATION = timedelta(days=31)  # any duration in a ruleset (a wait, a time limit …)


def parse_duration(value: Any) -> Any:
    """``"10m"``, ``"1h30m"``, ``"45s"`` → timedelta. Other values pass through to pydantic."""
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m and value:
            h, mi, s = (0 if not g else int(g) if len(g) <= 12 else 10**12 for g in m.groups())
            if h * 3600 + mi * 60 + s > MAX_DURATION.total_seconds():
                # 4: bounded at load time, so no deadline overflows a date in complete()
                shown = value if len(value) <= 20 else value[:20] + "…"
                raise ValueError(f"{shown!r} is longer than the longest duration allowed (31 days)")
            return timedelta(hours=h, minutes=mi, seconds=s)
        raise ValueError(f"{value!r} is not a duration; write e.g. 10m, 1h30m or 45s")
    return value


def format_duration(value: timedelta) -> str:
    total = int(value.total_seconds())
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_positive),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration such as 10m, 1h30m or 45s.",
        }
    ),
]


class ClockTime(str):
    """A local wall-clock time ``HH:MM``; ``24:00`` means the end of the day."""

    __slots__ = ()

    @property
    def minutes(self) -> int:
        """Minutes since local midnight (``24:00`` is 1440)."""
        h, m = self.split(":")
        return int(h) * 60 + int(m)

    def as_time(self) -> time:
        return time(0, 0) if self == "24:00" else time(int(self[:2]), int(self[3:]))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls,
            core_schema.str_schema(pattern=CLOCK_PATTERN),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


Clock = Annotated[
    ClockTime,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": CLOCK_PATTERN,
            "description": 'A local time of day "HH:MM" (24-hour); "24:00" is midnight at the '
            "end of the day.",
        }
    ),
]

Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
FieldName = Annotated[str, Field(pattern=FIELD_PATTERN, max_length=64)]
Template = Annotated[
    str,
    Field(
        description="Text with named placeholders in braces, e.g. 'Ref {reference} at {address}'. "
        "Only placeholder names are allowed: no attribute access, indexing or formatting code."
    ),
]
Condition = Annotated[
    str,
    Field(
        min_length=1,
        description="A condition in the oohcore condition language (docs/rulesets.md), e.g. "
        "'repair == \"no_heating\" and (vulnerable or outside_temp < 5)'. Besides the "
        "questions' fields and the settings it may read the built-in fields hour, minute, "
        "weekday, weekend, bank_holiday, variant, caller_number, duplicate, "
        "attendance_overdue, and the gazetteer's facts of the address: outside_area (yes/no, "
        "4.1.5b) and property_owner (text, 7.11).",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, str_strip_whitespace=False
    )


# ---------------------------------------------------------------------------------------------
# Hours of service (2.1.5, 2.1.6, 5.4.2, 5.4.3, 13.3a, 13.5.1a)
# ---------------------------------------------------------------------------------------------


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"


WEEKDAYS: tuple[Weekday, ...] = tuple(Weekday)


class Window(_Model):
    """A weekly window of service. ``to`` at or before ``from`` runs past midnight into the
    next day (``from: "17:00", to: "08:00"`` on fri covers Friday 17:00 to Saturday 08:00)."""

    days: Annotated[list[Weekday], Field(min_length=1)]
    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")


class SpecialDays(StrEnum):
    """How a special day (bank holiday, the Christmas period) is covered."""

    all_day = "all_day"  # the whole 24 hours (2.1.6)
    as_weekly = "as_weekly"  # the ordinary weekly windows apply


class UkNation(StrEnum):
    """The UK nation whose bank holidays apply (the ``holidays`` package's subdivisions)."""

    ENG = "ENG"
    WLS = "WLS"
    SCT = "SCT"
    NIR = "NIR"


class Hours(_Model):
    """When a service (or the whole organisation) is operated."""

    weekly: Annotated[list[Window], Field(min_length=1)]
    bank_holidays: SpecialDays = SpecialDays.all_day
    christmas_period: SpecialDays = Field(
        default=SpecialDays.all_day,
        description="The working days between Christmas and New Year (2.1.6).",
    )
    extra_days: list[date] = Field(
        default_factory=list,
        description="Further whole days of service, e.g. Christmas Eve (2.1.6).",
    )


def _common_hours() -> Hours:
    weekdays = [Weekday.mon, Weekday.tue, Weekday.wed, Weekday.thu, Weekday.fri]
    return Hours.model_validate(
        {
            "weekly": [
                {"days": weekdays, "from": "00:00", "to": "08:00"},
                {"days": weekdays, "from": "17:00", "to": "24:00"},
                {"days": [Weekday.sat, Weekday.sun], "from": "00:00", "to": "24:00"},
            ]
        }
    )


COMMON_HOURS = _common_hours()
"""The most common hours (2.1.5): 5pm–8am Monday to Friday, all weekend, bank holidays and the
Christmas period all day (2.1.6). Catalogue options are checked against these."""


class VariantHours(Hours):
    """The hours of a variant: like :class:`Hours`, but bank holidays and the Christmas period
    follow the weekly windows unless the author says ``all_day`` — a "no patrol 03:00–08:00"
    variant must not swallow a whole bank holiday by default."""

    bank_holidays: SpecialDays = SpecialDays.as_weekly
    christmas_period: SpecialDays = SpecialDays.as_weekly


class Variant(_Model):
    """A time-varying form of a service option (5.4.3): e.g. no noise patrol after 03:00.

    While a variant's hours apply, the built-in field ``variant`` equals its id, so decision
    rules can branch on it, and ``tell_caller`` is shown to the call handler.
    """

    id: Id
    name: str
    hours: VariantHours
    tell_caller: Template


# ---------------------------------------------------------------------------------------------
# Organisation (Participating Organisation)
# ---------------------------------------------------------------------------------------------


class RoleKind(StrEnum):
    officer = "officer"  # a named on-call officer of the organisation (audit item 9)
    manager = "manager"
    contractor = "contractor"
    team = "team"


class RotaRole(_Model):
    """A role on the organisation's on-call rota (2.1.3, 7.5) that rulesets refer to."""

    id: Id
    name: str
    kind: RoleKind = RoleKind.officer
    description: str | None = None


class AccessNumber(_Model):
    """A published number diverted to the service (7.1.2, 7.1.3): one service option or an
    IVR menu of options (7.1.4). Exactly one of ``service_option`` and ``ivr`` is given."""

    number: Annotated[str, Field(pattern=r"^\+?[0-9 ]{3,20}$")]
    name: str | None = None
    service_option: Id | None = None
    ivr: Id | None = None


IVR_SAY_PLACEHOLDERS = frozenset({"organisation", "service_option"})
"""What an IVR choice's ``say`` may name: the organisation's name and the chosen option's."""


class IvrChoice(_Model):
    key: Annotated[str, Field(pattern=r"^[0-9*#]$")]
    service_option: Id
    say: Annotated[str, Field(min_length=1, max_length=300)] | None = Field(
        default=None,
        description="What the IVR says when the key is pressed, e.g. 'Roads and pavements.' "
        "It may name {organisation} and {service_option} (the chosen option's name).",
    )


DEFAULT_NO_CHOICE_WAIT = timedelta(seconds=10)
MAX_NO_CHOICE_WAIT = timedelta(seconds=60)


class IvrMenu(_Model):
    """An automated attendant / IVR menu (2.1.2a, 5.1.2, 7.1.4)."""

    id: Id
    prompt: str
    choices: Annotated[list[IvrChoice], Field(min_length=1)]
    no_choice: Id | None = Field(
        default=None,
        description="The service option a caller who makes no choice is handled under.",
    )
    no_choice_wait: Duration = Field(
        default=DEFAULT_NO_CHOICE_WAIT,
        description="How long after the prompt ends a caller who has pressed nothing counts as "
        "making no choice (at most 60s: a caller in danger must not be left waiting).",
    )


class PriorityMode(StrEnum):
    """When option priorities apply (7.1.5)."""

    always = "always"  # "calls are prioritised by particular Service Option/s"
    high_call_volume = "high_call_volume"  # "in periods of high call volumes"


class Priorities(_Model):
    """Callers to some service options are answered before others (7.1.5)."""

    applies: PriorityMode
    waiting_calls: int | None = Field(
        default=None,
        ge=1,
        description="For high_call_volume: how many calls waiting to be answered make a period "
        "of high call volume (priorities apply while at least this many wait).",
    )
    options: list[Id] = Field(
        min_length=1, description="The service options whose callers go first, highest first."
    )


class AckLinks(_Model):
    """One-time signed acknowledgement links (issue 8 item 6): the key is read from the
    environment variable ``key_env`` (never written in the ruleset); a link is valid for
    ``valid_for`` and once only."""

    key_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")]
    valid_for: Duration = Field(default=timedelta(hours=12))


class OrganisationFile(_Model):
    """``organisation.yaml``: one Participating Organisation (13.3)."""

    id: Id
    name: str
    timezone: str = "Europe/London"
    nation: UkNation = UkNation.ENG
    hours: Hours
    referral_time_limit: Duration = Field(
        default=timedelta(minutes=10),
        description="Default time to pass on a valid service request (6.4b: 10 minutes).",
    )
    last_resort: Id = Field(
        description="Who is alerted at once when nobody on the rota can take a referral, and "
        "who holds an escalation that runs out of holders (issue 7 defect 1, audit item 9, "
        "5.3.2): a rota role of this organisation or a contact of its directory, e.g. "
        "'duty-manager'. Every organisation must name one."
    )
    escalation_policies: dict[Id, EscalationPolicy] = Field(
        default_factory=dict,
        description="Named escalation procedures any refer action may use (issue 8 item 5).",
    )
    ack_links: AckLinks | None = Field(
        default=None, description="Signed acknowledgement links in alerts (issue 8 item 6)."
    )
    rota_roles: list[RotaRole] = Field(default_factory=list)
    access_numbers: list[AccessNumber] = Field(default_factory=list)
    ivr_menus: list[IvrMenu] = Field(default_factory=list)
    priorities: list[Id] | Priorities = Field(
        default_factory=list,
        description="Service options whose callers go first (7.1.5), highest first. A plain "
        "list applies always; the mapping form says when ('always' or 'high_call_volume').",
    )
    out_of_scope_categories: list[Id] = Field(
        default_factory=list,
        description="Categories of out-of-scope calls for reporting (11.7.3f, 13.3p).",
    )
    feed: ServiceRequestFeed | None = Field(
        default=None,
        description="The service requests of these options go to the organisation's feed "
        "(7.8, 5.2.4 'pull'): each call, when it closes, with every field it holds.",
    )


class ServiceRequestFeed(_Model):
    """Which service options' requests the organisation takes by feed (7.8). Which of their
    fields it takes is the feed channel's configuration (``fields``, ``option_fields``)."""

    service_options: list[Id] | Literal["all"] = Field(
        default="all", description="The options whose requests are fed, or 'all'."
    )


# ---------------------------------------------------------------------------------------------
# Directory of contacts (2.3.3 Regularly Variable Data, 2.1.11, 5.2.3.1, 5.2.3.2, 5.2.3.5)
# ---------------------------------------------------------------------------------------------

PHONE_PATTERN = r"^\+?[0-9][0-9 ]{1,19}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class DirectoryEntry(_Model):
    """A service, agency or contractor that actions name by id (``contact: samaritans``).

    Its number and opening times are Regularly Variable Data (2.3.3): they live in
    ``directory.yaml`` and the store, outside the signed-off option, and change without a
    new sign-off."""

    name: str = Field(min_length=1)
    number: Annotated[str, Field(pattern=PHONE_PATTERN)] | None = Field(
        default=None,
        description='The telephone number, e.g. "116 123". A catalogue entry without one '
        "is filled in by each organisation's own directory.",
    )
    email: Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254)] | None = Field(
        default=None, description="Where forwarded details go (5.2.3.5 (i))."
    )
    opening_times: str | None = Field(default=None, description="Told to the caller (5.2.3.1).")
    notes: str | None = Field(default=None, description="Guidance for the call handler.")


class DirectoryFile(_Model):
    """``directory.yaml``: the contacts of an organisation (or the catalogue's national ones)."""

    contacts: dict[Annotated[str, Field(pattern=ID_PATTERN, max_length=64)], DirectoryEntry] = (
        Field(default_factory=dict)
    )


class CatalogueFile(_Model):
    """``catalogue.yaml``: the header of a catalogue of ready-made service options (5.3.4)."""

    id: Id
    name: str
    rota_roles: list[RotaRole] = Field(default_factory=list)
    out_of_scope_categories: list[Id] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Service option: script, decision, actions
# ---------------------------------------------------------------------------------------------


class Standard(StrEnum):
    """Performance standard of a service option (2.1.2, 6.1–6.3)."""

    platinum = "platinum"
    gold = "gold"
    silver = "silver"
    bronze = "bronze"


class QuestionType(StrEnum):
    text = "text"
    number = "number"
    yes_no = "yes_no"
    choice = "choice"
    choices = "choices"  # several of a list
    phone = "phone"
    postcode = "postcode"
    address = "address"
    date = "date"
    time = "time"


DEFAULT_TEXT_LENGTH = 2_000  # characters of a text answer when its question sets no max_length
MAX_TEXT_LENGTH = 20_000  # the most a question's max_length may allow


class Question(_Model):
    """One question of the script and the field its answer is captured in (5.3.3, 7.4.1)."""

    field: FieldName
    ask: str
    type: QuestionType = QuestionType.text
    essential: bool = Field(
        default=False,
        description="Essential fields must be captured before action is taken; others may be "
        "left unanswered when the caller cannot say (5.3.3).",
    )
    help: str | None = Field(default=None, description="Guidance for the call handler.")
    options: dict[Annotated[str, Field(pattern=FIELD_PATTERN)], str] | None = Field(
        default=None,
        description="For choice/choices: value → label read to the caller.",
    )
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TEXT_LENGTH,
        description=f"For text and address answers: at most this many characters (default "
        f"{DEFAULT_TEXT_LENGTH}, at most {MAX_TEXT_LENGTH}).",
    )
    pattern: str | None = Field(
        default=None,
        max_length=500,
        description="A regular expression (RE2 syntax, matched in linear time) text must match.",
    )
    ask_if: Condition | None = Field(
        default=None, description="Ask this question only when the condition holds."
    )


class Script(_Model):
    """The script the call handler follows (5.3, 13.5.1b–d)."""

    opening: str | None = None
    questions: list[Question] = Field(default_factory=list)
    data_protection: str | None = Field(
        default=None, description="What to tell the caller about their personal data (13.5.1f)."
    )


class Rule(_Model):
    when: Condition
    then: Id
    note: str | None = None


class Decision(_Model):
    """An ordered list of rules: the first whose ``when`` holds chooses the action; ``default``
    is taken when none does, so every call has exactly one outcome (audit item 8)."""

    rules: list[Rule] = Field(default_factory=list)
    default: Id


class Channel(StrEnum):
    """How a message reaches someone (5.2.3.3, 7.5, 5.2.4, 7.8, 7.9)."""

    phone = "phone"
    sms = "sms"
    email = "email"
    pager = "pager"
    feed = "feed"
    crm = "crm"


class Message(_Model):
    """Message templates for a referral; SMS priorities per 5.2.5."""

    sms: Template | None = None
    subject: Template | None = None
    body: Template | None = None


class EscalationStage(_Model):
    """One stage of an escalation procedure (5.3.2, 6.4e, audit items 8–9)."""

    rota_role: Id
    channels: Annotated[list[Channel], Field(min_length=1)]
    wait: Duration = Field(
        default=timedelta(minutes=15),
        description="How long this stage has to acknowledge before the next stage starts.",
    )
    say: Template | None = None


class Backoff(_Model):
    """How the holder of an exhausted escalation is re-alerted (audit item 9, 5.3.2): the
    first re-alert comes after the last stage's wait, the second ``first`` after it, each
    later wait ``factor`` times the one before, never longer than ``max`` (not every few
    minutes all night). Every re-alert is recorded (``referral.escalated``, ``repeat: true``)."""

    first: Duration | None = Field(
        default=None,
        description="The wait after the first re-alert; the last stage's wait if absent.",
    )
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    max: Duration = Field(default=timedelta(hours=1))


class _Action(_Model):
    name: str | None = None
    say: Template | None = Field(
        default=None, description="What the call handler tells the caller."
    )
    caller_sms: Template | None = Field(
        default=None, description="Follow-up SMS to the caller (5.2.6)."
    )


ContactId = Annotated[
    str,
    Field(
        pattern=ID_PATTERN,
        max_length=64,
        description="A contact of the directory (directory.yaml), named by id: its number and "
        "opening times are kept there, outside the signed option (2.3.3).",
    ),
]
_LITERAL_NUMBER = (
    "A number written into the option itself; prefer 'contact' (a directory entry), which "
    "changes without a new sign-off (2.3.3)."
)


class Signpost(_Action):
    """Advise the caller of another service, its number and opening times (5.2.3.1)."""

    kind: Literal["signpost"]
    contact: ContactId | None = None
    service: str = Field(description="The service, as the caller is told of it.")
    number: str | None = Field(default=None, description=_LITERAL_NUMBER)
    opening_times: str | None = Field(default=None, description=_LITERAL_NUMBER)


class Transfer(_Action):
    """Transfer the call to a duty team or agency (5.2.3.2)."""

    kind: Literal["transfer"]
    contact: ContactId | None = None
    to: str = Field(description="Whom the call goes to, as the caller is told.")
    number: str | None = Field(default=None, description=_LITERAL_NUMBER)
    fallback: Id | None = Field(
        default=None, description="Action to take if the transfer cannot be made."
    )


class PolicyNotify(_Model):
    """A step of an escalation policy: alert a stage of a rota role (the next person in turn,
    or everyone on it), or a directory contact (issue 8 item 5)."""

    notify: Id | None = Field(default=None, description="A rota role.")
    contact: ContactId | None = Field(default=None, description="A directory contact instead.")
    stage: int = Field(default=1, ge=1, le=9, description="Which stage of the role's rota.")
    who: Literal["in_turn", "everyone"] = "in_turn"
    channels: Annotated[list[Channel], Field(min_length=1)]

    @model_validator(mode="after")
    def _one_target(self) -> PolicyNotify:
        if (self.notify is None) == (self.contact is None):
            raise ValueError("a notify step names either 'notify' (a rota role) or 'contact'")
        return self


class PolicyWait(_Model):
    """Wait this long for an acknowledgement before the next step."""

    wait: Duration


class PolicyRepeat(_Model):
    """Go through the steps before this one again, ``repeat`` more times."""

    repeat: int = Field(ge=1, le=10)


class EscalationPolicy(_Model):
    """A named escalation procedure of the organisation, reusable by any refer action
    (``policy: <name>``; 5.3.2, 6.4e, audit items 8-9, issue 8 item 5). Its last notify step
    must name someone who holds the call: a rota role of kind officer or manager, or a
    directory contact."""

    description: str | None = None
    steps: Annotated[list[PolicyNotify | PolicyWait | PolicyRepeat], Field(min_length=1)]
    realert: Backoff = Field(default_factory=Backoff)


class Refer(_Action):
    """Refer to the on-call officer found from the rota (5.2.3.3, 7.5)."""

    kind: Literal["refer"]
    rota_role: Id | None = Field(
        default=None, description="The role alerted first; or name a 'policy' instead."
    )
    policy: Id | None = Field(
        default=None,
        description="An escalation policy of organisation.yaml (escalation_policies) that "
        "gives the whole chain instead of rota_role and escalation.",
    )
    channels: list[Channel] = Field(
        default_factory=list, description="For rota_role: how it is alerted (one at least)."
    )
    time_limit: Duration | None = Field(
        default=None,
        description="Time to pass on the request; the organisation's default when absent (6.4b).",
    )
    acknowledge_within: Duration = Field(default=timedelta(minutes=15))
    message: Message = Field(default_factory=Message)
    escalation: list[EscalationStage] = Field(default_factory=list)
    realert: Backoff = Field(default_factory=Backoff)
    attendance_target: Duration | None = Field(
        default=None,
        description="The contractor's attendance target (e.g. 4h for housing repairs, audit "
        "item 7): a call back after it with no attendance recorded reads attendance_overdue.",
    )

    @model_validator(mode="after")
    def _role_or_policy(self) -> Refer:
        if (self.rota_role is None) == (self.policy is None):
            raise ValueError(
                "a refer action names either 'rota_role' (with 'escalation') or 'policy'"
            )
        if self.policy is not None and self.escalation:
            raise ValueError("'escalation' stages come from the policy; give one or the other")
        if self.rota_role is not None and not self.channels:
            raise ValueError("a refer action with 'rota_role' needs 'channels' (one at least)")
        return self


class Resolve(_Action):
    """Resolve the call with information (5.2.3.4)."""

    kind: Literal["resolve"]
    information: str


class OutOfScopeResponse(StrEnum):
    forward_to_daytime = "forward_to_daytime"  # 5.2.3.5 (i)
    call_back_in_hours = "call_back_in_hours"  # 5.2.3.5 (ii)


class OutOfScope(_Action):
    """Log as out of scope and forward or advise (5.2.3.5, 11.7.3f)."""

    kind: Literal["out_of_scope"]
    category: Id
    response: OutOfScopeResponse
    contact: ContactId | None = Field(
        default=None, description="The daytime service forwarded to, from the directory."
    )
    forward_to: str | None = Field(
        default=None,
        description="How the daytime service is described; the contact's name if absent.",
    )
    message: Message = Field(default_factory=Message)


class LoneWorker(_Action):
    """Watch over a lone worker's site visit (5.2.3.6)."""

    kind: Literal["lone_worker"]
    visit_length: Duration = Field(description="The pre-agreed time by which they must call out.")
    grace: Duration = Field(default=timedelta(minutes=5))
    escalation: Annotated[list[EscalationStage], Field(min_length=1)]
    realert: Backoff = Field(default_factory=Backoff)
    reminder: Duration | None = Field(
        default=None,
        description="A text to the worker this long before the visit's end: reply OK to "
        "check out or EXTEND 30 (issue 8 item 8).",
    )
    amber: Duration | None = Field(
        default=None,
        description="With it, the visit's end plus grace sends an amber alert to the worker "
        "(and buddy), and the red alert (the escalation) follows this long after; without it "
        "the escalation starts at the end plus grace.",
    )


Action = Annotated[
    Signpost | Transfer | Refer | Resolve | OutOfScope | LoneWorker,
    Field(discriminator="kind"),
]


class Setting(_Model):
    """A documented choice the organisation makes when it adopts a catalogue ruleset, where the
    spec allows alternatives ("either 1. … or 2. …", 2.2.2). Conditions read it like a field."""

    description: str
    allowed: Annotated[list[Annotated[str, Field(pattern=FIELD_PATTERN)]], Field(min_length=2)]
    value: Annotated[str, Field(pattern=FIELD_PATTERN)]


class SignOff(_Model):
    """Formal sign-off of a ruleset version by the organisation (5.3.1)."""

    by: str
    on: date
    version: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    role: str | None = Field(
        default=None, description="The signer's role, e.g. 'Head of Housing Services'."
    )
    scenarios: list[str] = Field(
        default_factory=list,
        description="The scenario tests that passed on this version before sign-off "
        "(5.3.1 user-acceptance testing; oohcore test prints them).",
    )


class ServiceOptionFile(_Model):
    """One service option file (2.2.2, 13.5.1)."""

    id: Id
    name: str
    extends: str | None = Field(
        default=None,
        description="A catalogue ruleset to start from: 'catalogue:<id>' or a relative path.",
    )
    description: str | None = None
    spec_reference: str | None = None
    standard: Standard = Standard.silver
    hours: Hours | None = Field(
        default=None, description="This option's hours when they differ from the organisation's."
    )
    variants: list[Variant] = Field(default_factory=list)
    settings: dict[Annotated[str, Field(pattern=FIELD_PATTERN)], Setting] = Field(
        default_factory=dict
    )
    script: Script = Field(default_factory=Script)
    decision: Decision
    actions: dict[Annotated[str, Field(pattern=ID_PATTERN)], Action]
    sign_off: SignOff | None = None
    lint: dict[str, str] = Field(
        default_factory=dict,
        exclude=True,  # documentation of the ruleset: no part of its version or behaviour
        description="Lint findings the organisation accepts, each with its reason: "
        "'<kind> <target>' (e.g. 'unreachable rule-3', 'never-read details') -> why "
        "(oohcore lint, docs/procedures.md).",
    )
