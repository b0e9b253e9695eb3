"""Background batch scoring: many rows, scored by modeld through Celery while the page polls.

The form takes a batch (rows generated from a seed, or pasted) for one of the form's models,
cuts it into chunks and sends a Celery group of ``modeld.predict`` tasks, one per chunk
(``modeld.celery.predict``). No Python worker runs: modeld consumes the queue and stores each
chunk's result in the result backend. The job page polls ``progress`` (JSON), which reads the
chunks' states from the result backend.

A job keeps no state in the site (it has no database): its chunks' task ids are made from the
job's id (``<job id>-<chunk>``), and the job's URL carries the id, model, row count and chunk
size, signed with the secret key, so any web worker can answer for it and nobody can make the
page read someone else's task ids. The link lives as long as modeld keeps results (one day,
``--celery-result-expires``).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from django import forms
from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from .catalog import MODELS
from .forms import parse_numbers

MAX_ROWS = 5000
MAX_CHUNK_ROWS = 256  # more than the models' max_batch_size (64): such a chunk fails, visibly
MAX_CHUNKS = 200
DEFAULT_ROWS = 200
DEFAULT_CHUNK_ROWS = 25
SALT = "predictor.batch"
MAX_AGE_S = 86400  # modeld's default --celery-result-expires: older results are gone
SHOWN_ROWS = 100  # the job page's table; the JSON has every row


# --- the form ------------------------------------------------------------------------------


def generate_rows(model: str, rows: int, seed: int) -> np.ndarray:
    """``rows`` random rows for ``model`` (standard normal, 3 decimals), float32 [rows, size]:
    the same for the same seed, so a test (or a user) can score them again elsewhere."""
    rng = np.random.default_rng(seed)
    return np.round(rng.standard_normal((rows, MODELS[model].size)), 3).astype(np.float32)


class BatchForm(forms.Form):
    model = forms.ChoiceField(choices=[(name, m.title) for name, m in MODELS.items()],
                              widget=forms.Select(attrs={"id": "model"}))
    source = forms.ChoiceField(
        choices=[("generate", "Generate random rows"), ("paste", "Paste rows")],
        initial="generate", widget=forms.RadioSelect)
    rows = forms.IntegerField(min_value=1, max_value=MAX_ROWS, initial=DEFAULT_ROWS,
                              required=False, widget=forms.NumberInput(attrs={"id": "rows"}),
                              help_text=f"How many rows to generate (at most {MAX_ROWS}).")
    seed = forms.IntegerField(min_value=0, max_value=2**32 - 1, initial=0, required=False,
                              widget=forms.NumberInput(attrs={"id": "seed"}),
                              help_text="The same seed generates the same rows.")
    pasted = forms.CharField(
        required=False, max_length=2_000_000,
        widget=forms.Textarea(attrs={"id": "pasted", "rows": 6, "spellcheck": "false"}),
        help_text="One row per line, its numbers separated by commas.")
    chunk_size = forms.IntegerField(
        min_value=1, max_value=MAX_CHUNK_ROWS, initial=DEFAULT_CHUNK_ROWS,
        widget=forms.NumberInput(attrs={"id": "chunk_size"}),
        help_text="Rows per task. The demo's models take at most 64 rows per request "
                  "(max_batch_size); a larger chunk fails with modeld's message.")

    def clean(self) -> dict:
        cleaned = super().clean()
        name, source, chunk_size = (cleaned.get(key) for key in ("model", "source", "chunk_size"))
        if name is None or source is None:
            return cleaned
        if source == "generate":
            if cleaned.get("rows") is None:
                self.add_error("rows", "Enter how many rows to generate.")
                return cleaned
            batch = generate_rows(name, cleaned["rows"], cleaned.get("seed") or 0)
        else:
            batch = self._pasted_rows(name, cleaned.get("pasted") or "")
            if batch is None:
                return cleaned
        if chunk_size is not None:
            chunks = math.ceil(len(batch) / chunk_size)
            if chunks > MAX_CHUNKS:
                self.add_error("chunk_size", forms.ValidationError(
                    "%(rows)d rows in chunks of %(size)d make %(chunks)d tasks; at most "
                    "%(max)d, so make the chunks larger.", code="too_many_chunks",
                    params={"rows": len(batch), "size": chunk_size, "chunks": chunks,
                            "max": MAX_CHUNKS}))
        cleaned["batch"] = batch
        return cleaned

    def _pasted_rows(self, name: str, text: str) -> np.ndarray | None:
        lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
                 if line.strip()]
        if not lines:
            self.add_error("pasted", "Paste at least one row, or generate rows instead.")
            return None
        if len(lines) > MAX_ROWS:
            self.add_error("pasted", f"{len(lines)} rows; at most {MAX_ROWS}.")
            return None
        size, rows = MODELS[name].size, []
        for number, line in lines:
            try:
                row = parse_numbers(line)
            except forms.ValidationError as error:
                self.add_error("pasted", f"Line {number}: {' '.join(error.messages)}")
                return None
            if len(row) != size:
                self.add_error("pasted", f"Line {number} has {len(row)} numbers; {name} takes "
                                         f"{size}.")
                return None
            rows.append(row)
        return np.asarray(rows, dtype=np.float32)


# --- jobs ----------------------------------------------------------------------------------


class QueueUnavailable(Exception):
    """The batch could not be queued, or its progress not read: the message says what is
    unreachable (the broker or the result backend) and where."""


@dataclass(frozen=True)
class Job:
    """A batch sent as ``chunks`` tasks of ``chunk_size`` rows (the last may be shorter)."""

    id: str
    model: str
    rows: int
    chunk_size: int

    @property
    def chunks(self) -> int:
        return math.ceil(self.rows / self.chunk_size)

    def task_id(self, chunk: int) -> str:
        return f"{self.id}-{chunk}"

    def bounds(self, chunk: int) -> tuple[int, int]:
        """Rows [start, stop) of ``chunk``."""
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, self.rows)

    @property
    def token(self) -> str:
        return signing.dumps([self.id, self.model, self.rows, self.chunk_size], salt=SALT)

    @classmethod
    def from_token(cls, token: str) -> Job:
        """The job a URL names; ``signing.BadSignature`` (or its ``SignatureExpired``) when
        the token was not made here or is older than the results."""
        job_id, model, rows, chunk_size = signing.loads(token, salt=SALT, max_age=MAX_AGE_S)
        return cls(job_id, model, rows, chunk_size)


def celery_app() -> Any:
    """The site's Celery app (demo_site/celery.py), imported on first use."""
    from demo_site import celery as demo_celery

    return demo_celery.app


def _where(app: Any, setting: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(str(app.conf[setting]))  # without its password


def _backend_errors(app: Any) -> tuple[type[BaseException], ...]:
    return (OSError, *getattr(app.backend, "connection_errors", ()))


def enqueue(model: str, batch: np.ndarray, chunk_size: int, app: Any = None) -> Job:
    """Sends ``batch`` (float32 [rows, size]) as a group of ``modeld.predict`` tasks, one per
    chunk of ``chunk_size`` rows; returns the job. Raises :class:`QueueUnavailable` when the
    broker or the result backend cannot be reached (after Celery's short retries)."""
    import celery
    import kombu.exceptions

    import modeld.celery

    app = app or celery_app()
    job = Job(uuid.uuid4().hex, model, len(batch), chunk_size)
    tasks = []
    for chunk in range(job.chunks):
        start, stop = job.bounds(chunk)
        signature = modeld.celery.predict(model, batch[start:stop], app=app)
        tasks.append(signature.set(task_id=job.task_id(chunk)))
    try:
        celery.group(tasks, app=app).apply_async(task_id=job.id)
    except kombu.exceptions.OperationalError as error:
        raise QueueUnavailable(
            f"Celery's broker at {_where(app, 'broker_url')} is unreachable ({error}). Is it "
            "running, and does modeld consume it (--celery-broker)?") from error
    except (RuntimeError, *_backend_errors(app)) as error:
        # The Redis result backend subscribes to each task's result before it is sent; when
        # it cannot, it raises RuntimeError("Retry limit exceeded ...") from the connection
        # error.
        cause = error if not isinstance(error, RuntimeError) else error.__cause__
        if not isinstance(cause, _backend_errors(app)):
            raise
        raise QueueUnavailable(
            f"Celery's result backend at {_where(app, 'result_backend')} is unreachable "
            f"({cause}). Is it running?") from error
    return job


def progress(job: Job, app: Any = None) -> dict:
    """The job's state from the result backend: chunk states, failures with modeld's
    messages, and (once every chunk is done) each row's output, ``None`` for the rows of a
    failed chunk. Raises :class:`QueueUnavailable` when the result backend is unreachable."""
    from celery import states

    app = app or celery_app()
    chunk_states, failures, outputs = [], [], []
    try:
        for chunk in range(job.chunks):
            result = app.AsyncResult(job.task_id(chunk))
            state = result.state  # one read of the backend; the result is then cached
            chunk_states.append(state)
            start, stop = job.bounds(chunk)
            if state == states.SUCCESS:
                outputs.append(result.result)
            elif state in states.READY_STATES:  # FAILURE, REVOKED
                error = result.result
                failures.append({"chunk": chunk, "first_row": start, "last_row": stop - 1,
                                 "state": state, "error": type(error).__name__,
                                 "message": str(error)})
                outputs.append([None] * (stop - start))
    except _backend_errors(app) as error:
        raise QueueUnavailable(
            f"Celery's result backend at {_where(app, 'result_backend')} is unreachable "
            f"({error}); the batch's progress cannot be read.") from error
    done = sum(state in states.READY_STATES for state in chunk_states)
    finished = done == job.chunks
    return {
        "model": job.model,
        "rows": job.rows,
        "chunk_size": job.chunk_size,
        "total": job.chunks,
        "done": done,
        "succeeded": chunk_states.count(states.SUCCESS),
        "failed": len(failures),
        "finished": finished,
        "chunks": chunk_states,
        "failures": failures,
        "outputs": [row for chunk in outputs for row in chunk] if finished else None,
    }


# --- views ---------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
def batch(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: queue the batch and redirect to its page (503 with the reason
    when Celery's broker or result backend is unreachable)."""
    context: dict = {}
    status = 200
    if request.method == "POST":
        form = BatchForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                job = enqueue(data["model"], data["batch"], data["chunk_size"])
            except QueueUnavailable as error:
                context["error"] = f"Could not queue the batch: {error}"
                status = 503
            else:
                return redirect(reverse("batch-job", args=[job.token]), permanent=False)
        else:
            status = 400
    else:
        form = BatchForm(initial={"model": request.GET.get("model", "linear")})
    context.update(form=form, models=MODELS.values(), **_settings_context())
    return render(request, "predictor/batch.html", context, status=status)


@require_GET
def batch_job(request: HttpRequest, token: str) -> HttpResponse:
    """The job's page: its progress now (read from the result backend), which its script
    keeps up to date from ``batch-progress``; 404 for an unknown or expired job, 503 (with
    the reason) when the result backend is unreachable."""
    job = _job_or_none(token)
    if job is None:
        return render(request, "predictor/batch_job.html",
                      {"missing": True, **_settings_context()}, status=404)
    context: dict = {"job": job, "token": token, **_settings_context()}
    status = 200
    try:
        context["progress"] = progress(job)
    except QueueUnavailable as error:
        context["error"] = str(error)
        status = 503
    else:
        context["shown"] = _shown_rows(context["progress"])
    return render(request, "predictor/batch_job.html", context, status=status)


@require_GET
def batch_progress(request: HttpRequest, token: str) -> JsonResponse:
    """The job's progress as JSON (see :func:`progress`); 404 for an unknown or expired job,
    503 when the result backend is unreachable."""
    job = _job_or_none(token)
    if job is None:
        return JsonResponse({"error": "No such batch: the link is wrong or more than a day "
                                      "old (modeld keeps results for a day).",
                             "code": "NO_SUCH_BATCH"}, status=404)
    try:
        return JsonResponse(progress(job))
    except QueueUnavailable as error:
        return JsonResponse({"error": str(error), "code": "RESULT_BACKEND_UNREACHABLE"},
                            status=503)


def _job_or_none(token: str) -> Job | None:
    try:
        job = Job.from_token(token)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    return job if job.model in MODELS else None


def _shown_rows(state: dict) -> list[dict] | None:
    """The first rows of a finished job for the page's table: index, output, class."""
    if not state["finished"]:
        return None
    shown = []
    for index, output in enumerate(state["outputs"][:SHOWN_ROWS]):
        row: dict = {"index": index, "output": output}
        if output is not None and len(output) > 1:
            row["argmax"] = int(np.argmax(output))
        shown.append(row)
    return shown


def _settings_context() -> dict:
    return {"broker_url": _safe(settings.CELERY_BROKER_URL),
            "result_backend": _safe(settings.CELERY_RESULT_BACKEND),
            "max_chunks": MAX_CHUNKS, "shown_rows": SHOWN_ROWS}


def _safe(url: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return maybe_sanitize_url(url)
