//! Generates the hub's protobuf and gRPC code from `proto/` and exports the
//! file descriptor set that the services serve through gRPC reflection.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "hub/v1/common.proto",
    "hub/admin/v1/admin.proto",
    "hub/events/v1/events.proto",
    "hub/custody/v1/custody.proto",
    "hub/prison/v1/prison.proto",
    "hub/pharmacy/v1/pharmacy.proto",
    "hub/treatment/v1/treatment.proto",
    "hub/ambulance/v1/ambulance.proto",
    "hub/identity/v1/identity.proto",
    "hub/projections/v1/pickup.proto",
    "hub/projections/v1/status.proto",
    "hub/projections/v1/training.proto",
];

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../../proto")
        .canonicalize()?;
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("hub_descriptor.bin"))
        // Types that hold personal data get a redacting Debug by hand (lib.rs),
        // so that `{:?}` in a log line can never print an identifier.
        .skip_debug(["hub.v1.PersonRef", "hub.events.v1.PersonalData"])
        .compile_protos(&files, &[root])
}
