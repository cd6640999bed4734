//! The one mapping from the hub's errors to gRPC statuses (contract
//! section 3), shared by every service. Invalid input carries
//! `google.rpc.BadRequest` field violations.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use hub_core::Error;

/// A hub error on its way to a gRPC caller.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl From<ApiError> for Status {
    fn from(ApiError(e): ApiError) -> Self {
        match e {
            Error::Invalid(ref violations) => {
                let details = ErrorDetails::with_bad_request(
                    violations
                        .iter()
                        .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(Code::InvalidArgument, e.to_string(), details)
            }
            Error::Unauthenticated(m) => Status::unauthenticated(m),
            Error::PermissionDenied(m) => Status::permission_denied(m),
            Error::AlreadyExists(m) => Status::already_exists(m),
            Error::Unavailable(ref d) => Status::unavailable(d.chain()),
            Error::ResourceExhausted(m) => Status::resource_exhausted(m),
            Error::Config { .. } | Error::Internal(_) => Status::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_carries_field_violations() {
        let status: Status =
            ApiError(Error::invalid("person.nhs_number", "bad check digit")).into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("person.nhs_number"));
        let bad = status
            .get_details_bad_request()
            .expect("BadRequest details");
        assert_eq!(bad.field_violations[0].field, "person.nhs_number");
    }

    #[test]
    fn codes() {
        let code = |e| Status::from(ApiError(e)).code();
        assert_eq!(
            code(Error::Unauthenticated("x".into())),
            Code::Unauthenticated
        );
        assert_eq!(
            code(Error::PermissionDenied("x".into())),
            Code::PermissionDenied
        );
        assert_eq!(code(Error::AlreadyExists("x".into())), Code::AlreadyExists);
        assert_eq!(code(Error::unavailable("x")), Code::Unavailable);
        assert_eq!(
            code(Error::ResourceExhausted("x".into())),
            Code::ResourceExhausted
        );
        assert_eq!(code(Error::internal("x")), Code::Internal);
    }

    #[test]
    fn a_kept_cause_reaches_the_callers_message() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let status = Status::from(ApiError(Error::unavailable_from("reading the stream", io)));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "reading the stream: timed out");
        let io = std::io::Error::other("disk full");
        let status = Status::from(ApiError(Error::internal_from("the store", io)));
        assert_eq!(status.message(), "internal error: the store: disk full");
    }
}
