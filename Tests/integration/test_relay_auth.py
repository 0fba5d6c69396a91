"""Tokens: who gets in and who gets 401 before the upgrade (docs/protocol.md §4,
Tokens)."""

import time

from relay_client import (
    OUTPUT, TEST_JWT_SECRET, build_query, browser_token, claims, encode_jwt, expect_refused,
    frame, mint, new_pod, open_browser, open_runner, relay_path, run, runner_token,
    tamper_payload, tamper_signature,
)


def refused_cases(pod: str) -> list[tuple[str, str, str | None, dict | None]]:
    """(what, role endpoint, token or None, headers)."""
    now = int(time.time())
    b = dict(user_id=1001)
    r = dict(user_id=0)
    good_browser = browser_token(pod)
    good_runner = runner_token(pod)
    return [
        ("no token (browser)", "browser", None, None),
        ("no token (runner)", "runner", None, None),
        ("empty token", "browser", "", None),
        ("garbage token", "browser", "not.a.jwt", None),
        ("expired (browser)", "browser", mint(pod, ttl=-60, **b), None),
        ("expired (runner)", "runner", mint(pod, ttl=-60, **r), None),
        ("exp missing", "browser",
         encode_jwt({"alg": "HS256", "typ": "JWT"}, {k: v for k, v in claims(pod, **b).items() if k != "exp"}), None),
        ("nbf in the future", "browser", mint(pod, nbf=now + 600, **b), None),
        ("tampered claims (user_id changed)", "browser", tamper_payload(good_browser, user_id=1), None),
        ("tampered claims (pod_key changed)", "runner", tamper_payload(good_runner, pod_key="other", sub="other"), None),
        ("tampered signature", "browser", tamper_signature(good_browser), None),
        ("signed with another secret", "browser", mint(pod, secret="not-the-secret", **b), None),
        ("wrong issuer", "browser", mint(pod, iss="someone-else", **b), None),
        ("wrong issuer (runner)", "runner", mint(pod, iss="someone-else", **r), None),
        ("alg none, no signature", "browser",
         encode_jwt({"alg": "none", "typ": "JWT"}, claims(pod, **b), secret=None), None),
        ("alg none, HS256 signature", "browser",
         encode_jwt({"alg": "none", "typ": "JWT"}, claims(pod, **b), sign_as="HS256"), None),
        ("alg RS256 signed with the secret as HMAC", "browser",
         encode_jwt({"alg": "RS256", "typ": "JWT"}, claims(pod, **b), sign_as="HS256"), None),
        ("header alg HS512 but HS256 signature", "browser",
         encode_jwt({"alg": "HS512", "typ": "JWT"}, claims(pod, **b), sign_as="HS256"), None),
        ("runner token on browser endpoint", "browser", good_runner, None),
        ("browser token on runner endpoint", "runner", good_browser, None),
        ("role runner on browser endpoint", "browser", mint(pod, role="runner", **b), None),
        ("role browser on runner endpoint", "runner", mint(pod, role="browser", **r), None),
        ("bad bearer header", "browser", None, {"Authorization": f"Bearer {tamper_signature(good_browser)}"}),
    ]


def test_bad_tokens_get_401_before_upgrade(start_relay):
    """Every refused token gets HTTP 401 (not an upgrade followed by a close)."""
    relay = start_relay()

    async def main():
        pod = new_pod()
        failures = []
        for what, role, token, headers in refused_cases(pod):
            for prefixed in (False, True):
                path = relay_path(role, prefixed) + (build_query(token) if token is not None else "")
                try:
                    await expect_refused(relay, path, 401, headers=headers)
                except AssertionError as e:
                    failures.append(f"{what} [{relay_path(role, prefixed)}]: {e}")
                except Exception as e:  # noqa: BLE001 - report every case
                    failures.append(f"{what} [{relay_path(role, prefixed)}]: {type(e).__name__}: {e}")
        assert not failures, "\n".join(failures)

    run(main(), timeout=60)


def test_good_tokens_are_accepted(start_relay):
    """HS256, HS384, HS512; query or Bearer header; the `role` claim overriding
    the user_id rule; and each accepted pair can actually talk."""
    relay = start_relay()

    async def main():
        for alg in ("HS256", "HS384", "HS512"):
            pod = new_pod()
            runner = await open_runner(relay, pod, alg=alg, name=f"runner-{alg}")
            browser = await open_browser(relay, pod, alg=alg, name=f"browser-{alg}")
            await runner.send(frame(OUTPUT, alg.encode()))
            _, _ = await browser.recv_until(lambda t, p: t == OUTPUT and p == alg.encode(), what=alg)
            await runner.close()
            await browser.close()

        pod = new_pod()
        runner = await open_runner(relay, pod, bearer=True, name="bearer-runner")
        browser = await open_browser(relay, pod, bearer=True, name="bearer-browser")
        await runner.send(frame(OUTPUT, b"bearer"))
        await browser.recv_until(lambda t, p: t == OUTPUT and p == b"bearer", what="bearer output")

        # role overrides user_id
        pod = new_pod()
        runner = await open_runner(relay, pod, token=mint(pod, user_id=55, role="runner"), name="role-runner")
        browser = await open_browser(relay, pod, token=mint(pod, user_id=0, role="browser"), name="role-browser")
        await runner.send(frame(OUTPUT, b"roles"))
        await browser.recv_until(lambda t, p: t == OUTPUT and p == b"roles", what="role output")

        # --jwt-secret default issuer: a token without nbf and with an old iat is fine.
        pod = new_pod()
        await open_runner(relay, pod, iat=int(time.time()) - 3000, name="old-iat")

    run(main(), timeout=60)


def test_jwt_secret_flag_and_issuer_flag(start_relay):
    """--jwt-secret on the command line; --jwt-issuer changes the required iss."""
    relay = start_relay("--jwt-secret", "flag-secret", "--jwt-issuer", "my-issuer")

    async def main():
        pod = new_pod()
        await expect_refused(relay, relay_path("runner") + build_query(runner_token(pod)), 401)
        await expect_refused(
            relay, relay_path("runner") + build_query(runner_token(pod, secret="flag-secret")), 401)
        runner = await open_runner(relay, pod, secret="flag-secret", iss="my-issuer")
        await runner.close()
        assert TEST_JWT_SECRET != "flag-secret"

    run(main(), timeout=30)


def test_previous_secrets_are_accepted_during_rotation(start_relay):
    """--jwt-previous-secrets keeps tokens signed with older secrets valid
    while the new one takes over; any other secret is still refused."""
    relay = start_relay("--jwt-secret", "new-secret", "--jwt-previous-secrets", "old-secret,older-secret")

    async def main():
        pod = new_pod()
        for secret in ("new-secret", "old-secret", "older-secret"):
            runner = await open_runner(relay, pod, secret=secret)
            await runner.close()
        await expect_refused(
            relay, relay_path("runner") + build_query(runner_token(pod, secret="not-a-secret")), 401)

    run(main(), timeout=30)
