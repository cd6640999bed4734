//! The fields every command request shares (contract section 3), behind one
//! trait so that one pipeline serves every RPC of every agency.

use crate::common::PersonRef;

pub trait CommandFields: prost::Message + Default + Send + Sync + 'static {
    fn request_id(&self) -> &str;
    fn partnership_code(&self) -> &str;
    fn occurred_at(&self) -> Option<&prost_types::Timestamp>;
    /// The person the command is about, for commands that name one.
    fn person(&self) -> Option<&PersonRef> {
        None
    }
}

macro_rules! command_fields {
    ($($t:ty),* $(,)?) => {$(
        impl CommandFields for $t {
            fn request_id(&self) -> &str { &self.request_id }
            fn partnership_code(&self) -> &str { &self.partnership_code }
            fn occurred_at(&self) -> Option<&prost_types::Timestamp> { self.occurred_at.as_ref() }
            fn person(&self) -> Option<&PersonRef> { self.person.as_ref() }
        }
    )*};
}

command_fields!(
    crate::prison::RecordReleaseDateRequest,
    crate::prison::CancelReleaseRequest,
    crate::prison::FlagImminentReleaseRequest,
    crate::prison::RecordConsentRequest,
    crate::prison::RecordPreReleaseTriageRequest,
    crate::prison::RecordNaloxoneOnReleaseRequest,
    crate::prison::RecordReleaseRequest,
);
