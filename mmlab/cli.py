"""The ``mmlab`` command: teaching tools, data tools and benchmarks.

    mmlab assign [--check]                       solutions/ -> exercises/
    mmlab book [--fast] [--out DIR] [-j N] [--data DIR] [--syllabus]   the course as a website
    mmlab grade DIR_OR_FILES --assignment NAME [--csv OUT] [--feedback DIR] [--json] [--manual CSV]
    mmlab start CHAPTER [--dir work] [--fresh]    copy an exercise into your own folder
    mmlab data make SCENARIO --subjects N --seed S --out DIR
    mmlab data info PATH [--json]
    mmlab data fetch NAME [--dest DIR]
    mmlab bench {data,features,contrastive,fusion,stress,emotion,federated,maintenance,dashboard,serve} [--json]
    mmlab stress {train,evaluate,stream} ...
    mmlab emotion {train,evaluate,predict} ...
    mmlab federated up --hospitals N [--rounds R] [--json]
    mmlab maintenance {train,evaluate,drift} ...
    mmlab dashboard --data DIR [--port N] [--demo] [--add-user NAME --role R --wards A,B]
    mmlab serve --model MODEL_OR_REGISTRY/ [--port N] [--host H]

Each subcommand imports what it needs when it runs, so ``mmlab --help`` is instant.
``data make`` writes subject by subject with progress on stderr (``--quiet`` for none);
an existing cohort in ``--out`` is replaced only with ``--overwrite``; ``--set KNOB=VALUE``
changes a scenario knob.
Project errors (:class:`mmlab.MMLabError`) and bad arguments print as one line on stderr
with exit code 2; a missing optional package names the extra that installs it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mmlab.errors import MMLabError
from mmlab.parallel import scheduler_argument


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _print_result(args: argparse.Namespace, title: str, result: dict) -> None:
    """``result`` as one JSON object with ``--json``, else as ``key  value`` lines and tables."""
    if args.json:
        _print_json(result)
        return
    from mmlab import bench

    print(bench.format_result(title, result).replace("mmlab bench ", "mmlab ", 1))


# ------------------------------------------------------------------------ teaching
def _cmd_assign(args: argparse.Namespace) -> int:
    from mmlab.teach.assign import assign_all

    report = assign_all(Path(args.source), Path(args.release), check=args.check)
    for line in report.lines:
        print(line)
    return 1 if (args.check and report.stale) else 0


def _cmd_book(args: argparse.Namespace) -> int:
    from mmlab.teach import book

    root = Path(args.root)
    if args.syllabus:
        target = root / "docs" / "syllabus.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(book.render_syllabus(root / "notebooks"))
        print(f"wrote {target}")
        return 0
    result = book.build(root, args.out, fast=args.fast, jobs=args.jobs, data_dir=args.data,
                        log=lambda line: print(line, flush=True))
    ran = sum(not r.cached for r in result.runs)
    print(f"book: {result.html / 'index.html'} in {result.seconds:.0f} s "
          f"({ran} chapters executed, {len(result.runs) - ran} from the cache, "
          f"{sum(result.figures.values())} figures)")
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if result.warnings:
        print(f"book: {len(result.warnings)} warnings (treated as errors)", file=sys.stderr)
    return 0 if result.ok else 1


def _cmd_grade(args: argparse.Namespace) -> int:
    from mmlab.teach.grade import (format_table, grade_batch, read_manual, read_roster, write_feedback,
                                   write_gradebook, write_manual_template)

    roster = read_roster(Path(args.roster)) if args.roster else None
    manual = read_manual(Path(args.manual)) if args.manual else None

    def progress(r):
        if not args.json:
            print(format_table(r), flush=True)

    results = grade_batch(
        args.submissions, args.assignment, roster=roster, progress=progress,
        source_dir=Path(args.source) if args.source else None, cell_timeout=args.timeout,
        notebook_timeout=args.notebook_timeout, output_cap=args.output_cap, unsafe=args.unsafe,
        memory_mb=args.memory_mb, manual=manual)
    if args.csv:
        write_gradebook(results, Path(args.csv))
    if args.manual_template:
        write_manual_template(results, Path(args.manual_template))
    if args.feedback:
        for r in results:
            write_feedback(r, Path(args.feedback))
    if args.json:
        for r in results:
            r.pop("cells", None)
        _print_json(results[0] if len(results) == 1 else results)
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    from mmlab.teach.learner import start

    path, created = start(args.chapter, args.dir, fresh=args.fresh)
    if created:
        print(f"your copy: {path}")
        print("open it in JupyterLab (make lab), work there, save, and run its last cell to check yourself")
    else:
        print(f"you already have a copy: {path} (kept as it is; nothing was overwritten)")
        print(f"carry on there, or run `mmlab start {args.chapter} --fresh` for a new numbered copy")
    return 0


def _positive_seconds(text: str) -> float:
    """argparse type: a positive finite number of seconds (0, negatives, nan, inf refused)."""
    from mmlab.validate import check_positive

    try:
        return check_positive(text, "the timeout", unit="seconds")
    except MMLabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------------------- data
class UsageError(MMLabError, ValueError):
    """A command-line argument is malformed (exit code 2, like argparse's own errors)."""


def _parse_knobs(pairs: list[str] | None) -> dict:
    knobs = {}
    for kv in pairs or []:
        name, sep, text = kv.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set {kv!r}: expected KNOB=VALUE, e.g. --set clock_drift_ppm=50")
        knobs[name.strip()] = _parse_value(text)
    return knobs


def _check_out(text: str) -> Path:
    """The ``--out`` folder, refused early if it cannot be a folder (before any generating)."""
    if not text.strip():
        raise UsageError("--out is empty; give the folder to write the cohort to")
    out = Path(text).expanduser()
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--out {text!r}: {parent} is a file, not a folder")
    return out


def _cmd_data_make(args: argparse.Namespace) -> int:
    from mmlab.synth import write_cohort

    knobs = _parse_knobs(args.set)
    own = {"fast": "--fast", "seed": "--seed", "n_subjects": "--subjects", "overwrite": "--overwrite"}
    taken = sorted(set(knobs) & set(own))
    if taken:
        raise UsageError(f"--set {taken[0]}: use {own[taken[0]]} instead (it is not a scenario knob)")
    out = _check_out(args.out)
    if args.subjects < 1:
        raise UsageError(f"--subjects must be a positive integer, got {args.subjects}")
    start, written = time.perf_counter(), [0]

    def progress(done: int, total: int, subject: str) -> None:
        written[0] = done
        if args.quiet:
            return
        elapsed = time.perf_counter() - start
        eta = elapsed / done * (total - done)
        print(f"[{done}/{total}] {subject} written ({elapsed:.1f} s, about {eta:.0f} s left)",
              file=sys.stderr, flush=True)

    try:
        folder = write_cohort(args.scenario, out, n_subjects=args.subjects, seed=args.seed,
                              fast=args.fast, overwrite=args.overwrite, progress=progress, **knobs)
    except KeyboardInterrupt:
        print(f"mmlab: interrupted after {written[0]} of {args.subjects} subjects; {out} is marked "
              "incomplete (Cohort.load refuses it); run again with --overwrite", file=sys.stderr)
        return 130
    print(f"wrote {args.subjects} {args.scenario} subjects to {folder}")
    return 0


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _cmd_data_info(args: argparse.Namespace) -> int:
    from mmlab.io import describe, format_description

    info = describe(Path(args.path))
    if args.json:
        _print_json(info)
    else:
        print(format_description(info))
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from mmlab.io.registry import fetch

    path = fetch(args.name, dest=Path(args.dest) if args.dest else None)
    print(f"{args.name}: {path}")
    return 0


# -------------------------------------------------------------------------- stress
def _stress_params(args: argparse.Namespace, preset: str | None = None) -> dict:
    """A preset's parameters, then --model/--baseline/--baseline-s, then every --set."""
    from mmlab.systems.stress import PRESETS

    preset = preset or args.preset
    if preset not in (*PRESETS, "select"):
        raise SystemExit(f"mmlab stress: unknown --preset {preset!r}; choose one of {[*PRESETS, 'select']}")
    params = dict(PRESETS[preset]) if preset != "select" else {}
    for name in ("model", "baseline", "baseline_s"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    return {**params, **_parse_knobs(args.set)}


def _stress_select(args: argparse.Namespace, recs):
    """``--preset select``: every preset (with the command's own settings on top), chosen
    between by leave-one-subject-out."""
    from mmlab.systems.stress import PRESETS, select_loso

    return select_loso({n: _stress_params(args, n) for n in PRESETS}, recs, scheduler=args.scheduler,
                       progress=not args.quiet)


def _cmd_stress_train(args: argparse.Namespace) -> int:
    from mmlab.systems.stress import StressDetector, open_recordings

    out = _check_out(args.out)
    recs = open_recordings(args.data, args.subjects)
    preset = args.preset
    if preset == "select":
        ev = _stress_select(args, recs)
        preset = ev.selection["final"]
        print(f"chosen by leave-one-subject-out: preset {preset!r} (per held-out subject: {ev.selection['chosen']})")
    det = StressDetector.from_params(_stress_params(args, preset))
    det.fit(recs, scheduler=args.scheduler, progress=not args.quiet)
    det.save(out)
    print(f"saved a stress detector ({', '.join(det.modalities_)}; {det.n_train_windows_} training windows) to {out}")
    return 0


def _cmd_stress_evaluate(args: argparse.Namespace) -> int:
    from mmlab.systems.stress import StressDetector, evaluate_loso, open_recordings

    recs = open_recordings(args.data, args.subjects)
    if args.preset == "select":
        ev = _stress_select(args, recs)
    else:
        ev = evaluate_loso(StressDetector.from_params(_stress_params(args)), recs, scheduler=args.scheduler,
                           progress=not args.quiet)
    result = {**ev.summary(), "per_subject": ev.per_subject().round(4).to_dict("records")}
    if ev.selection:
        result["selection"] = {k: ev.selection[k] for k in ("chosen", "final", "metric")}
    _print_result(args, "stress evaluate", result)
    return 0


def _cmd_stress_stream(args: argparse.Namespace) -> int:
    from mmlab.recording import Recording
    from mmlab.systems.stress import StressDetector, open_recordings, stream_chunks

    det = StressDetector.load(args.model)
    path = Path(args.recording)
    if any(path.glob("sub-*_recording.json")):
        rec = Recording.load(path, mmap=True)
    else:
        sources = open_recordings(path, [args.subject] if args.subject else None)
        if len(sources) > 1:
            raise SystemExit(f"mmlab stress stream: {path} holds {len(sources)} subjects; choose one with --subject")
        rec = sources[0].load()
    for event in det.stream(stream_chunks(rec, args.chunk_s), subject=rec.subject):
        if event["event"] != "window" or args.windows:
            print(json.dumps(event, default=_jsonable_default), flush=True)
    return 0


# ------------------------------------------------------------------------- emotion
def _emotion_recognizer(args: argparse.Namespace):
    from mmlab.systems.emotion import EmotionRecognizer

    mods = ("voice", "text") if args.modalities == "both" else (args.modalities,)
    return EmotionRecognizer(fusion=args.fusion, modalities=mods, text=args.text, random_state=args.seed)


def _cmd_emotion_train(args: argparse.Namespace) -> int:
    from mmlab.systems.emotion import load_utterances

    out = _check_out(args.out)
    rec = _emotion_recognizer(args).fit(load_utterances(args.data, calls=args.calls, seed=args.seed))
    rec.save(out)
    calls = "" if rec.call_model_ is None else ", per-call satisfaction"
    print(f"saved an emotion recognizer ({args.fusion}: {', '.join(rec.calibrated_.modalities_)}; "
          f"{rec.n_train_} utterances; classes {', '.join(map(str, rec.classes_))}{calls}) to {out}")
    return 0


def _cmd_emotion_evaluate(args: argparse.Namespace) -> int:
    from mmlab.systems.emotion import evaluate, load_utterances

    ev = evaluate(_emotion_recognizer(args), load_utterances(args.data, calls=args.calls, seed=args.seed))
    result = {k: v for k, v in ev.items() if k not in ("utterances", "calls")}
    _print_result(args, "emotion evaluate", result)
    return 0


def _cmd_emotion_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from mmlab.io.audio import load_audio
    from mmlab.systems.emotion import EmotionRecognizer

    rec = EmotionRecognizer.load(args.model)
    x, sr = load_audio(args.audio)
    utt = pd.DataFrame([{"audio": x, "sr": sr, "text": args.text}])
    row = rec.predict_proba(utt).iloc[0]
    expl = rec.explain(utt)
    _print_json({"file": str(args.audio), "predicted": row["predicted"],
                 "proba": {str(c): float(row[f"p_{c}"]) for c in rec.classes_},
                 "modality_contributions": expl["modalities"],
                 "present": {m: bool(row[f"present_{m}"]) for m in ("voice", "text")},
                 "flags": [f for f in row["flags"].split(";") if f]})
    return 0


def _jsonable_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# --------------------------------------------------------------------- maintenance
def _maintenance_monitor(args: argparse.Namespace):
    from mmlab.systems.maintenance import MaintenanceMonitor
    from mmlab.validate import check_params

    return check_params(MaintenanceMonitor, _parse_knobs(args.set), error=UsageError)


def _cmd_maintenance_train(args: argparse.Namespace) -> int:
    from mmlab.systems.maintenance import MaintenanceMonitor, load_cohort

    out = _check_out(args.out)
    mon = MaintenanceMonitor(**_maintenance_monitor(args)).fit(load_cohort(args.data))
    mon.save(out)
    print(f"saved a maintenance monitor ({', '.join(mon.modalities_)}; classes {', '.join(mon.classes_)}) to {out}")
    return 0


def _cmd_maintenance_evaluate(args: argparse.Namespace) -> int:
    from mmlab.systems._maintenance_eval import evaluate, split_windows
    from mmlab.systems.maintenance import load_cohort

    params = _maintenance_monitor(args)
    split = split_windows(load_cohort(args.data), params.get("window_s", 5.0), args.test_fraction, args.seed)
    result, _ = evaluate(split, seed=args.seed, **params)
    _print_result(args, "maintenance evaluate", result)
    return 0


def _cmd_maintenance_drift(args: argparse.Namespace) -> int:
    from mmlab.systems.maintenance import MaintenanceMonitor, load_cohort

    mon = MaintenanceMonitor.load(args.model)
    rep = mon.drift_report(load_cohort(args.data))
    if args.json:
        _print_json({m: {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                     for m, row in rep.astype(object).to_dict("index").items()})
    else:
        print(rep.to_string())
        flagged = rep.index[rep["drift"]].tolist()
        print(f"drift in: {', '.join(flagged)}" if flagged else "no drift flagged")
    return 0


# ----------------------------------------------------------------------- dashboard
def _cmd_dashboard(args: argparse.Namespace) -> int:
    import getpass
    import os
    import subprocess

    from mmlab.deploy.dashboard import Users, demo
    from mmlab.deploy.dashboard.server import command

    data = Path(args.data).expanduser()
    if args.add_user:
        password = os.environ.get("MMLAB_DASHBOARD_PASSWORD") or getpass.getpass(f"password for {args.add_user}: ")
        Users(data / "users.json").add(args.add_user, password, args.role, [w for w in args.wards.split(",") if w])
        print(f"user {args.add_user} ({args.role}; wards {args.wards}) written to {data / 'users.json'} (scrypt hash)")
        return 0
    if args.demo:
        made = demo(data, n_icu=args.patients, seed=args.seed)
        print(f"synthetic tables written to {data}")
        for name, pw in made.items():
            print(f"  demo user {name}: password {pw}   (shown once; only its hash is stored)")
    if args.screenshots:
        from mmlab.deploy.dashboard.server import screenshots

        password = os.environ.get("MMLAB_DASHBOARD_PASSWORD") or getpass.getpass(f"password for {args.user}: ")
        for path in screenshots(data, args.screenshots, args.user, password):
            print(path)
        return 0
    if args.no_serve:
        return 0
    cmd, env = command(data, args.port, args.address)
    print(f"mmlab dashboard on http://{args.address}:{args.port}/app (Ctrl-C stops it)", file=sys.stderr)
    return subprocess.run(cmd, env=env).returncode


# --------------------------------------------------------------------------- federated
def _cmd_federated_up(args: argparse.Namespace) -> int:
    from mmlab.systems.federated import federation_up

    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"mmlab federated: {msg}", file=sys.stderr,
                                                                   flush=True))
    options = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise MMLabError(f"--set {item!r}: use KEY=VALUE (keys: see mmlab.systems.federated.DEFAULTS)")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    res = federation_up(hospitals=args.hospitals, rounds=args.rounds, experiments=args.experiments,
                        subjects=args.subjects, seed=args.seed, workdir=args.workdir, timeout=args.timeout,
                        options=options, progress=say)
    summary = {"run_id": res.get("run_id"), "hospitals": args.hospitals, "rounds": args.rounds,
               "wall_s": round(res["wall_s"], 2), "processes": res["processes"],
               "killed": res["killed"], "left_running": res["left_running"], "workdir": res["workdir"]}
    for name, r in res.get("experiments", {}).items():
        ev = r.get("evaluate_metrics", {})
        last = ev[max(ev, key=int)] if ev else {}
        summary[name] = {"auroc_by_round": {k: round(v["auroc"], 4) for k, v in ev.items()},
                         "epsilon": r.get("epsilon"), "failures": len(r["audit"]["failures"]),
                         "rejected": len(r["audit"]["rejected"]), "auroc_last": last.get("auroc")}
    _print_result(args, "federated up", summary)
    return 0 if not res["left_running"] else 1


# --------------------------------------------------------------------------- serve
def _cmd_serve(args: argparse.Namespace) -> int:
    from mmlab.deploy.serve import serve

    serve(args.model, port=args.port, host=args.host, batch_wait_ms=args.batch_wait_ms)
    return 0


# --------------------------------------------------------------------------- bench
def _cmd_bench(args: argparse.Namespace) -> int:
    from mmlab import bench

    result = bench.run(args.topic, **{k: v for k, v in vars(args).items()
                                      if k in ("subjects", "seed", "scenario", "data", "scheduler", "preset")
                                      and v is not None},
                       **({"params": _parse_knobs(args.set)} if args.set else {}))
    if args.json:
        _print_json(result)
    else:
        print(bench.format_result(args.topic, result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mmlab.bench import TOPICS as bench_topics

    parser = argparse.ArgumentParser(prog="mmlab", description="mmlab: multimodal data analysis workbook")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("assign", help="generate exercises/ from solutions/")
    p.add_argument("--source", default="solutions", help="folder of solution notebooks (default: solutions)")
    p.add_argument("--release", default="exercises", help="folder to write exercises to (default: exercises)")
    p.add_argument("--check", action="store_true", help="only check exercises/ is up to date (exit 1 if not)")
    p.set_defaults(func=_cmd_assign)

    p = sub.add_parser("start", help="copy a chapter's exercise into your own folder (work/) and print its path")
    p.add_argument("chapter", help="the chapter: 12, 12_ecg_hrv or 12_ecg_hrv.ipynb")
    p.add_argument("--dir", help="your folder (default: work/ at the project root)")
    p.add_argument("--fresh", action="store_true",
                   help="write a new numbered copy (NAME-2.ipynb, ...) beside an existing one (never overwrites)")
    p.set_defaults(func=_cmd_start)
    p = sub.add_parser("book", help="build the course as a static website (_build/book/html)")
    p.add_argument("--fast", action="store_true", help="show FAST runs of the chapters (quick; for CI)")
    p.add_argument("--out", default=None, help="output folder (default: _build/book; the site is OUT/html)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="chapters executed in parallel (default 1)")
    p.add_argument("--data", default=None, help="DATA_DIR passed to the chapters (default: none, synthetic data)")
    p.add_argument("--root", default=".", help="project root (default: the current folder)")
    p.add_argument("--syllabus", action="store_true", help="only regenerate docs/syllabus.md from the chapter headers")
    p.set_defaults(func=_cmd_book)

    p = sub.add_parser("grade", help="autograde submitted notebooks in a sandbox")
    p.add_argument("submissions", nargs="+", help="submitted .ipynb files or folders of them (never modified)")
    p.add_argument("--assignment", required=True,
                   help="the assignment, chosen by you: a solution name (12_ecg_hrv) or a solution .ipynb")
    p.add_argument("--source", help="folder of solution notebooks (default: ./solutions or the project's)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--csv", help="write a gradebook CSV, one row per submission")
    p.add_argument("--feedback", help="write one HTML feedback page per submission into this folder")
    p.add_argument("--roster", help="CSV of file name,student id (default: the file name before '_')")
    p.add_argument("--manual", help="CSV of student,grade_id,points: your points for written answers "
                                    "(merged into the table, JSON, gradebook and feedback)")
    p.add_argument("--manual-template", help="write a CSV of every written answer (student, grade_id, "
                                             "points, max_points, answer) to fill in and pass back with --manual")
    p.add_argument("--timeout", type=_positive_seconds, default=60.0, help="seconds per cell (default 60)")
    p.add_argument("--notebook-timeout", type=_positive_seconds, default=600.0,
                   help="seconds per submission, all cells together (default 600)")
    p.add_argument("--output-cap", type=int, default=10_000, help="characters of output kept per cell")
    p.add_argument("--memory-mb", type=int, default=4096, help="address-space limit per submission (MiB)")
    p.add_argument("--unsafe", action="store_true",
                   help="grade without the sandbox (only for your own notebooks; refused otherwise "
                        "when bubblewrap is missing)")
    p.set_defaults(func=_cmd_grade)

    data = sub.add_parser("data", help="make, inspect and fetch datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("make", help="generate a synthetic cohort")
    p.add_argument("scenario", help="stress_protocol, call_center, icu_ward or factory")
    p.add_argument("--subjects", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="new folder (written subject by subject)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an mmlab cohort already in --out (no stale subject is left)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--fast", action="store_true", help="short sessions (for tests and FAST notebooks)")
    p.add_argument("--set", action="append", metavar="KNOB=VALUE", help="scenario knob, e.g. --set clock_drift_ppm=50")
    p.set_defaults(func=_cmd_data_make)
    p = data.add_parser("info", help="describe a saved cohort or a real-dataset folder")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_data_info)
    p = data.add_parser("fetch", help="download a real dataset from its official source")
    p.add_argument("name")
    p.add_argument("--dest", help="download folder (default: $MMLAB_CACHE or ~/.cache/mmlab)")
    p.set_defaults(func=_cmd_data_fetch)

    p = sub.add_parser("bench", help="benchmarks that print figures")
    p.add_argument("topic", help="a benchmark: " + ", ".join(bench_topics))
    p.add_argument("--json", action="store_true")
    p.add_argument("--subjects", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--scenario")
    p.add_argument("--data", help="a dataset folder instead of the synthetic default (bench stress)")
    p.add_argument("--scheduler", type=scheduler_argument, help="dask: 'local' or a scheduler address (bench stress)")
    p.add_argument("--preset", help="bench stress: a preset of mmlab.systems.stress.PRESETS, or 'select' to "
                                    "choose by leave-one-subject-out (default: 'select' with --data, else 'default')")
    p.add_argument("--set", action="append", metavar="PARAM=VALUE",
                   help="a parameter of the benchmarked system, e.g. --set baseline=rolling (bench stress)")
    p.set_defaults(func=_cmd_bench)

    stress = sub.add_parser("stress", help="the wearable stress system (chapter 50)").add_subparsers(
        dest="stress_command", required=True)
    for name, helptext in (("train", "fit a stress detector on a dataset folder and save it"),
                           ("evaluate", "leave-one-subject-out evaluation on a dataset folder")):
        p = stress.add_parser(name, help=helptext)
        p.add_argument("data", help="a saved mmlab cohort, a Stress-Predict or a WESAD folder")
        p.add_argument("--subjects", nargs="+", help="only these subjects")
        p.add_argument("--preset", default="default",
                       help="named settings of mmlab.systems.stress.PRESETS ('default', 'adaptive'), or "
                            "'select' to choose between them by leave-one-subject-out")
        p.add_argument("--model", choices=("temporal", "early", "forest", "attention"),
                       help="the fused model (default: the preset's)")
        p.add_argument("--baseline", choices=("first", "rolling", "rest", "all", "none"),
                       help="per-person calibration (default: the preset's)")
        p.add_argument("--baseline-s", type=_positive_seconds, help="calibration period, seconds")
        p.add_argument("--scheduler", type=scheduler_argument,
                       help="dask.distributed: 'local' or a scheduler address (default: serial)")
        p.add_argument("--set", action="append", metavar="PARAM=VALUE",
                       help="a StressDetector parameter, e.g. --set block_s=30 --set k=3")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "train":
            p.add_argument("--out", required=True, help="model folder to write")
            p.set_defaults(func=_cmd_stress_train)
        else:
            p.add_argument("--json", action="store_true")
            p.set_defaults(func=_cmd_stress_evaluate)
    p = stress.add_parser("stream", help="stream one recording through a saved model; alerts as JSON lines")
    p.add_argument("recording", help="a dataset folder (with --subject) or one subject's folder of a saved cohort")
    p.add_argument("--model", required=True, help="folder written by `mmlab stress train`")
    p.add_argument("--subject", help="which subject of the dataset folder")
    p.add_argument("--chunk-s", type=_positive_seconds, default=1.0, help="seconds of data per chunk")
    p.add_argument("--windows", action="store_true", help="print every decided window too")
    p.set_defaults(func=_cmd_stress_stream)

    emotion = sub.add_parser("emotion", help="the call-centre emotion system (chapter 51)").add_subparsers(
        dest="emotion_command", required=True)
    for name, helptext in (("train", "fit an emotion recognizer on a dataset and save it"),
                           ("evaluate", "out-of-sample evaluation (leave-one-speaker-out or folds by call)")):
        p = emotion.add_parser(name, help=helptext)
        p.add_argument("data", help="an Emo-DB folder, a saved call_center cohort, or 'call_center' (synthetic)")
        p.add_argument("--fusion", default="early", choices=("early", "late", "stacking", "attention"))
        p.add_argument("--modalities", default="both", choices=("both", "voice", "text"))
        p.add_argument("--text", default="minilm", choices=("minilm", "tfidf"), help="the text tower")
        p.add_argument("--calls", type=int, default=60, help="calls of the synthetic call_center (default 60)")
        p.add_argument("--seed", type=int, default=0)
        if name == "train":
            p.add_argument("--out", required=True, help="model folder to write")
            p.set_defaults(func=_cmd_emotion_train)
        else:
            p.add_argument("--json", action="store_true")
            p.set_defaults(func=_cmd_emotion_evaluate)
    p = emotion.add_parser("predict", help="one utterance: emotion probabilities and modality contributions (JSON)")
    p.add_argument("audio", help="a WAV file")
    p.add_argument("--text", help="its transcript")
    p.add_argument("--model", required=True, help="folder written by `mmlab emotion train`")
    p.set_defaults(func=_cmd_emotion_predict)
    maint = sub.add_parser("maintenance", help="the predictive-maintenance system (chapter 53)").add_subparsers(
        dest="maintenance_command", required=True)
    for name, helptext in (("train", "fit a maintenance monitor on a saved factory cohort and save it"),
                           ("evaluate", "machine-wise evaluation: per-modality and fused F1, AUROC, lead time"),
                           ("drift", "per-modality drift report of a saved monitor on new data")):
        p = maint.add_parser(name, help=helptext)
        p.add_argument("data", help="a saved mmlab cohort (e.g. `mmlab data make factory --out DIR`)")
        if name != "drift":
            p.add_argument("--set", action="append", metavar="PARAM=VALUE",
                           help="a MaintenanceMonitor parameter, e.g. --set epochs=60 --set window_s=10")
        if name == "train":
            p.add_argument("--out", required=True, help="model folder to write")
            p.set_defaults(func=_cmd_maintenance_train)
        elif name == "evaluate":
            p.add_argument("--test-fraction", type=float, default=0.3, help="share of machines held out")
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--json", action="store_true")
            p.set_defaults(func=_cmd_maintenance_evaluate)
        else:
            p.add_argument("--model", required=True, help="folder written by `mmlab maintenance train`")
            p.add_argument("--json", action="store_true")
            p.set_defaults(func=_cmd_maintenance_drift)

    p = sub.add_parser("dashboard", help="serve the clinician dashboard (Panel) over a data folder")
    p.add_argument("--data", required=True, help="folder with risk.csv, alerts.jsonl, signals.csv, users.json")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--demo", action="store_true", help="first write synthetic tables and demo users into --data")
    p.add_argument("--patients", type=int, default=12, help="ICU patients of --demo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-serve", action="store_true", help="only write (--demo), do not serve")
    p.add_argument("--add-user", metavar="NAME", help="add a user (password from MMLAB_DASHBOARD_PASSWORD or a prompt)")
    p.add_argument("--role", default="clinician", help="clinician or supervisor (--add-user)")
    p.add_argument("--wards", default="*", help="comma-separated wards, '*' for all (--add-user)")
    p.add_argument("--screenshots", metavar="OUT", help="save ward.png and patient.png as --user (headless chromium)")
    p.add_argument("--user", default="supervisor", help="who signs in for --screenshots")
    p.set_defaults(func=_cmd_dashboard)

    fed = sub.add_parser("federated", help="federated health monitoring across hospitals (chapter 52)").add_subparsers(
        dest="federated_command", required=True)
    p = fed.add_parser("up", help="a SuperLink + one SuperNode per hospital on localhost: run, then shut down")
    p.add_argument("--hospitals", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--experiments", default="fedavg", help="comma-separated: fedavg, fedprox, dp:<noise multiplier>")
    p.add_argument("--subjects", type=int, help="patients in the synthetic icu_ward cohort (default 8 per hospital)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="folder for hospital data, app, logs and result (default: a new temporary one)")
    p.add_argument("--timeout", type=_positive_seconds, default=900.0, help="seconds to wait for the run")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a federation option, e.g. --set local-epochs=1 --set fraction-evaluate=0")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_cmd_federated_up)


    p = sub.add_parser("serve", help="serve a stress model (or a registry's current version) over HTTP")
    p.add_argument("--model", required=True, help="folder written by `mmlab stress train`, or a registry folder")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0, help="dynamic batching: wait this long for more requests")
    p.set_defaults(func=_cmd_serve)
    return parser


#: Optional packages some commands need, and the extra of ``pip install "mmlab[...]"`` that has them.
_EXTRAS = {"jupyter_client": "teach", "nbclient": "teach", "nbformat": "teach", "ipykernel": "teach",
           "papermill": "book", "sphinx": "book", "myst_nb": "book",
           "sphinx_book_theme": "book", "jupyter_server_mathjax": "book", "pytest": "test", "jupyterlab": "lab", "onnx": "deploy",
           "onnxruntime": "deploy", "onnxscript": "deploy", "fastapi": "deploy", "pydantic": "deploy", "uvicorn": "deploy",
           "httpx": "deploy", "panel": "deploy", "bokeh": "deploy", "tornado": "deploy",
           "playwright": "deploy"}


def main(argv: list[str] | None = None) -> int:
    """Run the ``mmlab`` command; returns the exit code.

    0 on success; 2 for a bad argument or any project error (one line on stderr, no
    traceback); 1 for a file-system error; 130 when interrupted (Ctrl-C).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MMLabError as exc:
        print(f"mmlab: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in _EXTRAS:
            raise
        print(f"mmlab: error: `mmlab {args.command}` needs the optional package {top!r}; "
              f"install it with: pip install \"mmlab[{_EXTRAS[top]}]\"", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"mmlab: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
