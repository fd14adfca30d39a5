"""The tool registry of the tool_call task: each tool's parameters as a JSON Schema (draft 2020-12), the
canonical form of a call, and the check that names which rule a call breaks. Pure Python, no torch:
the generator (``tool_call``), the grammar and the router all read the schemas from here.
"""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

# --- the registry -----------------------------------------------------------------------------
TIME = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "description": "24-hour HH:MM"}
DATE = {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
        "description": "YYYY-MM-DD"}
TEXT = {"type": "string", "minLength": 1}
UNITS = {  # unit code -> the word a request may use instead (levels 2+)
    "km": "kilometers", "mi": "miles", "m": "meters", "ft": "feet", "cm": "centimeters", "in": "inches",
    "kg": "kilograms", "lb": "pounds", "g": "grams", "oz": "ounces",
    "l": "liters", "ml": "milliliters", "gal": "gallons",
    "celsius": "degrees Celsius", "fahrenheit": "degrees Fahrenheit",
}
DIMENSIONS = (("km", "mi", "m", "ft", "cm", "in"), ("kg", "lb", "g", "oz"), ("l", "ml", "gal"),
              ("celsius", "fahrenheit"))
CURRENCIES = {  # ISO code -> name a request may use instead (levels 2+)
    "USD": "US dollars", "EUR": "euros", "GBP": "British pounds", "JPY": "Japanese yen",
    "CHF": "Swiss francs", "CAD": "Canadian dollars", "AUD": "Australian dollars",
    "INR": "Indian rupees", "MXN": "Mexican pesos", "CNY": "Chinese yuan",
}
CABINS = {"economy": "economy", "premium_economy": "premium economy", "business": "business class",
          "first": "first class"}


def _tool(description: str, properties: dict, required: list[str]) -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "description": description,
            "type": "object", "properties": properties, "required": required, "additionalProperties": False}


TOOLS: dict[str, dict] = {
    "get_weather": _tool("Weather forecast for a city.", {
        "city": TEXT, "date": DATE, "units": {"enum": ["celsius", "fahrenheit"]},
    }, ["city"]),
    "convert_units": _tool("Convert a quantity between units of the same dimension.", {
        "value": {"type": "number"}, "from_unit": {"enum": list(UNITS)}, "to_unit": {"enum": list(UNITS)},
        "decimals": {"type": "integer", "minimum": 0, "maximum": 6},
    }, ["value", "from_unit", "to_unit"]),
    "calculator": _tool("Evaluate an arithmetic expression.", {
        "expression": {"type": "string", "pattern": "^[0-9.+*/()-]+$"},
    }, ["expression"]),
    "create_calendar_event": _tool("Add an event to the user's calendar.", {
        "title": TEXT, "date": DATE, "time": TIME,
        "duration_minutes": {"type": "integer", "minimum": 1},
        "attendees": {"type": "array", "items": TEXT, "minItems": 1}, "location": TEXT,
    }, ["title", "date"]),
    "set_reminder": _tool("Remind the user of something at a time.", {
        "text": TEXT, "time": TIME, "date": DATE,
    }, ["text", "time"]),
    "search_flights": _tool("Find flights between two cities.", {
        "origin": TEXT, "destination": TEXT, "date": DATE, "return_date": DATE,
        "passengers": {"type": "integer", "minimum": 1, "maximum": 9}, "cabin": {"enum": list(CABINS)},
    }, ["origin", "destination", "date"]),
    "convert_currency": _tool("Convert an amount of money between currencies.", {
        "amount": {"type": "number", "minimum": 0},
        "from_currency": {"enum": list(CURRENCIES)}, "to_currency": {"enum": list(CURRENCIES)},
    }, ["amount", "from_currency", "to_currency"]),
    "web_search": _tool("Search the web.", {
        "query": TEXT, "num_results": {"type": "integer", "minimum": 1, "maximum": 20},
    }, ["query"]),
}
NONE = "none"  # the call for a request no tool serves: {"arguments":{},"name":"none"}
_NONE_SCHEMA = _tool("No tool serves the request.", {}, [])
_CALL_SCHEMA = {"type": "object", "required": ["name", "arguments"], "additionalProperties": False,
                "properties": {"name": {"type": "string"}, "arguments": {"type": "object"}}}
_CALL_VALIDATOR = Draft202012Validator(_CALL_SCHEMA)
_VALIDATORS = {name: Draft202012Validator(s) for name, s in {**TOOLS, NONE: _NONE_SCHEMA}.items()}


def canonical(call: dict) -> str:
    """The one serialisation a target uses: sorted keys, no spaces."""
    return json.dumps(call, sort_keys=True, separators=(",", ":"))


MAX_CALL_CHARS = 4096  # a call longer than this is refused before parsing
MAX_CALL_DEPTH = 16  # nesting of objects and arrays (a call needs 3)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ValueError(f"duplicate key {dup!r}")
    return dict(pairs)


def parse_call(text: str):
    """``json.loads`` for model output: refuses (ValueError) text over ``MAX_CALL_CHARS``, nesting deeper than
    ``MAX_CALL_DEPTH`` (checked before parsing, so no RecursionError), NaN / Infinity, and duplicate keys."""
    if len(text) > MAX_CALL_CHARS:
        raise ValueError(f"the call is {len(text):,} characters; at most {MAX_CALL_CHARS:,} are parsed")
    depth, deepest, in_string, escaped = 0, 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > MAX_CALL_DEPTH:
        raise ValueError(f"the call nests {deepest} levels deep; at most {MAX_CALL_DEPTH} are parsed")
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)


def is_canonical_call(text: str) -> bool:
    """True when ``text`` parses, is a valid call of a known tool, and is written canonically."""
    try:
        obj = parse_call(text)
    except ValueError:
        return False
    return isinstance(obj, dict) and validate_call(obj) is None and canonical(obj) == text


def validate_call(obj) -> str | None:
    """None when ``obj`` (parsed JSON) is a well-formed call of a known tool, else the reason."""
    error = best_match(_CALL_VALIDATOR.iter_errors(obj))
    if error is not None:
        return f"not a tool call: {error.message}"
    if obj["name"] not in _VALIDATORS:
        return f"unknown tool {obj['name']!r}"
    error = best_match(_VALIDATORS[obj["name"]].iter_errors(obj["arguments"]))
    if error is not None:
        return f"arguments break the schema of {obj['name']!r}: {error.message}"
    return None
