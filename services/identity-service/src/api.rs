//! The IdentityService RPC table.

use hub_proto::identity::{identity_service_server::IdentityService, *};

use crate::rules;

hub_runtime::rpc_table!(IdentityApi: IdentityService as IdentityRpc, IdentityCommand => identity_command::Command {
    link_people(LinkPeopleRequest) => LinkPeople, rules::link_people;
    unlink_people(UnlinkPeopleRequest) => UnlinkPeople, rules::unlink_people;
});
