"""The benchmark end to end on the lab: convert.yml makes the variants of
the sparse and server workloads, bench.yml measures each once (plus a
forced fallback: stargz on the plain image; server readiness by URL),
bench_report writes the four report files.

Needs the lab with one converged host (tests/ci/integration.sh).
"""

import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
STATE = os.environ.get("LAZYPULL_LAB_STATE", "/var/lib/lazypull-lab")
LAB = json.load(open(os.path.join(STATE, "lab.json")))
REG = LAB["registry"]["host"]
INVENTORY = os.path.join(REPO, "inventories", "lab")


def playbook(*args):
    proc = subprocess.run(["ansible-playbook", "-i", INVENTORY, *args], cwd=REPO, capture_output=True,
                          text=True, check=False)
    print(proc.stdout[-5000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    results_dir = tmp_path_factory.mktemp("bench-results")
    playbook(os.path.join(REPO, "playbooks", "convert.yml"))
    extra = {"bench_repetitions": 1, "bench_results_dir": str(results_dir), "bench_run_id": "ci-smoke",
             "bench_warm_runs": 1,
             # The forced fallback: stargz on an image that is not eStargz.
             "bench_lab_catalog_extra": {"sparse": {"variants": {"stargz-on-plain": {
                 "image": "%s/lazypull/sparse:1" % REG, "snapshotter": "stargz"}}}}}
    out = playbook(os.path.join(REPO, "playbooks", "bench.yml"), "-e", json.dumps(extra))
    run_dir = results_dir / "ci-smoke"
    return {"dir": run_dir, "out": out, "results": json.loads((run_dir / "results.json").read_text())}


def test_all_four_report_files(bench):
    for name in ("results.json", "results.csv", "report.md", "report.png"):
        assert (bench["dir"] / name).stat().st_size > 100, name
    assert (bench["dir"] / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    csv_lines = (bench["dir"] / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(bench["results"]["runs"])


def runs_of(bench, workload):
    return {r["variant"]: r for r in bench["results"]["runs"] if r["workload"] == workload}


def test_every_variant_ran_once_and_was_ready(bench):
    assert sorted(runs_of(bench, "sparse")) == ["overlayfs", "soci", "stargz", "stargz-on-plain", "stargz-optimized"]
    assert sorted(runs_of(bench, "server")) == ["overlayfs", "soci", "stargz", "stargz-optimized"]
    for run in bench["results"]["runs"]:
        assert run["ok"], (run["workload"], run["variant"], run.get("problem"))
        assert run["bytes_source"] == "registry"
        assert run["total_seconds"] > 0


def test_server_readiness_by_url(bench):
    for name, run in runs_of(bench, "server").items():
        # ready only after the start script's warm-up (2 s), then the URL answered
        assert 2.0 <= run["run_seconds"] < 60, (name, run)
        assert run["exit_code"] is None  # stopped at readiness, not exited
        if run["snapshotter"] != "overlayfs":
            assert run["lazy"] is True, (name, run)


def test_lazy_variants_are_lazy_and_the_fallback_is_reported(bench):
    runs = runs_of(bench, "sparse")
    for name in ("stargz", "stargz-optimized", "soci"):
        assert runs[name]["lazy"] is True and runs[name]["fallback"] is False, runs[name]
        assert runs[name]["bytes_fetched"] < 0.2 * runs[name]["image_compressed_size"], runs[name]
    plain = runs["stargz-on-plain"]
    assert plain["lazy"] is False and plain["fallback"] is True, plain
    assert plain["bytes_fetched"] > 0.9 * plain["image_compressed_size"]
    assert runs["overlayfs"]["lazy"] is False and runs["overlayfs"]["fallback"] is False


def test_report_has_floor_and_progress_lines(bench):
    report = (bench["dir"] / "report.md").read_text()
    assert "| **floor** |" in report
    assert "| stargz-on-plain | 1/1 | 0 / 1 |" in report
    floor = bench["results"]["floor"]["sparse"]
    assert floor["seconds"] and floor["seconds"] > floor["warm_run_seconds"]
    # one progress line per finished run
    assert bench["out"].count("round 1 sparse/") >= 5 and bench["out"].count("round 1 server/") >= 4
    assert "FALLBACK" in bench["out"]
