"""Tools: offline, deterministic stand-ins for the eight tools of the tool_call task.

    get_weather("Paris", "2026-03-04")            # a simulated forecast, the same on every call
    calculator("2 ** 10 / 4")                     # {"expression": "2 ** 10 / 4", "value": 256}
    fns = implementations(events=[], reminders=[])  # tool name -> function, for agent.Registry

Nothing here reaches the network or the clock: weather, flights and search results are derived
from a hash of the arguments, and currencies use fixed example rates (``EXAMPLE_RATES``), not
market data. The calculator is safe by construction: it parses the expression with ``ast`` and
walks the tree, allowing numbers, + - * / ** and parentheses only, with limits on the
expression's length, the exponent and every intermediate result (``MAX_*``); never ``eval``.
A tool that declines its arguments raises ``ToolError`` with a message that says why.
Arguments arrive already checked against the tool's JSON Schema (``agent.Registry.validate``).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import math
import operator
from collections.abc import Callable

from workbench.tasks.tool_call import DIMENSIONS


class ToolError(ValueError):
    """A tool declined its arguments (division by zero, kilometres to kilograms): the message says why."""


# --- the tools: offline, deterministic -----------------------------------------------------------
def _digest(*parts) -> bytes:
    """Stable pseudo-random bytes for simulated data: the same arguments always give the same answer."""
    return hashlib.sha256("|".join(str(p).casefold() for p in parts).encode()).digest()


CONDITIONS = ("sunny", "partly cloudy", "cloudy", "light rain", "heavy rain", "windy", "fog", "snow")


def get_weather(city: str, date: str | None = None, units: str = "celsius") -> dict:
    h = _digest(city, date)
    celsius = -5 + h[0] % 36  # -5..30
    temp = celsius if units == "celsius" else round(celsius * 9 / 5 + 32, 1)
    return {"city": city, "date": date or "today", "temperature": temp, "units": units,
            "condition": CONDITIONS[h[1] % len(CONDITIONS)], "precipitation_chance": h[2] % 101,
            "note": "simulated forecast (deterministic from city and date; no network)"}


# metres, grams and litres per unit (US gallon); temperatures are affine and handled apart
FACTORS = {"km": 1000.0, "mi": 1609.344, "m": 1.0, "ft": 0.3048, "cm": 0.01, "in": 0.0254,
           "kg": 1000.0, "lb": 453.59237, "g": 1.0, "oz": 28.349523125,
           "l": 1.0, "ml": 0.001, "gal": 3.785411784}
_DIMENSION = {u: dim for dim in DIMENSIONS for u in dim}


def convert_units(value: float, from_unit: str, to_unit: str, decimals: int | None = None) -> dict:
    if _DIMENSION[from_unit] != _DIMENSION[to_unit]:
        raise ToolError(f"cannot convert {from_unit} to {to_unit}: they measure different things")
    if from_unit == to_unit:
        out = float(value)
    elif from_unit in ("celsius", "fahrenheit"):  # affine: F = C * 9/5 + 32
        out = value * 9 / 5 + 32 if from_unit == "celsius" else (value - 32) * 5 / 9
    else:
        out = value * FACTORS[from_unit] / FACTORS[to_unit]
    out = round(out, decimals) if decimals is not None else float(f"{out:.6g}")
    return {"value": out, "unit": to_unit, "from": f"{value} {from_unit}"}


# illustrative, fixed rates (units of each currency per US dollar): NOT market data
EXAMPLE_RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 150.0, "CHF": 0.88, "CAD": 1.36,
                 "AUD": 1.52, "INR": 83.0, "MXN": 17.0, "CNY": 7.2}


def convert_currency(amount: float, from_currency: str, to_currency: str) -> dict:
    rate = EXAMPLE_RATES[to_currency] / EXAMPLE_RATES[from_currency]
    return {"amount": round(amount * rate, 2), "currency": to_currency, "rate": round(rate, 6),
            "note": "fixed example rates, not live market data"}


# calculator: the expression is parsed by `ast` and walked; nothing else of Python is reachable
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}
MAX_EXPRESSION = 200  # characters
MAX_EXPONENT = 100  # |b| in a ** b
MAX_MAGNITUDE = 1e100  # |value| of every intermediate result


def calculator(expression: str) -> dict:
    if not isinstance(expression, str):
        raise ToolError(f"the expression must be a string, got {type(expression).__name__}")
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"the expression is {len(expression):,} characters long; the limit is {MAX_EXPRESSION}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError) as err:  # ValueError: a NUL byte in the source
        raise ToolError(f"not an arithmetic expression: {getattr(err, 'msg', err)}") from None
    value = _arith(tree.body)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        value = int(value)  # 6/3 -> 2
    return {"expression": expression, "value": value}


def _arith(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if not math.isfinite(node.value) or abs(node.value) > MAX_MAGNITUDE:
            raise ToolError(f"the number {node.value!r} is too large")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _arith(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _arith(node.left), _arith(node.right)
        if isinstance(node.op, ast.Div) and b == 0:
            raise ToolError("division by zero")
        if isinstance(node.op, ast.Pow):
            if abs(b) > MAX_EXPONENT:
                raise ToolError(f"the exponent {b} is too large (at most {MAX_EXPONENT} in absolute value)")
            if a == 0 and b < 0:
                raise ToolError("zero cannot be raised to a negative power")
            if a < 0 and b != int(b):
                raise ToolError("a negative number cannot be raised to a fractional power")
        try:
            value = _OPS[type(node.op)](a, b)
        except OverflowError:
            value = math.inf
        if abs(value) > MAX_MAGNITUDE:
            raise ToolError(f"the result is larger than {MAX_MAGNITUDE:g}")
        return value
    raise ToolError(f"only numbers, + - * / ** and parentheses are allowed, not {_what(node)}")


def _what(node: ast.AST) -> str:
    if isinstance(node, (ast.Name, ast.Constant)):
        return f"the name {node.id!r}" if isinstance(node, ast.Name) else f"the constant {node.value!r}"
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return f"the operator {type(node.op).__name__}"  # FloorDiv, Mod, BitXor, Not, ...
    named = {ast.Call: "a function call", ast.Attribute: "an attribute", ast.Lambda: "a lambda"}
    return named.get(type(node), f"a {type(node).__name__} expression")


def search_flights(origin: str, destination: str, date: str, return_date: str | None = None,
                   passengers: int = 1, cabin: str = "economy") -> dict:
    h = _digest(origin, destination, date, cabin)
    markup = {"economy": 1.0, "premium_economy": 1.6, "business": 3.2, "first": 5.5}[cabin]
    flights = []
    for i in range(3):
        depart, hours = 6 * 60 + (h[i] * 7) % (15 * 60), 1 + h[i + 3] % 13
        fare = round((80 + h[i + 6] * 3) * markup)
        flights.append({"flight": f"SIM{100 + h[i + 9] % 900}", "departs": f"{depart // 60:02d}:{depart % 60:02d}",
                        "hours": hours, "price_usd": fare * passengers})
    return {"origin": origin, "destination": destination, "date": date, "return_date": return_date,
            "passengers": passengers, "cabin": cabin, "flights": sorted(flights, key=lambda f: f["departs"]),
            "note": "simulated results (deterministic; no network)"}


def web_search(query: str, num_results: int = 5) -> dict:
    # the query is text: it goes into strings and a hash, nowhere else
    slug = "-".join("".join(c if c.isalnum() else " " for c in query.lower()).split())[:60] or "query"
    h = _digest(query)
    results = [{"title": f"{query} (result {i + 1})", "url": f"https://example.com/{slug}/{h[i]:02x}",
                "snippet": f"Simulated result {i + 1} for the query {query!r}."} for i in range(num_results)]
    return {"query": query, "results": results, "note": "simulated results (deterministic; no network)"}


# --- calendar events and reminders: stored in lists the caller owns ---------------------------------
def _store_tool(store: list, prefix: str) -> Callable[..., dict]:
    def add(**arguments) -> dict:  # calendar event or reminder: appended to the registry's memory
        item = {"id": f"{prefix}-{len(store) + 1}", **copy.deepcopy(arguments)}
        store.append(item)
        return {"id": item["id"], "stored": item}
    return add


def implementations(events: list, reminders: list) -> dict[str, Callable[..., dict]]:
    """Every tool of tool_call.TOOLS by name; create_calendar_event and set_reminder append to
    ``events`` and ``reminders``."""
    return {"get_weather": get_weather, "convert_units": convert_units, "calculator": calculator,
            "create_calendar_event": _store_tool(events, "event"),
            "set_reminder": _store_tool(reminders, "reminder"), "search_flights": search_flights,
            "convert_currency": convert_currency, "web_search": web_search}
