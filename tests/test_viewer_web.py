"""`serve web --viewer` and `--cors` without a browser: the viewer's files, its generated
app-config.js, the single-page-app fallback, CORS, and the errors for a missing viewer and for
options that cannot go together. `pacscore viewer install` runs against a stand-in npm that
packs a tiny fake OHIF, so nothing here needs the network or the real viewer."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import pacscore
from pacscore import viewer
from pacscore.adapters.dicomweb import create_app
from pacscore.adapters.web_viewer import app_config, check_origin, with_cors, with_viewer

from .factories import make_instance, to_bytes
from .viewer_helpers import serve_web
from .web_helpers import serving

httpx = pytest.importorskip("httpx")

INDEX = b"<!doctype html><title>OHIF Viewer</title><script src='/app.bundle.js'></script>"
FILES = {
    "index.html": INDEX,
    "app.bundle.js": b"console.log('app');",
    "app.bundle.css": b"body{}",
    "0ddf166f.wasm": b"\0asm\x01\0\0\0",
    "assets/favicon.ico": b"\0\0\1\0",
    "app-config.js": b"window.config = {'the packaged one': 'never served'};",
}
STUDY = "1.2.826.0.1.3680043.10.1018.500"


@pytest.fixture
def fake_viewer(tmp_path) -> Path:
    folder = tmp_path / "ohif"
    for name, content in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture
def archive(tmp_path) -> Path:
    with pacscore.open(tmp_path / "arc") as arc:
        arc.store(to_bytes(make_instance(sop=STUDY + ".1.1", study=STUDY, series=STUDY + ".1")))
    return tmp_path / "arc"


@pytest.fixture
def site(archive, fake_viewer):
    app = with_viewer(create_app(archive), fake_viewer, thumbnails=False)
    with serving(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client


# -- static files, app-config.js, SPA fallback --------------------------------------------
@pytest.mark.parametrize(
    "path, content_type",
    [
        ("/", "text/html; charset=utf-8"),
        ("/app.bundle.js", "text/javascript; charset=utf-8"),
        ("/app.bundle.css", "text/css; charset=utf-8"),
        ("/0ddf166f.wasm", "application/wasm"),
        ("/assets/favicon.ico", "image/x-icon"),
    ],
)
def test_viewer_files_are_served_with_their_content_types(site, path, content_type):
    answer = site.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == content_type
    expected = INDEX if path == "/" else FILES[path.lstrip("/")]
    assert answer.content == expected


def test_head_answers_without_a_body(site):
    answer = site.head("/app.bundle.js")
    assert answer.status_code == 200 and answer.content == b""
    assert answer.headers["content-length"] == str(len(FILES["app.bundle.js"]))


@pytest.mark.parametrize("path", ["/viewer", "/viewer/dicomweb?StudyInstanceUIDs=1.2.3", "/local", "/a/b/c"])
def test_viewer_routes_fall_back_to_index_html(site, path):
    answer = site.get(path)
    assert answer.status_code == 200
    assert answer.content == INDEX
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path", ["/missing.bundle.js", "/assets/nope.png", "/..%2F..%2Fetc%2Fpasswd.txt", "/" + "a" * 5000 + ".js"]
)
def test_a_missing_file_is_404_never_index_html(site, path):
    answer = site.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert INDEX not in answer.content


def test_paths_outside_the_viewer_folder_are_not_served(site, tmp_path):
    (tmp_path / "secret.txt").write_text("not for the web")
    for path in ("/../secret.txt", "/%2E%2E/secret.txt", "/assets/../../secret.txt"):
        answer = site.get(path)
        assert b"not for the web" not in answer.content


def test_the_viewer_is_read_only(site):
    answer = site.post("/index.html", content=b"x")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"


def test_app_config_is_generated_for_this_server(site):
    answer = site.get("/app-config.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    text = answer.text
    assert "never served" not in text
    assert 'window.location.origin + "/dicomweb"' in text
    assert '"imageRendering": "wadors"' in text and '"thumbnailRendering": "wadors"' in text
    assert "qidoRoot: ROOT" in text and "wadoRoot: ROOT" in text


def test_app_config_is_valid_javascript_that_sets_the_data_source(tmp_path):
    node = __import__("shutil").which("node")
    if node is None:
        pytest.skip("node is not installed (it comes with npm: apt-get install npm)")
    script = tmp_path / "cfg.js"
    script.write_text(app_config("/dicomweb", thumbnails=True))
    probe = (
        "global.window = {location: {origin: 'http://pacs.example:8042'}};"
        f"require({json.dumps(str(script))});"
        "console.log(JSON.stringify(window.config));"
    )
    out = subprocess.run([node, "-e", probe], capture_output=True, text=True, timeout=60, check=True).stdout
    config = json.loads(out)
    (source,) = config["dataSources"]
    assert config["defaultDataSourceName"] == source["sourceName"]
    conf = source["configuration"]
    assert conf["qidoRoot"] == conf["wadoRoot"] == "http://pacs.example:8042/dicomweb"
    assert conf["wadoUriRoot"] == "http://pacs.example:8042/dicomweb/wado"
    assert conf["thumbnailRendering"] == "thumbnail" and conf["imageRendering"] == "wadors"


def test_app_config_uses_the_base_url_behind_a_proxy():
    text = app_config("/dicomweb", base_url="https://pacs.example.org/dicomweb/", thumbnails=False)
    assert 'const ROOT = "https://pacs.example.org/dicomweb";' in text


def test_dicomweb_is_still_served_under_its_prefix(site):
    answer = site.get("/dicomweb/studies", headers={"Accept": "application/dicom+json"})
    assert answer.status_code == 200
    assert answer.json()[0]["0020000D"]["Value"] == [STUDY]
    assert site.get("/dicomweb/nothing-here").status_code == 404  # DICOMweb's 404, not index.html


def test_a_viewer_needs_a_prefix_and_a_real_folder(archive, fake_viewer, tmp_path):
    with pytest.raises(ValueError, match="prefix other than /"):
        with_viewer(create_app(archive, prefix="/"), fake_viewer, prefix="/")
    with pytest.raises(FileNotFoundError, match=r"no index\.html"):
        with_viewer(create_app(archive), tmp_path / "empty")


# -- CORS ---------------------------------------------------------------------------------
@pytest.fixture
def cors_site(archive):
    app = with_cors(create_app(archive), "https://viewer.example.org")
    with serving(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client


def test_cors_preflight_is_answered(cors_site):
    answer = cors_site.options(
        "/dicomweb/studies",
        headers={
            "Origin": "https://viewer.example.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "accept, authorization",
        },
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "https://viewer.example.org"
    assert "GET" in answer.headers["access-control-allow-methods"]
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "accept" in allowed
    assert answer.headers["vary"] == "Origin"


def test_cors_preflight_from_another_origin_is_refused(cors_site):
    answer = cors_site.options(
        "/dicomweb/studies", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert answer.status_code == 403
    assert "access-control-allow-origin" not in answer.headers


def test_cors_headers_on_answers_to_the_allowed_origin_only(cors_site):
    json_accept = {"Accept": "application/dicom+json"}
    answer = cors_site.get("/dicomweb/studies", headers={**json_accept, "Origin": "https://viewer.example.org"})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://viewer.example.org"
    assert "X-Total-Count" in answer.headers["access-control-expose-headers"]
    other = cors_site.get("/dicomweb/studies", headers={**json_accept, "Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    same_origin = cors_site.get("/dicomweb/studies", headers=json_accept)
    assert "access-control-allow-origin" not in same_origin.headers


def test_cors_preflight_needs_no_token_but_the_request_does(archive):
    from pacscore.adapters.dicomweb import bearer_token_auth

    app = with_cors(create_app(archive, auth=bearer_token_auth("s3cret")), "*")
    with serving(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        pre = client.options(
            "/dicomweb/studies",
            headers={"Origin": "http://a.example", "Access-Control-Request-Method": "GET"},
        )
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
        denied = client.get("/dicomweb/studies", headers={"Origin": "http://a.example"})
        assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == "*"
        ok = client.get("/dicomweb/studies", headers={"Origin": "http://a.example", "Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


@pytest.mark.parametrize("origin", ["https://viewer.example.org/", "viewer.example.org", "ftp://x", "https://a b", ""])
def test_a_bad_cors_origin_is_refused_with_what_to_write(origin):
    with pytest.raises(ValueError, match="not an origin"):
        check_origin(origin)


@pytest.mark.parametrize("origin", ["*", "http://127.0.0.1:3000", "https://viewer.example.org", "http://[::1]:8080"])
def test_good_cors_origins(origin):
    assert check_origin(origin) == origin


# -- the command line: missing viewer, bad combinations ------------------------------------
def _serve(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pacscore", "serve", "web", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_serve_viewer_without_the_viewer_says_what_to_run(archive, tmp_path):
    done = _serve(["--archive", str(archive), "--viewer", "--port", "0"], {"PACSCORE_VIEWER_DIR": str(tmp_path / "no")})
    assert done.returncode == 2
    assert "pacscore viewer install" in done.stderr and str(tmp_path / "no") in done.stderr


def test_serve_web_viewer_and_cors_from_the_command_line(archive, fake_viewer, tmp_path):
    args = ["--archive", str(archive), "--viewer", "--cors", "http://other.example:3000"]
    with (
        serve_web(args, tmp_path / "serve.log", {"PACSCORE_VIEWER_DIR": str(fake_viewer)}) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        assert client.get("/").content == INDEX
        assert client.get("/viewer?StudyInstanceUIDs=" + STUDY).content == INDEX
        assert "window.location.origin" in client.get("/app-config.js").text
        answer = client.get("/dicomweb/studies", headers={"Origin": "http://other.example:3000"})
        assert answer.status_code == 200 and answer.json()[0]["0020000D"]["Value"] == [STUDY]
        assert answer.headers["access-control-allow-origin"] == "http://other.example:3000"


def test_serve_viewer_with_a_token_is_refused(archive, fake_viewer):
    done = _serve(["--archive", str(archive), "--viewer", "--viewer-dir", str(fake_viewer), "--token", "t"])
    assert done.returncode == 2
    assert "--viewer cannot be combined with --token" in done.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--viewer", "--prefix", "/"], "prefix other than /"),
        (["--viewer-dir", "/somewhere"], "--viewer-dir needs --viewer"),
        (["--cors", "example.org"], "not an origin"),
    ],
)
def test_serve_refuses_unsupported_combinations(archive, fake_viewer, extra, message):
    if "--viewer" in extra:
        extra = [*extra, "--viewer-dir", str(fake_viewer)]
    done = _serve(["--archive", str(archive), *extra])
    assert done.returncode == 2
    assert message in done.stderr


# -- pacscore viewer install | path -------------------------------------------------------
def _fake_npm(tmp_path: Path, *, with_index: bool = True, fail: bool = False, escape: bool = False) -> Path:
    """A stand-in for npm: `npm pack SPEC --pack-destination DIR` writes a small OHIF tarball."""
    tarball = tmp_path / "fake-ohif.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        members = {**FILES, **({"../../escape.txt": b"x"} if escape else {})} if with_index else {"app.bundle.js": b"x"}
        for name, content in {
            "package/package.json": b"{}",
            **{f"package/dist/{k}": v for k, v in members.items()},
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    log = tmp_path / "npm-calls.txt"
    script = tmp_path / "npm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        + ("sys.stderr.write('npm ERR! 404 Not Found'); sys.exit(1)\n" if fail else "")
        + "dest = sys.argv[sys.argv.index('--pack-destination') + 1]\n"
        + f"shutil.copy({str(tarball)!r}, dest + '/ohif-app-{viewer.OHIF_VERSION}.tgz')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_install_unpacks_dist_and_path_finds_it(tmp_path, monkeypatch):
    npm = _fake_npm(tmp_path)
    dest = tmp_path / "cache" / "viewer"
    monkeypatch.setenv("PACSCORE_VIEWER_DIR", str(dest))
    assert viewer.install_viewer(npm=str(npm)) == dest
    assert (dest / "index.html").read_bytes() == INDEX
    assert (dest / "assets" / "favicon.ico").is_file()
    assert not (dest / "package.json").exists()
    assert viewer.find_viewer() == dest
    calls = (tmp_path / "npm-calls.txt").read_text().splitlines()
    assert calls == [
        f"pack {viewer.OHIF_PACKAGE}@{viewer.OHIF_VERSION} --pack-destination {calls[0].split()[-2]} --silent"
    ]
    # installed: a second install fetches nothing; --force fetches again
    viewer.install_viewer(npm=str(npm))
    assert len((tmp_path / "npm-calls.txt").read_text().splitlines()) == 1
    viewer.install_viewer(npm=str(npm), force=True)
    assert len((tmp_path / "npm-calls.txt").read_text().splitlines()) == 2
    assert sorted(p.name for p in dest.parent.iterdir()) == ["viewer"]  # no temporary folder left


def test_a_failed_install_leaves_the_installed_viewer_alone(tmp_path):
    dest = tmp_path / "viewer"
    viewer.install_viewer(dest, npm=str(_fake_npm(tmp_path)))
    (dest / ".pacscore-viewer").write_text("@ohif/app@0.0.1\n")  # an older pin: install again
    (tmp_path / "failing").mkdir()
    failing = _fake_npm(tmp_path / "failing", fail=True)
    with pytest.raises(viewer.ViewerError, match="npm ERR! 404"):
        viewer.install_viewer(dest, npm=str(failing))
    assert (dest / "index.html").read_bytes() == INDEX


def test_install_never_replaces_a_folder_it_did_not_install(tmp_path):
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "letter.txt").write_text("keep me")
    with pytest.raises(viewer.ViewerError, match="is not a viewer this command installed"):
        viewer.install_viewer(mine, npm=str(_fake_npm(tmp_path)), force=True)
    assert (mine / "letter.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (viewer.install_viewer(empty, npm=str(_fake_npm(tmp_path))) / "index.html").is_file()


def test_a_tarball_without_a_built_viewer_is_refused(tmp_path):
    npm = _fake_npm(tmp_path, with_index=False)
    with pytest.raises(viewer.ViewerError, match=r"no package/dist/index\.html"):
        viewer.install_viewer(tmp_path / "viewer", npm=str(npm))
    assert not (tmp_path / "viewer").exists()


def test_a_tarball_member_outside_dist_is_refused(tmp_path):
    npm = _fake_npm(tmp_path, escape=True)
    with pytest.raises(viewer.ViewerError, match="unsafe member"):
        viewer.install_viewer(tmp_path / "cache" / "viewer", npm=str(npm))
    assert not (tmp_path / "cache" / "viewer").exists()
    assert not list(tmp_path.rglob("escape.txt"))


def test_install_without_npm_says_how_to_get_it(tmp_path):
    with pytest.raises(viewer.ViewerError, match="apt-get install npm"):
        viewer.install_viewer(tmp_path / "viewer", npm=str(tmp_path / "no-npm-here"))


def test_viewer_cli(tmp_path):
    env = {**os.environ, "PACSCORE_VIEWER_DIR": str(tmp_path / "v")}
    run = [sys.executable, "-m", "pacscore", "viewer"]
    missing = subprocess.run([*run, "path"], capture_output=True, text=True, timeout=120, env=env)
    assert missing.returncode == 1 and "pacscore viewer install" in missing.stderr
    npm = _fake_npm(tmp_path)
    done = subprocess.run([*run, "install", "--npm", str(npm)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    found = subprocess.run([*run, "path"], capture_output=True, text=True, timeout=120, env=env)
    assert found.returncode == 0 and found.stdout.strip() == str(tmp_path / "v")
