"""A collection of small agents: a dispatcher sends each plain-English request to one specialist or tool.

    reqs = collection.stream(per_task=6, seed=0)                 # a mixed, seeded stream with expected answers
    dispatcher = collection.Dispatcher.fit(collection.stream(200, split="train", templates="train"))
    coll = collection.Collection(dispatcher, specialists)      # {task: (model, tokenizer, rationale, format)}
    out = coll.answer("Is not ( True and False ) or False true?")
    out.route, out.answer, out.ms                              # "boolean_expressions", "True", 812.4

The pattern is routing to experts (Jacobs et al., 1991, *Adaptive mixtures of local experts*; Shazeer et al.,
2017, sparsely-gated mixture-of-experts) taken to whole models: a tiny gate picks one specialist per request and
only that one runs. The gate here is a multinomial naive Bayes over character n-grams (McCallum & Nigam, 1998),
trained in a fraction of a second on requests written with the *training* templates and measured on requests
written with *held-out* ones. After routing, the task's input is recovered from the request by a parser of that
task's own notation (boolean tokens, an arithmetic expression, a bracket run, a word list), never by ``eval``:
a request it cannot read is refused in one line. tool_call requests go through ``agent.Router``, so every tool
call is checked against the registry's schemas and allow-list before it runs.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from workbench.tasks import NAMES, get
from workbench.tasks import splits as task_splits
from workbench.tasks.tool_call import canonical

REASONING = ("boolean_expressions", "multistep_arithmetic_two", "dyck_languages", "word_sorting")
DYCK_PREFIX = "Complete the rest of the sequence, making sure that the parentheses are closed properly. Input: "
WORDS_PREFIX = "Sort the following words alphabetically: List: "

# plain-English phrasings of each reasoning task; ``{x}`` is the task's own notation (the BBH input without its
# boilerplate). The dispatcher learns from "train"; "heldout" phrasings are only ever used to measure it.
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "boolean_expressions": {
        "train": ("Is {x} true?", "Evaluate {x}", "What does {x} evaluate to?", "Tell me if {x} holds.",
                  "Boolean question: {x}"),
        "heldout": ("Is the expression {x} true or false?", "Work out the truth value of {x}, please.",
                    "Check whether {x} comes out true."),
    },
    "multistep_arithmetic_two": {
        "train": ("What is {x}?", "Compute {x}", "Calculate {x} for me.", "Evaluate the expression {x}",
                  "How much is {x}?"),
        "heldout": ("Please work out {x}.", "What number do you get from {x}?", "Solve {x} step by step."),
    },
    "dyck_languages": {
        "train": ("Close this bracket sequence: {x}", "Complete the brackets: {x}", "Finish the parentheses in {x}",
                  "Which brackets close {x} ?", "Balance these brackets: {x}"),
        "heldout": ("Add the closing brackets to {x} please.", "What closes the sequence {x} ?",
                    "Complete this so every bracket is closed: {x}"),
    },
    "word_sorting": {
        "train": ("Sort these words: {x}", "Put these words in alphabetical order: {x}",
                  "Alphabetize the following: {x}", "Sort alphabetically: {x}", "Order these words A to Z: {x}"),
        "heldout": ("Can you arrange these alphabetically: {x}?", "List in dictionary order: {x}.",
                    "Please sort the list: {x}"),
    },
}
SPLITS = ("train", "heldout")


def check_task(name: str) -> str:
    """``name`` when it is one of the five routes, else a one-line ValueError naming the accepted ones."""
    if name not in NAMES:
        raise ValueError(f"unknown task {name!r}; the routes are {', '.join(NAMES)}")
    return name


# 1. templates: the task's notation in, plain English out; and back --------------------------------------------
def notation(task_name: str, task_input: str) -> str:
    """The part of a BBH-format input that a person would type: the expression, the brackets, the words."""
    if task_name == "boolean_expressions":
        return task_input.removesuffix(" is")
    if task_name == "multistep_arithmetic_two":
        return task_input.removesuffix(" =")
    if task_name == "dyck_languages":
        return task_input.removeprefix(DYCK_PREFIX)
    if task_name == "word_sorting":
        return task_input.removeprefix(WORDS_PREFIX)
    raise ValueError(f"no template wraps task {task_name!r}; templates exist for {', '.join(REASONING)}")


def bbh_input(task_name: str, text: str) -> str:
    """The BBH-format input a specialist was trained on, from the notation (``notation``'s inverse)."""
    return {"boolean_expressions": f"{text} is", "multistep_arithmetic_two": f"{text} =",
            "dyck_languages": DYCK_PREFIX + text, "word_sorting": WORDS_PREFIX + text}[task_name]


def wrap(task_name: str, task_input: str, template: str) -> str:
    """A plain-English request: ``template`` with the input's notation in place of ``{x}``."""
    return template.format(x=notation(task_name, task_input))


_BOOL = {"True", "False", "not", "and", "or", "(", ")"}
_BRACKETS = set("()[]{}<>")
_EXPR = re.compile(r"\(\([-\d +*()]*\)\)")  # ((a op b ...) OP (...)): digits, signs, spaces, brackets
_WORD = re.compile(r"[a-z'&]+")


def _longest_run(text: str, vocab: set[str]) -> str:
    """The longest run of space-separated tokens all in ``vocab`` (a final . ? ! , dropped from each token)."""
    best, run = [], []
    for token in text.split():
        bare = token.rstrip(".?!,") or token
        if bare in vocab:
            run.append(bare)
            if bare != token:  # punctuation ends the run: it closes a sentence
                best, run = max(best, run, key=len), []
        else:
            best, run = max(best, run, key=len), []
    return " ".join(max(best, run, key=len))


def _balanced(tokens: list[str]) -> bool:
    depth = 0
    for t in tokens:
        depth += (t == "(") - (t == ")")
        if depth < 0:
            return False
    return depth == 0


def parse(task_name: str, request: str) -> str:
    """The BBH-format input inside ``request`` for ``task_name``; a one-line ValueError when there is none.

    Each task's notation is found by what it looks like, not by matching a template, so a phrasing never seen
    reads the same way: the longest run of boolean tokens, the ``((...) op (...))`` expression, the longest run of
    brackets, the lowercase words after the last colon."""
    if task_name == "boolean_expressions":
        x = _longest_run(request, _BOOL).split()
        if not x or x[-1] not in ("True", "False", ")") or not _balanced(x) or not {"True", "False"} & set(x):
            raise ValueError("found no boolean expression (tokens True False not and or ( ) separated by spaces)")
        return bbh_input(task_name, " ".join(x))
    if task_name == "multistep_arithmetic_two":
        x = max(_EXPR.findall(request), key=len, default="")
        if not x or not _balanced(list(x)):
            raise ValueError("found no expression of the form ((a + b * c) - (d - e)) with integers and + - *")
        return bbh_input(task_name, x)
    if task_name == "dyck_languages":
        x = _longest_run(request, _BRACKETS)
        if not x:
            raise ValueError("found no bracket sequence (brackets ( [ { < and closers, separated by spaces)")
        return bbh_input(task_name, x)
    if task_name == "word_sorting":
        _, colon, rest = request.rpartition(":")
        words = rest.strip().rstrip(".?!").split()
        if not colon or len(words) < 2 or not all(_WORD.fullmatch(w) for w in words):
            raise ValueError("found no word list (two or more lowercase words after a colon)")
        return bbh_input(task_name, " ".join(words))
    raise ValueError(f"no parser for task {check_task(task_name)!r}; parsers exist for {', '.join(REASONING)}")


# 2. the stream ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    text: str  # what the user wrote
    route: str  # the task (specialist) that should answer it
    task_input: str  # the BBH-format input inside it (tool_call: the request itself)
    target: str  # the expected answer (tool_call: the canonical call)
    template: str = ""  # the phrasing used ("" for tool_call: its requests are plain English already)


def stream(per_task: int, seed: int = 0, split: str = "test", templates: str = "heldout",
           task_names: tuple[str, ...] = NAMES) -> list[Request]:
    """``per_task`` requests of each task, drawn from ``split`` at the task's BBH level, the reasoning ones
    wrapped in ``templates`` ("train" or "heldout") phrasings, then shuffled: the same list for the same seed."""
    if not isinstance(per_task, int) or isinstance(per_task, bool) or per_task < 1:
        raise ValueError(f"per_task must be a positive integer, got {per_task!r}")
    if templates not in SPLITS:
        raise ValueError(f"templates must be one of {', '.join(SPLITS)}, got {templates!r}")
    rng = random.Random(seed)
    out = []
    for name in map(check_task, task_names):
        pool = task_splits.load(name, split, level=get(name).bbh_level)
        if per_task > len(pool):
            raise ValueError(f"per_task={per_task} but {name}'s {split} split holds {len(pool)} examples")
        for ex in rng.sample(pool, per_task):
            if name == "tool_call":
                out.append(Request(ex.input, name, ex.input, ex.target))
                continue
            template = rng.choice(TEMPLATES[name][templates])
            out.append(Request(wrap(name, ex.input, template), name, ex.input, ex.target, template))
    rng.shuffle(out)
    return out


# 3. the dispatcher -----------------------------------------------------------------------------------------
def ngrams(text: str, sizes: tuple[int, ...] = (1, 2, 3, 4)) -> Counter:
    """Character n-grams of the padded, lower-cased text: what the dispatcher reads."""
    t = f" {text.lower()} "
    return Counter(t[i:i + n] for n in sizes for i in range(len(t) - n + 1))


@dataclass
class Dispatcher:
    """Multinomial naive Bayes over character n-grams: log P(route) + sum over n-grams of log P(n-gram | route)."""

    routes: list[str]
    log_prior: dict[str, float]
    log_like: dict[str, list[float]]  # n-gram -> log P(n-gram | route), one per route
    log_unseen: list[float]  # an n-gram never seen in training, per route
    sizes: tuple[int, ...] = (1, 2, 3, 4)

    @classmethod
    def fit(cls, requests: list[Request], sizes: tuple[int, ...] = (1, 2, 3, 4), alpha: float = 0.1,
            min_count: int = 2) -> Dispatcher:
        """Counts per route with add-``alpha`` smoothing; n-grams seen fewer than ``min_count`` times are dropped."""
        if not requests:
            raise ValueError("no requests to fit the dispatcher on")
        routes = sorted({r.route for r in requests})
        counts = {route: Counter() for route in routes}
        for r in requests:
            counts[r.route].update(ngrams(r.text, sizes))
        total = sum((c for c in counts.values()), Counter())
        vocab = sorted(g for g, n in total.items() if n >= min_count)
        denom = [sum(counts[route][g] for g in vocab) + alpha * (len(vocab) + 1) for route in routes]
        log_like = {g: [math.log((counts[route][g] + alpha) / d) for route, d in zip(routes, denom)] for g in vocab}
        n = Counter(r.route for r in requests)
        return cls(routes, {route: math.log(n[route] / len(requests)) for route in routes}, log_like,
                   [math.log(alpha / d) for d in denom], sizes)

    def scores(self, text: str) -> dict[str, float]:
        s = [self.log_prior[route] for route in self.routes]
        for g, k in ngrams(text, self.sizes).items():
            row = self.log_like.get(g, self.log_unseen)
            s = [a + k * b for a, b in zip(s, row)]
        return dict(zip(self.routes, s))

    def route(self, text: str) -> str:
        scores = self.scores(text)
        return max(scores, key=scores.get)

    def accuracy(self, requests: list[Request]) -> float:
        return sum(self.route(r.text) == r.route for r in requests) / len(requests)

    def confusion(self, requests: list[Request]) -> dict[tuple[str, str], int]:
        """(expected, routed) -> count, the mistakes only."""
        return dict(Counter((r.route, got) for r in requests if (got := self.route(r.text)) != r.route))

    def evidence(self, text: str, k: int = 8) -> list[tuple[str, float]]:
        """The ``k`` n-grams that most favour the chosen route over the runner-up (count x log-likelihood ratio):
        why the dispatcher chose it."""
        ranked = sorted(self.scores(text).items(), key=lambda kv: -kv[1])
        a, b = (self.routes.index(r) for r, _ in ranked[:2])
        weights = {g: n * (self.log_like.get(g, self.log_unseen)[a] - self.log_like.get(g, self.log_unseen)[b])
                   for g, n in ngrams(text, self.sizes).items()}
        return sorted(weights.items(), key=lambda kv: -kv[1])[:k]

    @property
    def nbytes(self) -> int:
        """Bytes stored: each n-gram's UTF-8 text and one float32 per route, plus the priors."""
        return sum(len(g.encode()) + 4 * len(self.routes) for g in self.log_like) + 8 * len(self.routes)

    def to_json(self) -> str:
        return json.dumps({"routes": self.routes, "log_prior": self.log_prior, "log_like": self.log_like,
                           "log_unseen": self.log_unseen, "sizes": list(self.sizes)})


# 4. the collection -----------------------------------------------------------------------------------------
@dataclass
class Specialist:
    model: Any
    tokenizer: Any
    rationale: bool = True  # writes a rationale, then "So the answer is ..." (its recipe's train.rationale)
    max_new_tokens: int = 512  # the generation budget for one answer
    nbytes: int = 0  # weight bytes as stored (int8 linear layers counted as int8)
    label: str = ""  # "int8" or "fp32"


@dataclass
class Outcome:
    request: str
    route: str  # where the dispatcher sent it
    answer: str = ""  # the specialist's final answer, or the canonical tool call
    refused: bool = False
    reason: str = ""  # why it was refused
    task_input: str = ""  # what the specialist was asked (the BBH-format input)
    completion: str = ""  # the specialist's whole completion (tool_call: the router's raw text)
    result: Any = None  # the tool's return value (tool_call)
    ms: float = 0.0  # end to end: dispatch, parse, the model, the tool


@dataclass
class Collection:
    """The dispatcher and one specialist per route (``tool_call`` goes through ``router``)."""

    dispatcher: Dispatcher
    specialists: dict[str, Specialist]
    router: Any = None  # agent.Router over the tool_call specialist; None: built from specialists["tool_call"]
    outcomes: list[Outcome] = field(default_factory=list, repr=False)

    def __post_init__(self):
        missing = sorted(set(self.dispatcher.routes) - set(self.specialists))
        if missing:
            raise ValueError(f"no specialist for route(s) {', '.join(missing)}; got {', '.join(self.specialists)}")
        if self.router is None and "tool_call" in self.specialists:
            from workbench.agent.router import Router

            s = self.specialists["tool_call"]
            self.router = Router(s.model, s.tokenizer, rationale=s.rationale, max_new_tokens=s.max_new_tokens)

    @property
    def nbytes(self) -> int:
        """The whole collection: every specialist's weights and the dispatcher."""
        return sum(s.nbytes for s in self.specialists.values()) + self.dispatcher.nbytes

    def answer(self, request: str) -> Outcome:
        """Route, parse, answer: never raises on a bad request (an empty or unreadable one is refused)."""
        t0 = time.perf_counter()
        out = self._answer(request)
        out.ms = 1000 * (time.perf_counter() - t0)
        return out

    def _answer(self, request) -> Outcome:
        if not isinstance(request, str) or not request.strip():
            return Outcome(str(request)[:200], "", refused=True, reason="request is empty or not text")
        route = self.dispatcher.route(request)
        if route == "tool_call":
            d = self.router.route(request)  # the router's checks, the model, the registry, the tool
            answer = canonical(d.call) if d.valid or d.no_tool else ""  # "no tool serves it" is an answer too
            return Outcome(request, route, answer, d.refused and not d.no_tool, d.reason, request, d.raw, d.result)
        try:
            task_input = parse(route, request)
        except ValueError as err:
            return Outcome(request, route, refused=True, reason=f"routed to {route}, but {err}")
        from workbench.core.evaluate import EvalConfig, answer_of, generate, student_prompt

        s = self.specialists[route]
        completion = generate(s.model, s.tokenizer, [student_prompt(task_input)], s.max_new_tokens, 1,
                              () if s.rationale else ("\n",))[0]
        return Outcome(request, route, answer_of(completion, EvalConfig(rationale=s.rationale)), False, "",
                       task_input, completion)


def correct(outcome: Outcome, request: Request) -> bool:
    """Routed where expected and the answer right by the task's own scorer (tool_call: the exact call)."""
    if outcome.route != request.route or outcome.refused:
        return False
    return get(request.route).diagnose(outcome.answer, request.target) is None
