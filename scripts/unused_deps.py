#!/usr/bin/env python3
"""`unused_deps.py [WORKSPACE]`: unused dependencies (what `cargo machete` finds, without installing it): every dependency a
workspace crate declares must be named in that crate's Rust sources (`name::`, `use name`,
`extern crate name`, or a derive/attribute path). Exit 1 naming each unused one."""

import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else __file__).resolve()
ROOT = ROOT if len(sys.argv) > 1 else ROOT.parent.parent
# Dependencies used without their name in the sources (features, linking, build tools).
USED_WITHOUT_NAME = {"openssl-sys", "rdkafka-sys", "lz4-sys", "zstd-sys", "libz-sys", "sasl2-sys"}


def crates():
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    for pattern in workspace["workspace"]["members"]:
        for manifest in ROOT.glob(f"{pattern}/Cargo.toml"):
            yield manifest


def unused(manifest: pathlib.Path):
    toml = tomllib.loads(manifest.read_text())
    sources = "\n".join(
        p.read_text() for p in manifest.parent.rglob("*.rs") if "target" not in p.parts
    )
    for section in ("dependencies", "dev-dependencies", "build-dependencies"):
        for name, spec in toml.get(section, {}).items():
            if isinstance(spec, dict) and spec.get("optional"):
                continue
            # A renamed dependency (`package = ...`) is used under its key.
            ident = name.replace("-", "_")
            if name in USED_WITHOUT_NAME:
                continue
            if not re.search(rf"\b{re.escape(ident)}(::|\s*[;,}}])|extern crate {re.escape(ident)}\b|#\[{re.escape(ident)}", sources):
                yield section, name


def main() -> int:
    found = [(m.parent.relative_to(ROOT), s, n) for m in crates() for s, n in unused(m)]
    for crate, section, name in found:
        print(f"{crate}/Cargo.toml: [{section}] {name} is not used by the crate's sources")
    if not found:
        print("unused dependencies: none")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
