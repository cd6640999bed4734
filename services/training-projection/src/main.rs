//! `training-projection`: see the library docs.

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        training_projection::NAME,
        "Builds and serves overdose-training counts",
        training_projection::DEFAULT_LISTEN,
        |config: hub_projection::Config, listener| {
            training_projection::run(config, listener, hub_runtime::shutdown::signal_received())
        },
    )
}
