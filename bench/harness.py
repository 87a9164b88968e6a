#!/usr/bin/env python3
"""The benchmark harness of issue #5, run by `scripts/bench` (which builds the binaries, starts
the benchmark's own dev cluster with an audit log, and sets the BENCH_* environment).

Every workload runs against each tool in turn, in the same run, on the same cluster:

  driftless   the agent (one process) with GitSyncs, webhooks for notifications
  flux        source-controller + kustomize-controller, their default concurrency
  flux-c20    the same with --concurrent=20 on both controllers (Flux's own benchmark)
  argocd      Argo CD's application controller + repo-server + Redis, run out of cluster with
              the install's default settings; an Application per sync, automated with prune,
              self-heal and server-side apply; refreshes by annotation (no argocd-server)
  argocd-ha   the same with the settings Argo CD's high-availability guide gives for ~1,000 apps
  kubectl     kubectl apply --server-side --prune --applyset (single-set workloads only)
  ceiling     a minimal client sending the same server-side applies (tools/bench/ceiling),
              multiplexed on one HTTP/2 connection (client-go's default)
  ceiling-h1  the same over one HTTP/1.1 connection per concurrent request (as kube-rs)
  ceiling-v   the same as ceiling, but dry-running the whole set before applying it: the
              least a tool that validates before writing (driftless, Flux) must send

API requests are counted exactly from the API server's audit log, by user agent. Peak RSS
(VmHWM, reset before each workload through /proc/PID/clear_refs) and CPU seconds (utime+stime,
children included) come from /proc. Results go to a JSON file; the Markdown report and the
SVG chart are generated from it (`--report-only` regenerates them).
"""
import argparse
import base64
import datetime
from urllib.parse import quote
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import MANY_CONCURRENCY, Audit, Kube, Proc, git, log, run_measured, wait_until  # noqa: E402
import report  # noqa: E402

ROOT = os.environ.get("BENCH_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBECONFIG = os.environ.get("KUBECONFIG", "")
CLUSTER_DIR = os.environ.get("DRIFTLESS_CLUSTER_DIR", "")
PORT = int(os.environ.get("DRIFTLESS_CLUSTER_PORT_BASE", "24700")) + 10
GIT_PORT, STORAGE_PORT, DRIFTLESS_PORT = PORT, PORT + 1, PORT + 2
FLUX_PORTS = (PORT + 3, PORT + 4, PORT + 5, PORT + 6)  # metrics and health of both controllers
# Redis, the repo-server's gRPC and metrics ports, the application controller's metrics port.
ARGO_PORTS = (PORT + 7, PORT + 8, PORT + 9, PORT + 10)
ARGO_NS = "argocd"  # Argo CD's own namespace: its settings, AppProject and every Application
ARGO_CTL_LABEL = "driftless.dev/bench-ctl"  # on each Application: the run namespace it stands for
IN_CLUSTER = "https://kubernetes.default.svc"
ARGO_APPS = f"/apis/argoproj.io/v1alpha1/namespaces/{ARGO_NS}/applications"
TOKEN = "bench-token"
UA = {  # audit log user agents of each tool's requests
    "driftless": ("driftless/",),
    "flux": ("source-controller/", "kustomize-controller/"),
    "flux-c20": ("source-controller/", "kustomize-controller/"),
    # Both the controller's own client and its cluster cache's (client-go's default agent is the
    # program's name). The repo-server never calls the API server.
    "argocd": ("argocd-application-controller/",),
    "argocd-ha": ("argocd-application-controller/",),
    "kubectl": ("kubectl/",),
    "ceiling": ("ceiling",),
    "ceiling-h1": ("ceiling",),
    "ceiling-v": ("ceiling",),
}
AGENTS = ("driftless", "flux", "flux-c20", "argocd", "argocd-ha")
ARGO = ("argocd", "argocd-ha")
SMALL = 100  # sizes up to this get --small-reps repetitions


class ArgoCannotRecord(RuntimeError):
    """Argo CD applied a sync but cannot write its result into the Application: with every object
    listed in its status (about 440 bytes each), a big Application is over etcd's request limit
    (1.5 MiB by default) and the controller retries the write for ever."""


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = args.work
        self.kube = Kube(KUBECONFIG)
        self.audit = Audit(os.path.join(CLUSTER_DIR, "logs", "audit.log"))
        self.results = []
        self.earlier = []  # the runs whose rows --append keeps
        if args.append and os.path.exists(args.results):
            data = json.load(open(args.results))
            self.results = data["results"]
            prev = data["meta"]
            self.earlier = prev.get("earlier_runs", []) + [
                {k: prev.get(k) for k in ("started", "finished", "command", "load_before", "load_after")}]
        self.proc = []  # processes of the tool under test
        self.git = None
        self.seq = 0
        self.id = format(int(time.time()) % 0x10000, "04x")  # names unique to this run
        self.too_big = {}  # Argo CD tool -> the smallest N it could not record (larger N are skipped)
        self.argo_log = {"offsets": {}, "refused": set(), "scanned": 0.0, "lock": threading.Lock()}

    # --- infrastructure --------------------------------------------------------------------

    def start_git_server(self):
        base = os.path.join(self.work, "git")
        os.makedirs(base, exist_ok=True)
        conf = os.path.join(self.work, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(f'''server.modules = ("mod_alias", "mod_setenv", "mod_cgi")
server.document-root = "{self.work}"
server.bind = "127.0.0.1"
server.port = {GIT_PORT}
server.errorlog = "{self.work}/lighttpd-error.log"
server.max-worker = 0
alias.url = ("/git/" => "/usr/lib/git-core/git-http-backend/")
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "{base}", "GIT_HTTP_EXPORT_ALL" => "1")
}}
''')
        self.git = Proc("lighttpd", ["lighttpd", "-D", "-f", conf], os.path.join(self.work, "lighttpd.out"))
        wait_until("git server", 20, lambda: subprocess.run(
            ["git", "ls-remote", f"http://127.0.0.1:{GIT_PORT}/git/none.git"],
            capture_output=True).returncode in (0, 128) and port_open(GIT_PORT))

    def new_repo(self, name):
        """A bare repository served at URL and a work tree to commit from."""
        bare = os.path.join(self.work, "git", f"{name}.git")
        tree = os.path.join(self.work, "trees", name)
        shutil.rmtree(bare, ignore_errors=True)
        shutil.rmtree(tree, ignore_errors=True)
        git(None, "init", "-q", "--bare", "-b", "main", bare)
        git(bare, "config", "http.receivepack", "true")
        git(None, "init", "-q", "-b", "main", tree)
        git(tree, "remote", "add", "origin", bare)
        return tree, f"http://127.0.0.1:{GIT_PORT}/git/{name}.git"

    def commit(self, tree, message):
        git(tree, "add", "-A")
        git(tree, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", message)
        git(tree, "push", "-q", "origin", "main")
        return git(tree, "rev-parse", "HEAD").strip()

    def gen(self, tree, n, ns):
        subprocess.run([os.path.join(ROOT, "scripts", "gen-manifests"), os.path.join(tree, "app"), str(n), ns],
                       check=True)

    def namespace(self, name):
        self.kube.apply_ns(name)

    def cleanup(self, *namespaces):
        """Deletes the sync objects (finalizers dropped: their tool is stopped) and namespaces."""
        for ns in namespaces:
            for path in (f"/apis/driftless.dev/v1alpha1/namespaces/{ns}/gitsyncs",
                         f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ns}/kustomizations",
                         f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}/gitrepositories"):
                items = self.kube.get(path, missing_ok=True) or {"items": []}
                for it in items["items"]:
                    if it["metadata"].get("finalizers"):
                        self.kube.merge_patch(f"{path}/{it['metadata']['name']}", {"metadata": {"finalizers": None}})
            # Argo CD's Applications live in its own namespace, labelled with the run namespace
            # they stand for; none has a finalizer (the harness sets none), so deleting one
            # leaves its objects to the namespace's deletion.
            self.kube.delete(f"{ARGO_APPS}?labelSelector={quote(f'{ARGO_CTL_LABEL}={ns}')}")
            self.kube.delete(f"/api/v1/namespaces/{ns}")
        for ns in namespaces:
            try:
                wait_until(f"namespace {ns} deleted", 600,
                           lambda: self.kube.get(f"/api/v1/namespaces/{ns}", missing_ok=True) is None, 1.0)
            except TimeoutError as e:
                log(f"warning: {e}")

    # --- tools ------------------------------------------------------------------------------

    def start_tool(self, tool):
        self.stop_tool()
        logs = os.path.join(self.work, "logs")
        os.makedirs(logs, exist_ok=True)
        self.seq += 1
        if tool == "driftless":
            cache = os.path.join(self.work, f"driftless-cache-{self.seq}")
            env = dict(os.environ, DRIFTLESS_WEBHOOK_TOKEN=TOKEN, DRIFTLESS_LOG=os.environ.get("BENCH_DRIFTLESS_LOG", "info"))
            self.proc = [Proc("driftless", [os.environ["BENCH_DRIFTLESS_BIN"], "agent", "--kubeconfig", KUBECONFIG,
                                            "--cache-dir", cache, "--listen", f"127.0.0.1:{DRIFTLESS_PORT}"]
                              # e.g. BENCH_DRIFTLESS_ARGS="--concurrency 8" to compare settings
                              + os.environ.get("BENCH_DRIFTLESS_ARGS", "").split(),
                              os.path.join(logs, f"driftless-{self.seq}.log"), env)]
            wait_until("driftless agent ready", 60, lambda: http_ok(DRIFTLESS_PORT, "/readyz"))
        elif tool in ("flux", "flux-c20"):
            storage = os.path.join(self.work, f"flux-storage-{self.seq}")
            os.makedirs(storage)
            env = dict(os.environ, RUNTIME_NAMESPACE="flux-system")
            m1, h1, m2, h2 = FLUX_PORTS
            # Both find the cluster through $KUBECONFIG (controller-runtime).
            sc = [os.environ["BENCH_SOURCE_CONTROLLER_BIN"],
                  f"--storage-path={storage}", f"--storage-addr=127.0.0.1:{STORAGE_PORT}",
                  f"--storage-adv-addr=127.0.0.1:{STORAGE_PORT}", f"--metrics-addr=127.0.0.1:{m1}",
                  f"--health-addr=127.0.0.1:{h1}", "--enable-leader-election=false", "--watch-all-namespaces",
                  "--log-level=info"]
            kc = [os.environ["BENCH_KUSTOMIZE_CONTROLLER_BIN"],
                  f"--metrics-addr=127.0.0.1:{m2}", f"--health-addr=127.0.0.1:{h2}",
                  "--enable-leader-election=false", "--watch-all-namespaces", "--log-level=info"]
            if tool == "flux-c20":
                sc.append("--concurrent=20")
                kc.append("--concurrent=20")
            self.proc = [Proc("source-controller", sc, os.path.join(logs, f"source-controller-{self.seq}.log"), env),
                         Proc("kustomize-controller", kc, os.path.join(logs, f"kustomize-controller-{self.seq}.log"),
                              env)]
            wait_until("flux controllers ready", 60,
                       lambda: http_ok(h1, "/readyz") and http_ok(h2, "/readyz"))
        elif tool in ARGO:
            self.proc = self.start_argocd(tool, logs)

    def start_argocd(self, tool, logs):
        """Redis, the repo-server and the application controller, as Argo CD's install runs them
        (one replica each), but as local processes. Returns the processes."""
        redis_port, repo_port, repo_metrics, ctl_metrics = ARGO_PORTS
        work = os.path.join(self.work, f"argocd-{self.seq}")
        os.makedirs(work)
        bins = os.environ["BENCH_ARGOCD_BIN_DIR"]
        env = dict(os.environ,
                   # The in-cluster destination (https://kubernetes.default.svc) is the cluster of
                   # $KUBECONFIG instead of the pod's service account: Argo CD's development switch.
                   ARGOCD_FAKE_IN_CLUSTER="true", KUBECONFIG=KUBECONFIG,
                   # No GnuPG keyring (the install mounts one; signature checks are off by default).
                   ARGOCD_GPG_ENABLED="false",
                   # Clones and the git askpass socket in this run's directory, not /tmp.
                   TMPDIR=work, ARGOCD_ASK_PASS_SOCK=os.path.join(work, "askpass.sock"))
        repo = [os.path.join(bins, "argocd-repo-server"), "--address", "127.0.0.1", "--port", str(repo_port),
                "--metrics-address", "127.0.0.1", "--metrics-port", str(repo_metrics),
                "--redis", f"127.0.0.1:{redis_port}", "--disable-tls", "--loglevel", "info"]
        ctl = [os.path.join(bins, "argocd-application-controller"), "--kubeconfig", KUBECONFIG,
               "--namespace", ARGO_NS, "--repo-server", f"127.0.0.1:{repo_port}", "--repo-server-plaintext",
               "--redis", f"127.0.0.1:{redis_port}", "--metrics-port", str(ctl_metrics), "--loglevel", "info",
               # timeout.reconciliation's default (argocd-cm): 180 s between periodic refreshes.
               "--app-resync", "180"]
        ctl_env = dict(env)
        if tool == "argocd":
            ctl += ["--status-processors", "20", "--operation-processors", "10"]  # the defaults, spelled out
        else:
            # docs/operator-manual/high_availability.md (argo-cd v3.2.12), "argocd-application-
            # controller": "For 1000 application we use 50 for --status-processors and 25 for
            # --operation-processors". Its repo-server section: --parallelismlimit "controls how
            # many manifests generations are running concurrently and helps avoid OOM kills"
            # (unlimited by default); 10 here, the guide gives no number. The client-side rate
            # limit (ARGOCD_K8S_CLIENT_QPS 50, burst 2x; pkg/apis/application/v1alpha1/
            # cluster_constants.go) is not in the guide; raised 4x here so that it does not cap
            # a thousand applications' applies.
            ctl += ["--status-processors", "50", "--operation-processors", "25"]
            repo += ["--parallelismlimit", "10"]
            ctl_env.update(ARGOCD_K8S_CLIENT_QPS="200", ARGOCD_K8S_CLIENT_BURST="400")
        procs = [Proc("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                                "--appendonly", "no", "--dir", work], os.path.join(logs, f"redis-{self.seq}.log"))]
        try:
            wait_until("redis ready", 20, lambda: port_open(redis_port))
            procs.append(Proc("argocd-repo-server", repo, os.path.join(logs, f"argocd-repo-server-{self.seq}.log"), env))
            procs.append(Proc("argocd-application-controller", ctl,
                              os.path.join(logs, f"argocd-application-controller-{self.seq}.log"), ctl_env))
            wait_until("argo cd ready", 60,
                       lambda: http_ok(repo_metrics, "/healthz") and http_ok(ctl_metrics, "/healthz"))
        except Exception:
            for p in procs:
                p.stop()
            raise
        return procs

    def stop_tool(self):
        for p in self.proc:
            p.stop()
        self.proc = []

    def mark(self):
        for p in self.proc:
            p.reset_peak()
        return (time.monotonic(), self.audit.offset(), sum(p.cpu() for p in self.proc), time.time())

    def record(self, workload, tool, n, rep, seconds, mark, extra=None, usage=None):
        _, off, cpu0, wall = mark
        requests = self.audit.count(off, UA[tool], wall)
        if usage is None:
            usage = (sum(p.peak_kib() for p in self.proc) / 1024, sum(p.cpu() for p in self.proc) - cpu0)
        row = {"workload": workload, "tool": tool, "n": n, "rep": rep, "seconds": round(seconds, 3),
               "requests": requests["total"], "writes": requests["writes"],
               "peak_rss_mib": round(usage[0], 1), "cpu_s": round(usage[1], 2)}
        row["phases"] = requests["phases"]  # (the profile tables skip the ceiling clients)
        row.update(extra or {})
        log(f"w{workload} {tool} N={n} rep={rep}: {seconds:.2f} s, {requests['total']} requests "
            f"({requests['writes']} writes), {usage[0]:.0f} MiB, {usage[1]:.1f} CPU s")
        self.results.append(row)
        self.save()

    def save(self):
        with open(self.args.results, "w") as f:
            json.dump({"meta": self.meta, "results": self.results}, f, indent=1)

    # --- sync objects -----------------------------------------------------------------------

    def create_sync(self, tool, ctl_ns, name, url, path, ns=None):
        """The tool's sync of `path` at `url` named `name` for run namespace `ctl_ns`; `ns` is the
        namespace the manifests name (Argo CD's destination)."""
        if tool in ARGO:
            self.kube.create(ARGO_APPS, {
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": self.sync_name(tool, ctl_ns, name), "namespace": ARGO_NS,
                             "labels": {ARGO_CTL_LABEL: ctl_ns}},
                "spec": {"project": "default",
                         "source": {"repoURL": url, "path": path, "targetRevision": "main"},
                         "destination": {"server": IN_CLUSTER, **({"namespace": ns} if ns else {})},
                         # Prune and drift correction as the other agents; server-side apply as
                         # they all apply (Argo CD's default is client-side apply).
                         "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                                        "syncOptions": ["ServerSideApply=true"]}}})
        elif tool == "driftless":
            self.kube.create(f"/apis/driftless.dev/v1alpha1/namespaces/{ctl_ns}/gitsyncs", {
                "apiVersion": "driftless.dev/v1alpha1", "kind": "GitSync",
                "metadata": {"name": name, "namespace": ctl_ns},
                "spec": {"url": url, "ref": {"branch": "main"}, "path": path, "pollInterval": "1h",
                         "interval": "1h", "prune": True}})
        else:
            self.kube.create(f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ctl_ns}/kustomizations", {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": name, "namespace": ctl_ns},
                "spec": {"interval": "1h", "path": f"./{path}", "prune": True,
                         "sourceRef": {"kind": "GitRepository", "name": "repo"}}})

    def create_source(self, tool, ctl_ns, url):
        if tool.startswith("flux"):
            self.kube.create(f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{ctl_ns}/gitrepositories", {
                "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                "metadata": {"name": "repo", "namespace": ctl_ns},
                "spec": {"url": url, "interval": "1h", "ref": {"branch": "main"}}})

    def sync_path(self, tool, ctl_ns, name=None):
        if tool in ARGO:
            return ARGO_APPS + (f"/{self.sync_name(tool, ctl_ns, name)}" if name else "")
        if tool == "driftless":
            return f"/apis/driftless.dev/v1alpha1/namespaces/{ctl_ns}/gitsyncs" + (f"/{name}" if name else "")
        return f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{ctl_ns}/kustomizations" + (f"/{name}" if name else "")

    @staticmethod
    def sync_name(tool, ctl_ns, name):
        """The sync object's name: Argo CD's Applications share its namespace, so theirs carries
        the run namespace."""
        return f"{ctl_ns}-{name}" if tool in ARGO else name

    @staticmethod
    def sync_selector(tool, ctl_ns):
        """The label selector of a run namespace's sync objects in the collection of sync_path."""
        return f"{ARGO_CTL_LABEL}={ctl_ns}" if tool in ARGO else None

    @staticmethod
    def applied(obj, sha):
        st = obj.get("status") or {}
        if obj.get("kind") == "Application":
            # Synced at the commit (the comparison after the sync), and the last sync operation
            # succeeded at that commit.
            op = st.get("operationState") or {}
            return (st.get("sync") or {}).get("status") == "Synced" and st["sync"].get("revision") == sha \
                and op.get("phase") == "Succeeded" and (op.get("syncResult") or {}).get("revision") == sha
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions", []))
        return ready and st.get("lastAppliedRevision") == f"main@sha1:{sha}"

    def timed(self, *actions):
        """A watch's `start`: takes the mark, then does the actions. Returns (start, marks);
        marks[0] is the mark once started."""
        marks = []

        def start():
            marks.append(self.mark())
            for act in actions:
                act()
        return start, marks

    def wait_applied(self, tool, ctl_ns, name, sha, timeout, start=None, kube=None):
        """Follows the sync object until it is applied at `sha` (`kube`: another client, for a
        wait in a thread of its own)."""
        name = self.sync_name(tool, ctl_ns, name)

        def done(objs):
            obj = objs.get(name)
            if obj and fail_message(obj):
                raise RuntimeError(f"{tool} {ctl_ns}/{name} failed: {fail_message(obj)}")
            if tool in ARGO and self.argo_refused(name):
                raise ArgoCannotRecord(f"{tool} applied {name} but etcd refuses its status as too large")
            return obj is not None and self.applied(obj, sha)
        # (Argo CD: a stuck status makes no watch event, hence a look at its log every 15 s.)
        (kube or self.kube).watch_until(f"{tool} {ctl_ns}/{name} applied at {sha[:8]}",
                                        self.sync_path(tool, ctl_ns), timeout, done, name, start,
                                        idle=15 if tool in ARGO else None)

    def argo_refused(self, app):
        """Whether Argo CD's controller has logged that etcd refused `app`'s status as too large.
        Reads only the log's new lines, at most every 5 s (the check runs on each watch event)."""
        st = self.argo_log
        with st["lock"]:
            ctl = [p for p in self.proc if p.name == "argocd-application-controller"]
            if ctl and time.monotonic() - st["scanned"] >= 5:
                st["scanned"] = time.monotonic()
                path = ctl[0].logfile
                with open(path, "rb") as f:
                    f.seek(st["offsets"].get(path, 0))
                    data = f.read()
                data = data[:data.rfind(b"\n") + 1]  # whole lines only
                st["offsets"][path] = st["offsets"].get(path, 0) + len(data)
                for line in data.splitlines():
                    if b"request is too large" in line:
                        m = re.search(rb'"application":"([^"]+)"', line)
                        if m:
                            st["refused"].add(m.group(1).decode())
            return app in st["refused"]

    def resync(self, tool, ctl_ns, name, timeout):
        """Asks for an unchanged re-sync and waits until the tool has done it; returns the mark
        taken as it asked."""
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        path = self.sync_path(tool, ctl_ns, name)
        name = self.sync_name(tool, ctl_ns, name)
        value = now  # the annotation's value
        if tool in ARGO:
            # A refresh: Argo CD compares Git at the branch's head with its cache of the live
            # objects and syncs only what differs (here nothing). The controller removes the
            # annotation in the status patch that ends the refresh.
            annotation, value = "argocd.argoproj.io/refresh", "normal"
            seen = [False]

            def done(obj):
                requested = annotation in (obj["metadata"].get("annotations") or {})
                seen[0] = seen[0] or requested
                return seen[0] and not requested and ((obj.get("status") or {}).get("sync") or {}).get("status") \
                    == "Synced"
        elif tool == "driftless":
            annotation = "driftless.dev/requested-at"

            def done(obj):
                hist = (obj.get("status") or {}).get("history") or [{}]
                return hist[0].get("started", "") >= now[:19] and parse_ts(hist[0]["started"]) >= parse_ts(now) \
                    and hist[0].get("result") == "Succeeded"
        else:
            annotation = "reconcile.fluxcd.io/requestedAt"

            def done(obj):
                st = obj.get("status") or {}
                ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions", []))
                return st.get("lastHandledReconcileAt") == now and ready
        start, marks = self.timed(lambda: self.kube.merge_patch(path, {"metadata": {"annotations": {annotation: value}}}))
        self.kube.watch_until(f"{tool} re-sync of {name}", self.sync_path(tool, ctl_ns), timeout,
                              lambda objs: name in objs and done(objs[name]), name, start)
        return marks[0]

    def notify(self, tool, ctl_ns, url, name="app"):
        """Tells the tool a new commit is there: driftless's webhook, Flux's reconcile annotation
        on the GitRepository, Argo CD's refresh annotation on the Application `name` (what its
        webhook, served by argocd-server which the bench does not run, does to each Application
        of the pushed repository and branch)."""
        if tool == "driftless":
            http_post(DRIFTLESS_PORT, "/hook/generic", {"url": url, "branch": "main"}, TOKEN)
        elif tool in ARGO:
            self.kube.merge_patch(self.sync_path(tool, ctl_ns, name),
                                  {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}})
        else:
            now = datetime.datetime.now(datetime.timezone.utc).isoformat()
            self.kube.merge_patch(f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{ctl_ns}/gitrepositories/repo",
                                  {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}})

    def wait_configmap(self, ns, value, timeout, start, name="obj-00000"):
        """Waits until ConfigMap `name` (by default the workloads' first, the edited object) holds
        `value`."""
        self.kube.watch_until(f"ConfigMap {ns}/{name} = {value}", f"/api/v1/namespaces/{ns}/configmaps", timeout,
                              lambda objs: ((objs.get(name) or {}).get("data") or {}).get("key") == value,
                              name, start)

    # --- workloads 1, 2, 3 (single set) --------------------------------------------------------

    def single_set(self, tool, n, rep):
        tag = f"{tool}-{n}-{rep}-{self.id}".replace("flux-c20", "fluxc")
        ns, ctl = f"b-{tag}", f"c-{tag}"
        tree, url = self.new_repo(f"single-{tag}")
        self.gen(tree, n, ns)
        sha = self.commit(tree, f"{n} objects")
        timeout = 120 + n * 0.5
        change = 3 in self.args.workloads and (n == 1000 or self.args.smoke)
        if self.too_big.get(tool, n + 1) <= n:
            log(f"{tool} N={n} rep={rep}: skipped (it could not record a sync of {self.too_big[tool]} objects)")
            return
        try:
            if tool in AGENTS:
                self.namespace(ctl)
                self.start_tool(tool)
                start, marks = self.timed(lambda: self.create_source(tool, ctl, url),
                                          lambda: self.create_sync(tool, ctl, "app", url, "app", ns))
                try:
                    self.wait_applied(tool, ctl, "app", sha, timeout, start)
                except ArgoCannotRecord as e:
                    log(f"{e}; recorded as failed, its later workloads and larger N skipped")
                    self.too_big[tool] = n
                    self.record(1, tool, n, rep, time.monotonic() - marks[0][0], marks[0], {"failed": str(e)})
                    return
                self.record(1, tool, n, rep, time.monotonic() - marks[0][0], marks[0])
                if 2 in self.args.workloads:
                    time.sleep(1)  # let status writes and events of the first sync settle
                    mark = self.resync(tool, ctl, "app", timeout)
                    self.record(2, tool, n, rep, time.monotonic() - mark[0], mark)
                if change:
                    edit_configmap(tree, "changed")
                    self.commit(tree, "one object changed")
                    start, marks = self.timed(lambda: self.notify(tool, ctl, url))
                    self.wait_configmap(ns, "changed", timeout, start)
                    self.record(3, tool, n, rep, time.monotonic() - marks[0][0], marks[0])
            else:
                if tool == "kubectl":
                    self.namespace(ns)  # the ApplySet parent Secret lives in it (untimed)
                    argv = ["kubectl", f"--kubeconfig={KUBECONFIG}", "apply", "--server-side", "--force-conflicts",
                            "--prune", f"--applyset=bench-{tag}", "-n", ns, "-R", "-f", os.path.join(tree, "app")]
                    env = dict(os.environ, KUBECTL_APPLYSET="true")
                else:
                    argv = self.ceiling_argv(tool, os.path.join(tree, "app"), self.args.ceiling_concurrency)
                    env = None
                for w in (1, 2, 3):
                    if w != 1 and w not in self.args.workloads or w == 3 and (not change or tool.startswith("ceiling")):
                        continue  # the ceiling of a one-object change is one request: not a useful bound
                    if w == 3:
                        edit_configmap(tree, "changed")
                        self.commit(tree, "one object changed")
                    mark = self.mark()
                    secs, usage = run_measured(argv, os.path.join(self.work, "logs", f"{tool}.log"), env)
                    self.record(w, tool, n, rep, secs, mark, usage=usage)
        finally:
            self.stop_tool()
            self.cleanup(ns, ctl)

    def ceiling_argv(self, tool, directory, concurrency):
        """The ceiling client `tool` applying the manifests in `directory`, `concurrency` at a
        time: over HTTP/2 (`ceiling`), HTTP/1.1 (`ceiling-h1`), or dry-running them all first
        (`ceiling-v`)."""
        flags = {"ceiling": [], "ceiling-h1": ["--http1"], "ceiling-v": ["--validate"]}[tool]
        return [os.environ["BENCH_CEILING_BIN"], f"--kubeconfig={KUBECONFIG}", "--dir", directory,
                "--concurrency", str(concurrency)] + flags

    def warm_up(self, n):
        """One untimed first sync of N objects (by the ceiling client) before the measured
        repetitions at that size: the API server and etcd meet N new objects cold once, and that
        cost is not charged to whichever tool happens to go first."""
        tag = f"warm-{n}-{self.id}"
        ns = f"b-{tag}"
        tree, _ = self.new_repo(f"single-{tag}")
        self.gen(tree, n, ns)
        try:
            argv = self.ceiling_argv("ceiling", os.path.join(tree, "app"), self.args.ceiling_concurrency)
            secs, _ = run_measured(argv, os.path.join(self.work, "logs", "warm-up.log"))
            log(f"warm-up at N={n} (untimed): {secs:.2f} s")
        finally:
            self.cleanup(ns)

    # --- workload 4: many syncs ------------------------------------------------------------------

    def many(self, tool, count, rep):
        tag = f"{tool}-{rep}-{self.id}".replace("flux-c20", "fluxc")
        ns, ctl = f"m-{tag}", f"mc-{tag}"
        tree, url = self.new_repo(f"many-{tag}")
        for i in range(count):
            write_small_app(tree, ns, i)
        sha = self.commit(tree, f"{count} apps")
        self.namespace(ns)
        self.namespace(ctl)
        if tool.startswith("ceiling"):
            try:
                return self.many_floor(tool, tree, count, rep)
            finally:
                self.cleanup(ns, ctl)
        try:
            self.start_tool(tool)
            start, marks = self.timed(lambda: self.create_source(tool, ctl, url),
                                      *(lambda i=i: self.create_sync(tool, ctl, f"app-{i:04d}", url,
                                                                     f"apps/app-{i:04d}", ns) for i in range(count)))
            seen = {}  # name -> (resourceVersion, applied): each event re-checks only what changed
            done = [0]

            def all_applied(objs):
                for name, o in objs.items():
                    rv = o["metadata"]["resourceVersion"]
                    if seen.get(name, ("",))[0] != rv:
                        seen[name] = (rv, self.applied(o, sha))
                done[0] = sum(ok for _, ok in seen.values())
                return done[0] == count
            extra = {"objects": count * 4}
            try:
                self.kube.watch_until(f"{count} syncs applied", self.sync_path(tool, ctl), self.args.many_timeout,
                                      all_applied, start=start, selector=self.sync_selector(tool, ctl))
            except TimeoutError as e:
                log(f"{tool}: {e} ({done[0]} applied); recorded as a lower bound")
                extra.update(timed_out=True, applied=done[0])
            self.record(4, tool, count, rep, time.monotonic() - marks[0][0], marks[0], extra)
            if tool == "driftless" and 7 in self.args.workloads and not extra.get("timed_out"):
                self.restart(tool, count)
        finally:
            self.stop_tool()
            self.cleanup(ns, ctl)

    def many_floor(self, tool, tree, count, rep):
        """Workload 4's floor: the ceiling client sending the requests of the `count` apps'
        objects alone, as one set (the applies; `ceiling-v`: every dry-run, then every apply),
        at the agent's default concurrency (16 GitSyncs at once): what the objects cost the API
        server without a single request per sync (status, inventory, finalizer, event)."""
        flat = os.path.join(self.work, f"many-floor-{tool}")
        shutil.rmtree(flat, ignore_errors=True)
        os.makedirs(flat)
        for i in range(count):
            shutil.copy(os.path.join(tree, f"apps/app-{i:04d}/app.yaml"), os.path.join(flat, f"app-{i:04d}.yaml"))
        argv = self.ceiling_argv(tool, flat, MANY_CONCURRENCY)
        mark = self.mark()
        secs, usage = run_measured(argv, os.path.join(self.work, "logs", f"{tool}.log"), None)
        self.record(4, tool, count, rep, secs, mark, {"objects": count * 4}, usage=usage)

    # --- workload 7: a restart with every GitSync in sync (driftless) ----------------------------

    def restart(self, tool, count):
        """Workload 7, right after workload 4 applied: the agent stopped and started again with
        `count` GitSyncs in sync. Timed from the start of the new process (before it has listed
        anything) until it has reconciled each GitSync once (`driftless_reconciles_total`, each
        reconcile counted when it ends); its requests and writes in that time, from the audit
        log (issue #25: within 10 s, at most 3 requests a GitSync, no write)."""
        self.stop_tool()
        mark = (time.monotonic(), self.audit.offset(), 0.0, time.time())
        self.start_tool(tool)
        wait_until(f"{count} reconciles after a restart", self.args.many_timeout,
                   lambda: metric(DRIFTLESS_PORT, "driftless_reconciles_total") >= count, interval=0.25)
        self.record(7, tool, count, 0, time.monotonic() - mark[0], mark)

    # --- workload 5: notification latency --------------------------------------------------------

    def latency(self, tool, commits):
        tag = f"{tool}-{self.id}".replace("flux-c20", "fluxc")
        ns, ctl = f"l-{tag}", f"lc-{tag}"
        tree, url = self.new_repo(f"latency-{tag}")
        self.gen(tree, 10, ns)
        sha = self.commit(tree, "10 objects")
        self.namespace(ctl)
        try:
            self.start_tool(tool)
            self.create_source(tool, ctl, url)
            self.create_sync(tool, ctl, "app", url, "app", ns)
            self.wait_applied(tool, ctl, "app", sha, 120)
            mark = self.mark()
            lat = []
            for i in range(commits):
                value = f"v{i}"
                edit_configmap(tree, value)
                self.commit(tree, f"commit {i}")
                t0 = []  # (not a mark: peak memory and CPU are taken over all the commits)

                def notify():
                    t0.append(time.monotonic())
                    self.notify(tool, ctl, url)
                self.wait_configmap(ns, value, 120, notify)
                lat.append(time.monotonic() - t0[0])
                time.sleep(0.2)
            lat.sort()
            self.record(5, tool, commits, 0, percentile(lat, 0.5), mark,
                        {"p95": percentile(lat, 0.95), "latencies": [round(x, 3) for x in lat]})
        finally:
            self.stop_tool()
            self.cleanup(ns, ctl)

    # --- workload 6: fairness --------------------------------------------------------------------

    def fairness(self, tool, big, small):
        """One sync of `big` objects is started; once its first object (the Namespace) is
        written, `small` syncs of 4 objects each (one repository, as in workload 4) get a commit
        each, one after another. Records how long a small change waits behind the big sync
        (commit → its ConfigMap changed, p50 and p95, as workload 5) and the big sync's time
        (creation → applied, followed in a thread of its own)."""
        tag = f"{tool}-{self.id}".replace("flux-c20", "fluxc")
        big_ns, small_ns, big_ctl, small_ctl = f"fb-{tag}", f"fs-{tag}", f"fbc-{tag}", f"fsc-{tag}"
        big_tree, big_url = self.new_repo(f"fair-big-{tag}")
        self.gen(big_tree, big, big_ns)
        big_sha = self.commit(big_tree, f"{big} objects")
        tree, url = self.new_repo(f"fair-small-{tag}")
        for i in range(small):
            write_small_app(tree, small_ns, i)
        sha = self.commit(tree, f"{small} apps")
        for n in (small_ns, big_ctl, small_ctl):
            self.namespace(n)
        timeout = 120 + big * 0.5
        try:
            self.start_tool(tool)
            # The small syncs are applied once before the clock starts.
            self.create_source(tool, small_ctl, url)
            for i in range(small):
                self.create_sync(tool, small_ctl, f"app-{i:04d}", url, f"apps/app-{i:04d}", small_ns)
            for i in range(small):
                self.wait_applied(tool, small_ctl, f"app-{i:04d}", sha, 300)
            mark = self.mark()
            self.create_source(tool, big_ctl, big_url)
            self.create_sync(tool, big_ctl, "app", big_url, "app", big_ns)
            big_end, big_err = [], []

            def follow_big():
                try:
                    self.wait_applied(tool, big_ctl, "app", big_sha, timeout, kube=Kube(KUBECONFIG))
                    big_end.append(time.monotonic())
                except ArgoCannotRecord as e:  # its objects are all written: the smalls no longer wait
                    big_end.append(time.monotonic())
                    big_err.append(e)
                except Exception as e:  # (re-raised, or recorded as a lower bound, below)
                    big_err.append(e)
            watcher = threading.Thread(target=follow_big, daemon=True)
            watcher.start()
            self.kube.watch_until(f"namespace {big_ns} created", "/api/v1/namespaces", timeout,
                                  lambda objs: big_ns in objs, big_ns)
            lat, during = self.small_commits(tool, tree, url, small_ns, small_ctl, small, timeout, big_end)
            watcher.join(max(0.0, timeout - (time.monotonic() - mark[0])))
            extra = {"p95": percentile(lat, 0.95), "latencies": [round(x, 3) for x in lat], "small": small,
                     "during_big": during}
            if big_end:
                extra["big_s"] = round(big_end[0] - mark[0], 3)
                if big_err:
                    log(f"{big_err[0]}; the big sync recorded as failed")
                    extra["big_failed"] = str(big_err[0])
            elif big_err and not isinstance(big_err[0], TimeoutError):
                raise big_err[0]
            else:
                log(f"{tool}: the big sync was not applied within {timeout:.0f} s; recorded as a lower bound")
                extra.update(timed_out=True, big_s=round(time.monotonic() - mark[0], 3))
            self.record(6, tool, big, 0, percentile(lat, 0.5), mark, extra)
        finally:
            self.stop_tool()
            self.cleanup(big_ns, small_ns, big_ctl, small_ctl)

    def small_commits(self, tool, tree, url, ns, ctl, count, timeout, big_end):
        """Commits a change to each small app in turn, notifies the tool and waits until the app's
        ConfigMap has it. Returns the latencies and how many changes landed while the big sync
        (`big_end` still empty) was running."""
        lat, during = [], 0
        for i in range(count):
            value = f"changed-{i}"
            write_small_app(tree, ns, i, value)
            self.commit(tree, f"app-{i:04d} changed")
            t0 = []

            def notify(i=i):
                t0.append(time.monotonic())
                self.notify(tool, ctl, url, f"app-{i:04d}")
            self.wait_configmap(ns, value, timeout, notify, f"app-{i:04d}")
            lat.append(time.monotonic() - t0[0])
            during += not big_end
        return sorted(lat), during

    # --- the run ---------------------------------------------------------------------------------

    def run(self):
        a = self.args
        self.meta = machine(a)
        self.meta["earlier_runs"] = self.earlier
        self.install_crds()
        left = self.kube.get("/api/v1/namespaces?labelSelector=driftless.dev%2Fbench%3Dtrue")["items"]
        if left and not self.args.no_sweep:
            left = [n["metadata"]["name"] for n in left if n["metadata"]["name"] not in ("flux-system", ARGO_NS)]
            log(f"deleting {len(left)} namespace(s) left by an earlier run")
            self.cleanup(*left)
        if not self.args.no_sweep:  # Applications whose run namespace was already gone
            self.kube.delete(f"{ARGO_APPS}?labelSelector={quote(ARGO_CTL_LABEL)}")
        self.start_git_server()
        # The big sizes last: a run cut short (Ctrl-C saves what was measured) loses the least.
        # (Workloads 1-3 share their runs: only they take the sizes.)
        sizes = a.sizes if {1, 2, 3} & set(a.workloads) else []
        small = [n for n in sizes if n <= a.full_reps_up_to]
        big = [n for n in sizes if n > a.full_reps_up_to]
        try:
            for n in small:
                self.warm_up(n)
                for rep in range(a.small_reps if n <= SMALL else a.reps):
                    for tool in rotated(a.tools, rep):
                        self.single_set(tool, n, rep)
            if 4 in a.workloads:
                for rep in range(a.many_reps):
                    for tool in [t for t in a.tools if t in AGENTS or t.startswith("ceiling")]:
                        self.many(tool, a.many, rep)
            if 5 in a.workloads:
                for tool in [t for t in a.tools if t in AGENTS]:
                    self.latency(tool, a.commits)
            if 6 in a.workloads:
                for tool in [t for t in a.tools if t in AGENTS]:
                    self.fairness(tool, a.fair_big, a.fair_small)
            for n in big:
                self.warm_up(n)
                for rep in range(a.big_reps):
                    for tool in rotated(a.tools, rep):
                        self.single_set(tool, n, rep)
        finally:
            self.stop_tool()
            if self.git:
                self.git.stop()
            self.meta["load_after"] = open("/proc/loadavg").read().split()[:3]
            self.meta["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            self.save()

    def install_crds(self):
        crds = subprocess.run([os.environ["BENCH_DRIFTLESS_BIN"], "crd"], capture_output=True, check=True).stdout
        flux = any(t.startswith("flux") for t in self.args.tools)
        files = [crds] + [open(f, "rb").read() for f in os.environ["BENCH_FLUX_CRDS"].split() if flux]
        for body in files:
            subprocess.run(["kubectl", f"--kubeconfig={KUBECONFIG}", "apply", "--server-side", "--force-conflicts",
                            "-f", "-"], input=body, check=True, capture_output=True)
        for crd in ("gitsyncs.driftless.dev",) + (("gitrepositories.source.toolkit.fluxcd.io",
                                                    "kustomizations.kustomize.toolkit.fluxcd.io") if flux else ()):
            self.wait_established(crd)
        self.namespace("flux-system")
        # The first object of a new kind costs the API server its storage set-up: 2 s for the
        # first GitSync (audit log) would land in whichever repetition came first. Untimed here.
        self.namespace("bench-warmup")
        warm = [("/apis/driftless.dev/v1alpha1", "gitsyncs", "GitSync",
                 {"url": "http://127.0.0.1:1/none.git", "suspend": True})]
        if flux:
            warm += [("/apis/source.toolkit.fluxcd.io/v1", "gitrepositories", "GitRepository",
                      {"url": "http://127.0.0.1:1/none.git", "interval": "1h", "suspend": True}),
                     ("/apis/kustomize.toolkit.fluxcd.io/v1", "kustomizations", "Kustomization",
                      {"interval": "1h", "prune": True, "suspend": True,
                       "sourceRef": {"kind": "GitRepository", "name": "warm"}})]
        for api, plural, kind, spec in warm:
            path = f"{api}/namespaces/bench-warmup/{plural}"
            self.kube.create(path, {"apiVersion": api[len("/apis/"):], "kind": kind,
                                    "metadata": {"name": "warm", "namespace": "bench-warmup"}, "spec": spec})
            self.kube.delete(f"{path}/warm")
        if any(t in ARGO for t in self.args.tools):
            self.install_argocd()

    def wait_established(self, crd):
        """Waits until CRD `crd` is Established, reading it directly: `kubectl wait` goes through
        discovery, which a busy API server (the test suite running beside) can fail at once."""
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"

        def established():
            conditions = ((self.kube.get(path, missing_ok=True) or {}).get("status") or {}).get("conditions") or []
            return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
        wait_until(f"CRD {crd} established", 60, established, 0.2)

    def install_argocd(self):
        """Argo CD's CRDs (Application, AppProject), its namespace with the install's default
        argocd-cm, argocd-cmd-params-cm and argocd-rbac-cm (copied from the module by
        scripts/bench), argocd-secret with a server.secretkey, and the `default` AppProject that
        argocd-server would create on its first start."""
        kubectl = ["kubectl", f"--kubeconfig={KUBECONFIG}"]
        subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", "-f", os.environ["BENCH_ARGOCD_CRDS"]],
                       check=True, capture_output=True)
        for crd in ("applications.argoproj.io", "appprojects.argoproj.io"):
            self.wait_established(crd)
        self.namespace(ARGO_NS)
        ours = [
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "argocd-secret", "namespace": ARGO_NS,
                          "labels": {"app.kubernetes.io/name": "argocd-secret", "app.kubernetes.io/part-of": "argocd"}},
             "stringData": {"server.secretkey": base64.b64encode(os.urandom(32)).decode()}},
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
             "metadata": {"name": "default", "namespace": ARGO_NS},
             "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                      "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}},
        ]
        body = open(os.environ["BENCH_ARGOCD_CONFIG"], "rb").read() \
            + b"".join(b"---\n" + json.dumps(o).encode() + b"\n" for o in ours)
        subprocess.run(kubectl + ["apply", "--server-side", "--force-conflicts", "-n", ARGO_NS, "-f", "-"],
                       input=body, check=True, capture_output=True)
        # The first Application costs the API server its storage set-up (as for the other kinds).
        name = f"warm-{self.id}"
        self.kube.create(ARGO_APPS, {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                                     "metadata": {"name": name, "namespace": ARGO_NS},
                                     "spec": {"project": "default", "destination": {"server": IN_CLUSTER},
                                              "source": {"repoURL": "http://127.0.0.1:1/none.git", "path": "."}}})
        self.kube.delete(f"{ARGO_APPS}/{name}")


# --- helpers -------------------------------------------------------------------------------------

def percentile(sorted_values, q):
    """The q-quantile of sorted values, nearest rank (p50 of an even count: the upper middle)."""
    if q == 0.5:
        return sorted_values[len(sorted_values) // 2]
    return round(sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))], 3)


def rotated(tools, rep):
    """The tools in the order of repetition `rep`: each starts a repetition in turn, so that
    no tool always runs right after the same one (and its cleanup)."""
    k = rep % len(tools)
    return tools[k:] + tools[:k]


def small_app(ns, i, value=None):
    """Four objects per app, as in Flux's benchmark (without pods: the fake nodes are small); the
    ConfigMap's `key` is `value` (default: the app's name)."""
    name = f"app-{i:04d}"
    md = lambda: {"name": name, "namespace": ns, "labels": {"app": name}}  # noqa: E731
    objs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md(), "data": {"key": value or name}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": md(), "stringData": {"password": name}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": md()},
        {"apiVersion": "v1", "kind": "Service", "metadata": md(),
         "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]
    return "".join("---\n" + json.dumps(o) + "\n" for o in objs)


def write_small_app(tree, ns, i, value=None):
    """Writes small app `i` into apps/app-NNNN/ of `tree` (the path of its sync)."""
    d = os.path.join(tree, f"apps/app-{i:04d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "app.yaml"), "w") as f:
        f.write(small_app(ns, i, value))


def edit_configmap(tree, value):
    """Changes the `key` of ConfigMap obj-00000 (the first object scripts/gen-manifests writes)."""
    path = os.path.join(tree, "app", "objects-0000.yaml")
    lines = open(path).read().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("{") and '"name": "obj-00000"' in line:
            o = json.loads(line)
            o["data"]["key"] = value
            lines[i] = json.dumps(o)
    open(path, "w").write("\n".join(lines))


def fail_message(obj):
    st = obj.get("status") or {}
    if obj.get("kind") == "Application":
        # A failed automated sync is not retried at the same commit: fail fast, as for the others.
        op = st.get("operationState") or {}
        if op.get("phase") in ("Failed", "Error"):
            return op.get("message")
        for c in st.get("conditions") or []:
            if c.get("type") in ("InvalidSpecError", "SyncError"):
                return c.get("message")
        return None
    for c in st.get("conditions", []):
        if c.get("type") == "Ready" and c.get("status") == "False" and c.get("reason") in (
                "ApplyFailed", "ValidationFailed", "BuildFailed", "RenderFailed", "ReconciliationFailed",
                "HealthCheckFailed"):
            return c.get("message")
    return None


def parse_ts(s):
    s = s.rstrip("Z")
    if "." in s:
        head, frac = s.split(".", 1)
        s = f"{head}.{(frac + '000000')[:6]}"
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f")
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S")


def port_open(port):
    import socket
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_ok(port, path):
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path)
        return c.getresponse().status == 200
    except OSError:
        return False


def metric(port, name):
    """The value of an unlabelled metric on the agent's /metrics (0 when it cannot be read)."""
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        for line in c.getresponse().read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def http_post(port, path, body, token):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, json.dumps(body), {"Authorization": f"Bearer {token}",
                                               "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status >= 300:
        raise RuntimeError(f"webhook answered {r.status}")


def machine(a):
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    mem = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    kver = subprocess.run(["kubectl", f"--kubeconfig={KUBECONFIG}", "version", "-o", "json"], capture_output=True,
                          text=True).stdout
    dver = subprocess.run([os.environ["BENCH_DRIFTLESS_BIN"], "--version"], capture_output=True, text=True).stdout
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    try:
        kv = json.loads(kver)
        k8s = kv["serverVersion"]["gitVersion"]
        kubectl = kv["clientVersion"]["gitVersion"]
    except (ValueError, KeyError):
        k8s = kubectl = "?"
    return {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(), "load_before": open("/proc/loadavg").read().split()[:3],
        "kubernetes": k8s, "kubectl": kubectl, "driftless": dver.strip().removeprefix("driftless ") + f" (commit {rev.strip()})",
        "flux": os.environ.get("BENCH_FLUX_VERSIONS", "?"),
        "argocd": os.environ.get("BENCH_ARGOCD_VERSION", "?"),
        "command": "scripts/bench " + " ".join(sys.argv[1:]),
        "sizes": a.sizes, "reps": a.reps, "small_reps": a.small_reps, "big_reps": a.big_reps, "full_reps_up_to": a.full_reps_up_to,
        "many": a.many, "many_reps": a.many_reps, "commits": a.commits, "fair_big": a.fair_big,
        "fair_small": a.fair_small, "tools": a.tools,
        "workloads": sorted(a.workloads), "ceiling_concurrency": a.ceiling_concurrency, "smoke": a.smoke,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny N, one repetition, workloads 1-3, 4, 5 and 6 tiny")
    p.add_argument("--tools", default="driftless,flux,flux-c20,argocd,argocd-ha,kubectl,ceiling,ceiling-h1,ceiling-v")
    p.add_argument("--workloads", default="1,2,3,4,5,6,7")
    p.add_argument("--sizes", default="100,1000,5000")
    p.add_argument("--reps", type=int, default=5,
                   help="repetitions for sizes between the small ones and --full-reps-up-to")
    p.add_argument("--small-reps", type=int, default=11,
                   help=f"repetitions for sizes up to {SMALL}: their spread is largest against their time")
    p.add_argument("--big-reps", type=int, default=3, help="repetitions for sizes above --full-reps-up-to")
    p.add_argument("--full-reps-up-to", type=int, default=1000)
    p.add_argument("--many", type=int, default=1000, help="GitSyncs/Kustomizations of workload 4")
    p.add_argument("--many-reps", type=int, default=1)
    p.add_argument("--many-timeout", type=int, default=900, help="seconds; past it workload 4 records a lower bound")
    p.add_argument("--commits", type=int, default=50, help="commits of workload 5")
    p.add_argument("--fair-big", type=int, default=10000, help="objects of workload 6's big sync")
    p.add_argument("--fair-small", type=int, default=20, help="small syncs of workload 6, a commit each")
    p.add_argument("--ceiling-concurrency", type=int, default=8, help="driftless's apply concurrency")
    p.add_argument("--results", help="results JSON (default: target/bench-results/results.json)")
    p.add_argument("--doc", help="report to write (default: docs/benchmarks.md; smoke: next to the results)")
    p.add_argument("--report-only", action="store_true", help="regenerate the report from --results")
    p.add_argument("--append", action="store_true", help="add to the rows already in --results")
    p.add_argument("--no-sweep", action="store_true", help="leave namespaces of other runs alone (runs in parallel)")
    p.add_argument("--keep-cluster", action="store_true", help="(scripts/bench) leave the cluster running")
    a = p.parse_args()
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop what we started
    if a.smoke:
        a.sizes, a.reps, a.small_reps, a.big_reps, a.many, a.commits = "10", 1, 1, 1, 3, 3
        a.fair_big, a.fair_small = 200, 3
    a.tools = a.tools.split(",")
    a.workloads = {int(w) for w in a.workloads.split(",")}
    a.sizes = [int(s) for s in str(a.sizes).split(",")]
    out = os.path.join(ROOT, "target", "bench-smoke" if a.smoke else "bench-results")
    os.makedirs(out, exist_ok=True)
    a.results = a.results or os.path.join(out, "results.json")
    a.doc = a.doc or (os.path.join(out, "benchmarks.md") if a.smoke else os.path.join(ROOT, "docs", "benchmarks.md"))
    if not a.report_only:
        a.work = os.path.join(out, "work")  # wiped: one per mode, so a smoke test never hits a real run
        shutil.rmtree(a.work, ignore_errors=True)
        os.makedirs(os.path.join(a.work, "logs"))
        Bench(a).run()
    kept = os.path.join(ROOT, "docs", "benchmarks-results.json")  # the data behind docs/benchmarks.md
    if a.report_only and not os.path.exists(a.results):
        a.results = kept
    report.write(a.results, a.doc, os.path.join(ROOT, "bench", "notes.md"))
    if not a.smoke and os.path.abspath(a.doc) == os.path.join(ROOT, "docs", "benchmarks.md") \
            and os.path.abspath(a.results) != kept:
        shutil.copy(a.results, kept)
    log(f"results: {a.results}; report: {a.doc}")


if __name__ == "__main__":
    main()
