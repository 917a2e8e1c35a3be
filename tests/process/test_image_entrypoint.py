"""The container image, reproduced without a Docker engine.

No Docker engine runs on these machines, so this module builds what the Dockerfile builds and runs
what the image runs, reading every fact from the Dockerfile itself so that drift fails here:

- the build context is the repository filtered through `.dockerignore`;
- the builder stage's RUN commands build the venv (the venv path mapped to a scratch directory);
- the final stage's COPY puts the bundled configuration under /etc, through an
  overlay in a private mount namespace (the host's /etc never changes); the venv is bind-mounted
  read-only and then the whole root filesystem is remounted read-only, as `--read-only` does;
- a private network namespace gives the "container" its own loopback, so the fixed ports 8080,
  9090 and the upstream's 8081 never collide with anything on the host;
- the final stage's RUN (check-config) runs as root, as at build time;
- ENTRYPOINT + CMD run with exactly the image's ENV as the image's USER (setpriv, no new privileges,
  no capabilities); the HEALTHCHECK's exact command runs beside it.

Needs root, util-linux (unshare, nsenter, setpriv), iproute2 and a Python 3.11 that an unprivileged
user may run (Debian's python3.11 with python3.11-venv). Without them the run tests skip, or fail
when CI is set.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from shim.config.model import Config
from shim.config.parse import ENV_OVERRIDES, load_config
from tests.support.paths import REPO
from tests.support.prerequisites import unavailable

ROOT = REPO
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

#: PATH in the python:3.11-slim base image, which the Dockerfile's `$PATH` extends.
BASE_IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Interpreters like the base image's /usr/local/bin/python3.11, runnable by any user.
IMAGE_PYTHONS = ("/usr/local/bin/python3.11", "/usr/bin/python3.11")
VENV_IMAGE_PATH = "/opt/msc4191-shim"
#: the configuration file the image bundles (the example documents the defaults; this sets the
#: container's own values, such as the admin listener on 0.0.0.0)
BUNDLED_CONFIG = "deploy/container/config.yaml"
START_TIMEOUT = 20.0


# ---- the Dockerfile, parsed -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction; fails for the shell form."""
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} {self.args}: expected exec form"
        return [str(item) for item in value]


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    base: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name!r} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """The stage's ENV as written (`$PATH` left unexpanded)."""
        env: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for item in shlex.split(instruction.args):
                key, _, value = item.partition("=")
                env[key] = value
        return env

    def copies(self) -> list[tuple[dict[str, str], list[str], str]]:
        """Each COPY as (flags, sources, destination)."""
        result = []
        for instruction in self.all("COPY"):
            words = shlex.split(instruction.args)
            flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
            paths = [w for w in words if not w.startswith("--")]
            result.append((flags, paths[:-1], paths[-1]))
        return result


def logical_lines(text: str) -> Iterator[str]:
    """Dockerfile lines with continuations joined and comment lines dropped."""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending.strip():
        yield pending


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, words[0], ()))
        elif stages:
            last = stages[-1]
            stages[-1] = Stage(
                last.name, last.base, (*last.instructions, Instruction(keyword, args))
            )
    return stages


def healthcheck_command(stage: Stage) -> list[str]:
    """The HEALTHCHECK's CMD in exec form, options stripped."""
    args = stage.last("HEALTHCHECK").args
    match = re.search(r"\bCMD\s+(\[.*\])\s*$", args)
    assert match, f"HEALTHCHECK must use CMD in exec form, got {args!r}"
    return Instruction("CMD", match.group(1)).exec_form()


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def builder(stages: list[Stage], final: Stage) -> Stage:
    sources = {flags.get("from") for flags, _, _ in final.copies()} - {None}
    assert len(sources) == 1, f"the final stage should copy from one builder stage, got {sources}"
    return next(stage for stage in stages if stage.name in sources)


# ---- .dockerignore ----------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `*` within a segment, `**` across segments, `?` one character."""
    parts = []
    for token in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
        if token.startswith("**"):
            parts.append("(?:.*/)?" if token.endswith("/") else ".*")
        elif token == "*":
            parts.append("[^/]*")
        elif token == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(token))
    # A pattern that names a directory excludes (or admits) everything under it.
    return re.compile("".join(parts) + "(?:/.*)?")


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(admits, regex) per line, in order; the last matching line decides."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            admits = line.startswith("!")
            rules.append((admits, _pattern_regex(line.lstrip("!"))))
    return rules


def in_context(relative: str, rules: Sequence[tuple[bool, re.Pattern[str]]]) -> bool:
    admitted = True
    for admits, regex in rules:
        if regex.fullmatch(relative):
            admitted = admits
    return admitted


def copy_build_context(destination: Path) -> list[str]:
    """Copy the files `docker build .` would send; return their relative paths."""
    rules = dockerignore_rules(DOCKERIGNORE.read_text(encoding="utf-8"))
    copied = []
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_file() and in_context(relative, rules):
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied.append(relative)
    return copied


# ---- static contract: what the image promises ------------------------------------------------


def image_config(final: Stage) -> Config:
    """The bundled configuration as the image's process sees it: with the image's ENV overrides."""
    return load_config(str(ROOT / BUNDLED_CONFIG), env=final.env())


def test_dockerignore_admits_exactly_the_build_inputs() -> None:
    rules = dockerignore_rules(DOCKERIGNORE.read_text(encoding="utf-8"))
    for needed in (
        "pyproject.toml",
        "setup.py",
        "README.md",
        "config.example.yaml",
        "shim/__init__.py",
    ):
        assert in_context(needed, rules), needed
    for kept_out in (
        ".git/HEAD",
        ".venv/bin/python",
        "tests/test_deploy.py",
        "shim/__pycache__/x.pyc",
    ):
        assert not in_context(kept_out, rules), kept_out


def test_image_is_multi_stage_and_copies_only_the_venv(final: Stage, builder: Stage) -> None:
    assert builder is not final
    from_builder = [(s, d) for flags, s, d in final.copies() if flags.get("from") == builder.name]
    assert from_builder == [([VENV_IMAGE_PATH], VENV_IMAGE_PATH)]
    assert final.base.startswith("${PYTHON_IMAGE}") or "python:3.11-slim" in final.base
    installs = " ".join(i.args for i in builder.all("RUN"))
    assert re.search(r"pip install .*\"\.\[uvloop\]\"", installs), "the uvloop extra is installed"


def test_entrypoint_runs_the_shim_as_a_fixed_non_root_user(final: Stage) -> None:
    argv = final.last("ENTRYPOINT").exec_form() + final.last("CMD").exec_form()
    assert argv == ["msc4191-shim", "run"]
    user, _, group = final.last("USER").args.partition(":")
    assert user.isdigit(), "a numeric UID, so that runAsNonRoot can verify it"
    assert group.isdigit()
    assert int(user) != 0
    assert int(group) != 0
    assert final.last("STOPSIGNAL").args == "SIGTERM"


def test_config_lives_where_the_env_says_and_is_checked_at_build(final: Stage) -> None:
    env = final.env()
    destinations = [d for flags, s, d in final.copies() if s == [BUNDLED_CONFIG]]
    assert destinations == [env["MSC4191_SHIM_CONFIG"]]
    assert ["msc4191-shim", "check-config", "--config", env["MSC4191_SHIM_CONFIG"]] in [
        run.exec_form() for run in final.all("RUN") if run.args.startswith("[")
    ]
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert not set(env) & set(ENV_OVERRIDES), "an image ENV default would beat the mounted file"


def test_healthcheck_and_expose_match_the_listeners(final: Stage) -> None:
    config = image_config(final)
    exposed = {int(port) for i in final.all("EXPOSE") for port in i.args.split()}
    assert exposed == {config.listen.port, config.admin.listen.port}
    assert config.admin.listen.host == "0.0.0.0", "kubelet probes must reach the admin listener"
    # the shim's own check: it reads the admin address from the configuration the image runs
    # (tests/process/test_healthcheck.py), so a moved admin listener is still the one asked
    assert healthcheck_command(final) == [final.last("ENTRYPOINT").exec_form()[0], "healthcheck"]


def test_the_base_image_is_pinned_by_digest(stages: list[Stage]) -> None:
    (default,) = [
        line.split("=", 1)[1]
        for line in logical_lines(DOCKERFILE.read_text(encoding="utf-8"))
        if line.startswith("ARG PYTHON_IMAGE=")
    ]
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", default), default
    assert all(stage.base == "${PYTHON_IMAGE}" for stage in stages), "every stage on the pin"


def test_oci_labels_say_source_version_and_revision(final: Stage) -> None:
    labels = dict(
        item.partition("=")[::2] for label in final.all("LABEL") for item in shlex.split(label.args)
    )
    arguments = {i.args.partition("=")[0]: i.args.partition("=")[2] for i in final.all("ARG")}
    for key, argument in (("source", "SOURCE"), ("version", "VERSION"), ("revision", "REVISION")):
        assert labels[f"org.opencontainers.image.{key}"] == f"${{{argument}}}"
        assert argument in arguments, f"ARG {argument} is declared in the final stage"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert arguments["VERSION"] == project["version"], "the default is the package's version"


# ---- the run: build the venv, start the "container" ------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltImage:
    work: Path
    context: Path
    venv: Path
    final: Stage

    def map_path(self, text: str) -> str:
        return text.replace(VENV_IMAGE_PATH, str(self.venv))

    def env(self) -> dict[str, str]:
        """The final stage's ENV with `$PATH` expanded and the venv at its scratch location."""
        env = {
            k: self.map_path(v.replace("$PATH", BASE_IMAGE_PATH))
            for k, v in self.final.env().items()
        }
        return {"PATH": BASE_IMAGE_PATH, **env}


def _image_python() -> str:
    for candidate in IMAGE_PYTHONS:
        probe = [candidate, "-c", "import ensurepip, sys; assert sys.version_info[:2] == (3, 11)"]
        if Path(candidate).exists() and subprocess.run(probe, check=False).returncode == 0:
            return candidate
    unavailable(
        f"no world-runnable Python 3.11 with venv at {' or '.join(IMAGE_PYTHONS)}", "python3.11"
    )


def _require_namespaces() -> None:
    if os.geteuid() != 0:
        unavailable("reproducing the image needs root (mount and network namespaces)")
    for tool in ("unshare", "nsenter", "setpriv", "ip"):
        if shutil.which(tool) is None:
            unavailable(f"reproducing the image needs {tool} (util-linux / iproute2)")


def _run_builder(builder: Stage, work: Path, context: Path, venv: Path) -> None:
    """Run the builder stage's RUN commands, its venv path mapped into `work`."""
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(_image_python())
    env = {**os.environ, **builder.env(), "PATH": f"{bin_dir}:{BASE_IMAGE_PATH}"}
    for run in builder.all("RUN"):
        if run.args.startswith("apt-get "):
            continue  # the compiler: here the host's own (scripts/setup.sh --test installs it)
        command = run.args.replace(VENV_IMAGE_PATH, str(venv))
        done = subprocess.run(
            ["sh", "-c", command], cwd=context, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"builder RUN failed: {command}\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def image(builder: Stage, final: Stage) -> Iterator[BuiltImage]:
    _require_namespaces()
    work = Path(tempfile.mkdtemp(prefix="msc4191-image-"))
    work.chmod(0o755)  # the unprivileged user must reach the venv
    try:
        context, venv = work / "context", work / "venv"
        copied = copy_build_context(context)
        for needed in ("config.example.yaml", "README.md", "pyproject.toml"):
            assert needed in copied, f"{needed} is missing from the build context"
        _run_builder(builder, work, context, venv)
        yield BuiltImage(work, context, venv, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


_FETCH = """
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            print(response.status)
            print(response.read().decode())
            break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.exit(f"{url}: {exc}")
        time.sleep(0.1)
"""


def _setup_script(image: BuiltImage, overlay: Path, upstream: Path, upstream_port: int) -> str:
    """Mount namespace setup (as root), then exec the upstream that holds the namespaces."""
    lines = [
        "set -eu",
        "ip link set lo up",
        f"mkdir -p {overlay}/upper {overlay}/work",
        f"mount -t overlay overlay -o lowerdir=/etc,upperdir={overlay}/upper,"
        f"workdir={overlay}/work /etc",
    ]
    for flags, sources, destination in image.final.copies():
        if "from" in flags:
            continue
        assert PurePosixPath(destination).is_relative_to("/etc"), f"cannot place {destination}"
        (source,) = sources
        lines.append(f"mkdir -p {shlex.quote(str(PurePosixPath(destination).parent))}")
        lines.append(f"cp {shlex.quote(str(image.context / source))} {shlex.quote(destination)}")
    lines += [
        # `bind` in each remount: only this namespace's view turns read-only, never the host's.
        f"mount --bind {image.venv} {image.venv}",
        f"mount -o remount,bind,ro {image.venv}",
        "mount -o remount,bind,ro /etc",
        "mount -o remount,bind,ro /",
        f"exec {shlex.quote(sys.executable)} -m http.server {upstream_port} --bind 127.0.0.1"
        f" --directory {shlex.quote(str(upstream))}",
    ]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Container:
    """The namespaces, held by the upstream process, and the shim running in them."""

    image: BuiltImage
    holder: subprocess.Popen[bytes]
    log: Path

    def enter(self) -> list[str]:
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--net", "--"]

    def as_root(self, argv: Sequence[str]) -> list[str]:
        """`argv` inside, as root, with exactly the image's environment (a build-time RUN)."""
        env = [f"{key}={value}" for key, value in self.image.env().items()]
        return [*self.enter(), "env", "-i", *env, *argv]

    def as_image_user(self, argv: Sequence[str]) -> list[str]:
        """`argv` inside as the image's USER: no extra groups, capabilities or new privileges.

        Every wrapper execs (nsenter without a PID namespace, setpriv, env), so the process that
        Popen starts *is* `argv`: it receives signals and its exit status directly.
        """
        user, _, group = self.image.final.last("USER").args.partition(":")
        setpriv = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups"]
        env = [f"{key}={value}" for key, value in self.image.env().items()]
        return [*self.enter(), *setpriv, "--no-new-privs", "env", "-i", *env, *argv]

    def fetch(self, url: str, timeout: float = START_TIMEOUT) -> tuple[int, str]:
        """GET `url` from inside, retrying until it answers 2xx or `timeout` passes."""
        argv = [*self.enter(), sys.executable, "-c", _FETCH, url, str(timeout)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
        assert done.returncode == 0, f"{done.stderr}\n--- log ---\n{self.log_text()}"
        status, _, body = done.stdout.partition("\n")
        return int(status), body

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    process.wait(timeout=30)


def _start_holder(image: BuiltImage, config: Config, scratch: Path) -> Container:
    """Namespaces with the image's files in place and the upstream serving probe.txt."""
    upstream = image.work / f"upstream-{scratch.name}"
    upstream.mkdir()
    (upstream / "probe.txt").write_text(f"proxied {scratch.name}\n", encoding="utf-8")
    overlay = image.work / f"etc-overlay-{scratch.name}"
    script = _setup_script(image, overlay, upstream, config.upstream.url.port or 80)
    with (scratch / "upstream.log").open("wb") as upstream_log:
        holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--propagation", "private", "--", "sh", "-c", script],
            stdout=upstream_log,
            stderr=subprocess.STDOUT,
        )
    _wait_for_namespaces(holder, scratch / "upstream.log")
    return Container(image, holder, scratch / "upstream.log")


def _wait_for_namespaces(holder: subprocess.Popen[bytes], log: Path) -> None:
    """Until `unshare` has run, nsenter would enter the host's namespaces: wait for the switch."""
    ours = {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in ("mnt", "net")}
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and holder.poll() is None:
        theirs = {kind: os.readlink(f"/proc/{holder.pid}/ns/{kind}") for kind in ours}
        if all(theirs[kind] != ours[kind] for kind in ours):
            return
        time.sleep(0.05)
    raise AssertionError(f"the namespaces never came up:\n{log.read_text(errors='replace')}")


def _run_build_time_commands(holder: Container) -> None:
    """The final stage's exec-form RUNs (check-config), as root, in place, like `docker build`."""
    for run in holder.image.final.all("RUN"):
        if run.args.startswith("["):
            argv = run.exec_form()
            done = subprocess.run(holder.as_root(argv), capture_output=True, text=True, check=False)
            assert done.returncode == 0, (
                f"build-time RUN {argv} failed:\n{done.stdout}{done.stderr}"
            )


@pytest.fixture
def container(
    image: BuiltImage, tmp_path: Path
) -> Iterator[tuple[Container, subprocess.Popen[bytes]]]:
    """The shim started from the image's ENTRYPOINT + CMD; yields (container, shim process)."""
    config = load_config(str(image.context / "config.example.yaml"), env=image.env())
    assert config.upstream.url.host == "127.0.0.1", "config.example.yaml should point at loopback"
    holder = _start_holder(image, config, tmp_path)
    shim: subprocess.Popen[bytes] | None = None
    try:
        upstream_url = f"http://127.0.0.1:{config.upstream.url.port}/probe.txt"
        assert holder.fetch(upstream_url)[0] == 200
        _run_build_time_commands(holder)
        argv = image.final.last("ENTRYPOINT").exec_form() + image.final.last("CMD").exec_form()
        running = Container(image, holder.holder, tmp_path / "shim.log")
        with running.log.open("wb") as log:
            shim = subprocess.Popen(
                running.as_image_user(argv), cwd="/", stdout=log, stderr=subprocess.STDOUT
            )
        yield running, shim
    finally:
        if shim is not None:
            _stop(shim)
        _stop(holder.holder, signal.SIGTERM)


def _addresses(image: BuiltImage) -> Config:
    return load_config(str(image.context / "config.example.yaml"), env=image.env())


@pytest.mark.timeout(300)
def test_the_image_runs_the_compiled_hot_path(image: BuiltImage, builder: Stage) -> None:
    """The builder compiles the request path with mypyc (setup.py); the final stage, which has
    no compiler, gets the extensions with the venv."""
    assert builder.env().get("MSC4191_SHIM_COMPILE") == "1"
    probe = "import shim.proxy.client as m, shim.http.target as t; "
    probe += "print(m.__file__, t.__file__)"
    done = subprocess.run(
        [str(image.venv / "bin" / "python"), "-c", probe],
        cwd=image.work,
        capture_output=True,
        text=True,
        check=True,
    )
    files = done.stdout.split()
    assert len(files) == 2, done.stdout
    assert all(f.startswith(str(image.venv)) and f.endswith(".so") for f in files), files


@pytest.mark.timeout(300)
def test_healthcheck_command_passes(
    container: tuple[Container, subprocess.Popen[bytes]], final: Stage
) -> None:
    running, shim = container
    admin = _addresses(running.image).admin.listen
    assert running.fetch(f"http://127.0.0.1:{admin.port}/healthz")[0] == 200
    done = subprocess.run(
        running.as_image_user(healthcheck_command(final)), capture_output=True, text=True
    )
    assert done.returncode == 0, f"HEALTHCHECK failed: {done.stderr}\n{running.log_text()}"
    assert shim.poll() is None, running.log_text()


@pytest.mark.timeout(300)
def test_request_is_proxied_to_the_upstream(
    container: tuple[Container, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    running, _ = container
    listen = _addresses(running.image).listen
    status, body = running.fetch(f"http://127.0.0.1:{listen.port}/probe.txt")
    assert (status, body) == (200, f"proxied {tmp_path.name}\n\n")


@pytest.mark.timeout(300)
def test_sigterm_drains_and_exits_zero(
    container: tuple[Container, subprocess.Popen[bytes]],
) -> None:
    running, shim = container
    config = _addresses(running.image)
    assert running.fetch(f"http://127.0.0.1:{config.admin.listen.port}/healthz")[0] == 200
    shim.send_signal(signal.SIGTERM)
    returncode = shim.wait(timeout=config.shutdown_grace + 10)
    assert returncode == 0, running.log_text()
