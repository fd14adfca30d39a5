"""Interactive widgets (ipywidgets) for the notebooks; each also works headless, for tests.

- ``CurriculumPlanner``: choose a scheduler and its pacing, see the planned mix of levels over
  training before running anything (``curriculum.plan``).
"""

from __future__ import annotations

import ipywidgets as w
import matplotlib.pyplot as plt

from . import curriculum, plots


class CurriculumPlanner:
    """Scheduler dropdown, pacing sliders and a stacked plot of the planned level mix.

        planner = CurriculumPlanner("multistep_arithmetic_two", levels=(1, 2, 3), total_steps=600)
        planner            # renders in JupyterLab; moving a slider redraws the plan
    """

    def __init__(self, task: str, levels=None, total_steps: int = 1000, scheduler: str = "competence",
                 eval_every: int | None = None):
        curriculum.check_scheduler(scheduler)
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
        self.plan = curriculum.plan(name, self.task, self.levels, self.total_steps, eval_every=self.eval_every,
                                    **self.pacing())
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

        explorer = PruningExplorer(model, tok, "boolean_expressions", examples, rows=study_rows)

    Results are cached per (method, sparsity, recovery): settings already in ``rows`` (from
    ``prune.run_study``) show at once; a new one is computed once (prune a copy, score it) and kept.
    """

    SPARSITIES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

    def __init__(self, model, tokenizer, task: str, examples, rows=(), recovery_steps: int = 100):
        from . import prune

        self.model, self.tokenizer, self.task, self.examples = model, tokenizer, task, examples
        self.recovery_steps = recovery_steps
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
        from . import prune

        key = self.key()
        if key not in self.cache:
            method, amount, recovered = key
            self.texts = self.texts or prune.calibration(self.task)
            m = prune.copy_model(self.model)
            masks = prune.prune_with(m, self.tokenizer, method, amount, self.texts)
            if recovered:
                m = prune.recover(m, self.tokenizer, self.task, masks, steps=self.recovery_steps)
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
