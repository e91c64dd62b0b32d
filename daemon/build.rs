//! Builds the Rust policy plugins of the workspace (bundled and test ones) into
//! wasm32-wasip2 components, so that a plain `cargo build` or `cargo test` on a fresh clone
//! has them. They go to `<target>/plugins/wasm32-wasip2/plugin/`, whose path is passed to the
//! crate as `BALLAST_PLUGIN_DIR`.
//!
//! The nested cargo uses its own target directory, so it never waits on the outer build's
//! lock, and the `plugin` profile (optimised, no debug info).

// A build script fails by panicking: that is how cargo reports its message.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGES: &[&str] = &[
    "binpack",
    "consolidation",
    "expiry",
    "fargate-placement",
    "headroom",
    "static-size",
    "thresholds",
    "empty-policy",
    "scripted-policy",
    "hostile-policy",
    "future-version-policy",
    "echo-policy",
    "wrong-signature-policy",
    "old-contract-policy",
    "queue-floor",
];
const WATCHED: &[&str] = &[
    "sdk/rust",
    "sdk/wit",
    "plugins/binpack",
    "plugins/consolidation",
    "plugins/expiry",
    "plugins/fargate-placement",
    "plugins/headroom",
    "plugins/static-size",
    "plugins/thresholds",
    "plugins/queue-floor",
    "tests/plugins",
    "Cargo.lock",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("daemon/ lives in the workspace").to_path_buf();
    for path in WATCHED {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let target_dir = workspace_target_dir(&root).join("plugins");
    let out = target_dir.join("wasm32-wasip2").join("plugin");
    println!("cargo:rustc-env=BALLAST_PLUGIN_DIR={}", out.display());

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--profile", "plugin", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for package in PACKAGES {
        command.args(["-p", package]);
    }
    // Flags meant for the host build must not leak into the wasm one.
    for var in
        ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "CARGO_BUILD_RUSTFLAGS"]
    {
        command.env_remove(var);
    }
    let status = command.status().unwrap_or_else(|e| panic!("cannot run cargo to build the plugins: {e}"));
    if !status.success() {
        panic!(
            "building the policy plugins for wasm32-wasip2 failed ({status}); if the target is missing, \
             run `rustup target add wasm32-wasip2` (tests/setup.sh does)"
        );
    }
}

/// The outer build's target directory: `OUT_DIR` is `<target>/<profile>/build/<pkg>/out`.
fn workspace_target_dir(root: &Path) -> PathBuf {
    std::env::var_os("OUT_DIR")
        .map(PathBuf::from)
        .and_then(|out| out.ancestors().nth(4).map(Path::to_path_buf))
        .unwrap_or_else(|| root.join("target"))
}
