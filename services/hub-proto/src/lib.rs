//! Generated protobuf and gRPC code for the hub, and the few hand-written
//! pieces that belong beside it.
//!
//! Only this crate runs code generation, so every other crate shares one copy
//! of each type. Packages follow `hub.<area>.v1`.
//!
//! # Layout
//! - [`common`]: `hub.v1`, shared by all services (PersonRef, EventAck, enums).
//! - [`events`]: `hub.events.v1`, the event log's schema.
//! - [`custody`], [`prison`], [`pharmacy`], [`treatment`], [`ambulance`]:
//!   `hub.<agency>.v1`, the five agency services.
//! - [`identity`]: `hub.identity.v1`, data stewards' link and unlink.
//! - [`projections`]: `hub.projections.v1`, the read side.
//! - [`rpc`]: a typed id per agency RPC, generated from the protos.
//! - [`FILE_DESCRIPTOR_SET`]: every file above, for gRPC reflection.
//! - [`CommandFields`]: the fields every command request shares.
//! - [`event_type`]: the snake_case name of each event payload.
//! - [`json`]: the read side's replies as JSON (hubctl, dashboard).
//! - Redacting `Debug` for the types that carry personal data.

#![allow(clippy::all, missing_docs)]

/// The generated code, nested as the proto packages are (generated paths
/// such as `super::super::v1::PersonRef` rely on it).
pub mod hub {
    /// `hub.v1`.
    pub mod v1 {
        tonic::include_proto!("hub.v1");
    }
    pub mod events {
        /// `hub.events.v1`.
        pub mod v1 {
            tonic::include_proto!("hub.events.v1");
        }
    }
    pub mod custody {
        /// `hub.custody.v1`.
        pub mod v1 {
            tonic::include_proto!("hub.custody.v1");
        }
    }
    pub mod prison {
        /// `hub.prison.v1`.
        pub mod v1 {
            tonic::include_proto!("hub.prison.v1");
        }
    }
    pub mod pharmacy {
        /// `hub.pharmacy.v1`.
        pub mod v1 {
            tonic::include_proto!("hub.pharmacy.v1");
        }
    }
    pub mod treatment {
        /// `hub.treatment.v1`.
        pub mod v1 {
            tonic::include_proto!("hub.treatment.v1");
        }
    }
    pub mod admin {
        /// `hub.admin.v1`.
        pub mod v1 {
            tonic::include_proto!("hub.admin.v1");
        }
    }
    pub mod ambulance {
        /// `hub.ambulance.v1`.
        pub mod v1 {
            tonic::include_proto!("hub.ambulance.v1");
        }
    }
    pub mod identity {
        /// `hub.identity.v1`.
        pub mod v1 {
            tonic::include_proto!("hub.identity.v1");
        }
    }
    pub mod projections {
        /// `hub.projections.v1`.
        pub mod v1 {
            tonic::include_proto!("hub.projections.v1");
        }
    }
}

pub use hub::admin::v1 as admin;
pub use hub::ambulance::v1 as ambulance;
pub use hub::custody::v1 as custody;
pub use hub::events::v1 as events;
pub use hub::identity::v1 as identity;
pub use hub::pharmacy::v1 as pharmacy;
pub use hub::prison::v1 as prison;
pub use hub::projections::v1 as projections;
pub use hub::treatment::v1 as treatment;
pub use hub::v1 as common;

/// One typed id per RPC of the agency services, generated from `proto/`
/// (`PrisonRpc::FlagImminentRelease`, and `Rpc`, any of them). The role
/// table names these, never strings: renaming an RPC fails to compile
/// until the table says who may call it under its new name.
pub mod rpc {
    include!(concat!(env!("OUT_DIR"), "/rpc_ids.rs"));
}

/// The encoded `FileDescriptorSet` of every hub proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hub_descriptor");

mod command;
mod event_type;
pub mod json;
mod redact;

pub use command::CommandFields;
pub use event_type::{event_type, SCHEMA_VERSION};
