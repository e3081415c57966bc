"""The benchmark's header names the settings the selected scenarios use, and no others:
it printed the moto scenarios' RTT and 1 GiB "big size" for ``--only transfer``, whose
size, rounds and caps it did not print."""

from __future__ import annotations

from benchmarks.__main__ import parse_args, run_settings


def test_the_moto_scenarios_show_their_rtt_and_big_size() -> None:
    args = parse_args(["--only", "warm-hit"])
    line = run_settings(args, ["warm-hit"], needs_moto=True)
    assert line.startswith("RTT ")
    assert "big size 1,073,741,824 B" in line
    assert "transfer" not in line


def test_the_transfer_benchmark_shows_its_own_settings_only() -> None:
    args = parse_args(["--only", "transfer", "--transfer-aggregate-mib-s", "0"])
    line = run_settings(args, ["transfer"], needs_moto=False)
    assert "RTT" not in line
    assert "big size" not in line
    assert "transfer: 268,435,456 B, 3 rounds, 10 MiB/s per connection, no cap in all" in line


def test_the_dask_benchmark_shows_no_server_settings() -> None:
    args = parse_args(["--only", "dask"])
    assert run_settings(args, ["dask"], needs_moto=False) == "rounds 5, quick=False"
