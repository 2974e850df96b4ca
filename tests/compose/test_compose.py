#!/usr/bin/env python3
"""End to end through `docker compose` (compose.yaml + compose.demo.yaml).

Images must exist (scripts/build-images.sh). Checks: a Telegram DM reaches the model and the
reply reaches the chat; a model-requested exec runs in a throwaway container; killing the
gateway mid-conversation loses no accepted message and sends no reply twice; only the
gateway publishes a port, on 127.0.0.1; only the Docker guard mounts the Docker socket and only
the executor can reach the guard.
Talks only to 127.0.0.1 and to the containers this test starts.
"""
import json
import os
import re
import tempfile
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT = "pincer-e2e"
COMPOSE = ["docker", "compose", "-p", PROJECT, "-f", "compose.yaml", "-f", "compose.demo.yaml"]
FAKE_TG = "http://127.0.0.1:18802"
OWNER = 1001
results = []


def sh(args, check=True, capture=False):
    return subprocess.run(args, cwd=ROOT, check=check, text=True, capture_output=capture)


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def sent_to(chat):
    return [m["text"] for m in http("GET", FAKE_TG + "/_fake/sent") if m["chat_id"] == chat]


def inject(text):
    http("POST", FAKE_TG + "/_fake/messages", {"chat_id": OWNER, "chat_type": "private", "from_id": OWNER, "text": text})


def wait_replies(n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            got = sent_to(OWNER)
            if len(got) >= n:
                return got
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"waited {timeout}s for {n} replies, got {sent_to(OWNER)}")


def check(name, fn):
    try:
        fn()
        results.append((name, True, ""))
        print(f"ok   {name}", flush=True)
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        results.append((name, False, repr(e)))
        print(f"FAIL {name}: {e!r}", flush=True)


def test_dm_roundtrip():
    inject("hello")
    assert wait_replies(1)[0] == "You said: hello"


def test_exec_in_container():
    inject("run: echo hi > note.txt && cat note.txt")
    reply = wait_replies(2)[1]
    assert "hi" in reply, reply
    with open("/var/lib/pincer/workspaces/main/note.txt") as f:
        assert f.read() == "hi\n"


def test_gateway_restart_loses_nothing():
    inject("are you still there?")
    sh(COMPOSE + ["kill", "-s", "SIGKILL", "gateway"])
    inject("and now?")
    sh(COMPOSE + ["up", "-d", "--no-build", "--wait", "gateway"])
    replies = wait_replies(4)
    time.sleep(5)
    replies = sent_to(OWNER)
    assert len(replies) == 4, f"each message answered exactly once: {replies}"
    assert "You said: are you still there?" in replies and "You said: and now?" in replies, replies


def test_exposure():
    out = sh(COMPOSE + ["port", "gateway", "18789"], capture=True).stdout.strip()
    assert out == "127.0.0.1:18789", out
    for svc in ["agent", "executor", "bridge"]:
        cid = sh(COMPOSE + ["ps", "-q", svc], capture=True).stdout.strip()
        ports = json.loads(sh(["docker", "inspect", "--format", "{{json .HostConfig.PortBindings}}", cid], capture=True).stdout)
        assert not ports, f"{svc} publishes {ports}"
    for svc in ["gateway", "agent", "executor", "bridge", "docker-guard"]:
        cid = sh(COMPOSE + ["ps", "-q", svc], capture=True).stdout.strip()
        mounts = json.loads(sh(["docker", "inspect", "--format", "{{json .Mounts}}", cid], capture=True).stdout)
        has_socket = any(m.get("Source") == "/var/run/docker.sock" for m in mounts)
        assert has_socket == (svc == "docker-guard"), f"{svc} docker socket mount: {has_socket}"
        networks = json.loads(sh(["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", cid], capture=True).stdout)
        on_docker_net = any(name.endswith("_docker") for name in networks)
        assert on_docker_net == (svc in ("executor", "docker-guard")), f"{svc} reaches the guard: {on_docker_net}"


def host_cli(state, config, *args):
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    env = dict(os.environ, PINCER_STATE_DIR=state)
    return subprocess.run([os.path.join(target, "release", "pincer"), "--config", config, *args],
                          cwd=ROOT, env=env, text=True, capture_output=True, timeout=120)


def test_host_cli_pairs_through_the_published_port():
    """The published port is not "local": the host's CLI must be approved by the owner,
    who does it with the CLI inside the gateway container (which is local there)."""
    state = tempfile.mkdtemp()
    config = os.path.join(state, "pincer.json5")
    token_file = os.path.join(ROOT, ".secrets", "gateway_token")
    with open(config, "w") as f:
        f.write(json.dumps({
            "gateway": {"port": 18789, "auth": {"mode": "token", "token": {"file": token_file}}},
            "models": {"providers": {"p": {"api": "openai-chat", "baseUrl": "http://127.0.0.1:9/v1"}}},
            "agents": {"defaults": {"model": "p/m"}},
        }))
    first = host_cli(state, config, "chat", "-m", "before pairing")
    assert first.returncode != 0, first.stdout
    match = re.search(r"pincer devices approve ([0-9a-f]{64})", first.stderr)
    assert match, f"the refusal says how to approve: {first.stderr}"
    device = match.group(1)
    listed = sh(COMPOSE + ["exec", "-T", "gateway", "pincer", "devices", "list", "--json"], capture=True).stdout
    pending = [d for d in json.loads(listed)["devices"] if d["status"] == "pending"]
    assert [d["deviceId"] for d in pending] == [device], listed
    sh(COMPOSE + ["exec", "-T", "gateway", "pincer", "devices", "approve", device])
    second = host_cli(state, config, "chat", "-m", "after pairing")
    assert second.returncode == 0, second.stderr
    assert "You said: after pairing" in second.stdout, second.stdout
    probe = host_cli(state, config, "gateway", "probe", "--json")
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout)["protocol"] == 2, probe.stdout


def main():
    os.makedirs("/var/lib/pincer/workspaces", exist_ok=True)
    note = "/var/lib/pincer/workspaces/main/note.txt"
    if os.path.exists(note):
        os.remove(note)
    sh(["bash", "scripts/compose-init.sh"])
    sh(COMPOSE + ["down", "-v", "--remove-orphans"], check=False)
    try:
        sh(COMPOSE + ["up", "-d", "--no-build", "--wait"])
        check("telegram DM round trip through the compose stack", test_dm_roundtrip)
        check("exec runs in a throwaway container", test_exec_in_container)
        check("gateway killed mid-conversation: nothing lost, nothing twice", test_gateway_restart_loses_nothing)
        check("only the gateway is published (127.0.0.1); only the guard has the Docker socket, only the executor reaches it", test_exposure)
        check("the host CLI is paired by the owner, not auto-approved through the port", test_host_cli_pairs_through_the_published_port)
    finally:
        if any(not ok for _, ok, _ in results):
            sh(COMPOSE + ["logs", "--no-color", "--tail", "80"], check=False)
        sh(COMPOSE + ["down", "-v", "--remove-orphans"], check=False)
    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    print(f"compose: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed == 5 else 1


if __name__ == "__main__":
    sys.exit(main())
