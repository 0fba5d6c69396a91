"""Settings: flags over environment over the YAML file over defaults, and a
bad value stops start-up with a message that names the setting and where
the value came from."""
import subprocess

from conftest import RELAY_BIN, TEST_JWT_SECRET, free_port, relay_env


def start_fails(args, env=None, timeout=10, host="127.0.0.1"):
    where = ["--host", host] if host else []
    proc = subprocess.run([str(RELAY_BIN), *where, "--port", str(free_port()), *args],
                          env=relay_env(env), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode != 0, f"relay started with {args} {env}"
    return proc.stderr


def test_bad_values_name_the_setting_and_its_source(tmp_path):
    config = tmp_path / "relay.yaml"
    config.write_text("ping-interval: banana\nmax-browsers-per-pod: 3\n")
    err = start_fails(["--config", str(config)])
    assert "ping-interval" in err and "PING_INTERVAL" in err and "relay.yaml" in err and "banana" in err

    # The environment wins over the file: the file's bad value is not used, the environment's is.
    err = start_fails(["--config", str(config)], env={"RELAY_PING_INTERVAL": "soon"})
    assert "'soon'" in err and "environment RELAY_PING_INTERVAL" in err

    # A flag wins over both.
    err = start_fails(["--config", str(config), "--ping-interval", "later"], env={"PING_INTERVAL": "soon"})
    assert "'later'" in err and "--ping-interval" in err

    err = start_fails(["--max-browsers-per-pod", "0"])
    assert "max-browsers-per-pod" in err and "MAX_BROWSERS_PER_POD" in err

    err = start_fails([], env={"SERVER_HOST": "not-an-address"}, host=None)
    assert "host" in err and "SERVER_HOST" in err


def test_unknown_keys_and_missing_secret_are_refused(tmp_path):
    config = tmp_path / "relay.yaml"
    config.write_text("prot: 8090\n")
    err = start_fails(["--config", str(config)])
    assert "unknown setting 'prot'" in err

    env = relay_env()
    env.pop("JWT_SECRET", None)
    proc = subprocess.run([str(RELAY_BIN), "--host", "127.0.0.1", "--port", str(free_port())],
                          env=env, capture_output=True, text=True, timeout=10)
    assert proc.returncode != 0 and "JWT_SECRET" in proc.stderr


def test_file_values_apply_when_nothing_overrides_them(start_relay, tmp_path):
    config = tmp_path / "relay.yaml"
    config.write_text(f"jwt-secret: {TEST_JWT_SECRET}\nmax-browsers-per-pod: 1\n")
    relay = start_relay("--config", str(config))

    import asyncio
    from relay_client import new_pod, open_browser, open_runner
    from websockets.exceptions import ConnectionClosed

    async def main():
        pod = new_pod()
        runner = await open_runner(relay, pod)
        first = await open_browser(relay, pod, name="first", user_id=1)
        second = await open_browser(relay, pod, name="second", user_id=2)
        try:
            while True:
                await asyncio.wait_for(second.ws.recv(), 5)
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None
        finally:
            await first.ws.close()
            await runner.ws.close()

    assert asyncio.run(main()) == 1008
