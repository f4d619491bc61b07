"""The benchmark's report: a Markdown table of medians (min-max over rounds), each ratio beside its target, and a
plot (training samples/s; open-loop p99 latency against the offered rate)."""

from __future__ import annotations

import statistics
from pathlib import Path


def _median(runs: list[dict], pick) -> float:
    return statistics.median(pick(r) for r in runs)


def _cell(runs: list[dict], pick, fmt: str = "{:.1f}") -> str:
    values = [pick(r) for r in runs]
    text = fmt.format(statistics.median(values))
    return text if len(values) == 1 else f"{text} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def training_rows(training: dict) -> list[str]:
    ours, default, grouped = (training[k]["runs"] for k in ("ours", "trainer_defaults", "trainer_group_by_length"))
    rows = []
    for label, key, fmt, better in (
        ("training samples/s", "samples_per_s", "{:.1f}", "higher"),
        ("training real tokens/s", "real_tokens_per_s", "{:.0f}", "higher"),
        ("validation accuracy", "accuracy", "{:.3f}", "higher"),
        ("process start to model written, s", "wall_s", "{:.1f}", "lower"),
        ("peak memory, MB", "peak_rss_mb", "{:.0f}", "lower"),
    ):
        pick = lambda r, key=key: r[key]  # noqa: E731
        ratio = _median(ours, pick) / _median(grouped, pick)
        target = {"samples_per_s": "≥ 1.5", "wall_s": "< 1"}.get(key, "")
        if key == "accuracy":
            ratio_text = f"{(_median(ours, pick) - _median(grouped, pick)) * 100:+.1f} points"
            target = "within ±1 point"
        else:
            ratio_text = f"{ratio:.2f}"
        rows.append(
            f"| {label} ({better} is better) | {_cell(ours, pick, fmt)} | {_cell(default, pick, fmt)} | "
            f"{_cell(grouped, pick, fmt)} | {ratio_text} | {target} |"
        )
    return rows


def serving_rows(serving: dict, slo_ms: float) -> list[str]:
    runs = serving["runs"]
    ours, base, tei = runs["ours"], runs["baseline"], runs.get("tei")
    bare = serving["bare_forward"]
    # label, value, format, target against the baseline, target against TEI (parity or better: ours / TEI ≤ 1 for
    # times, ≥ 1 for rates)
    specs = (
        ("c=1 p50, ms", lambda r: r["closed"]["1"]["p50_ms"], "{:.1f}", "≤ 1.1× bare forward", "≤ 1"),
        ("c=1 p99, ms", lambda r: r["closed"]["1"]["p99_ms"], "{:.1f}", "", ""),
        ("c=16 closed loop, req/s", lambda r: r["closed"]["16"]["rps"], "{:.1f}", "", "≥ 1"),
        ("c=16 p99, ms", lambda r: r["closed"]["16"]["p99_ms"], "{:.0f}", "", ""),
        (
            f"highest arrival rate with p99 ≤ {slo_ms:.0f} ms, req/s",
            lambda r: r["max_rate_held"],
            "{:.0f}",
            "≥ 3",
            "≥ 1",
        ),
        ("cold start to first /ping 200, s", lambda r: r["cold_start_s"], "{:.2f}", "≤ 2 s", ""),
        (
            "server's memory, all processes (PSS), MB",
            lambda r: r["memory_after_load"]["server_pss_mb"],
            "{:.0f}",
            "",
            "",
        ),
        (
            "one worker's own memory (private), MB",
            lambda r: r["memory_after_load"]["worker_private_mb"],
            "{:.0f}",
            "≤ 500 MB + weights",
            "",
        ),
    )
    rows = []
    for label, pick, fmt, target, tei_target in specs:
        ratio = _median(ours, pick) / max(_median(base, pick), 1e-9)
        if target.startswith("≤ 1.1×"):
            target += f" ({bare['p50_ms']:.1f} ms: {_median(ours, pick) / bare['p50_ms']:.2f}×)"
        cells = [_cell(ours, pick, fmt), _cell(base, pick, fmt)]
        if tei:
            cells.append(_cell(tei, pick, fmt))
        cells.append(f"{ratio:.2f}")
        if tei:
            tei_ratio = f"{_median(ours, pick) / max(_median(tei, pick), 1e-9):.2f}"
            cells.append(f"{tei_ratio} ({tei_target})" if tei_target else tei_ratio)
        rows.append(f"| {label} | {' | '.join(cells)} | {target} |")
    return rows


def serving_header(serving: dict, cores: int) -> list[str]:
    columns = ["ours", f"Flask + pipeline (gunicorn sync, {cores} workers × 1 thread)"]
    if "tei" in serving["runs"]:
        columns.append(f"TEI ({serving.get('tei_version') or 'text-embeddings-inference'}, CPU)")
    columns.append("ours / baseline")
    if "tei" in serving["runs"]:
        columns.append("ours / TEI (target)")
    columns.append("target")
    return [
        f"| serving, one text per request | {' | '.join(columns)} |",
        "|---" * (len(columns) + 1) + "|",
    ]


def variant_rows(serving: dict) -> list[str]:
    """Every server measured, ours under each variant included: the before-and-after of a change."""
    rows = []
    for name, runs in serving["runs"].items():
        rows.append(
            f"| {name} | {_cell(runs, lambda r: r['closed']['1']['p50_ms'])} | "
            f"{_cell(runs, lambda r: r['closed']['16']['rps'])} | "
            f"{_cell(runs, lambda r: r['closed']['16']['p99_ms'], '{:.0f}')} | "
            f"{_cell(runs, lambda r: r['max_rate_held'], '{:.0f}')} | "
            f"{_cell(runs, lambda r: r['cold_start_s'], '{:.2f}')} |"
        )
    return rows


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"Benchmark ({result['size']}), `{result['command']}`, commit {m['git']}: {m['cores']} cores ({m['cpu']}), "
        f"load average {m['load_average_1_5_15']} at start, {m.get('load_average_after')} at end.",
        "",
        f"Data: {result['data']['train_texts']} training / {result['data']['validation_texts']} validation "
        f"quotations from Debian's `fortunes`, {len(result['data']['topics'])} topics; token lengths "
        f"{result['data']['lengths']}.",
    ]
    if result.get("training_from"):
        lines += ["", f"Training results from {result['training_from']} (an earlier run of the same tool)."]
    if result.get("ours_environment"):
        lines += ["", f"Ours ran with {result['ours_environment']}."]
    if result.get("note"):
        lines += ["", result["note"]]
    if "training" in result:
        lines += [
            "",
            "| training, MiniLM, 1 epoch, batch 16 | ours | Trainer defaults | Trainer group_by_length | "
            "ours / group_by_length | target |",
            "|---|---|---|---|---|---|",
            *training_rows(result["training"]),
        ]
    if "serving" in result:
        bare = result["serving"]["bare_forward"]
        lines += [
            "",
            *serving_header(result["serving"], m["cores"]),
            *serving_rows(result["serving"], result["slo_ms"]),
            "",
            f"Bare forward (tokenise + forward, batch 1, {bare['threads']} threads, "
            f"{bare.get('dtype', 'float32')}): p50 {bare['p50_ms']:.1f} ms, "
            f"p99 {bare['p99_ms']:.1f} ms. Model weights {result['serving']['weights_mb']:.0f} MB. "
            "Medians, (min–max) over rounds when there were several.",
        ]
        started = result["serving"].get("docker_start")
        if started:
            times = started["starts_s"]
            lines += [
                "",
                f"The image's own cold start, `docker run {started['image']} serve` with the model mounted to the "
                f"first /ping 200 (target ≤ 2 s): median {statistics.median(times):.2f} s over {len(times)} starts "
                f"({', '.join(f'{t:.2f}' for t in times)} s in order; the first reads the image from disk), Docker's "
                f"storage driver {started.get('storage_driver', 'unknown')}.",
            ]
        if any(name not in ("ours", "baseline", "tei") for name in result["serving"]["runs"]):
            lines += [
                "",
                "| server | c=1 p50 ms | c=16 req/s | c=16 p99 ms | held req/s | cold start s |",
                "|---|---|---|---|---|---|",
                *variant_rows(result["serving"]),
            ]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if "training" in result:
        names = ["ours", "trainer_defaults", "trainer_group_by_length"]
        values = [_median(result["training"][n]["runs"], lambda r: r["samples_per_s"]) for n in names]
        left.bar(["ours", "Trainer\ndefaults", "Trainer\ngroup_by_length"], values, color=["C0", "C1", "C1"])
        left.set_ylabel("training samples/s (median)")
        left.set_title("Training, MiniLM on CPU")
    if "serving" in result:
        labels = {"ours": "ours", "baseline": "Flask + pipeline", "tei": "TEI"}
        for name, color in (("ours", "C0"), ("baseline", "C1"), ("tei", "C2")):
            for i, run in enumerate(result["serving"]["runs"].get(name, [])):
                points = run["open"]
                right.plot(
                    [p["rate"] for p in points], [min(p["p99_ms"], 1e5) for p in points], "o-", color=color,
                    alpha=0.8, label=labels[name] if i == 0 else None,
                )  # fmt: skip
        right.axhline(result["slo_ms"], color="grey", linestyle="--", label=f"SLO {result['slo_ms']:.0f} ms")
        right.set_yscale("log")
        right.set_xlabel("offered requests/s (open loop)")
        right.set_ylabel("p99 latency, ms")
        right.set_title("Serving, MiniLM on CPU")
        right.legend()
    figure.suptitle(f"{result['machine']['cores']} cores, load average {result['machine']['load_average_1_5_15']}")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_report(result: dict, json_path: Path) -> str:
    text = markdown(result)
    json_path.with_suffix(".md").write_text(text)
    (json_path.parent / "latest.md").write_text(text)
    plot(result, json_path.with_suffix(".png"))
    plot(result, json_path.parent / "latest.png")
    return text


def publish(text: str, readme: Path) -> None:
    """The table into the README's performance section, between its markers."""
    start, end = "<!-- BENCH_TABLE_START -->", "<!-- BENCH_TABLE_END -->"
    content = readme.read_text()
    head, rest = content.split(start, 1)
    readme.write_text(f"{head}{start}\n{text}{end}{rest.split(end, 1)[1]}")
