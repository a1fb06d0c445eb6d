"""scripts/unused_deps.py finds a dependency no source names, and passes the workspace."""

import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "unused_deps.py"


def run(root):
    return subprocess.run([sys.executable, SCRIPT, str(root)], capture_output=True, text=True)


def workspace(tmp_path, source):
    (tmp_path / "Cargo.toml").write_text('[workspace]\nmembers = ["a"]\n')
    (tmp_path / "a/src").mkdir(parents=True)
    (tmp_path / "a/Cargo.toml").write_text(
        '[package]\nname = "a"\n\n[dependencies]\nserde_json = "1"\ntokio-util = "0.7"\n'
    )
    (tmp_path / "a/src/lib.rs").write_text(source)
    return tmp_path


def test_an_unused_dependency_is_named(tmp_path):
    out = run(workspace(tmp_path, "use tokio_util::sync::CancellationToken;\n"))
    assert out.returncode == 1
    assert "a/Cargo.toml: [dependencies] serde_json is not used" in out.stdout
    assert "tokio-util" not in out.stdout


def test_dependencies_named_in_the_sources_pass(tmp_path):
    src = "use tokio_util::sync::CancellationToken;\nfn f() { serde_json::json!({}); }\n"
    out = run(workspace(tmp_path, src))
    assert out.returncode == 0, out.stdout
    assert "none" in out.stdout


def test_the_workspace_has_no_unused_dependency():
    """As the README says to type it, from the repository root."""
    out = subprocess.run(["python3", "scripts/unused_deps.py"], capture_output=True, text=True,
                         cwd=SCRIPT.parent.parent)
    assert out.returncode == 0, out.stdout
    assert "unused dependencies: none" in out.stdout
