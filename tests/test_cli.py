"""The `mmlab data ...` command line: clear one-line errors (exit 2), no stale or silent
results, progress and subject-by-subject writing for big cohorts."""

from __future__ import annotations

import json
import re

import pytest

from mmlab import cli, recording
from mmlab.errors import DataFormatError, DatasetError, SchemaError
from mmlab.recording import Cohort, CohortWriter, Recording
from mmlab.synth import make_cohort, write_cohort

FAST = ["--fast", "--set", "minutes=0.1", "--set", "image_every_s=3"]  # factory: ~0.1 s/subject


def _make(out, *extra, subjects=2):
    return cli.main(["data", "make", "factory", "--subjects", str(subjects), "--out", str(out),
                     "--quiet", *FAST, *extra])


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------ data make: arguments
@pytest.mark.parametrize("args, fragment", [
    (["--set", "novalue"], "--set 'novalue': expected KNOB=VALUE"),
    (["--set", "=3"], "expected KNOB=VALUE"),
    (["--set", "clock_drift_ppm=1e9"], "knob 'clock_drift_ppm' must be <= 10000, got 1000000000.0"),
    (["--set", "clock_offset_s=-1"], "knob 'clock_offset_s' must be >= 0"),
    (["--set", "noise=nan"], "knob 'noise' must be a number, got 'nan'"),
    (["--set", "fast=true"], "--set fast: use --fast instead"),
    (["--set", "wobble=3"], "has no knob 'wobble'"),
    (["--subjects", "0"], "--subjects must be a positive integer, got 0"),
])
def test_bad_make_arguments_are_one_line_errors(tmp_path, capsys, args, fragment):
    out = tmp_path / "c"
    assert cli.main(["data", "make", "factory", "--out", str(out), *FAST, *args]) == 2
    err = _err(capsys)
    assert fragment in err and err.startswith("mmlab: error:") and err.count("\n") == 1
    assert not (out / "dataset_description.json").exists()


def test_bad_out_folders_are_refused_before_generating(tmp_path, capsys):
    assert _make("") == 2
    assert "--out is empty" in _err(capsys)
    (tmp_path / "FILE").write_text("x")
    assert _make(tmp_path / "FILE" / "x") == 2
    assert "FILE is a file, not a folder" in _err(capsys)
    assert _make(tmp_path / "FILE") == 2
    assert "is a file, not a folder" in _err(capsys)


def test_remaking_into_an_existing_cohort_needs_overwrite_and_leaves_no_stale_subject(tmp_path, capsys):
    out = tmp_path / "c"
    assert _make(out, subjects=2) == 0
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-M01", "sub-M02"]
    assert _make(out, subjects=1) == 2
    err = _err(capsys)
    assert "already exists and is not empty" in err and "--overwrite" in err
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-M01", "sub-M02"]  # untouched
    assert _make(out, "--overwrite", subjects=1) == 0
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-M01"]
    assert Cohort.load(out).subjects == ["M01"]


def test_overwrite_never_deletes_a_folder_that_is_not_a_cohort(tmp_path, capsys):
    keep = tmp_path / "thesis"
    keep.mkdir()
    (keep / "chapter1.tex").write_text("precious")
    assert _make(keep, "--overwrite") == 2
    err = _err(capsys)
    assert "not a saved mmlab cohort" in err and "refusing to delete it" in err
    assert (keep / "chapter1.tex").read_text() == "precious"


def test_make_prints_progress_per_subject(tmp_path, capsys):
    out = tmp_path / "c"
    assert cli.main(["data", "make", "factory", "--subjects", "3", "--out", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    lines = [l for l in captured.err.splitlines() if l.startswith("[")]
    assert [l.split()[0] for l in lines] == ["[1/3]", "[2/3]", "[3/3]"]
    assert "M03 written" in lines[-1]
    assert "wrote 3 factory subjects" in captured.out


# ------------------------------------------------------------------ data info
@pytest.mark.parametrize("junk, fragment", [
    ("hello\n", "not an annotations table: columns onset, duration, kind, label, text are missing"),
    ("a\tb\n1\t2\n", "columns onset, duration, kind, label, text are missing (found a, b"),
    ("onset\tduration\tkind\tlabel\ttext\nx\t1\tphase\trest\t\n", "onset 'x' is not a finite number"),
    ("", "not a readable TSV table"),
])
def test_data_info_on_junk_events_is_a_clear_error(tmp_path, capsys, junk, fragment):
    out = tmp_path / "c"
    assert _make(out) == 0
    events = out / "sub-M01" / "sub-M01_events.tsv"
    assert "\tlabel\tfailure" in events.read_text() or "\tlabel\thealthy" in events.read_text()  # annotations to lose
    events.write_text(junk)
    assert cli.main(["data", "info", str(out)]) == 2
    err = _err(capsys)
    assert "sub-M01_events.tsv" in err and fragment in err
    with pytest.raises(DataFormatError, match="sub-M01_events.tsv"):
        Recording.load(out / "sub-M01")


def test_a_missing_events_file_is_an_error_not_an_empty_table(tmp_path, capsys):
    out = tmp_path / "c"
    assert _make(out) == 0
    (out / "sub-M02" / "sub-M02_events.tsv").unlink()
    assert cli.main(["data", "info", str(out)]) == 2
    assert "sub-M02_events.tsv: file is missing" in _err(capsys)


def test_an_empty_annotations_table_round_trips(tmp_path):
    Cohort([Recording("01")]).save(tmp_path / "c")
    assert len(Cohort.load(tmp_path / "c")[0].annotations) == 0


def test_data_info_lists_the_annotations(tmp_path, capsys):
    out = tmp_path / "c"
    assert _make(out) == 0
    capsys.readouterr()
    assert cli.main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["labels"]["label"]["counts"]) <= {"healthy", "failure"}
    assert sum(info["labels"]["label"]["counts"].values()) == 2


# ------------------------------------------------------------------ subject-by-subject writing
def test_write_cohort_equals_make_cohort_saved(tmp_path):
    kw = dict(n_subjects=3, seed=4, fast=True, minutes=0.1, image_every_s=3.0)
    seen = []
    folder = write_cohort("factory", tmp_path / "w", progress=lambda d, n, s: seen.append((d, n, s)), **kw)
    assert seen == [(1, 3, "M01"), (2, 3, "M02"), (3, 3, "M03")]
    assert Cohort.load(folder).equals(make_cohort("factory", **kw))
    desc = json.loads((folder / "dataset_description.json").read_text())
    assert desc["complete"] is True and desc["subjects"] == ["M01", "M02", "M03"]


def test_interrupted_writing_is_marked_and_refused(tmp_path, capsys, monkeypatch):
    def stop_after_two(done, total, subject):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_cohort("factory", tmp_path / "w", n_subjects=4, fast=True, minutes=0.1,
                     image_every_s=3.0, progress=stop_after_two)
    desc = json.loads((tmp_path / "w" / "dataset_description.json").read_text())
    assert desc["complete"] is False and len(desc["subjects"]) == 4
    with pytest.raises(DataFormatError, match=r"the cohort is incomplete \(2 of 4 subjects written"):
        Cohort.load(tmp_path / "w")
    part = Cohort.load(tmp_path / "w", allow_incomplete=True)
    assert part.subjects == ["M01", "M02"] and part.meta["complete"] is False
    assert cli.main(["data", "info", str(tmp_path / "w")]) == 2
    assert "incomplete (2 of 4" in _err(capsys)
    # Ctrl-C in the command: exit 130, a message saying what is on disk, no traceback
    import mmlab.synth

    real = mmlab.synth.write_cohort

    def interrupted(*args, progress, **kwargs):
        return real(*args, progress=lambda d, n, s: (progress(d, n, s), stop_after_two(d, n, s)),
                    **kwargs)

    monkeypatch.setattr(mmlab.synth, "write_cohort", interrupted)
    assert _make(tmp_path / "x", subjects=3) == 130
    assert "interrupted after 2 of 3 subjects" in _err(capsys)
    with pytest.raises(DataFormatError, match="incomplete"):
        Cohort.load(tmp_path / "x")


def test_disk_space_guard_stops_early(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "_disk_free", lambda path: 10_000)  # 10 kB left
    with pytest.raises(DatasetError, match=r"not enough disk space .* the remaining 4 subjects need about"):
        write_cohort("factory", tmp_path / "w", n_subjects=5, fast=True, minutes=0.1, image_every_s=3.0)
    assert sorted(p.name for p in (tmp_path / "w").glob("sub-*")) == ["sub-M01"]
    with pytest.raises(DataFormatError, match="incomplete"):
        Cohort.load(tmp_path / "w")


def test_cohort_writer_refuses_duplicates_and_use_after_close(tmp_path):
    writer = CohortWriter(tmp_path / "c", subjects=["01"])
    writer.add(Recording("01"))
    with pytest.raises(SchemaError, match="duplicate subjects"):
        writer.add(Recording("01"))
    writer.close()
    with pytest.raises(SchemaError, match="closed"):
        writer.add(Recording("02"))


# ------------------------------------------------------------------ missing optional packages
def test_missing_optional_package_names_the_extra(monkeypatch, capsys):
    def needs_kernel(args):
        raise ModuleNotFoundError("No module named 'jupyter_client'", name="jupyter_client")

    monkeypatch.setattr(cli, "_cmd_data_info", needs_kernel)
    assert cli.main(["data", "info", "x"]) == 2
    err = _err(capsys)
    assert "needs the optional package 'jupyter_client'" in err and 'pip install "mmlab[teach]"' in err


def test_missing_required_package_is_not_hidden(monkeypatch):
    def broken(args):
        raise ModuleNotFoundError("No module named 'numpy'", name="numpy")

    monkeypatch.setattr(cli, "_cmd_data_info", broken)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["data", "info", "x"])


def test_every_optional_import_of_the_teaching_tools_names_its_extra():
    """`mmlab assign/grade` without the teach extra: main() must know which extra has each
    package mmlab.teach imports beyond the runtime dependencies."""
    import ast
    import sys
    import tomllib
    from importlib.metadata import packages_distributions
    from pathlib import Path

    root = Path(cli.__file__).resolve().parents[1]
    core = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-")
            for d in tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]}
    dists = packages_distributions()
    optional = set()
    for path in (root / "mmlab" / "teach").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for top in {n.split(".")[0] for n in names} - set(sys.stdlib_module_names) - {"mmlab"}:
                if not {d.lower().replace("_", "-") for d in dists.get(top, [top])} & core:
                    optional.add(top)
    assert optional, "mmlab.teach imports no optional package? then drop this test"
    assert optional <= set(cli._EXTRAS), sorted(optional - set(cli._EXTRAS))
