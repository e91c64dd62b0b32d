//! Host-side bindings for the `ballast:policy` world, generated from `sdk/wit`.

wasmtime::component::bindgen!({
    path: "../../sdk/wit",
    world: "ballast:policy/plugin",
    with: {
        "ballast:policy/snapshot.snapshot": crate::input::SnapshotResource,
    },
    imports: { default: trappable },
});

pub use self::ballast::policy::{host, snapshot, types};
