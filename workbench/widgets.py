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
        self.c0 = w.FloatSlider(value=p.c0, min=0.01, max=1.0, step=0.01, description="c0", style=style)
        self.start = w.FloatSlider(value=p.start, min=0.05, max=1.0, step=0.05, description="start", style=style)
        self.note = w.HTML()
        self.output = w.Output()
        self.plan: tuple | None = None  # (steps, levels, shares) last drawn
        for control in (self.scheduler, self.ramp, self.threshold, self.c0, self.start):
            control.observe(self._redraw, names="value")
        self.box = w.VBox([w.HBox([w.VBox([self.scheduler, self.ramp]), w.VBox([self.threshold, self.c0,
                                                                                 self.start])]),
                           self.note, self.output])
        self._redraw()

    def pacing(self) -> dict:
        return {"ramp": self.ramp.value, "threshold": self.threshold.value, "c0": self.c0.value,
                "start": self.start.value}

    def _redraw(self, _change=None) -> None:
        name = self.scheduler.value
        used = {"random": (), "easy_to_hard": ("ramp",), "hard_first": ("ramp",), "baby_steps": ("threshold",),
                "competence": ("ramp", "c0"), "self_paced": ("ramp", "start")}[name]
        for key in ("ramp", "threshold", "c0", "start"):
            getattr(self, key).disabled = key not in used
        self.plan = curriculum.plan(name, self.task, self.levels, self.total_steps, eval_every=self.eval_every,
                                    **self.pacing())
        caveat = {"baby_steps": "opens a level when validation accuracy on the seen levels reaches the threshold; "
                                "drawn at its fastest (one level per evaluation)",
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
