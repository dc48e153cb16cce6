"""The guard of tests/secret_guard.py: a run whose output holds a secret it used fails."""

import os

from tests.processes import ROOT

INNER = """
import logging, subprocess, sys
from tests import secret_guard

def test_a_process_that_logs_a_key(tmp_path):
    secret_guard.remember("sk-hub-LEAKEDleakedLEAKED123")
    log = tmp_path / "web.log"
    code = "import logging; logging.basicConfig(); logging.warning('key %s', 'sk-hub-LEAKEDleakedLEAKED123')"
    with log.open("w") as out:
        subprocess.run([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, check=True)

def test_a_record_in_process(tmp_path):
    secret_guard.remember("sk-prov-SECRETsecret456")
    logging.getLogger("inner").warning("%s", "sk-prov-SECRETsecret456" if {leak} else "nothing to see")
"""


def run_inner(pytester, *, leak: bool, subprocess_too: bool):
    pytester.makepyfile(test_inner=INNER.replace("{leak}", str(leak)))
    env = {"PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    selected = [] if subprocess_too else ["-k", "in_process"]
    for name, value in env.items():
        pytester._monkeypatch.setenv(name, value)
    return pytester.runpytest_subprocess(
        "-p", "no:django", "-p", "tests.secret_guard", "-p", "no:cacheprovider", *selected
    )


def test_it_fails_a_run_whose_subprocess_logged_a_key_it_used(pytester):
    result = run_inner(pytester, leak=False, subprocess_too=True)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*secret guard*", "*web.log:1: a secret the tests used (sk-hub…)*"])
    result.assert_outcomes(passed=2)


def test_it_fails_a_run_that_logged_a_provider_secret_in_process(pytester):
    result = run_inner(pytester, leak=True, subprocess_too=False)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*secret guard*", "*hub-test-log-*: a secret the tests used (sk-pro…)*"])


def test_a_clean_run_passes(pytester):
    result = run_inner(pytester, leak=False, subprocess_too=False)
    assert result.ret == 0, result.stdout.str()


CAPTURED = """
import subprocess, sys
from tests import secret_guard

def test_captured_output(tmp_path):
    secret_guard.remember("sk-hub-CAPTUREDcaptured789")
    code = "print('the key is sk-hub-CAPTUREDcaptured789' if {leak} else 'nothing')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout

def test_a_key_shown_where_it_is_meant_to_be(tmp_path):
    secret_guard.remember("sk-hub-DEMOdemoDEMO0001", shown_after=("API key:  ",))
    (tmp_path / "make-run.log").write_text("Base URL: x\\nAPI key:  sk-hub-DEMOdemoDEMO0001\\n")
    (tmp_path / "demo_api_key").write_text("sk-hub-DEMOdemoDEMO0001")  # its store, not output
    if {leak}:
        (tmp_path / "web.log").write_text("GET /v1/models key=sk-hub-DEMOdemoDEMO0001\\n")
"""


def run_captured(pytester, *, leak: bool):
    pytester.makepyfile(test_captured=CAPTURED.replace("{leak}", str(leak)))
    pytester._monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return pytester.runpytest_subprocess("-p", "no:django", "-p", "tests.secret_guard", "-p", "no:cacheprovider")


def test_it_searches_captured_subprocess_output_and_allows_a_key_only_where_it_is_shown(pytester):
    result = run_captured(pytester, leak=True)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*secret guard*"])
    out = result.stdout.str()
    assert "output of " in out and "-c print(" in out  # the captured output, by its command
    assert "web.log:1: a secret the tests used (sk-hub…)" in out
    assert "make-run.log" not in out and "demo_api_key" not in out
    result.assert_outcomes(passed=2)


def test_a_key_shown_only_where_it_is_meant_to_be_passes(pytester):
    result = run_captured(pytester, leak=False)
    assert result.ret == 0, result.stdout.str()
