"""tli compare on a cluster: training units as separate jobs (--only / --shard), --collect, the launch plan."""

import json
import shlex
import subprocess
import sys
import textwrap

import pytest

from tli.cli import main
from tli.compare import compare, dry_run, list_units, parse_experiment
from tli.compare.launch import (
    GPU_TFLOPS,
    MFU,
    Launched,
    refuse_unfit_launch,
    slurm_arrays,
    unit_launch,
    unit_selection,
)
from tli.compare.units import TrainingUnit, parse_shard, select_units, training_units
from tli.errors import ConfigError

EXPERIMENT = """strategies: [none, lora, full]
tasks:
  xlsum: {path: "samples:xlsum", languages: [sw], limit: 4, max_new_tokens: 6, max_input_tokens: 64}
  xnli: {path: "samples:xnli/xnli.test.tsv", languages: [sw], limit: 9}
  mrtydi: {path: "samples:mrtydi", languages: [sw], limit: 6, layer_curve: false, cache: false}
train: {task: xlsum, language: sw, path: "samples:xlsum", limit: 8}
budget: {steps: 2, batch_size: 4}
strategy_options: {lora_dropout: 0}
seeds: [0]
n_resamples: 200
"""
"""Every strategy kind (none, LoRA, full) on generation, log-likelihood and dense retrieval; LoRA dropout 0 so
that two data-parallel processes draw the masks of one."""


@pytest.fixture(scope="module")
def experiment_file(tiny_model_dirs, tmp_path_factory):
    path = tmp_path_factory.mktemp("cluster") / "e.yaml"
    path.write_text(f"models: [{tiny_model_dirs['llama']}]\n" + EXPERIMENT)
    return path


@pytest.fixture(scope="module")
def one_process(experiment_file):
    """The experiment run once, alone: what every other way of running it must reproduce."""
    out = experiment_file.parent / "one"
    return out, compare(experiment_file, out=out, progress=False)


def _shard_in_a_process(path, out, shard: str) -> dict:
    code = textwrap.dedent(
        f"""
        import json
        from tli.compare import compare
        print(json.dumps(compare({str(path)!r}, out={str(out)!r}, shard={shard!r}, progress=False)))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _without_paths(results: dict) -> list[tuple]:
    """What must agree between two runs in different directories: each cell's scores and each comparison."""
    cells = sorted(
        (
            c["strategy"] or "",
            c.get("system") or "",
            c["seed"] if c["seed"] is not None else -1,
            c["task"],
            c["language"],
            c["status"],
            json.dumps(c["metrics"], sort_keys=True),
        )
        for c in results["cells"]
    )
    comparisons = sorted(json.dumps(row, sort_keys=True) for row in results["comparisons"])
    return cells + [(row,) for row in comparisons]


def test_shards_in_separate_processes_then_collect_give_the_one_process_results(
    experiment_file, one_process, tmp_path
):
    _, one_process = one_process
    out = tmp_path / "sharded"
    first = _shard_in_a_process(experiment_file, out, "1/2")
    second = _shard_in_a_process(experiment_file, out, "2/2")
    units = [u.id for u in training_units(parse_experiment(experiment_file))]
    assert first["units"] == units[0::2] and second["units"] == units[1::2]
    assert not (out / "results.json").exists()  # a shard writes its cells only
    collected = compare(experiment_file, out=out, collect=True, progress=False)
    assert _without_paths(collected) == _without_paths(one_process)
    assert [c["verdict"] for c in collected["claims"]] == [c["verdict"] for c in one_process["claims"]]
    assert (out / "results.json").is_file() and (out / "report.md").is_file()


def test_collect_refuses_while_a_unit_is_unfinished_and_names_it(tiny_llama_dir, tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(
        f"models: [{tiny_llama_dir}]\nstrategies: [none]\nseeds: [0, 1]\n"
        'tasks:\n  xnli: {path: "samples:xnli/xnli.test.tsv", languages: [sw], limit: 9}\n'
    )
    units = training_units(parse_experiment(path))
    out = tmp_path / "out"
    compare(path, out=out, only=[units[0].id], progress=False)
    with pytest.raises(
        ConfigError, match=rf"1 of 2 training units .* not finished: {units[1].id} \(xnli-sw\)"
    ):
        compare(path, out=out, collect=True, progress=False)
    assert not (out / "results.json").exists()
    compare(path, out=out, only=[units[1].id], progress=False)  # the missing job, rerun
    assert len(compare(path, out=out, collect=True, progress=False)["cells"]) == 2


def test_shards_partition_the_units():
    units = [TrainingUnit("m", s, seed) for s in ("none", "lora", "full") for seed in (0, 1, 2)]
    for count in (1, 2, 4, 9, 12):
        shards = [select_units(units, shard=f"{i}/{count}") for i in range(1, count + 1)]
        assert sorted(u.id for shard in shards for u in shard) == sorted(u.id for u in units)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2"])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(ConfigError, match=r"--shard .* write i/N with 1 <= i <= N"):
        parse_shard(text)


def test_an_unknown_unit_is_refused_with_the_closest_ids():
    units = [TrainingUnit("m", s, 0) for s in ("none", "lora", "lora-early")]
    with pytest.raises(
        ConfigError, match=r"--only m/lora/seed-1: .*no such training unit; did you mean m/lora/seed-0"
    ):
        select_units(units, only=["m/lora/seed-1"])


def _plan(devices: dict[str, int | None], flops: float = 3.6e18) -> dict:
    return {
        "strategies": {
            name: {"devices": n, "memory_gb": 70.0, "flops": None if name == "inference" else flops}
            for name, n in devices.items()
        }
    }


@pytest.mark.parametrize(
    ("strategy", "devices", "device_map", "expected"),
    [
        ("lora", {"lora": 1, "inference": 1}, None, ("python", 1, 1, 1, True)),
        ("lora", {"lora": 3, "inference": 2}, "auto", ("python", 3, 1, 1, True)),
        ("lora", {"lora": 3, "inference": 2}, None, ("python", 3, 1, 1, False)),
        ("none", {"inference": 2}, "auto", ("python", 2, 1, 1, True)),
        ("full", {"full": 3, "inference": 1}, None, ("accelerate", 3, 3, 1, True)),
        ("full", {"full": 20, "inference": 2}, "auto", ("accelerate", 20, 24, 3, True)),
        ("full", {"full": None, "inference": 2}, None, ("python", None, 1, 1, False)),
    ],
)
def test_each_unit_gets_the_launcher_its_plan_needs(experiment_file, strategy, devices, device_map, expected):
    experiment = parse_experiment(experiment_file)
    experiment.device_map = device_map
    launch = unit_launch(experiment, TrainingUnit("m", strategy, 0), _plan(devices), "e.yaml", "OUT")
    assert (launch.launcher, launch.gpus, launch.world_size, launch.nodes, launch.runnable) == expected
    if launch.launcher == "accelerate" and launch.nodes == 1:
        assert launch.command == (
            f"accelerate launch --config_file 8gpu-fsdp.yaml --num_processes 3 -m tli compare e.yaml --out OUT "
            f"--only m/{strategy}/seed-0"
        )
    elif launch.launcher == "accelerate":
        assert launch.command == (
            "accelerate launch --config_file multinode-fsdp.yaml --num_processes 24 --num_machines 3 --machine_rank "
            f"NODE_RANK --main_process_ip MAIN_IP -m tli compare e.yaml --out OUT --only m/{strategy}/seed-0"
        )
    else:
        assert launch.command == f"tli compare e.yaml --out OUT --only m/{strategy}/seed-0"
    if strategy != "none":
        # 3.6e18 FLOPs at 989 TFLOPS × 0.35 = 10,400 s = 2.889 GPU-hours, however many GPUs share them
        assert launch.gpu_hours == pytest.approx(3.6e18 / (GPU_TFLOPS * 1e12 * MFU) / 3600)
        assert launch.gpu_hours == pytest.approx(2.8889, abs=1e-4)


def test_the_dry_run_of_a_full_scale_experiment_launches_every_unit_and_prints_the_arrays():
    planned = dry_run(parse_experiment("qwen2-72b-xlsum-xnli", check_device=False), out="runs/q")
    full = next(u for u in planned["units"] if u["strategy"] == "full")
    assert full["runnable"] and full["launcher"] == "accelerate" and full["nodes"] >= 2
    assert full["world_size"] == 8 * full["nodes"] and full["accelerate_config"] == "multinode-fsdp.yaml"
    launch = planned["launch"]
    assert launch["units"] == launch["runnable"] == 7 * 5 and not launch["not_runnable"]
    assert any(line.endswith(" multinode-fsdp.yaml") and "--nodes=" in line for line in launch["slurm"])
    assert launch["gpu_hours"] == pytest.approx(sum(u["gpu_hours"] for u in planned["units"]))
    arrays = [shlex.split(line) for line in launch["slurm"] if line.startswith("sbatch")]
    # sbatch --array=0-(n-1) ... compare-array.sbatch EXPERIMENT OUT UNITS [CONFIG]: each array's selection
    # names exactly n units, and together they name every runnable unit once
    experiment = parse_experiment("qwen2-72b-xlsum-xnli", check_device=False)
    listed = []
    for tokens in arrays:
        selection = tokens[tokens.index("compare-array.sbatch") + 3].split(",")
        named = [u.id for u in select_units(training_units(experiment), only=selection)]
        assert tokens[1] == f"--array=0-{len(named) - 1}"
        listed += named
    runnable = [u["unit"] for u in list_units(experiment) if u["runnable"]]
    assert sorted(listed) == sorted(runnable)
    assert "'*/full/*' multinode-fsdp.yaml" in launch["slurm"][1]  # one model: every seed of a strategy
    assert launch["slurm"][-1] == "tli compare qwen2-72b-xlsum-xnli --out runs/q --collect"


def test_slurm_arrays_group_units_by_shape_and_name_them_by_the_shortest_patterns():
    units = [TrainingUnit(m, s, seed) for m in ("a", "b") for s in ("lora", "none") for seed in (0, 1)]

    class Launch:
        def __init__(self, unit, gpus):
            self.unit, self.gpus, self.nodes, self.accelerate_config, self.runnable = (
                unit.id,
                gpus,
                1,
                None,
                True,
            )

    # a's LoRA units need 2 GPUs, b's 1 (a bigger model): a/lora/* on 2 GPUs; b/lora/* and */none/* on 1
    launches = [Launch(u, 2 if u.id.startswith("a/lora") else 1) for u in units]
    lines = slurm_arrays(launches, experiment_ref="e", out="o")
    assert lines[0] == "sbatch --array=0-1 --nodes=1 --gpus-per-node=2 compare-array.sbatch e o 'a/lora/*'"
    assert (
        lines[1]
        == "sbatch --array=0-5 --nodes=1 --gpus-per-node=1 compare-array.sbatch e o '*/none/*,b/lora/*'"
    )
    assert lines[-1] == "tli compare e --out o --collect"
    one_seed = [u.id for u in units if u.id == "a/none/seed-1"]
    assert unit_selection(one_seed, [u.id for u in units]) == "a/none/seed-1"


def test_only_takes_patterns_in_the_experiments_order_and_refuses_one_that_names_nothing():
    units = [
        TrainingUnit(m, s, seed)
        for m in ("a", "b")
        for s in ("none", "lora", "lora-early")
        for seed in (0, 1)
    ]
    chosen = select_units(units, only=["*/lora/*", "a/none/seed-1"])
    assert [u.id for u in chosen] == [
        "a/none/seed-1",
        "a/lora/seed-0",
        "a/lora/seed-1",
        "b/lora/seed-0",
        "b/lora/seed-1",
    ]
    assert [u.id for u in select_units(units, only=["*/lora*/*"], shard="2/2")] == [
        "a/lora/seed-1",
        "a/lora-early/seed-1",
        "b/lora/seed-1",
        "b/lora-early/seed-1",
    ]
    with pytest.raises(ConfigError, match=r"--only \*/full/\*: the experiment has no such training unit"):
        select_units(units, only=["*/full/*"])


def _fake_commands(folder) -> None:
    """``srun`` that records its arguments, ``scontrol`` that names two nodes (the SLURM script's tools)."""
    folder.mkdir()
    (folder / "srun").write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$SRUN_RECORD"\n')
    (folder / "scontrol").write_text("#!/bin/bash\nprintf 'node-a\\nnode-b\\n'\n")
    for tool in ("srun", "scontrol"):
        (folder / tool).chmod(0o755)


@pytest.mark.parametrize(
    ("selection", "task", "config", "expected"),
    [
        (
            "*/lora/*,*/tli/*",
            "1",
            None,
            ["tli", "compare", "demo", "--out", "OUT", "--only", "default/tli/seed-0"],
        ),
        (
            "*/full/*",
            "0",
            "multinode-fsdp.yaml",
            [
                "accelerate",
                "launch",
                "--config_file",
                "multinode-fsdp.yaml",
                "--num_machines",
                "2",
                "--num_processes",
                "16",
                "--machine_rank",
                "1",
                "--main_process_ip",
                "node-a",
                "--main_process_port",
                "29500",
                "-m",
                "tli",
                "compare",
                "demo",
                "--out",
                "OUT",
                "--only",
                "default/full/seed-0",
            ],
        ),
    ],
)
def test_the_shipped_slurm_script_runs_the_array_tasks_unit(tmp_path, selection, task, config, expected):
    """The sbatch script with SLURM's variables, a recording srun and the real tli: array task i runs the i-th unit
    its selection names, one process or accelerate over the job's nodes."""
    import os

    from tli.compare.launch import slurm_template

    _fake_commands(tmp_path / "bin")
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        "SRUN_RECORD": str(tmp_path / "srun.txt"),
        "SLURM_ARRAY_TASK_ID": task,
        "SLURM_JOB_NODELIST": "node-[a-b]",
        "SLURM_GPUS_PER_NODE": "h100:8",
        "SLURM_NNODES": "2",
        "SLURM_NODEID": "1",
    }
    args = ["bash", str(slurm_template()), "demo", "OUT", selection, *([config] if config else [])]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    recorded = (tmp_path / "srun.txt").read_text().splitlines()
    if config:
        assert recorded[3].endswith("accelerate_configs/multinode-fsdp.yaml")
        recorded[3] = "multinode-fsdp.yaml"
    assert recorded == expected


def test_a_shard_job_and_a_whole_run_on_one_out_exclude_each_other(tmp_path):
    """Shard jobs hold --out shared (together), a whole run or --collect alone."""
    from tli.runs import lock_run_dir, release_run_dir

    out = tmp_path / "out"
    hold = subprocess.Popen(
        [sys.executable, "-c", f"from tli.runs import lock_run_dir; lock_run_dir({str(out)!r}, shared=True); "
         "print('held', flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert hold.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match="being written by another tli process"):
            lock_run_dir(out)
        lock_run_dir(out, shared=True)  # another shard: allowed
        release_run_dir(out)
    finally:
        hold.kill()


def test_list_cells_prints_every_unit_as_json(capsys):
    assert main(["compare", "demo", "--list-cells", "--json", "--out", "runs/d"]) == 0
    units = json.loads(capsys.readouterr().out)
    assert [u["unit"] for u in units] == [u.id for u in training_units(parse_experiment("demo"))]
    assert all(u["command"] == f"tli compare demo --out runs/d --only {u['unit']}" for u in units)
    assert main(["compare", "demo", "--list-cells", "--json", "--only", "*/lora*/*"]) == 0
    assert [u["unit"] for u in json.loads(capsys.readouterr().out)] == [
        "default/lora/seed-0",
        "default/lora-early/seed-0",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--collect"], "need --out"),
        (["--shard", "1/2", "--collect", "--out", "o"], "different jobs: give one of them"),
        (["--only", "default/lora/seed-0", "--shard", "1/2", "--out", "o"], "different jobs"),
        (["--dry-run", "--list-cells"], "--dry-run and --list-cells"),
        (["--shard", "3/2", "--out", "OUT_DIR"], "--shard '3/2': write i/N"),
        (["--only", "default/lora/seed-9", "--out", "OUT_DIR"], "did you mean default/lora/seed-0"),
    ],
)
def test_job_options_that_cannot_work_are_one_line_errors(tmp_path, capsys, argv, message):
    argv = [str(tmp_path / "o") if a == "OUT_DIR" else a for a in argv]
    assert main(["compare", "demo", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "o" / "runs").exists()  # refused before any unit ran


def _compare_cli(path, out, processes: int) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    args = ["-m", "tli", "compare", str(path), "--out", str(out)]
    if processes > 1:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        args = [*launcher, *args]
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=900)


def _kill_rank_after_first_cell(path, out, timeout: float = 600) -> int:
    """Start the 2-process run, SIGKILL its rank 1 once a cell.json exists; the launcher's exit status."""
    import os
    import signal
    import time

    import psutil

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*launcher, "-m", "tli", "compare", str(path), "--out", str(out)]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    while not list(out.glob("runs/**/cell.json")):
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before writing a cell"
        time.sleep(0.2)
    ranks = {int(p.environ().get("RANK", -1)): p for p in psutil.Process(run.pid).children()}
    os.kill(ranks[1].pid, signal.SIGKILL)
    return run.wait(timeout=120)


def _cells(out) -> dict:
    record = json.loads((out / "results.json").read_text())
    return {(c["strategy"], c.get("system"), c["task"], c["language"]): c for c in record["cells"]}, record


@pytest.mark.skipif(
    not __import__("torch").distributed.is_available(), reason="torch.distributed is not built in"
)
def test_two_launched_processes_killed_and_rerun_give_the_one_process_experiment(
    experiment_file, one_process, tmp_path
):
    """torchrun with 2 gloo processes: DDP fine-tuning of every unit (none, lora, full), evaluation of XL-Sum,
    XNLI and a dense retrieval task. Rank 1 is killed once the first cell is written; the launcher stops the
    run; a rerun finishes it, and gives the cells, predictions and comparisons of one process; one writer."""
    one, _ = one_process
    killed = _kill_rank_after_first_cell(experiment_file, tmp_path / "two")
    assert killed != 0  # the launcher saw its rank die and stopped the run
    assert not (tmp_path / "two" / "results.json").exists()
    two = _compare_cli(experiment_file, tmp_path / "two", 2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1  # only the main process reports
    cells_one, record_one = _cells(one)
    cells_two, record_two = _cells(tmp_path / "two")
    assert cells_one.keys() == cells_two.keys()
    assert {(k[0], k[2]) for k in cells_one if k[0]} == {
        (s, t) for s in ("none", "lora", "full") for t in ("xlsum", "xnli", "mrtydi")
    }
    for key, cell in cells_one.items():
        other = cells_two[key]
        assert other["status"] == cell["status"] == "done", (key, other.get("error"))
        if key[0]:  # a strategy's cell: evaluated data parallel (retrieval systems run on the main process)
            assert (cell["cost"]["evaluate_processes"], other["cost"]["evaluate_processes"]) == (1, 2), key
        for metric, score in cell["metrics"].items():
            assert other["metrics"][metric]["score"] == pytest.approx(score["score"], abs=1e-6), (key, metric)
        rows_one = [json.loads(x)["prediction"] for x in open(cell["predictions"])]
        rows_two = [json.loads(x)["prediction"] for x in open(other["predictions"])]
        if key[2] != "mrtydi":  # retrieval rows are rankings: their scores were compared above
            assert rows_one == rows_two, key
    losses_one = json.loads(next(one.glob("runs/*/full/seed-0/train.json")).read_text())
    losses_two = json.loads(next((tmp_path / "two").glob("runs/*/full/seed-0/train.json")).read_text())
    assert losses_two["losses"] == pytest.approx(losses_one["losses"], rel=1e-4)
    assert [c["p_value"] for c in record_two["comparisons"]] == pytest.approx(
        [c["p_value"] for c in record_one["comparisons"]], abs=1e-9
    )
    assert not list((tmp_path / "two").glob("**/.adapter.tmp-*"))  # no second writer left files behind


def test_a_full_unit_launched_on_fewer_gpus_than_its_plan_is_refused_before_loading():
    experiment = parse_experiment("lugha-llama-8b-xlsum-xnli", check_device=False)
    units = [u for u in training_units(experiment) if u.strategy == "full"][:1]
    with pytest.raises(
        ConfigError, match=r"full/seed-0 needs FSDP over 3 GPUs .* but 1 process\(es\) were launched"
    ):
        refuse_unfit_launch(experiment, units, Launched(1, "single", 1, 8))
    refuse_unfit_launch(experiment, units, Launched(3, "fsdp", 3, 8))  # enough, sharded
    lora = [u for u in training_units(experiment) if u.strategy == "lora"]
    refuse_unfit_launch(experiment, lora, Launched(1, "single", 1, 1))  # one GPU suffices


def test_a_launch_that_does_not_match_its_machine_or_its_sharding_is_refused():
    experiment = parse_experiment("lugha-llama-8b-xlsum-xnli", check_device=False)
    full = [u for u in training_units(experiment) if u.strategy == "full"][:1]
    lora = [u for u in training_units(experiment) if u.strategy == "lora"]
    # torchrun --nproc_per_node 8 on a 4-GPU machine: two processes would share a GPU
    with pytest.raises(ConfigError, match=r"started 8 processes on this machine but it has 4 CUDA GPU"):
        refuse_unfit_launch(experiment, lora, Launched(8, "ddp", 8, 4))
    # enough processes, but DDP: every GPU would hold the whole 8B model and its AdamW state
    with pytest.raises(
        ConfigError, match=r"launched without a sharding config \(ddp.*accelerate launch --config_file"
    ):
        refuse_unfit_launch(experiment, full, Launched(8, "ddp", 8, 8))
    refuse_unfit_launch(experiment, full, Launched(16, "deepspeed", 8, 8))  # ZeRO-3 over two machines
    refuse_unfit_launch(experiment, lora, Launched(8, "ddp", 8, 8))  # LoRA units replicate a frozen base
