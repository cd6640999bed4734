//! `pickup-projection`: see the library docs.

/// mimalloc instead of glibc's allocator: a replay allocates for every
/// message (the client's parse, the decoded event) and frees it soon
/// after, and glibc's allocator took 17–19 % of a projection's CPU in a
/// rebuild (BENCHMARKS.md, "Bulk replay").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        pickup_projection::NAME,
        "Builds and serves the prison-gate pick-up list",
        pickup_projection::DEFAULT_LISTEN,
        |config: hub_projection::Config, listener| {
            pickup_projection::run(config, listener, hub_runtime::shutdown::signal_received())
        },
    )
}
