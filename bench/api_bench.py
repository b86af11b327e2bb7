"""HTTP API and permission-filtering benchmark (issue 10), on the embedded default (SQLite).

Builds one store directly through the adapters: ``--datasets`` datasets of 100 records each
(cloned from tiny generated site datasets: real entities, inherited sidecar metadata,
participants and sessions; ages and bold TRs varied per dataset), a user ``reader`` with
read grants on one dataset in ten and ``wide`` on the other nine in ten, written through
``sharing.grant``. Then, in the same run:

1. API overhead: p50/p99 of ``GET /v1/records?query=..&limit=100`` and ``GET /v1/count``
   as ``reader`` over real HTTP on 127.0.0.1, against ``usecases_data.find``/``count``
   called in process with the same principal (calls interleaved, after a warm-up).
2. Throughput: requests/s with 1 and ``--clients`` threads (one httpx.Client each) mixing
   count/records/me, then a sustained run (``--duration`` s and at least
   ``--min-requests``) with errors and the server's RSS over time. The server is
   ``rollerblade serve --http 127.0.0.1:PORT --no-events`` in its own process.
3. Permission filtering: ``count`` and ``find(limit=100)`` in process for several queries
   as an admin (unfiltered), ``reader`` (10 % of datasets) and ``wide`` (90 %), with the
   time split into its steps and a short cProfile of the slowest case.

    python bench/api_bench.py            # 1,000 datasets (100k records), 60 s sustained: ~5 min
    python bench/api_bench.py --quick    # 200 datasets, 10 s sustained: under a minute
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from rollerblade.access.model import Principal
from rollerblade.adapters import local_dir, sqlite_index
from rollerblade.demo.cohort import FULL, SITES, make_participants, write_dataset
from rollerblade.pipeline import querying, reindex, sharing, usecases_data
from rollerblade.pipeline.services import Services
from rollerblade.records import Actor, DatasetInfo, ScanRecord
from rollerblade.settings import Settings
from rollerblade.stack import Stack, open_stack

PER_DATASET = 100
HOST = "127.0.0.1"  # loopback only
FILTER_QUERIES = ("suffix=T1w", "participant.age>60", "meta.RepetitionTime<2", "task=rest AND extension=.nii.gz")
MIX = (  # what each client sends in turn during the throughput runs
    ("count", "/v1/count", {"query": "suffix=T1w"}),
    ("records", "/v1/records", {"query": "participant.age>60", "limit": 100}),
    ("me", "/v1/me", {}),
)


def ms_quantiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) in ms of samples in seconds."""
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


# -- the store ---------------------------------------------------------------------------
def templates(work: Path) -> list[list[ScanRecord]]:
    """100 indexed records per site (tiny images, 5 subjects x 2 sessions, every modality)."""
    storage, index = local_dir.LocalDirStorage(work / "bucket"), sqlite_index.SqliteIndex(work / "t.sqlite")
    out = []
    for site in SITES:
        people = make_participants(5, np.random.default_rng(1))
        write_dataset(work / "bucket" / "datasets" / site.name, site, people, sessions=2, modalities=FULL, images="tiny")
        reindex.reindex_dataset(site.name, storage=storage, index=index, actor=Actor("bench"), workers=1)
        out.append(list(index.records(dataset=site.name))[:PER_DATASET])
    index.close()
    return out


def clone(record: ScanRecord, name: str, ages: dict[str, int], tr: float) -> ScanRecord:
    sub = record.entities.get("sub", "")
    age = ages.get(sub, 50)
    meta = {**record.meta, "RepetitionTime": tr} if record.entities.get("suffix") == "bold" else record.meta
    return dataclasses.replace(
        record,
        dataset=name,
        meta=meta,
        participant={**record.participant, "age": age},
        session={**record.session, "age": age} if record.session else record.session,
        file={**record.file, "key": f"datasets/{name}/{record.path}"},
    )


def build_store(home: Path, datasets: int) -> tuple[Stack, Principal, dict[str, str]]:
    """The store, its admin, and tokens of ``reader`` (10 % of datasets) and ``wide`` (90 %)."""
    bases = templates(home.parent / "templates")
    stack = open_stack(Settings(home=home, executor="process"))
    services, index = stack.services, stack.index
    admin = sharing.local_principal(services, "bench")  # the first user of a new store: admin
    rng = np.random.default_rng(7)
    batch: list[ScanRecord] = []
    for i in range(datasets):
        name = f"ds-{i:04d}"
        index.put_dataset(info=DatasetInfo(name, Actor("bench"), "2026-12-01T00:00:00Z"))
        ages = {f"{s:03d}": int(rng.integers(18, 90)) for s in range(1, 10)}
        tr = float(rng.choice([0.8, 1.5, 2.0, 2.5]))
        batch += [clone(r, name, ages, tr) for r in bases[i % len(bases)]]
        if len(batch) >= 10_000 or i == datasets - 1:
            index.put_records(records=batch)
            batch = []
    tokens = {}
    for user in ("reader", "wide"):
        sharing.add_user(services, admin, user)
        for i in range(datasets):
            if (i % 10 == 0) == (user == "reader"):
                sharing.grant(services, admin, user, "read", f"ds-{i:04d}")
        tokens[user] = sharing.create_token(services, Principal(user))[0]
    return stack, admin, tokens


# -- the server --------------------------------------------------------------------------
def start_server(home: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLERBLADE_")}
    command = [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), "serve"]
    proc = subprocess.Popen(
        [*command, "--http", f"{HOST}:{port}", "--no-events"], env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", trust_env=False).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)


def client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, trust_env=False, timeout=60)


# -- 1. API overhead ---------------------------------------------------------------------
def overhead(services: Services, url: str, token: str, samples: int) -> None:
    who = Principal("reader")
    query = "suffix=T1w"
    cases: dict[str, tuple[Callable[[], object], str, dict[str, Any]]] = {
        # the route asks the use case for limit + 1 (to know whether there is a next page)
        "records": (lambda: list(usecases_data.find(services, who, query, limit=101)), "/v1/records", {"limit": 100}),
        "count": (lambda: usecases_data.count(services, who, query), "/v1/count", {}),
    }
    print(f"\n1. API overhead, as 'reader' (read on 10 % of datasets), query {query!r}, {samples} calls each")
    print(f"   {'':9}{'in-process p50':>15}{'p99':>8}{'HTTP p50':>10}{'p99':>8}{'added p50':>11}{'p99':>8}  (ms)")
    with client(url, token) as http:
        for name, (call, path, params) in cases.items():
            params = {"query": query, **params}
            local: list[float] = []
            remote: list[float] = []
            for i in range(samples + samples // 5):  # the first fifth warms up
                t0 = time.perf_counter()
                call()
                t1 = time.perf_counter()
                response = http.get(path, params=params)
                t2 = time.perf_counter()
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
                if i >= samples // 5:
                    local.append(t1 - t0)
                    remote.append(t2 - t1)
            (lp50, lp99), (hp50, hp99) = ms_quantiles(local), ms_quantiles(remote)
            print(
                f"   {name:9}{lp50:>15.2f}{lp99:>8.2f}{hp50:>10.2f}{hp99:>8.2f}{hp50 - lp50:>+11.2f}{hp99 - lp99:>+8.2f}"
            )
            if name == "records":
                print(f"   (a page of 100 records is {len(response.content) / 1024:.0f} KiB of JSON)")
    print("   target: <= 2 ms added at p50 (records and count)")


# -- 2. throughput -----------------------------------------------------------------------
@dataclasses.dataclass
class Run:
    requests: int
    errors: list[str]
    seconds: float
    latencies: dict[str, list[float]]
    rss: list[tuple[float, float]]  # (seconds into the run, server RSS MiB)
    server_cpu: float  # CPU seconds of the server process
    client_cpu: float  # CPU seconds of this (client) process

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def hammer(url: str, token: str, clients: int, duration: float, min_requests: int, server: psutil.Process) -> Run:
    stop = threading.Event()
    done: list[list[tuple[str, float]]] = [[] for _ in range(clients)]
    errors: list[str] = []

    def work(n: int) -> None:
        with client(url, token) as http:
            i = n
            while not stop.is_set():
                name, path, params = MIX[i % len(MIX)]
                i += 1
                t0 = time.perf_counter()
                try:
                    response = http.get(path, params=params)
                    if response.status_code != 200:
                        errors.append(f"{path}: {response.status_code} {response.text[:200]}")
                except httpx.HTTPError as e:
                    errors.append(f"{path}: {e!r}")
                done[n].append((name, time.perf_counter() - t0))

    me, rss = psutil.Process(), [(0.0, server.memory_info().rss / 2**20)]
    cpu0, mine0 = server.cpu_times(), me.cpu_times()
    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    while (elapsed := time.perf_counter() - t0) < duration or sum(map(len, done)) < min_requests:
        time.sleep(min(1.0, max(0.05, duration - elapsed)))
        rss.append((time.perf_counter() - t0, server.memory_info().rss / 2**20))
    stop.set()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    cpu1, mine1 = server.cpu_times(), me.cpu_times()
    latencies: dict[str, list[float]] = {name: [] for name, _, _ in MIX}
    for name, spent in (x for per in done for x in per):
        latencies[name].append(spent)
    return Run(
        requests=sum(map(len, done)),
        errors=errors,
        seconds=seconds,
        latencies=latencies,
        rss=rss,
        server_cpu=cpu1.user + cpu1.system - cpu0.user - cpu0.system,
        client_cpu=mine1.user + mine1.system - mine0.user - mine0.system,
    )


def describe(label: str, run: Run) -> None:
    lat = "; ".join(f"{k} p50 {ms_quantiles(v)[0]:.1f} / p99 {ms_quantiles(v)[1]:.1f} ms" for k, v in run.latencies.items())
    print(
        f"   {label}: {run.requests} requests in {run.seconds:.1f} s = {run.rate:.0f} req/s, {len(run.errors)} errors; "
        f"CPU: server {run.server_cpu / run.seconds:.2f} cores, clients {run.client_cpu / run.seconds:.2f} cores\n"
        f"      {lat}"
    )
    for error in run.errors[:3]:
        print(f"      error: {error}")


def throughput(url: str, token: str, server: psutil.Process, args: argparse.Namespace) -> None:
    print(f"\n2. Throughput as 'reader', mixing {'/'.join(n for n, _, _ in MIX)} in turn; server: `rollerblade serve")
    print("   --http --no-events` in its own process (uvicorn, one worker), clients: threads of this process")
    hammer(url, token, args.clients, 2.0, 0, server)  # warm-up
    one = hammer(url, token, 1, args.burst, 0, server)
    describe("1 client (baseline)", one)
    many = hammer(url, token, args.clients, args.burst, 0, server)
    describe(f"{args.clients} clients", many)
    print(f"   {args.clients} clients / 1 client: {many.rate / one.rate:.2f}x the requests/s   [{load()}]")
    run = hammer(url, token, args.clients, args.duration, args.min_requests, server)
    describe(f"sustained, {args.clients} clients, {args.duration:.0f} s (and >= {args.min_requests} requests)", run)
    rss = run.rss

    def at(fraction: float) -> float:
        return min(rss, key=lambda s: abs(s[0] - fraction * run.seconds))[1]

    half = [s for s in rss if s[0] >= run.seconds / 2]
    slope = np.polyfit([t for t, _ in half], [m for _, m in half], 1)[0] * 60 if len(half) > 2 else float("nan")
    print(
        f"   server RSS (MiB): start {rss[0][1]:.1f}, 25 % {at(0.25):.1f}, middle {at(0.5):.1f}, 75 % {at(0.75):.1f}, "
        f"end {rss[-1][1]:.1f}, max {max(m for _, m in rss):.1f}; trend over the second half {slope:+.2f} MiB/min"
    )
    ok = not run.errors and run.requests >= args.min_requests
    print(f"   [{'met' if ok else 'NOT met'}] sustained: 0 errors over >= {args.min_requests} requests   [{load()}]")


# -- 3. permission filtering -------------------------------------------------------------
def filtering(services: Services, admin: Principal, datasets: int, repeats: int) -> None:
    who = {"admin": admin, "reader": Principal("reader"), "wide": Principal("wide")}
    share = {"reader": datasets // 10, "wide": datasets - datasets // 10}
    print(f"\n3. Permission filtering in process: {datasets} datasets, {datasets * PER_DATASET} records; median of")
    print(f"   {repeats} runs (ms); ratio = the user's time / the admin's (unfiltered); hits in brackets")
    print(f"   {'query':34}{'call':>7}{'admin':>14}" + "".join(f"{f'{u} ({n} ds)':>26}" for u, n in share.items()))
    worst: tuple[float, str, str, str] = (0.0, "", "", "")
    for query in FILTER_QUERIES:
        for call in ("count", "find"):

            def run(p: Principal, q: str = query, c: str = call) -> int:
                if c == "count":
                    return usecases_data.count(services, p, q)
                return len(list(usecases_data.find(services, p, q, limit=100)))

            times = {u: (median_ms(lambda p=p: run(p), repeats), run(p)) for u, p in who.items()}
            base = times["admin"][0]
            line = f"   {query:34}{call:>7}{times['admin'][0]:>8.2f} [{times['admin'][1]:>5}]"
            for u in share:
                ratio = times[u][0] / base
                line += f"{times[u][0]:>9.2f} [{times[u][1]:>5}] {ratio:>6.2f}x"
                worst = max(worst, (ratio, u, query, call))
            print(line)
    print(f"   target: <= 1.10x the unfiltered time; worst ratio {worst[0]:.2f}x ({worst[1]}, {worst[2]!r}, {worst[3]})")
    steps(services, who, share)
    ratio, user, query, call = worst
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(repeats):
        if call == "count":
            usecases_data.count(services, who[user], query)
        else:
            list(usecases_data.find(services, who[user], query, limit=100))
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(8)
    body = out.getvalue()
    print(f"\n   cProfile of the worst case ({user}, {query!r}, {call}), {repeats} calls, top 8 by own time:")
    print("\n".join("   " + line for line in body[body.find("ncalls") :].splitlines() if line.strip()))


def steps(services: Services, who: dict[str, Principal], share: dict[str, int]) -> None:
    """Where a filtered call spends its time, step by step (query suffix=T1w, count)."""
    guard, index = services.guard, services.index
    print("   steps of count('suffix=T1w') (ms): readable = the grants read (the use case reads them twice);")
    print("   compile = parse + field check against the readable datasets' fields; index = the scoped SQL count")
    for user, person in who.items():
        readable = guard.readable(person)
        node = querying.compile_query("suffix=T1w", index=index, datasets=readable)
        scoped = guard.scope(person, node)
        assert scoped is not None
        parts = {
            "readable": median_ms(lambda p=person: guard.readable(p), 20),
            "compile": median_ms(lambda r=readable: querying.compile_query("suffix=T1w", index=index, datasets=r), 20),
            "scope": median_ms(lambda p=person, n=node: guard.scope(p, n), 20),
            "index": median_ms(lambda n=scoped: index.count(node=n), 20),
        }
        label = f"{user} ({share[user]} ds)" if user in share else user
        print(f"   {label:18}" + "".join(f"{k} {v:7.2f}   " for k, v in parts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small version (under a minute): checks the script")
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the sustained run")
    parser.add_argument("--min-requests", type=int, default=10_000, help="the sustained run goes on until this many")
    parser.add_argument("--burst", type=float, default=10.0, help="seconds of each throughput measure")
    parser.add_argument("--samples", type=int, default=1000, help="latency samples per route")
    parser.add_argument("--repeats", type=int, default=20, help="runs per filtering measure")
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.duration, args.min_requests, args.burst, args.samples, args.repeats = 200, 8, 0, 3, 100, 5
    work = Path(tempfile.mkdtemp(prefix="rb-api-bench-"))
    proc = None
    try:
        print(f"machine: {os.cpu_count()} CPUs, {load()}; Python {sys.version.split()[0]}")
        t0 = time.perf_counter()
        stack, admin, tokens = build_store(work / "home", args.datasets)
        print(f"store: {args.datasets} datasets x {PER_DATASET} records, built in {time.perf_counter() - t0:.1f} s")
        proc, url = start_server(work / "home", work / "server.log")
        server = psutil.Process(proc.pid)
        overhead(stack.services, url, tokens["reader"], args.samples)
        throughput(url, tokens["reader"], server, args)
        proc.terminate()
        proc.wait(timeout=30)
        filtering(stack.services, admin, args.datasets, args.repeats)
        print(f"\n[{load()}]")
        stack.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
