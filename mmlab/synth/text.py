"""A templated grammar for transcripts and notes with planted cues (chapter 05_data).

Each *domain* (a participant's self-report, a caller, a call-centre agent, an ICU patient,
a nurse's note, a machine operator's note) has templates per label plus label-free
label-free templates (``"any"``). :func:`say` draws a label template with probability
``cue`` and a label-free one otherwise, so how informative text is can be dialled from 0 (text says
nothing about the label) to 1 (every utterance carries a cue). Slots (``{feeling}``) are
filled from small lexicons, recursively; a :class:`Style` per speaker adds fillers,
hedges, exclamation marks, abbreviations and lower case, so speakers are recognisable
(and a text model can over-fit to them). Everything is deterministic given the generator.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

__all__ = ["Style", "draw_style", "say", "expand", "cue_probability", "DOMAINS"]


@dataclass(frozen=True)
class Style:
    """How one person talks or writes."""

    filler: float = 0.2      # probability of a filler ("um", "well") per sentence
    hedge: float = 0.2       # probability of a hedge ("I think", "kind of")
    exclaim: float = 0.2     # probability a strong statement ends with "!"
    verbose: float = 0.3     # probability of an extra clause
    lowercase: bool = False  # writes everything in lower case
    terse: bool = False      # drops articles and pronouns, uses abbreviations (notes)


def draw_style(rng: np.random.Generator, variability: float = 1.0, terse: float = 0.0) -> Style:
    """A random speaker style; ``terse`` is the probability of a note-writing shorthand."""
    v = float(variability)

    def p(mean: float) -> float:
        return float(np.clip(mean * math.exp(v * rng.normal(0.0, 0.6)), 0.0, 0.9))

    return Style(filler=p(0.2), hedge=p(0.2), exclaim=p(0.2), verbose=p(0.3),
                 lowercase=bool(rng.uniform() < 0.15 * v), terse=bool(rng.uniform() < terse))


def cue_probability(informativeness: float) -> float:
    """Probability that an utterance carries a label cue: 1 - exp(-1.2 * informativeness)
    (0 -> 0, 1 -> 0.70, 2 -> 0.91)."""
    return 1.0 - math.exp(-1.2 * max(float(informativeness), 0.0))


_LEX: dict[str, list[str]] = {
    # shared
    "very": ["really", "very", "quite", "so", "pretty"],
    "now": ["right now", "at the moment", "now", "just now"],
    "filler": ["um", "uh", "well", "so", "okay", "hmm"],
    "hedge": ["I think", "I guess", "kind of", "sort of", "maybe"],
    # self-report (stress protocol)
    "tense": ["tense", "stressed", "nervous", "anxious", "under pressure", "on edge"],
    "body_stress": ["my heart is racing", "my hands are sweaty", "my mouth is dry",
                    "I can feel my pulse", "my chest feels tight", "I keep fidgeting"],
    "task": ["the speech", "the math task", "counting backwards", "talking in front of the panel",
             "the interview", "the arithmetic"],
    "funny": ["funny", "hilarious", "silly", "ridiculous", "amusing"],
    "clip": ["those clips", "the videos", "that sketch", "the last video", "the cartoon"],
    "calm": ["calm", "relaxed", "peaceful", "quiet inside", "at ease", "settled"],
    "breath": ["my breathing slowed down", "I can feel my breath", "breathing slowly helps",
               "my shoulders dropped"],
    "activity": ["sitting here", "reading the magazine", "waiting", "looking around the room",
                 "just sitting", "reading"],
    "plain": ["okay", "fine", "alright", "normal"],
    # call centre
    "topic_billing": ["my bill", "a charge on my invoice", "my last payment", "the billing"],
    "topic_technical": ["my internet connection", "the router", "the app", "my phone line"],
    "topic_cancellation": ["cancelling my contract", "ending my subscription", "closing my account"],
    "topic_delivery": ["my delivery", "the package", "my order", "the shipment"],
    "topic_account": ["my account details", "my password", "changing my address", "my login"],
    "thanks": ["thank you so much", "thanks a lot", "that's great", "perfect, thanks",
               "wonderful", "I really appreciate it"],
    "good": ["great", "helpful", "quick", "easy", "excellent"],
    "angry": ["ridiculous", "unacceptable", "frustrating", "a joke", "terrible", "useless"],
    "waited": ["I've been waiting for ages", "this is the third time I'm calling",
               "nobody ever calls back", "I was on hold forever"],
    "detail": ["the account number is {digits}", "it started {when}", "it's under my name",
               "I already restarted it", "the reference is {digits}"],
    "when": ["yesterday", "last week", "this morning", "two days ago", "on Monday"],
    "digits": ["four five two one", "seven seven three", "one nine eight six", "two zero four"],
    # agent
    "agent_open": ["thank you for calling, how can I help", "good morning, you're speaking with support",
                   "hello, how can I help you today"],
    "agent_mid": ["let me check that for you", "could you confirm your account number",
                  "one moment please", "I can see that here", "I'll take care of that"],
    "greet": ["Hi,", "Hello,", "Good morning,", "Yes, hi,", "Hello there,"],
    "agent_close": ["is there anything else I can help with", "thanks for calling",
                    "have a nice day", "you'll get a confirmation by email"],
    # ICU patient
    "sick": ["dizzy", "cold", "shivery", "weak", "confused", "really tired", "short of breath"],
    "ok": ["fine", "okay", "better", "much better", "alright", "good"],
    "pain": ["a bit of pain", "some discomfort", "a headache", "no pain"],
    # nurse notes
    "pt": ["Pt", "Patient"],
    "settled": ["resting comfortably", "settled overnight", "sleeping", "alert and oriented",
                "mobilising with assistance", "tolerating diet"],
    "worry": ["appears lethargic", "flushed and clammy", "rigors noted", "new confusion",
              "reduced urine output", "mottled skin", "warm to touch"],
    "escalate": ["MD notified", "sepsis screen started", "blood cultures taken",
                 "lactate requested", "fluids bolus given", "escalated to outreach team"],
    "routine": ["meds given as charted", "obs within normal limits", "IV site clean",
                "repositioned", "family visited", "wound dressing changed", "no concerns"],
    # machine operator notes
    "machine": ["pump", "motor", "fan", "unit", "drive", "compressor"],
    "bearing": ["drive-end bearing", "bearing", "non-drive-end bearing", "bearing housing"],
    "bad_noise": ["grinding noise", "rumbling", "knocking", "high-pitched whine", "rattling"],
    "bad_heat": ["running hot", "feels hot", "warm to the touch", "hotter than usual"],
    "fine_check": ["routine inspection, no issues", "lubrication done", "all readings normal",
                   "checked belts and guards", "cleaned filter", "visual check ok"],
}

_T = dict[str, list[str]]
DOMAINS: dict[str, _T] = {
    "self_report": {
        "any": ["I'm {activity}.", "Nothing special {now}.", "I feel {plain}, I suppose.",
                    "Not much to report.", "I'm {plain}, {activity}."],
        "baseline": ["I'm just {activity}, feeling {plain}.", "Pretty normal, {activity}.",
                     "Nothing much, I feel {plain}."],
        "stress": ["I feel {very} {tense} {now}.", "{body_stress}, {task} was hard.",
                   "I'm {tense}, {body_stress}.", "That was {very} stressful, {body_stress}.",
                   "I hated {task}, I feel {tense}."],
        "amusement": ["That was {very} {funny}!", "I couldn't stop laughing at {clip}.",
                      "{clip} were {funny}, I feel great.", "Ha, that was {funny}."],
        "meditation": ["I feel {very} {calm} {now}.", "{breath}, I feel {calm}.",
                       "It's {very} peaceful, {breath}.", "I'm {calm} and quiet."],
    },
    "caller": {
        "any": ["I'm calling about {topic}.", "{detail}.", "Okay.", "Yes, that's right.",
                    "Can you check {topic}?", "Sure, {detail}."],
        "satisfied": ["Oh, {thanks}!", "That was {very} {good}, {thanks}.",
                      "Great, that solves it, {thanks}.", "You've been {very} {good}."],
        "neutral": ["Okay, I see.", "Alright, that works.", "Fine, I'll wait for the email.",
                          "Okay, so it's sorted then."],
        "dissatisfied": ["This is {angry}.", "{waited}, this is {angry}.",
                         "I'm {very} unhappy with this.", "Why is this still not fixed?",
                         "{waited}, I want to speak to a manager."],
    },
    "agent": {"any": ["{agent_mid}."]},
    "patient": {
        "any": ["I'm {ok}, {pain}.", "Can I have some water?", "When can I go home?",
                    "I slept a little."],
        "stable": ["I feel {ok} today.", "I'm {ok}, thanks.", "Much better than yesterday."],
        "sepsis": ["I feel {very} {sick}.", "I'm {sick} and {sick}.", "Everything feels strange, I'm {sick}."],
    },
    "nurse_note": {
        "any": ["{pt} {settled}. {routine}.", "{routine}. {routine}.", "{pt} {settled}."],
        "stable": ["{pt} {settled}, obs stable. {routine}.", "{pt} {settled}. HR {hr}, T {temp}. {routine}."],
        "sepsis": ["{pt} {worry}. HR {hr}, T {temp}, RR {rr}. {escalate}.",
                   "{pt} {worry}, BP {sbp}/{dbp}. {escalate}.",
                   "{worry}; SpO2 {spo2}%. {escalate}."],
    },
    "operator_note": {
        "any": ["{fine_check}.", "{machine} running, {fine_check}.", "Shift handover, {fine_check}."],
        "healthy": ["{machine} sounds normal, {fine_check}.", "No vibration issues on {machine}."],
        "failing": ["{bad_noise} from {bearing}.", "{bearing} {bad_heat}, check soon.",
                    "{machine} {bad_noise} near {bearing}, {bad_heat}.",
                    "Vibration up on {machine}, {bad_noise}."],
        "overheating": ["{machine} {bad_heat}, check soon.", "{machine} motor {bad_heat}.",
                        "Smell of hot insulation near the {machine} motor.", "{machine} {bad_heat}, fan cover warm."],
    },
}

_SLOT = re.compile(r"\{([a-z0-9_]+)\}")


def expand(rng: np.random.Generator, template: str, ctx: Mapping[str, object] | None = None,
           depth: int = 0) -> str:
    """Fill ``{slot}`` placeholders from ``ctx`` or, recursively, from the lexicons."""
    ctx = ctx or {}

    def fill(m: re.Match) -> str:
        key = m.group(1)
        if key in ctx:
            return str(ctx[key])
        options = _LEX.get(key)
        if not options:
            raise KeyError(f"text grammar: no lexicon or context value for slot {{{key}}}")
        choice = options[int(rng.integers(0, len(options)))]
        return expand(rng, choice, ctx, depth + 1) if depth < 4 else choice

    return _SLOT.sub(fill, template)


def _lower_first(text: str) -> str:
    if re.match(r"I\b|I'", text):
        return text
    return text[:1].lower() + text[1:]


def _style(rng: np.random.Generator, text: str, style: Style, strong: bool, first: bool) -> str:
    if style.terse:
        text = re.sub(r"\b(the|a|an|is|was|I'm|I am)\s+", "", text, flags=re.IGNORECASE)
        text = text.replace("Patient", "Pt").replace(" with ", " w/ ").replace(" and ", " & ")
    elif first:
        if rng.uniform() < style.hedge:
            text = f"{_LEX['hedge'][int(rng.integers(0, 5))]} {_lower_first(text)}"
        if rng.uniform() < style.filler:
            text = f"{_LEX['filler'][int(rng.integers(0, 6))]}, {_lower_first(text)}"
    if strong and text.endswith(".") and rng.uniform() < style.exclaim:
        text = text[:-1] + "!"
    text = re.sub(r"([.!?;]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text[:1].upper() + text[1:])
    if style.lowercase:
        text = text.lower()
    return re.sub(r"\s+", " ", text).strip()


def say(rng: np.random.Generator, domain: str, label: str | None = None, style: Style = Style(),
        cue: float = 0.7, sentences: int = 1, **ctx: object) -> str:
    """One utterance or note of ``domain`` for ``label``.

    Each of the ``sentences`` carries the label's cue with probability ``cue``; otherwise
    (and always when ``label`` is None) it comes from the domain's label-free ``"any"``
    templates. ``ctx`` fills slots directly, e.g. vitals in nurse notes (``hr=112``) or
    the call ``topic``. A speaker's ``verbose`` adds a label-free sentence now and then.
    """
    if domain not in DOMAINS:
        raise KeyError(f"text domain {domain!r} unknown; domains: {sorted(DOMAINS)}")
    tpl = DOMAINS[domain]
    if label is not None and (label not in tpl or label == "any"):
        raise KeyError(f"text domain {domain!r} has no label {label!r}; labels: "
                       f"{sorted(k for k in tpl if k != 'any')}")
    out = []
    n = sentences + int(rng.uniform() < style.verbose)
    for i in range(n):
        cued = label is not None and i < sentences and rng.uniform() < cue
        options = tpl[label] if cued else tpl["any"]
        text = expand(rng, options[int(rng.integers(0, len(options)))], ctx)
        out.append(_style(rng, text, style, strong=cued, first=i == 0))
    return " ".join(out)
