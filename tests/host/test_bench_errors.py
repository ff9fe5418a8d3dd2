"""``tiersolve bench``: options that make no sense are one-line errors (exit status 2) before
any work, and plots go into folders that do not exist yet.

The work each benchmark would do is replaced by a stand-in that fails the test, so that a
check that no longer stops the run fails here quickly instead of hanging or computing for
minutes (``bench cholesky --k -2`` used to loop forever).
"""

from __future__ import annotations

import json

import pytest
from tiersolve.host.bench import build, cholesky, learn, qr
from tiersolve.host.cli import main


def _no_work(*args, **kwargs):
    raise AssertionError("the options should have been rejected before any work")


def _error(capsys, argv) -> str:
    """Run ``main(argv)``; check exit status 2 and one error line; return that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tiersolve bench: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("options, message", [
    (["--k", "-2"], "--k -2: k_max must be in 1..256, not -2"),
    (["--k", "0"], "--k 0: k_max must be in 1..256, not 0"),
    (["--n", "0"], "--n 0: give sizes of at least 1"),
    (["--n", "-5"], "--n -5: give sizes of at least 1"),
    (["--n", "2000"], "--n 2000: n_max must be in 2..1024, not 2000"),
    (["--lanes", "0"], "--lanes 0: lanes must be a power of two in 1..64, not 0"),
    (["--lanes", "3"], "--lanes 3: lanes must be a power of two in 1..64, not 3"),
    (["--lanes", "128"], "--lanes 128: lanes must be a power of two in 1..64, not 128"),
    (["--format", "Q3"], "--format Q3: cannot parse fixed-point format 'Q3'"),
    (["--format", "Q16.16"], "--format Q16.16: fmt Q16.16 is wider than 24 bits"),
    (["--inverse-format", "Q40.1"], "--inverse-format Q40.1: width int_bits + frac_bits = 41"),
    (["--inverse-format", "Q20.10"], "--inverse-format Q20.10: inverse_format Q20.10 must be "
                                     "2..24 bits wide"),
    (["--synth-config", "16,4"], "--synth-config wants N_MAX,K_MAX,LANES, not '16,4'"),
    (["--synth-config", "16,4,3"], "--synth-config 16,4,3: lanes must be a power of two"),
    (["--fmax-mhz", "0"], "--fmax-mhz 0: give a finite number above 0"),
    (["--fmax-mhz", "-5"], "--fmax-mhz -5: give a finite number above 0"),
    (["--fmax-mhz", "nan"], "--fmax-mhz nan: give a finite number above 0"),
    (["--repeats", "0"], "--repeats 0: give at least 1 timing repetition"),
    (["--blas-threads", "0"], "--blas-threads 0: give at least 1 BLAS thread"),
])
def test_bench_cholesky_rejects_bad_options(monkeypatch, tmp_path, capsys, options, message):
    monkeypatch.setattr(cholesky, "cycle_table", _no_work)
    monkeypatch.setattr(cholesky, "_synthesise", _no_work)
    argv = ["bench", "cholesky", "--n", "8", "--lanes", "4", "--repeats", "1",
            "--out", str(tmp_path / "out"), *options]
    assert message in _error(capsys, argv)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("bench", ["update", "qr"])
@pytest.mark.parametrize("options, message", [
    (["--n", "0"], "--n 0: give sizes of at least 1"),
    (["--k", "0"], "--k 0: give at least 1 right-hand side"),
    (["--units", "0"], "--units 0: units must be a power of two from 1 to 64, not 0"),
    (["--units", "x"], "--units x: give a power of two from 1 to 64, or n"),
    (["--units", "3"], "--units 3: units must be a power of two from 1 to 64, not 3"),
    (["--units", "128"], "--units 128: units must be a power of two from 1 to 64, not 128"),
    (["--fold-rows", "0"], "--fold-rows 0: give at least 1 row"),
    (["--fold-rows", "-5"], "--fold-rows -5: give at least 1 row"),
    (["--format", "bad"], "--format bad: cannot parse fixed-point format 'bad'"),
    (["--n", "12", "--units", "n"], "--units n with --n 12: no row to tabulate"),
])
def test_bench_qr_and_update_reject_bad_options(monkeypatch, tmp_path, capsys, bench, options,
                                                message):
    """Also: ``--units 3`` printed an empty table, exited 0 and overwrote the results."""
    monkeypatch.setattr(qr, "cycle_table", _no_work)
    argv = ["bench", bench, "--n", "8", "--units", "1", "--out", str(tmp_path / "out"),
            *options]
    assert message in _error(capsys, argv)
    assert not (tmp_path / "out").exists()


def test_bench_update_leaves_out_units_n_beyond_the_cores_with_a_note(tmp_path, capsys):
    """``units = n`` for n = 12 (not a power of two) is left out, as before, and said so."""
    assert main(["bench", "update", "--n", "12", "--units", "n", "1", "--rotation",
                 "multiplier", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "units = n left out for n = 12" in captured.err
    records = json.loads((tmp_path / "update.json").read_text())["results"]
    assert [(r["n"], r["units"]) for r in records] == [(12, 1)]


def test_bench_update_plot_utilisation_creates_its_folder(tmp_path, capsys):
    plot = tmp_path / "br8" / "plots" / "u.png"
    assert main(["bench", "update", "--n", "8", "--units", "1", "--rotation", "multiplier",
                 "--out", str(tmp_path / "br8"), "--plot-utilisation", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_qr_accuracy_plot_creates_its_folder(monkeypatch, tmp_path, capsys):
    sweep = qr.accuracy_sweep
    monkeypatch.setattr(qr, "accuracy_sweep",   # two points instead of 13, for speed
                        lambda *args, **kwargs: sweep(*args, conds=(1.0, 10.0), **kwargs))
    plot = tmp_path / "new" / "qr.png"
    assert main(["bench", "qr", "--n", "8", "--units", "1", "--rotation", "multiplier",
                 "--out", str(tmp_path / "out"), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_cholesky_plot_creates_its_folder(monkeypatch, tmp_path, capsys):
    sweep = cholesky.accuracy_sweep
    monkeypatch.setattr(cholesky, "accuracy_sweep",  # one point instead of 100, for speed
                        lambda fmt, inverse_format: sweep(fmt, inverse_format, n=4, conds=(2.0,),
                                                          trials=1))
    plot = tmp_path / "new" / "deeper" / "cholesky.png"
    assert main(["bench", "cholesky", "--n", "8", "--lanes", "4", "--repeats", "1",
                 "--out", str(tmp_path / "out"), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_plot_under_a_file_is_an_error_before_the_work(monkeypatch, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(cholesky, "cycle_table", _no_work)
    err = _error(capsys, ["bench", "cholesky", "--n", "8", "--lanes", "4", "--out",
                          str(tmp_path / "out"), "--plot", str(tmp_path / "file" / "p.png")])
    assert "--plot " in err and "cannot create its folder" in err


@pytest.mark.parametrize("options, message", [
    (["--width", "0"], "--width 0: give a hidden width of at least 1"),
    (["--width", "-5"], "--width -5: give a hidden width of at least 1"),
    (["--mlp-width", "0"], "--mlp-width 0: give a hidden width of at least 1"),
    (["--wide-width", "-1"], "--wide-width -1: give a hidden width of at least 1, or 0"),
    (["--sweep-widths", "8,abc"], "--sweep-widths 8,abc: give positive widths separated by "
                                  "commas"),
    (["--sweep", "--seeds", "0"], "--seeds 0: give at least 1 random projection"),
])
def test_bench_learn_rejects_bad_options_before_training(monkeypatch, tmp_path, capsys,
                                                        options, message):
    monkeypatch.setattr(learn, "run_datasets", _no_work)
    argv = ["bench", "learn", "--no-fixed", "--out", str(tmp_path / "out"), *options]
    assert message in _error(capsys, argv)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, message", [
    ("not json", "not JSON"),
    ("[]", "is not a measured-build record (no 'builds' list)"),
    ("{}", "is not a measured-build record (no 'builds' list)"),
    (None, "no such file"),
])
def test_bench_build_from_record_rejects_a_bad_record_file(tmp_path, capsys, content, message):
    record = tmp_path / "record.json"
    if content is not None:
        record.write_text(content)
    err = _error(capsys, ["bench", "build", "--from-record", "--record-file", str(record)])
    assert f"--record-file {record}: {message}" in err or (
        f"--record-file: {record} {message}" in err)


def test_bench_build_rejects_an_unknown_board(monkeypatch, tmp_path, capsys):
    """With --from-record as without: the catalogue's message, which lists the known boards."""
    from tiersolve.boards.catalogue import BOARDS

    monkeypatch.setattr(build, "_row", _no_work)
    for extra in (["--from-record"], ["--out", str(tmp_path)]):
        err = _error(capsys, ["bench", "build", "--boards", "nosuch", *extra])
        assert f"unknown board 'nosuch'; known boards: {', '.join(BOARDS)}" in err


def test_bench_build_from_record_of_a_board_never_built(capsys):
    """A known board with no recorded build: an error naming the boards the record has, not
    an empty table."""
    err = _error(capsys, ["bench", "build", "--from-record", "--boards", "arty-a7-35"])
    assert "the record holds no build of arty-a7-35; it has builds of: ecpix5-85f, " \
           "icebreaker, ulx3s-85f" in err


def test_bench_build_record_checks_its_record_file_before_building(monkeypatch, tmp_path,
                                                                   capsys):
    monkeypatch.setattr(build, "_row", _no_work)
    record = tmp_path / "record.json"
    record.write_text("{}")
    err = _error(capsys, ["bench", "build", "--boards", "icebreaker", "--n-max", "4",
                          "--record", "--record-file", str(record), "--out", str(tmp_path)])
    assert "is not a measured-build record" in err
