"""Runs documentation snippets the way a reader would, for test_exporting.py.

    <python> snippet_runner.py JOBS.json      (in the folder the snippets write into)

JOBS.json is a list of jobs, run in order in this one process (so TensorFlow, say, is imported
once for several snippets), each in a namespace of its own:

    {"id": "sklearn",                       the snippet's name, for messages
     "setup": "...",                        optional: test code run first, in another namespace
                                            (writes a file the snippet reads, for example)
     "code": "...", "line": 123,            the snippet, and its first line in "source"
     "source": "docs/exporting.md",         (tracebacks then point into the document)
     "references": {"iris": ["x", "expr"]}, optional: for model "iris", `expr` evaluated in the
                                            snippet's namespace with `x` = input "x" (JSON) and
                                            `np` = numpy: the framework's own answer, written to
                                            references/iris.json ({name: list} or a list)
     "after": "..."}                        optional: test code run last in the snippet's namespace

A failing job stops the run with its traceback on stderr and exit status 1.
"""

import json
import os
import sys
import tempfile
import types
from pathlib import Path


def _jsonable(value):
    import numpy as np

    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # a torch or tf tensor
        value = value.detach().numpy() if hasattr(value, "detach") else value.numpy()
    return np.asarray(value).tolist()


def _code(job, key, folder):
    """`job[key]` compiled from a file in `folder`, as a reader runs a script: torch.jit.script
    reads a module's source from its file. Blank lines before the snippet make a traceback's
    line numbers the document's."""
    if key == "code":
        path = Path(folder) / f"{Path(job['source']).name}-{job['id']}.py"
        text = "\n" * (job["line"] - 1) + job["code"]
    else:
        path = Path(folder) / f"{key}-of-{job['id']}.py"
        text = job[key]
    path.write_text(text)
    return compile(text, str(path), "exec")


def run(job, folder):
    import numpy as np

    if job.get("setup"):
        setup = _code(job, "setup", folder)
        exec(setup, {"__name__": "__setup__"})  # noqa: S102 (test code)
    # A fresh __main__ module, as for a script: pickle (torch.save) finds its classes there.
    main_module = types.ModuleType("__main__")
    sys.modules["__main__"] = main_module
    namespace = main_module.__dict__
    exec(_code(job, "code", folder), namespace)  # noqa: S102 (the documented snippet)
    for model, (given, expression) in job.get("references", {}).items():
        value = eval(expression, {**namespace, "np": np, "x": given})  # noqa: S307
        path = Path("references") / f"{model}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(_jsonable(value)))
    if job.get("after"):
        exec(_code(job, "after", folder), namespace)  # noqa: S102 (test code)


def main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory(prefix="snippets-") as folder:
        for job in json.loads(Path(sys.argv[1]).read_text()):
            print(f"== {job['id']}", flush=True)
            run(job, folder)


if __name__ == "__main__":
    main()
