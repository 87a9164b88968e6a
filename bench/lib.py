"""Small pieces of the benchmark harness: a Kubernetes client over one keep-alive HTTPS
connection, and watches (its own user agent, so its requests are never counted against a
tool), the audit log counter, and process measurement from /proc."""
import base64
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

CLK_TCK = os.sysconf("SC_CLK_TCK")
# Workload 4's floor sends its objects this many at a time: the agent's default --concurrency.
MANY_CONCURRENCY = 16


def log(msg):
    print(f"[bench] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def wait_until(what, timeout, check, interval=0.2):
    """Polls `check` every `interval` seconds: for waits that nothing is measured by (a server
    coming up, a namespace going away). Measured waits follow a watch (`Kube.watch_until`)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def git(cwd, *args):
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {r.stderr}")
    return r.stdout


class Kube:
    """Just enough of the API: GET, create, merge patch, delete, as `bench-harness`."""

    def __init__(self, kubeconfig):
        text = open(kubeconfig).read()
        field = lambda k: re.search(rf"{k}:\s*(\S+)", text).group(1)  # noqa: E731
        m = re.match(r"https://([^:/]+):(\d+)", field("server"))
        self.host, self.port = m.group(1), int(m.group(2))
        self.tmp = tempfile.mkdtemp(prefix="bench-kube-")
        files = {}
        for k in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            files[k] = os.path.join(self.tmp, k)
            with open(files[k], "wb") as f:
                f.write(base64.b64decode(field(k)))
        self.ctx = ssl.create_default_context(cafile=files["certificate-authority-data"])
        self.ctx.load_cert_chain(files["client-certificate-data"], files["client-key-data"])
        self.conn = None

    def request(self, method, path, body=None, ctype="application/json"):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = self.connect()
                headers = {"User-Agent": "bench-harness", "Accept": "application/json"}
                data = None
                if body is not None:
                    data = json.dumps(body)
                    headers["Content-Type"] = ctype
                self.conn.request(method, path, data, headers)
                r = self.conn.getresponse()
                raw = r.read()
                if r.status == 429 and attempt < 2:  # e.g. a CRD's storage still initialising
                    time.sleep(1)
                    continue
                try:
                    return r.status, (json.loads(raw) if raw else None)
                except ValueError:
                    return r.status, raw.decode(errors="replace")  # e.g. "404 page not found"
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.5)

    def connect(self, timeout=60):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def watch_until(self, what, path, timeout, check, name=None, start=None, selector=None, idle=None):
        """Lists the collection at `path` (one object of it with `name`, or those matching the label
        `selector`), opens its watch, calls
        `start` (what the wait measures: a commit's notification, a sync's creation), then
        follows the watch until `check(objects by name)` is true. The harness sees a change the
        moment the API server sends it, with no polling GETs loading the machine the tool is
        measured on, and its own setup is not in the measured time. With `idle` (seconds), a
        watch silent that long is listed again and `check` called: for a check that also looks
        outside the API (a tool's log)."""
        deadline = time.monotonic() + timeout
        query = f"fieldSelector=metadata.name%3D{name}" if name else ""
        if selector:
            query += ("&" if query else "") + "labelSelector=" + urllib.parse.quote(selector)
        start = [start]
        while True:
            objs = {}
            listed = self.get(f"{path}?{query}")
            for o in listed["items"]:
                objs[o["metadata"]["name"]] = o
            if start[0] is None and check(objs):
                return
            rv = listed["metadata"]["resourceVersion"]
            try:
                if self._follow(path, query, rv, objs, check, deadline, start, idle):
                    return
            except TimeoutError:  # the socket's (socket.timeout is TimeoutError)
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            # The watch ended early (its server-side timeout, or 410 Gone): list again.

    def _follow(self, path, query, rv, objs, check, deadline, start, idle=None):
        """Applies the watch events from `rv` to `objs`, calling start[0] (once) when the watch
        is open; True once `check` holds, False when the watch ends first (deadline passed,
        stream closed, or an ERROR event)."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        conn = self.connect(timeout=left)
        try:
            conn.request("GET", f"{path}?watch=1&resourceVersion={rv}&timeoutSeconds={int(left) + 1}&{query}",
                         headers={"User-Agent": "bench-harness", "Accept": "application/json"})
            r = conn.getresponse()
            if r.status != 200:
                raise RuntimeError(f"watch {path}: {r.status} {r.read()[:500]!r}")
            if start[0] is not None:
                begin, start[0] = start[0], None
                begin()
                if check(objs):
                    return True
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                conn.sock.settimeout(min(left, idle) if idle else left)
                line = r.readline()
                if not line:
                    return False
                ev = json.loads(line)
                if ev["type"] == "ERROR":
                    return False
                obj = ev["object"]
                if ev["type"] == "DELETED":
                    objs.pop(obj["metadata"]["name"], None)
                else:
                    objs[obj["metadata"]["name"]] = obj
                if check(objs):
                    return True
        finally:
            conn.close()

    def get(self, path, missing_ok=False):
        status, body = self.request("GET", path)
        if status == 404 and missing_ok:
            return None
        if status >= 300:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body

    def create(self, path, obj):
        status, body = self.request("POST", path, obj)
        if status >= 300:
            raise RuntimeError(f"POST {path}: {status} {body}")
        return body

    def merge_patch(self, path, patch):
        status, body = self.request("PATCH", path, patch, "application/merge-patch+json")
        if status >= 300 and status != 404:
            raise RuntimeError(f"PATCH {path}: {status} {body}")

    def delete(self, path):
        status, body = self.request("DELETE", path)
        if status >= 300 and status != 404:
            raise RuntimeError(f"DELETE {path}: {status} {body}")

    def apply_ns(self, name):
        status, body = self.request("POST", "/api/v1/namespaces",
                                    {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": name, "labels": {"driftless.dev/bench": "true"}}})
        if status >= 300 and status != 409:
            raise RuntimeError(f"create namespace {name}: {status} {body}")


class Audit:
    """Counts finished requests in the API server's audit log from an offset, by user agent."""

    def __init__(self, path):
        self.path = path
        if not os.path.exists(path):
            raise RuntimeError(f"no audit log at {path}: start the cluster with scripts/bench "
                               "(a cluster started otherwise has none; `scripts/dev-cluster down` it first)")

    def offset(self):
        return os.path.getsize(self.path)

    def count(self, offset, prefixes, t0=None, settle=0.5):
        """Requests and writes of the user agents; with t0 (wall time), a profile too: per step,
        how many requests, and when the first started and the last ended (seconds from t0)."""
        time.sleep(settle)  # the last responses are written just after the client saw them
        total = writes = 0
        phases = {}
        with open(self.path, "rb") as f:
            f.seek(offset)
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("stage") != "ResponseComplete" or ev.get("verb") == "watch":
                    continue
                ua = ev.get("userAgent", "")
                if any(ua.startswith(p) if p else ua == "" for p in prefixes):
                    total += 1
                    writes += ev.get("verb") in ("create", "update", "patch", "delete", "deletecollection")
                    if t0 is not None:
                        p = phases.setdefault(phase(ev), [0, 1e9, 0.0])
                        p[0] += 1
                        p[1] = min(p[1], parse_time(ev["requestReceivedTimestamp"]) - t0)
                        p[2] = max(p[2], parse_time(ev["stageTimestamp"]) - t0)
        out = {"total": total, "writes": writes}
        if t0 is not None:
            out["phases"] = {k: [v[0], round(v[1], 2), round(v[2], 2)] for k, v in
                             sorted(phases.items(), key=lambda kv: kv[1][1])}
        return out


def phase(ev):
    """Which step of a sync an audited request belongs to."""
    verb, uri = ev.get("verb"), ev.get("requestURI", "")
    res = (ev.get("objectRef") or {}).get("resource", "")
    if res in ("events", "gitsyncs", "kustomizations", "gitrepositories", "leases"):
        return f"{res} ({verb})"
    if res == "configmaps" and "driftless-inv" in uri:
        return f"inventory ({verb})"
    if verb == "patch" and "dryRun=All" in uri:
        return "dry-run apply"
    if verb == "patch":
        return "apply"
    if verb in ("get", "list"):
        return f"read ({verb})"
    return verb


def parse_time(s):
    import datetime
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Proc:
    """A long-running process of a tool (or of the harness), measured through /proc."""

    def __init__(self, name, argv, logfile, env=None):
        self.name = name
        self.logfile = logfile
        out = open(logfile, "ab")
        self.p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  env=env, start_new_session=True)
        out.close()
        time.sleep(0.1)
        if self.p.poll() is not None:
            raise RuntimeError(f"{name} exited at once: {open(logfile).read()[-2000:]}")

    def reset_peak(self):
        try:
            with open(f"/proc/{self.p.pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass

    def peak_kib(self):
        try:
            for line in open(f"/proc/{self.p.pid}/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def cpu(self):
        """utime + stime of the process and its waited-for children (driftless runs git)."""
        try:
            fields = open(f"/proc/{self.p.pid}/stat").read().rsplit(")", 1)[1].split()
            return sum(int(x) for x in fields[11:15]) / CLK_TCK
        except OSError:
            return 0.0

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def run_measured(argv, logfile, env=None):
    """Runs a command to completion; returns (seconds, (peak RSS MiB, CPU seconds))."""
    with open(logfile, "ab") as out:
        start = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.monotonic() - start
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({p.returncode}); see {logfile}")
    return secs, (ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime)
