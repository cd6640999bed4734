//! `activity-projection`: see the library docs.

/// mimalloc, as the other projections (BENCHMARKS.md, "Bulk replay").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        activity_projection::NAME,
        "Builds and serves harm-reduction activity",
        activity_projection::DEFAULT_LISTEN,
        |config: activity_projection::Config, listener| {
            activity_projection::run(config, listener, hub_runtime::shutdown::signal_received())
        },
    )
}
