//! `key-service`: the only writer of new per-person data keys (see
//! `hub_runtime::keyservice`).

use hub_runtime::keyservice;

fn main() -> std::process::ExitCode {
    hub_runtime::agency::service_main(
        keyservice::NAME,
        "Creates per-person data keys for the harm-reduction hub's agency services",
        keyservice::DEFAULT_LISTEN,
        |args: hub_runtime::config::CommonArgs, listener| {
            keyservice::run(args, listener, hub_runtime::shutdown::signal_received())
        },
    )
}
