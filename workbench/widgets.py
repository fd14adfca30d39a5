"""Interactive widgets (ipywidgets) for the notebooks; each also works headless, for tests.

- ``CurriculumPlanner``: choose a scheduler and its pacing, see the planned mix of levels over
  training before running anything (``curriculum.plan``).
- ``PruningExplorer``: method, sparsity and recovery against accuracy, size and latency.
- ``AttributionExplorer``: attributions of every generated token over the prompt and rationale.
- ``AgentConsole``: requests typed in a box, routed through an agent's tool router.
"""

from __future__ import annotations

import html
import json
import zlib

import ipywidgets as w
import matplotlib.pyplot as plt

from workbench import curriculum, explain, plots
from workbench.core.validate import check_count


class CurriculumPlanner:
    """Scheduler dropdown, pacing sliders and a stacked plot of the planned level mix.

        planner = CurriculumPlanner("multistep_arithmetic_two", levels=(1, 2, 3), total_steps=600)
        planner            # renders in JupyterLab; moving a slider redraws the plan
    """

    def __init__(self, task: str, levels=None, total_steps: int = 1000, scheduler: str = "competence",
                 eval_every: int | None = None):
        curriculum.plan(scheduler, task, levels, total_steps, points=2, eval_every=eval_every)  # refuse bad arguments
        self.task, self.levels, self.total_steps, self.eval_every = task, levels, total_steps, eval_every
        p = curriculum.Pacing()
        style = {"description_width": "90px"}
        self.scheduler = w.Dropdown(options=curriculum.SCHEDULERS, value=scheduler, description="scheduler",
                                    style=style)
        self.ramp = w.FloatSlider(value=p.ramp, min=0.05, max=1.0, step=0.05, description="ramp", style=style)
        self.threshold = w.FloatSlider(value=p.threshold, min=0.05, max=1.0, step=0.05, description="threshold",
                                       style=style)
        self.patience = w.IntSlider(value=p.patience, min=1, max=10, description="patience", style=style)
        self.c0 = w.FloatSlider(value=p.c0, min=0.01, max=1.0, step=0.01, description="c0", style=style)
        self.start = w.FloatSlider(value=p.start, min=0.05, max=1.0, step=0.05, description="start", style=style)
        self.note = w.HTML()
        self.output = w.Output()
        self.plan: tuple | None = None  # (steps, levels, shares) last drawn
        for control in (self.scheduler, self.ramp, self.threshold, self.patience, self.c0, self.start):
            control.observe(self._redraw, names="value")
        self.box = w.VBox([w.HBox([w.VBox([self.scheduler, self.ramp, self.threshold]),
                                   w.VBox([self.patience, self.c0, self.start])]),
                           self.note, self.output])
        self._redraw()

    def pacing(self) -> dict:
        return {"ramp": self.ramp.value, "threshold": self.threshold.value, "patience": self.patience.value,
                "c0": self.c0.value, "start": self.start.value}

    def _redraw(self, _change=None) -> None:
        name = self.scheduler.value
        used = {"random": (), "easy_to_hard": ("ramp",), "hard_first": ("ramp",),
                "baby_steps": ("threshold", "patience"), "competence": ("ramp", "c0"),
                "self_paced": ("ramp", "start")}[name]
        for key in ("ramp", "threshold", "patience", "c0", "start"):
            getattr(self, key).disabled = key not in used
        try:
            self.plan = curriculum.plan(name, self.task, self.levels, self.total_steps, eval_every=self.eval_every,
                                        **self.pacing())
        except ValueError as err:  # the message in the widget, never a traceback
            self.note.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        caveat = {"baby_steps": "opens a level when validation accuracy on the seen levels reaches the threshold, "
                                "at the latest after `patience` evaluations: drawn at that slowest pace",
                  "self_paced": "ranks levels by the model's loss once training starts; drawn by the labels"}
        self.note.value = f"<small>{caveat.get(name, '')}</small>"
        self.output.clear_output(wait=True)
        with self.output:
            fig = plots.level_plan(*self.plan, title=f"{name}: planned mix of {self.task} levels")
            from IPython.display import display

            display(fig)
            plt.close(fig)

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


class PruningExplorer:
    """A method choice, a sparsity slider and a recovery switch that show accuracy, size and latency.

        explorer = PruningExplorer(model, tok, "boolean_expressions", examples, rows=studies.pruning.run(...))

    Results are cached per (method, sparsity, recovery): settings already in ``rows`` (from
    ``studies.pruning.run``) show at once; a new one is computed once (prune a copy, score it) and kept.
    """

    SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

    def __init__(self, model, tokenizer, task: str, examples, rows=(), recovery_steps: int = 100,
                 recovery_batch: int = 16):
        from workbench import prune

        self.model, self.tokenizer, self.task, self.examples = model, tokenizer, task, examples
        self.recovery_steps, self.recovery_batch = recovery_steps, recovery_batch
        self.cache: dict[tuple, dict] = {}
        self.computed = 0  # settings computed here (not taken from ``rows``)
        for r in rows:
            if r.get("method") in prune.METHODS:
                self.cache[(r["method"], round(r["target"], 2), bool(r["recovered"]))] = r
            elif r.get("method") == "dense":
                self.dense = r
        if not hasattr(self, "dense"):
            self.dense = prune.account(model, tokenizer, task, examples, "dense")
        self.texts = None
        self.method = w.Dropdown(options=prune.METHODS, value="wanda", description="method")
        self.sparsity = w.SelectionSlider(options=self.SPARSITIES, value=0.5, description="sparsity")
        self.recovered = w.Checkbox(value=False, description=f"recovery fine-tune ({recovery_steps} steps)")
        self.output = w.HTML()
        for control in (self.method, self.sparsity, self.recovered):
            control.observe(self._update, names="value")
        self.box = w.VBox([w.HBox([self.method, self.sparsity, self.recovered]), self.output])
        self._update()

    def key(self) -> tuple:
        amount = 0.5 if self.method.value == "2:4" else round(self.sparsity.value, 2)
        return self.method.value, amount, self.recovered.value

    def result(self) -> dict:
        from workbench import prune
        from workbench.core.models import copy_model

        key = self.key()
        if key not in self.cache:
            method, amount, recovered = key
            self.texts = self.texts or prune.calibration(self.task)
            m = copy_model(self.model)
            masks = prune.prune_with(m, self.tokenizer, method, amount, self.texts)
            if recovered:
                m = prune.recover(m, self.tokenizer, self.task, masks, steps=self.recovery_steps,
                                  batch_size=self.recovery_batch)
            label = f"{method} {amount:.0%}" + (" + recovery" if recovered else "")
            self.cache[key] = prune.account(m, self.tokenizer, self.task, self.examples, label)
            self.computed += 1
        return self.cache[key]

    def _update(self, _change=None) -> None:
        self.sparsity.disabled = self.method.value == "2:4"
        r = self.result()
        d = self.dense

        def cell(v, base, fmt):  # the value and its ratio to the dense model's
            ratio = v / base if base else 1.0
            return f"<td>{fmt.format(v)} ({ratio:.2f}x)</td>"

        self.output.value = (
            "<table><tr><th></th><th>sparsity</th><th>params</th><th>bytes on disk</th>"
            "<th>latency b1, ms</th><th>latency b16, ms</th><th>accuracy</th></tr>"
            + "".join(f"<tr><td>{x['model']}</td><td>{x['sparsity']:.0%}</td><td>{x['params']:,}</td>"
                      + cell(x["bytes"], d["bytes"], "{:,}") + cell(x["latency_b1_ms"], d["latency_b1_ms"], "{:.1f}")
                      + cell(x["latency_b16_ms"], d["latency_b16_ms"], "{:.1f}")
                      + f"<td>{x['accuracy']:.1%}</td></tr>" for x in (d, r))
            + "</table><small>Masks leave bytes and dense-kernel latency where they were; "
              "only structured removal shrinks both.</small>")

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


class AttributionExplorer:
    """Pick a task and an example (or type one) and a method; step through the generated tokens.

        explorer = AttributionExplorer(model, tok, examples)       # examples: tasks.Example list
        explorer.show(text="not ( True ) is", method="shapley", step=3)   # headless: returns a message

    The heatmap shades the prompt and the rationale written so far by each token's attribution to
    the token written at that step; below it, the model's top alternatives at that step.
    Generations and attributions are cached per (example, method, step), so revisiting is instant.
    Bad input (an empty question, a method not offered, a step beyond the generation) shows a
    message in the widget, never a traceback.
    """

    def __init__(self, model, tokenizer, examples, chat: bool = False, methods=tuple(explain.METHODS),
                 method: str = "integrated_gradients", n_steps: int = 50, n_samples: int = 3,
                 max_new_tokens: int = 400):
        for m in methods:
            explain.check_method(m)
        if not examples:
            raise ValueError("AttributionExplorer needs at least one example to start from")
        self.explainer = explain.Explainer(model, tokenizer, chat, max_new_tokens, n_steps, n_samples)
        self.examples = list(examples)
        self.methods = tuple(methods)
        tasks_ = sorted({e.task for e in self.examples})
        self.task = w.Dropdown(options=tasks_, value=tasks_[0], description="task")
        self.example = w.Dropdown(options=self._options(tasks_[0]), description="example",
                                  layout=w.Layout(width="520px"))
        self.custom = w.Text(placeholder="or type a question and press explain", layout=w.Layout(width="420px"))
        self.run = w.Button(description="explain")
        self.method = w.Dropdown(options=[(explain.METHODS[m], m) for m in self.methods],
                                 value=method if method in self.methods else self.methods[0], description="method")
        self.step = w.IntSlider(value=0, min=0, max=0, description="step", continuous_update=False,
                                layout=w.Layout(width="520px"))
        self.heatmap = w.HTML()
        self.status = w.HTML()
        for widget, cls in ((self.task, "wb-task"), (self.example, "wb-example"), (self.custom, "wb-custom"),
                            (self.run, "wb-run"), (self.method, "wb-method"), (self.step, "wb-step"),
                            (self.heatmap, "wb-heatmap"), (self.status, "wb-status")):
            widget.add_class(cls)
        self.text = self.example.value
        self._busy = False
        self.task.observe(self._on_task, names="value")
        self.example.observe(self._on_example, names="value")
        self.run.on_click(lambda _b: self.show(text=self.custom.value))
        self.method.observe(lambda _c: self._render(), names="value")
        self.step.observe(lambda _c: self._render(), names="value")
        self.box = w.VBox([w.HBox([self.task, self.method]), self.example, w.HBox([self.custom, self.run]),
                           self.step, self.status, self.heatmap])
        self.box.add_class("wb-attribution-explorer")
        self.show(text=self.text)

    def _options(self, task: str) -> list[tuple[str, str]]:
        return [(f"L{e.level}: {e.input[:70]}", e.input) for e in self.examples if e.task == task]

    def _on_task(self, _change) -> None:
        self.example.options = self._options(self.task.value)  # fires _on_example with the first one

    def _on_example(self, change) -> None:
        if change["new"] is not None:
            self.show(text=change["new"])

    def show(self, text: str | None = None, method: str | None = None, step: int | None = None) -> str:
        """Set the example, method and step (any of them) and redraw; returns the status message ('' if fine)."""
        try:
            if method is not None:
                explain.check_method(method)
                if method not in self.methods:
                    raise ValueError(f"method {method!r} is not offered here; choose one of {', '.join(self.methods)}")
            if text is not None:
                gen = self.explainer.generation(text)  # raises on an empty question
                if gen.steps == 0:
                    raise ValueError("the model wrote nothing for this question: there is no step to explain")
                if step is not None:
                    gen.check_step(step)
                self._busy = True
                try:
                    self.text = text
                    self.step.max = gen.steps - 1
                    self.step.value = gen.answer_step if step is None else step
                    if method is not None:
                        self.method.value = method
                finally:
                    self._busy = False
            else:
                if step is not None:
                    self.explainer.generation(self.text).check_step(step)
                self._busy = True
                try:
                    if method is not None:
                        self.method.value = method
                    if step is not None:
                        self.step.value = step
                finally:
                    self._busy = False
        except ValueError as e:
            return self._say(str(e))
        except Exception as e:  # the model failed on this input: a message in the widget, never a traceback
            return self._say(f"{type(e).__name__}: {e}")
        return self._render()

    def _say(self, message: str) -> str:
        self.status.value = f"<span style='color:#b00'>{html.escape(message)}</span>"
        return message

    def _render(self) -> str:
        if self._busy:
            return ""
        try:
            gen = self.explainer.generation(self.text)
            att = self.explainer.attribution(self.text, self.method.value, self.step.value)
        except ValueError as e:
            return self._say(str(e))
        except Exception as e:  # a widget shows the failure instead of a traceback
            return self._say(f"{type(e).__name__}: {e}")
        key = f"{zlib.crc32(self.text.encode()):08x}|{att.method}|{att.step}"
        self.heatmap.value = explain.heatmap_html(gen, att, key)
        share = explain.rationale_share(gen, att)
        self.status.value = (f"<small>{gen.steps} generated tokens; the answer starts at step {gen.answer_step}. "
                             f"{share:.0%} of this step's attribution is on the generated rationale.</small>")
        return ""

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)


class AgentConsole:
    """Requests in a text box (one per line) routed through an ``agent.Router``: the call, whether it
    passed the registry's checks, and the tool's result or the refusal, with the time each took.

        console = AgentConsole(router, ["Remind me to call Ana at 5pm", "What is 12 * 7?"])
        console.run()      # headless: returns the decisions; the button does the same in JupyterLab
    """

    def __init__(self, router, requests=(), max_requests: int = 20):
        self.router = router
        self.max_requests = check_count(max_requests, "max_requests")  # per click: a pasted file does not hang it
        self.text = w.Textarea(value="\n".join(requests), placeholder="one request per line",
                               layout=w.Layout(width="720px", height="120px"))
        self.button = w.Button(description="route")
        self.output = w.HTML()
        self.decisions: list = []
        self.text.add_class("wb-agent-requests")
        self.output.add_class("wb-agent-output")
        self.button.on_click(lambda _b: self.run())
        self.box = w.VBox([self.text, self.button, self.output])
        if requests:
            self.run()

    def run(self) -> list:
        lines = [ln for ln in self.text.value.split("\n") if ln.strip()]
        if not lines:
            return self._say("type at least one request, one per line")
        if len(lines) > self.max_requests:
            return self._say(f"{len(lines):,} requests; the console routes at most {self.max_requests} at a time "
                             "(route more with Router.route_many)")
        self.decisions = self.router.route_many(lines, batch_size=1)
        rows = []
        for d in self.decisions:
            call = json.dumps(d.call, sort_keys=True) if d.call is not None else "—"
            outcome = (f"<span style='color:#060'>{html.escape(json.dumps(d.result, default=str)[:160])}</span>"
                       if not d.refused else f"<span style='color:#b00'>refused: {html.escape(d.reason[:160])}</span>")
            rows.append(f"<tr><td>{html.escape(d.request[:80])}</td><td><code>{html.escape(call)}</code></td>"
                        f"<td>{outcome}</td><td>{d.latency_ms:.0f}</td></tr>")
        self.output.value = ("<table><tr><th>request</th><th>call</th><th>result</th><th>ms</th></tr>"
                             + "".join(rows) + "</table>")
        return self.decisions

    def _say(self, message: str) -> list:
        self.decisions = []
        self.output.value = f"<span style='color:#b00'>{html.escape(message)}</span>"
        return []

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)
