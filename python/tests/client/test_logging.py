"""The ``modeld`` logger: each call with its latency and each retry at DEBUG, each failure at
WARNING; the model and the call are named, tensor values never."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest

import modeld


def test_a_call_is_logged_with_its_latency_and_without_values(client, caplog):
    caplog.set_level(logging.DEBUG, logger="modeld")
    secret = 123456.75
    client.predict("linear", [[secret, 2.0, 3.0]])
    lines = [r.getMessage() for r in caplog.records if r.name == "modeld"]
    assert any(re.fullmatch(r"infer on model 'linear': \d+\.\d ms", line) for line in lines), lines
    assert not any("123456" in line for line in lines), lines


def test_a_failure_is_a_warning_naming_the_call_and_the_error(client, caplog):
    caplog.set_level(logging.DEBUG, logger="modeld")
    with pytest.raises(modeld.ModelNotFound):
        client.predict("no_such_model", np.ones((1, 3), np.float32))
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "modeld" and r.levelno == logging.WARNING]
    assert any("no_such_model" in w and "failed after" in w for w in warnings), warnings


def test_retries_are_logged(transport, closed_port, caplog):
    caplog.set_level(logging.DEBUG, logger="modeld")
    with modeld.Client(f"{transport}://127.0.0.1:{closed_port}", timeout=0.5, retries=3,
                       backoff=0.01) as client:
        with pytest.raises(modeld.Unavailable):
            client.model_ready("linear")
    lines = [r.getMessage() for r in caplog.records if r.name == "modeld"]
    assert any("model_ready of model 'linear'" in line and "retry 1 in" in line
               for line in lines), lines
