"""FiftyOne plugin ``@dmue-curate/review``: thin operators and a panel over :mod:`curate.fiftyone.review`.

Operators act on the faces selected in the grid (relabel, show_similar) or on the selection /
current view (accept_suggestions, mark_reviewed, exclude, include, keep_one_per_group, undo: the App offers the
target, so a batch decision on a queue can be undone on the same queue - except on
``unreviewed-flagged`` and ``review-next``, which a decision empties: undo those on
``likely-mislabeled`` or the selection; from Python, ``selected`` ids win over the view). Each records a decision through
:mod:`curate.fiftyone.review`, by the App user when known, else ``$USER``. ``rerank`` re-ranks
the undecided faces with those decisions and opens the ``review-next`` queue.

After every decision (and undo) that changed a face, the undecided faces are re-ranked as well
(``review-next`` updated, the view left as it is; no run recorded), unless the form's "Re-rank
afterwards" box (param ``rerank``) is off; its default is the plugin setting ``auto_rerank``
(``dataset.app_config.plugins["@dmue-curate/review"]``, else ``fo.app_config.plugins[...]``; on
when unset).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from curate.fiftyone import SIMILARITY_KEY, review

PLUGIN = "@dmue-curate/review"
AUTO_RERANK = "auto_rerank"


def _selected(ctx: foo.ExecutionContext):
    if not ctx.selected:
        raise ValueError("select faces in the grid first")
    return ctx.dataset.select(ctx.selected)


def _selected_or_view(ctx: foo.ExecutionContext):
    """The target the App form chose (carried at the request level), else the selection, else the view."""
    if ctx.selected and not ctx.request_params.get("view_target"):
        return ctx.dataset.select(ctx.selected)
    return ctx.target_view()


def _done(ctx: foo.ExecutionContext, message: str, count: int) -> dict[str, int]:
    ctx.ops.notify(message, variant="success")
    ctx.ops.reload_dataset()
    return {"count": count}


def auto_rerank(dataset: fo.Dataset) -> bool:
    """The plugin setting ``auto_rerank``: the dataset's App config, else the global one; True when unset."""
    for plugins in (dataset.app_config.plugins, fo.app_config.plugins):
        value = (plugins or {}).get(PLUGIN, {}).get(AUTO_RERANK)
        if value is not None:
            return bool(value)
    return True


def _rerank_input(inputs: types.Object, ctx: foo.ExecutionContext) -> None:
    default = auto_rerank(ctx.dataset) if ctx.dataset else True
    inputs.bool("rerank", default=default, label="Re-rank afterwards (review-next)")


def _decided(ctx: foo.ExecutionContext, message: str, count: int) -> dict[str, int]:
    """Finish a decision: re-rank the undecided faces when wanted (module docstring), notify, reload."""
    wanted = ctx.params.get("rerank")
    if count and (auto_rerank(ctx.dataset) if wanted is None else wanted):
        from curate.fiftyone.rerank import rerank_dataset

        try:
            summary = rerank_dataset(ctx.dataset, record=False)
        except ValueError as exc:  # the decision stands; say why the queue did not move
            ctx.ops.notify(f"{message}; not re-ranked: {exc}", variant="warning")
            ctx.ops.reload_dataset()
            return {"count": count}
        message += f"; re-ranked {summary['rescored']} undecided faces"
    return _done(ctx, message, count)


class _Decision(foo.Operator):
    """A decision on the selection or the current view: subclasses name the operator and the function."""

    operator_name: str
    label: str
    apply: Callable[..., int]  # a curate.fiftyone.review function (samples, *, by) -> count

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name=self.operator_name, label=self.label)

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        ctx.target_view()  # offers selection / current view / dataset in the form
        inputs = types.Object()
        _rerank_input(inputs, ctx)
        return types.Property(inputs, view=types.View(label=self.label))

    def execute(self, ctx: foo.ExecutionContext) -> dict[str, int]:
        n = self.apply(_selected_or_view(ctx), by=review.curator(ctx.user))
        return _decided(ctx, f"{self.label}: {n} faces", n)


class AcceptSuggestions(_Decision):
    operator_name, label = "accept_suggestions", "Accept suggested labels"
    apply = staticmethod(review.accept_suggestions)


class MarkReviewed(_Decision):
    operator_name, label = "mark_reviewed", "Keep label (mark reviewed)"
    apply = staticmethod(review.mark_reviewed)


class Exclude(_Decision):
    operator_name, label = "exclude", "Exclude faces"
    apply = staticmethod(review.exclude)


class Include(_Decision):
    operator_name, label = "include", "Include faces again"
    apply = staticmethod(review.include)


class KeepOnePerGroup(_Decision):
    """Exclude all but one face of each exact-duplicate group in the target (run it on the
    ``duplicates`` view); undo it with Undo or Include on the faces it excluded."""

    operator_name, label = "keep_one_per_group", "Keep one of each duplicate group"
    apply = staticmethod(review.keep_one_per_group)

    def execute(self, ctx: foo.ExecutionContext) -> dict[str, int]:
        n = self.apply(_selected_or_view(ctx), by=review.curator(ctx.user))
        return _decided(ctx, f"Excluded {n} duplicate faces (kept one of each group)", n)


class Relabel(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="relabel", label="Relabel selected faces")

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        classes = ctx.dataset.default_classes if ctx.dataset else []
        inputs.enum("label", classes, required=True, label="New label", view=types.AutocompleteView())
        inputs.view("note", types.Notice(label=f"{len(ctx.selected)} faces selected"))
        _rerank_input(inputs, ctx)
        return types.Property(inputs, view=types.View(label="Relabel selected faces"))

    def execute(self, ctx: foo.ExecutionContext) -> dict[str, int]:
        label = ctx.params["label"]
        n = review.relabel(_selected(ctx), label, by=review.curator(ctx.user))
        return _decided(ctx, f"Relabeled {n} faces to {label}", n)


def _undo(samples: Any, *, by: str) -> int:
    return review.undo(samples)  # an undo removes a decision; it records none, so ``by`` is unused


class Undo(_Decision):
    operator_name, label = "undo", "Undo the last decision"
    apply = staticmethod(_undo)


class Rerank(foo.Operator):
    """Re-rank the undecided faces with the decisions so far (:mod:`curate.fiftyone.rerank`) and
    open the ``review-next`` queue; decided faces and curator fields are never written."""

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="rerank", label="Re-rank with my decisions")

    def execute(self, ctx: foo.ExecutionContext) -> dict[str, int]:
        from curate.fiftyone.rerank import VIEW, rerank_dataset

        summary = rerank_dataset(ctx.dataset)
        ctx.ops.set_view(name=VIEW)  # by name: the App shows the saved view (and its URL) as the queue
        return _done(ctx, f"Re-ranked {summary['rescored']} undecided faces with {summary['decided']} decisions",
                     summary["rescored"])  # fmt: skip


class ShowSimilar(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="show_similar", label="Show similar faces")

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        inputs = types.Object()
        inputs.int("k", default=50, min=1, label="How many faces")
        return types.Property(inputs, view=types.View(label="Show faces similar to the selection"))

    def execute(self, ctx: foo.ExecutionContext) -> dict[str, int]:
        k = int(ctx.params.get("k") or 50)  # a cleared field means the default
        view = review.similar_view(ctx.view, list(ctx.selected), brain_key=SIMILARITY_KEY, k=k)
        ctx.ops.set_view(view)
        return {"count": len(view)}


class ExportCleaned(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(name="export_cleaned", label="Export cleaned labels", view_target=False)

    def resolve_input(self, ctx: foo.ExecutionContext) -> types.Property:
        from curate.export import DEDUPE, LEAKS, POLICIES, format_choices

        inputs = types.Object()
        inputs.str("out", required=True, label="Output file or folder (absolute path, or ~/...)")
        inputs.enum("format", list(format_choices()), default="csv", label="Format")
        inputs.enum("policy", list(POLICIES), default="decisions", label="Policy")
        inputs.enum("dedupe", list(DEDUPE), default="keep-all", label="Exact duplicates (keep-one: one per group)")
        inputs.enum("leaks", list(LEAKS), default="keep", label="Faces leaked across splits")
        inputs.str("leak_splits", label="Drop leaked faces only in these splits (comma-separated; empty: all)")
        inputs.float("drop_outliers", min=0.0, max=1.0, label="Drop outliers from outlier_score (empty: keep)")
        inputs.bool("force", default=False, label="Replace an existing output")
        return types.Property(inputs, view=types.View(label="Export cleaned labels"))

    def execute(self, ctx: foo.ExecutionContext) -> dict[str, Any]:
        from curate.export import ExportError, export_cleaned

        out = Path(ctx.params["out"]).expanduser()
        if not out.is_absolute():  # the App server's working directory is nobody's choice
            raise ValueError(f"give the output as an absolute path (or ~/...), not {ctx.params['out']!r}")
        try:
            summary = export_cleaned(
                f"fiftyone:{ctx.dataset.name}",
                format=ctx.params.get("format", "csv"),
                policy=ctx.params.get("policy", "decisions"),
                out=out,
                force=bool(ctx.params.get("force", False)),
                by=review.curator(ctx.user),
                data_policy=_data_policy(ctx.params),
            )
        except ExportError as exc:  # the CLI's --force by its name in this form
            raise ValueError(str(exc).replace("pass --force", "tick 'Replace an existing output'")) from None
        ctx.ops.notify(f"Wrote {summary.written} faces to {summary.out}", variant="success")
        return summary.to_dict()


def _data_policy(params: dict[str, Any]) -> Any:
    from curate.export import DataPolicy

    splits = tuple(s.strip() for s in (params.get("leak_splits") or "").split(",") if s.strip())
    outliers = params.get("drop_outliers")
    return DataPolicy(
        dedupe=params.get("dedupe") or "keep-all",
        leaks=params.get("leaks") or "keep",
        leak_splits=splits,
        drop_outliers=None if outliers is None else float(outliers),
    )


class ReviewQueues(foo.Panel):
    """Queue sizes (saved views, each a button that opens it) and the given -> suggested counts."""

    @property
    def config(self) -> foo.PanelConfig:
        return foo.PanelConfig(name="review_queues", label="Review queues")

    def on_load(self, ctx: foo.ExecutionContext) -> None:
        ctx.panel.state.counts = review.queue_counts(ctx.dataset)
        ctx.panel.state.confusion = review.confusion(ctx.dataset).to_markdown()

    refresh = on_load

    def open_queue(self, ctx: foo.ExecutionContext) -> None:
        ctx.ops.set_view(name=ctx.params["queue"])

    def render(self, ctx: foo.ExecutionContext) -> types.Property:
        panel = types.Object()
        counts = ctx.panel.state.counts or {}
        for i, (name, count) in enumerate(counts.items()):
            panel.btn(f"queue_{i}", label=f"{name}: {count}", on_click=self.open_queue, params={"queue": name})
        panel.md("#### Given (rows) -> suggested (columns)\n\n" + (ctx.panel.state.confusion or ""), name="confusion")
        panel.btn("refresh", label="Refresh", on_click=self.refresh)
        return types.Property(panel, view=types.GridView(orientation="vertical"))


def register(p: Any) -> None:
    for cls in (
        Relabel,
        AcceptSuggestions,
        MarkReviewed,
        Exclude,
        Include,
        KeepOnePerGroup,
        Undo,
        Rerank,
        ShowSimilar,
        ExportCleaned,
        ReviewQueues,
    ):
        p.register(cls)
