"""HTTP API and permission-filtering benchmark (issue 10), on the embedded default (SQLite).

A store built through the adapters: ``--datasets`` datasets of 100 records cloned from tiny
generated site datasets (ages and bold TRs varied per dataset); ``reader`` may read one
dataset in ten, ``wide`` the other nine (``sharing.grant``). Then, in the same run:
1. API overhead: /v1/records (limit 100) and /v1/count over HTTP on 127.0.0.1 against the
   same use case in process, as ``reader``: p50/p99 and the difference.
2. Requests/s with 1 and ``--clients`` clients (count/records/me), then a sustained run:
   errors, the server's RSS over time (server: ``rollerblade serve`` in its own process).
3. Permission filtering: ``count``/``find(limit=100)`` in process as an admin (unfiltered),
   ``reader`` and ``wide``; for the worst cases their steps, SQLite's plans, a cProfile.

    python bench/api_bench.py            # 1,000 datasets (100k records): ~10 min on 2 cores
    python bench/api_bench.py --quick    # 200 datasets, 8 s sustained: under a minute
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import functools
import http.client
import io
import os
import pstats
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import psutil

from rollerblade.abids.paths import parse_record_path
from rollerblade.access.model import Principal
from rollerblade.adapters import local_dir, sqlite_index
from rollerblade.adapters.sqlite_query import select
from rollerblade.demo.cohort import FULL, SITES, make_participants, write_dataset
from rollerblade.pipeline import querying, reindex, sharing, usecases_data
from rollerblade.pipeline.context import DatasetContext, refreshed
from rollerblade.pipeline.services import Services
from rollerblade.records import Actor, DatasetInfo, MetadataFile, ScanRecord, default_actor
from rollerblade.settings import Settings
from rollerblade.stack import Stack, open_stack

PER_DATASET = 100
HOST = "127.0.0.1"  # loopback only
FILTER_QUERIES = ("suffix=T1w", "participant.age>60", "meta.RepetitionTime<2", "task=rest AND extension=.nii.gz")
MIX = (  # what each client sends in turn in part 2
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
def templates(work: Path) -> list[tuple[list[ScanRecord], list[MetadataFile]]]:
    """100 indexed records per site (5 subjects x 2 sessions, every modality, tiny images),
    with the site's metadata files."""
    storage, index = local_dir.LocalDirStorage(work / "bucket"), sqlite_index.SqliteIndex(work / "t.sqlite")
    out = []
    for site in SITES:
        people = make_participants(5, np.random.default_rng(1))
        write_dataset(work / "bucket/datasets" / site.name, site, people, sessions=2, modalities=FULL, images="tiny")
        reindex.reindex_dataset(site.name, storage=storage, index=index, actor=Actor("bench"), workers=1)
        out.append((list(index.records(dataset=site.name))[:PER_DATASET], index.metadata(dataset=site.name)))
    index.close()
    return out


def _varied(file: MetadataFile, dataset: str, ages: dict[str, int], tr: float) -> MetadataFile:
    """A site's metadata file for one of the bench's datasets: its participants' ages and
    its top-level BOLD sidecars' RepetitionTime drawn per dataset."""
    content = file.content
    if file.kind in ("participants", "sessions") and isinstance(content, dict):
        subject = file.directory  # sessions.tsv: its subject's folder
        rows = {
            key: {**row, "age": ages.get(key if file.kind == "participants" else subject, 50)}
            for key, row in content.get("rows", {}).items()
        }
        content = {**content, "rows": rows}
    elif file.kind == "sidecar" and not file.directory and file.path.endswith("_bold.json"):
        content = {**content, "RepetitionTime": tr} if isinstance(content, dict) else content
    return dataclasses.replace(file, dataset=dataset, content=content)


def build_store(home: Path, datasets: int) -> tuple[Stack, Principal, dict[str, str]]:
    """The store, its admin, and tokens of ``reader`` (10 % of datasets) and ``wide`` (90 %)."""
    bases = templates(home.parent / "templates")
    stack = open_stack(Settings(home=home, executor="process"))
    services, index = stack.services, stack.index
    admin = sharing.local_principal(services, default_actor())  # the first user: admin (serve needs one)
    rng, batch = np.random.default_rng(7), []
    for i in range(datasets):
        name = f"ds-{i:04d}"
        index.put_dataset(info=DatasetInfo(name, Actor("bench"), "2026-12-01T00:00:00Z"))
        ages = {f"sub-{s:03d}": int(rng.integers(18, 90)) for s in range(1, 10)}
        tr = float(rng.choice([0.8, 1.5, 2.0, 2.5]))
        records, files = bases[i % len(bases)]
        metadata = [_varied(f, name, ages, tr) for f in files]
        index.put_metadata(files=metadata)  # first: the records then point at it (metadata by reference)
        context = DatasetContext(metadata)
        for r in records:  # built from that metadata, as indexing would
            moved = dataclasses.replace(r, dataset=name, file={**r.file, "key": f"datasets/{name}/{r.path}"})
            batch.append(refreshed(moved, parse_record_path(r.path), context))
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
    tokens["admin"] = sharing.create_token(services, admin)[0]
    return stack, admin, tokens


def start_server(home: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLERBLADE_")}
    command = [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), "serve", "--no-events"]
    proc = subprocess.Popen(
        [*command, "--http", f"{HOST}:{port}"], env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )
    url, deadline = f"http://{HOST}:{port}", time.monotonic() + 60
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
def overhead(services: Services, url: str, tokens: dict[str, str], admin: Principal, samples: int) -> None:
    who = {"reader": Principal("reader"), "admin": admin}
    cases = [  # (route, user, query); an admin's queries here take under 1 ms in process: the API's cost alone
        ("/v1/records", "reader", "suffix=T1w"),
        ("/v1/count", "reader", "suffix=T1w"),
        ("/v1/records", "admin", "participant.age>60"),
        ("/v1/count", "admin", "suffix=T1w"),
        ("/v1/me", "reader", ""),  # the floor: HTTP, routing and the token check
        ("/health", "admin", ""),  # HTTP and routing only
    ]
    print(f"\n1. API overhead: {samples} calls each after {samples // 5} of warm-up, the use case in process and")
    print("   the HTTP call by httpx and by http.client (the standard library's, a leaner client) interleaved")
    print("   (ms); reader may read 10 % of the datasets")
    print(
        f"   {'':36}{'in-process p50':>15}{'p99':>8}{'httpx p50':>10}{'p99':>8}{'added p50':>11}{'p99':>8}"
        f"{'http.client p50':>16}{'added p50':>11}"
    )
    host, port = url.rsplit("/", 1)[1].split(":")
    for path, user, query in cases:
        kind = path.rsplit("/", 1)[1]
        params = {"query": query, "limit": 100} if kind == "records" else {"query": query} if query else {}
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        # the route asks the use case for one more record than the page holds (is there a next page?)
        use_case = functools.partial(call, services, who[user], query, kind, 101) if query else None
        local: list[float] = []
        remote: list[float] = []
        lean: list[float] = []
        plain = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        with client(url, tokens[user]) as http_client:
            for i in range(samples + samples // 5):
                t0 = time.perf_counter()
                if use_case is not None:
                    use_case()
                t1 = time.perf_counter()
                response = http_client.get(path, params=params)
                t2 = time.perf_counter()
                plain.request("GET", target, headers=headers)
                answer = plain.getresponse()
                body = answer.read()
                t3 = time.perf_counter()
                if response.status_code != 200 or answer.status != 200 or not body:
                    raise SystemExit(f"{path}: {response.status_code} {answer.status} {response.text[:300]}")
                if i >= samples // 5:
                    local.append(t1 - t0)
                    remote.append(t2 - t1)
                    lean.append(t3 - t2)
        plain.close()
        (lp50, lp99), (hp50, hp99), (cp50, _) = ms_quantiles(local), ms_quantiles(remote), ms_quantiles(lean)
        inproc = f"{lp50:>15.2f}{lp99:>8.2f}" if use_case else f"{'-':>15}{'-':>8}"
        label = f"{path} {query} ({user})"
        print(
            f"   {label:36}{inproc}{hp50:>10.2f}{hp99:>8.2f}{hp50 - lp50:>+11.2f}{hp99 - lp99:>+8.2f}"
            f"{cp50:>16.2f}{cp50 - lp50:>+11.2f}"
        )
        if kind == "records":
            print(f"      (a page of 100 records: {len(response.content) / 1024:.0f} KiB of JSON)")
    print("   target: <= 2 ms added at p50")


# -- 2. throughput -----------------------------------------------------------------------
@dataclasses.dataclass
class Run:
    requests: int
    seconds: float
    errors: list[str]
    rss: list[tuple[float, float]]  # (seconds into the run, server RSS MiB)


def cpu_seconds(process: psutil.Process | None = None) -> float:
    """CPU time of ``process``, or of the whole machine when None."""
    t = process.cpu_times() if process else psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))


def hammer(label: str, url: str, token: str, clients: int, duration: float, least: int, server: psutil.Process) -> Run:
    """``clients`` threads sending MIX in turn for ``duration`` s and at least ``least`` requests."""
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
    before = (cpu_seconds(server), cpu_seconds(me), cpu_seconds())
    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    while (elapsed := time.perf_counter() - t0) < duration or sum(map(len, done)) < least:
        time.sleep(min(1.0, max(0.05, duration - elapsed)))
        rss.append((time.perf_counter() - t0, server.memory_info().rss / 2**20))
    stop.set()
    for t in threads:
        t.join()
    run = Run(sum(map(len, done)), time.perf_counter() - t0, errors, rss)
    after = (cpu_seconds(server), cpu_seconds(me), cpu_seconds())
    server_s, client_s, all_s = (after[i] - before[i] for i in range(3))
    if label:
        spent = {name: [s for per in done for n, s in per if n == name] for name, _, _ in MIX}
        lat = "; ".join(f"{k} {ms_quantiles(v)[0]:.1f} / {ms_quantiles(v)[1]:.1f}" for k, v in spent.items())
        other = max(0.0, all_s - server_s - client_s)
        print(
            f"   {label}: {run.requests} requests in {run.seconds:.1f} s = {run.requests / run.seconds:.0f} req/s, "
            f"{len(errors)} errors\n      p50 / p99 ms: {lat}\n      CPU cores: server {server_s / run.seconds:.2f}, "
            f"clients {client_s / run.seconds:.2f}, other processes {other / run.seconds:.2f}; "
            f"server CPU per request {server_s / run.requests * 1000:.1f} ms"
        )
        for error in errors[:3]:
            print(f"      error: {error}")
    return run


def throughput(url: str, token: str, server: psutil.Process, args: argparse.Namespace) -> None:
    print(f"\n2. Throughput as 'reader', each client sending {', '.join(p for _, p, _ in MIX)} in turn;")
    print("   server: `rollerblade serve --http 127.0.0.1:PORT --no-events` in its own process (uvicorn,")
    print("   one worker); clients: threads of this process, one httpx.Client each")
    hammer("", url, token, args.clients, 2.0, 0, server)  # warm-up
    one = hammer("1 client (baseline)", url, token, 1, args.burst, 0, server)
    many = hammer(f"{args.clients} clients", url, token, args.clients, args.burst, 0, server)
    ratio = (many.requests / many.seconds) / (one.requests / one.seconds)
    print(f"   {args.clients} clients / 1 client: {ratio:.2f}x the requests/s")
    label = f"sustained: {args.clients} clients, {args.duration:.0f} s and >= {args.min_requests} requests"
    run = hammer(label, url, token, args.clients, args.duration, args.min_requests, server)
    rss = run.rss

    def at(fraction: float) -> float:
        return min(rss, key=lambda s: abs(s[0] - fraction * run.seconds))[1]

    half = [s for s in rss if s[0] >= run.seconds / 2]
    slope = np.polyfit([t for t, _ in half], [m for _, m in half], 1)[0] * 60 if len(half) > 2 else float("nan")
    print(
        f"   server RSS MiB: start {rss[0][1]:.1f}, 25 % {at(0.25):.1f}, middle {at(0.5):.1f}, 75 % {at(0.75):.1f}, "
        f"end {rss[-1][1]:.1f} (max {max(m for _, m in rss):.1f}); second half {slope:+.2f} MiB/min"
    )
    ok = not run.errors and run.requests >= args.min_requests
    print(f"   [{'met' if ok else 'NOT met'}] sustained run without errors   [{load()}]")


# -- 3. permission filtering -------------------------------------------------------------
def call(services: Services, who: Principal, query: str, kind: str, limit: int = 100) -> int:
    if kind == "count":
        return usecases_data.count(services, who, query)
    return len(list(usecases_data.find(services, who, query, limit=limit)))


def filtering(stack: Stack, admin: Principal, datasets: int, repeats: int) -> None:
    services = stack.services
    who = {"admin": admin, "reader": Principal("reader"), "wide": Principal("wide")}
    share = {"reader": datasets // 10, "wide": datasets - datasets // 10}
    print(f"\n3. Permission filtering in process: {datasets} datasets, {datasets * PER_DATASET} records; median")
    print(f"   of {repeats} runs (ms), [hits]; ratio = the user's time / the admin's (unfiltered)")
    print(f"   {'query':34}{'call':>6}{'admin':>15}" + "".join(f"{f'{u} ({n} ds)':>26}" for u, n in share.items()))
    worst = {"count": (0.0, "", ""), "find": (0.0, "", "")}
    for query in FILTER_QUERIES:
        for kind in ("count", "find"):
            times = {}
            for u, p in who.items():
                run = functools.partial(call, services, p, query, kind)
                times[u] = (median_ms(run, repeats), run())
            line = f"   {query:34}{kind:>6}{times['admin'][0]:>9.2f} [{times['admin'][1]:>5}]"
            for u in share:
                ratio = times[u][0] / times["admin"][0]
                line += f"{times[u][0]:>9.2f} [{times[u][1]:>5}] {ratio:>6.2f}x"
                worst[kind] = max(worst[kind], (ratio, u, query))
            print(line)
    print("   target: <= 1.10x the unfiltered time")
    for kind, (ratio, user, query) in worst.items():
        print(f"\n   worst {kind}: {ratio:.2f}x ({user}, {query!r}); steps in ms (the readable datasets,")
        print("   the query checked against their fields, the scoped SQL)")
        steps(stack, {"admin": admin, user: who[user]}, query, kind)
    kind = max(worst, key=lambda k: worst[k][0])
    _, user, query = worst[kind]
    profile = cProfile.Profile()
    profile.runcall(lambda: [call(services, who[user], query, kind) for _ in range(repeats)])
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(6)
    text = out.getvalue()
    print(f"\n   cProfile of the worst case ({kind}), {repeats} calls, top 6 by own time:")
    print("\n".join("   " + line for line in text[text.find("ncalls") :].splitlines() if line.strip()))


def steps(stack: Stack, who: dict[str, Principal], query: str, kind: str) -> None:
    """One call step by step, and SQLite's plan of its SQL."""
    guard, index = stack.services.guard, stack.index
    db = sqlite3.connect(f"file:{stack.settings.index_path}?mode=ro", uri=True)
    for user, person in who.items():
        readable = guard.readable(person)
        scoped = guard.scope(person, querying.compile_query(query, index=index, datasets=readable))
        assert scoped is not None
        sql, params = select(scoped, "count(*)" if kind == "count" else "r.doc")
        sql += "" if kind == "count" else " ORDER BY r.dataset, r.path LIMIT 101"
        variants = {"SQL": sql}
        parts = {
            "grants": median_ms(lambda p=person: guard.readable(p), 20),
            "parse+fields": median_ms(lambda r=readable: querying.compile_query(query, index=index, datasets=r), 20),
            **{k: median_ms(lambda q=q, a=params: db.execute(q, a).fetchall(), 10) for k, q in variants.items()},
        }
        print(f"   {user:8}" + "; ".join(f"{k} {v:.2f}" for k, v in parts.items()))
        for label, text in variants.items():
            plan = "; ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {text}", params))
            print(f"      plan of {label}: {plan}")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small version (under a minute): checks the script")
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the sustained run")
    parser.add_argument("--min-requests", type=int, default=10_000, help="the sustained run goes on until this many")
    args = parser.parse_args()
    args.burst, args.samples, args.repeats = (3.0, 100, 5) if args.quick else (10.0, 500, 20)  # s, calls, calls
    if args.quick:
        args.datasets, args.duration, args.min_requests = 200, 8.0, 0
    work = Path(tempfile.mkdtemp(prefix="rb-api-bench-"))
    proc = None
    try:
        print(f"machine: {os.cpu_count()} CPUs, {load()}; Python {sys.version.split()[0]}")
        t0 = time.perf_counter()
        stack, admin, tokens = build_store(work / "home", args.datasets)
        print(f"store: {args.datasets} datasets x {PER_DATASET} records, built in {time.perf_counter() - t0:.1f} s")
        proc, url = start_server(work / "home", work / "server.log")
        server = psutil.Process(proc.pid)
        overhead(stack.services, url, tokens, admin, args.samples)
        throughput(url, tokens["reader"], server, args)
        proc.terminate()
        proc.wait(timeout=30)
        filtering(stack, admin, args.datasets, args.repeats)
        print(f"\n[{load()}]")
        stack.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
