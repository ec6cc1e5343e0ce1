"""
Resumable sweeps: train.py for every config x FLOP budget [x learning rate] x seed (compare.py is the CLI).

Each run goes to OUT/<config stem>/b<budget>_s<seed>, or OUT/<config stem>/b<budget>_lr<lr>_s<seed> when
learning rates are swept (e.g. OUT/rins_small/b2e13_lr1e-3_s0), and writes its output to RUN_DIR/train.out.
The run dir does not encode --set overrides: change OUT when you change them.
A run whose log.jsonl has a "done" line at its planned iteration is skipped; an unfinished run with a
RUN_DIR/ckpt.pt resumes with --init_from=resume (one that died before its first checkpoint starts over).
A failed run does not stop the others: the sweep finishes what it can, then lists each failure; rerun the
same command to go on.

Launchers:
  (default)  N runs at once on this machine as subprocesses, each with cores/N threads and, with CUDA, one GPU
  slurm      one submitit job per run on a SLURM cluster (pip install submitit); a run given several GPUs
             (--slurm_gpus) trains through torchrun, one process per GPU
  local      the same submitit jobs as processes on this machine: tries a SLURM setup without a cluster
"""
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple

# the trainer command; tests swap in a fake trainer
TRAIN = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")]

Run = namedtuple("Run", "dir budget args")  # args: train.py's arguments, without the resume flag


def fmt_budget(b):
    """2e13 -> '2e13', 2.5e13 -> '2.5e13': exact enough to never collide, and safe in file names."""
    m, _, e = f"{b:.6g}".partition("e")
    return f"{m}e{int(e)}" if e else m


def fmt_lr(lr):
    """1e-3 -> '1e-3', 2.5e-4 -> '2.5e-4': as typed on the command line (f"{1e-3:g}" would give '0.001')."""
    m, e = f"{lr:.5e}".split("e")
    return f"{m.rstrip('0').rstrip('.')}e{int(e)}"


def run_dir(out, config, budget, seed, lr=None):
    lr_part = "" if lr is None else f"_lr{fmt_lr(lr)}"  # no _lr without --lrs: older sweeps still resolve
    return os.path.join(out, os.path.splitext(os.path.basename(config))[0], f"b{fmt_budget(budget)}{lr_part}_s{seed}")


def read_log(d):
    """RUN_DIR/log.jsonl -> dict(start=last start line, evals={iter: line}, done=done line or None)."""
    start, evals, done = None, {}, None
    path = os.path.join(d, "log.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a run killed mid-write can leave a partial last line
                event = rec.get("event")
                if event == "start":
                    start = rec  # a resumed run appends another start line
                elif event in ("eval", "done"):
                    evals[rec["iter"]] = rec  # a resume re-logs some iters: keep the last
                    done = rec if event == "done" else done
    return dict(start=start, evals=evals, done=done)


def finished(d):
    """A done line at the iteration the last start line planned (older logs without max_iters: any done line)."""
    log = read_log(d)
    return log["done"] is not None and log["done"]["iter"] == (log["start"] or {}).get("max_iters", log["done"]["iter"])


def hms(s):
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def plan(configs, budgets, seeds, overrides, out, lrs=None):
    """Every grid point as a Run. With lrs, min_lr = lr/10 unless overrides (a {key: value} dict) set min_lr."""
    runs = []
    for c, b, lr, s in itertools.product(configs, budgets, lrs or [None], seeds):
        d = run_dir(out, c, b, s, lr)
        args = [c, f"--flop_budget={b!r}", f"--seed={s}", f"--out_dir={d}"]
        if lr is not None:
            args += [f"--learning_rate={lr!r}"] + ([] if "min_lr" in overrides else [f"--min_lr={lr / 10!r}"])
        runs.append(Run(d, b, args + [f"--{k}={v}" for k, v in overrides.items()]))
    return runs


def start(run, env, nproc=1):
    """Start train.py on a run (through torchrun with nproc > 1), resuming from its checkpoint if it has one;
    output is appended to train.out."""
    resume = os.path.exists(os.path.join(run.dir, "ckpt.pt"))  # train.py cannot resume without one
    # "--": else torchrun's own parser rejects overrides such as --r=3 as ambiguous
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "--"]
    cmd = (TRAIN if nproc == 1 else torchrun + TRAIN[1:]) + run.args + (["--init_from=resume"] if resume else [])
    os.makedirs(run.dir, exist_ok=True)
    with open(os.path.join(run.dir, "train.out"), "a") as f:  # the child holds its own copy of the file
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=os.environ | env)


def train(run, env, nproc):
    """One run to its end; what a submitit job executes. Returns train.py's exit code."""
    return start(run, env, nproc).wait()


def failure(run, why):
    """None if the run finished, else a line saying why not: the reason and the last line of its output."""
    if why is None and finished(run.dir):
        return None
    path = os.path.join(run.dir, "train.out")
    last = "(no output)"
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            # skip rules such as torchrun's '=====': they say nothing
            last = next((line.strip() for line in reversed(f.read().splitlines()) if any(map(str.isalnum, line))),
                        last)
    return f"{run.dir}: {why or 'exit code 0 but no done line at the planned iteration'}; last line: {last}"


class Status:
    """The sweep's one status line: done/running/queued/failed runs, elapsed time, and an ETA from the seconds
    per FLOP of the runs finished so far (a run costs its budget)."""

    def __init__(self, n_runs, n_skipped):
        self.n_runs, self.done, self.failures = n_runs, n_skipped, []
        self.t0, self.spent_s, self.spent_flops = time.time(), 0.0, 0.0
        self.tty, self.counts = sys.stdout.isatty(), None

    def finish(self, run, seconds, why):
        msg = failure(run, why)
        if msg is None:
            self.done += 1
            self.spent_s, self.spent_flops = self.spent_s + seconds, self.spent_flops + run.budget
        else:
            self.failures.append(msg)
        self.say(f"{run.dir}: {'done' if msg is None else 'FAILED'} in {hms(seconds)}")

    def show(self, running, queued, slots):
        """running: [(run, seconds so far)], queued: [run], slots: runs at once. A tty shows the line in place,
        a log gets it once per change."""
        eta = "?"
        if self.spent_flops:
            spf = self.spent_s / self.spent_flops
            left = spf * sum(r.budget for r in queued) + sum(max(spf * r.budget - s, 0) for r, s in running)
            eta = hms(left / slots)
        counts = (f"[{self.done}/{self.n_runs} done, {len(running)} running, {len(queued)} queued, "
                  f"{len(self.failures)} failed")
        line = f"{counts} | {hms(time.time() - self.t0)} elapsed | ETA {eta}]"
        if self.tty:  # overwritten in place
            print("\r\033[K" + line, end="", flush=True)
        elif counts != self.counts:  # a log file gets a line per change
            print(line, flush=True)
        self.counts = counts

    def say(self, msg):
        print(("\r\033[K" if self.tty else "") + msg, flush=True)

    def report(self):
        """Prints the failures; returns True if every run finished."""
        elapsed = hms(time.time() - self.t0)
        self.say(f"[{self.done}/{self.n_runs} done, {len(self.failures)} failed | {elapsed} elapsed]")
        for msg in self.failures:
            print(f"failed: {msg}")
        if self.failures:
            print(f"{len(self.failures)} run(s) failed; fix the cause and rerun the same command to resume them")
        return not self.failures


def gpus():
    """CUDA devices to hand out one per job, as CUDA_VISIBLE_DEVICES values; [] without CUDA."""
    import torch  # here, not at the top: analysis and SLURM sweeps never need it
    n = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")  # already restricted: hand out those ids, not 0..n-1
    return visible.split(",")[:n] if visible else [str(i) for i in range(n)]


def run_local(todo, jobs, status):
    devices = gpus()
    jobs = jobs or max(len(devices), 1)
    threads = str(max(1, len(os.sched_getaffinity(0)) // jobs))  # split the cores: N jobs never oversubscribe
    print(f"running {jobs} at once, {threads} thread(s) each" + (f", GPUs {','.join(devices)}" if devices else ""))
    queue, running = list(todo), {}  # running: slot -> (run, process, start time)
    try:
        while queue or running:
            for slot, (run, proc, t) in list(running.items()):
                if proc.poll() is not None:
                    del running[slot]
                    status.finish(run, time.time() - t, f"exit code {proc.returncode}" if proc.returncode else None)
            for slot in range(jobs):
                if slot not in running and queue:
                    env = dict(OMP_NUM_THREADS=threads, NANORINS_THREADS=threads)
                    if devices:
                        env["CUDA_VISIBLE_DEVICES"] = devices[slot % len(devices)]  # more jobs than GPUs share them
                    run = queue.pop(0)
                    running[slot] = (run, start(run, env), time.time())
            status.show([(r, time.time() - t) for r, _, t in running.values()], queue, jobs)
            time.sleep(0.2)
    except KeyboardInterrupt:
        for _, proc, _ in running.values():
            proc.terminate()
        for _, proc, _ in running.values():
            proc.wait()
        status.say(f"compare.py: interrupted, stopped {len(running)} run(s); rerun the same command to resume them")
        raise SystemExit(130)


def run_submitit(todo, launcher, out, slurm, status):
    """One submitit job per run: on SLURM, or as local processes (launcher 'local'); waits for all of them."""
    try:
        import cloudpickle
        import submitit
    except ImportError:
        raise SystemExit("compare.py: --launcher needs submitit, which is not installed; pip install submitit")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job needs no importable sweep.py on the node
    try:
        executor = submitit.AutoExecutor(folder=os.path.join(out, "submitit", "%j"), cluster=launcher)
    except RuntimeError as e:  # no srun here
        raise SystemExit(f"compare.py: --launcher {launcher}: {e}; --launcher local tries the jobs on this machine")
    executor.update_parameters(timeout_min=slurm["time"], gpus_per_node=slurm["gpus"], cpus_per_task=slurm["cpus"],
                               slurm_partition=slurm["partition"], name="nanorins")
    env = dict(OMP_NUM_THREADS=str(slurm["cpus"]), NANORINS_THREADS=str(slurm["cpus"]))
    with executor.batch():  # one job array on SLURM
        pending = [(run, executor.submit(train, run, env, max(slurm["gpus"], 1))) for run in todo]
    started = {}
    try:
        while pending:
            for run, job in list(pending):
                if job.state == "RUNNING" or job.done():
                    started.setdefault(run.dir, time.time())
                if job.done():
                    pending.remove((run, job))
                    try:
                        rc = job.result()
                        why = f"exit code {rc}" if rc else None
                    except Exception as e:  # the job itself died (timeout, node failure): keep its last word
                        why = "submitit job failed: " + str(e).strip().split("\n")[-1]
                    status.finish(run, time.time() - started[run.dir], why)
            running = [(r, time.time() - started[r.dir]) for r, _ in pending if r.dir in started]
            status.show(running, [r for r, _ in pending if r.dir not in started], max(len(running), 1))
            time.sleep(1 if launcher == "local" else 10)  # SLURM: do not hammer the scheduler
    except KeyboardInterrupt:
        for _, job in pending:
            job.cancel(check=False)  # else a rerun would start a second copy next to the still-running one
        status.say(f"compare.py: interrupted, cancelled {len(pending)} job(s); rerun the same command to resume them")
        raise SystemExit(130)


def sweep(configs, budgets, seeds, overrides, out, lrs=None, jobs=None, launcher=None, slurm=None):
    """Run every grid point not finished yet (see the module docstring). Returns False if a run failed."""
    runs = plan(configs, budgets, seeds, overrides, out, lrs)
    todo = []
    for r in runs:
        if finished(r.dir):
            print(f"finished, skipping: {r.dir}")
        else:
            todo.append(r)
    grid = " x ".join(f"{len(v)} {k}" for k, v in [("configs", configs), ("budgets", budgets), ("lrs", lrs or []),
                                                       ("seeds", seeds)] if v)
    print(f"sweep: {len(runs)} runs ({grid}), {len(runs) - len(todo)} finished, {len(todo)} to run")
    status = Status(len(runs), len(runs) - len(todo))
    sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill stops the runs too, as Ctrl-C does
    try:
        if todo and launcher:
            run_submitit(todo, launcher, out, slurm, status)
        elif todo:
            run_local(todo, jobs, status)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return status.report()
