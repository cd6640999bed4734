//! Callers, their tokens and roles, and what each role may do (contract
//! section 4). One table decides every call, for every service.

use std::{collections::HashMap, sync::Arc};

use serde::Deserialize;

pub use hub_proto::rpc::{
    AmbulanceRpc, CustodyRpc, IdentityRpc, PharmacyRpc, PrisonRpc, Rpc, TreatmentRpc,
};

use crate::Error;

/// The agencies that send commands; also the second token of event subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Agency {
    Custody,
    Prison,
    Pharmacy,
    Treatment,
    Ambulance,
    /// Data stewards' decisions about who is whom (`identity-service`).
    Identity,
}

impl Agency {
    pub const ALL: [Agency; 6] = [
        Agency::Custody,
        Agency::Prison,
        Agency::Pharmacy,
        Agency::Treatment,
        Agency::Ambulance,
        Agency::Identity,
    ];

    /// The agency whose service an RPC belongs to.
    pub fn of(rpc: Rpc) -> Agency {
        match rpc {
            Rpc::Custody(_) => Agency::Custody,
            Rpc::Prison(_) => Agency::Prison,
            Rpc::Pharmacy(_) => Agency::Pharmacy,
            Rpc::Treatment(_) => Agency::Treatment,
            Rpc::Ambulance(_) => Agency::Ambulance,
            Rpc::Identity(_) => Agency::Identity,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Agency::Custody => "custody",
            Agency::Prison => "prison",
            Agency::Pharmacy => "pharmacy",
            Agency::Treatment => "treatment",
            Agency::Ambulance => "ambulance",
            Agency::Identity => "identity",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    CustodyOfficer,
    PrisonOfficer,
    CaratWorker,
    DipWorker,
    TreatmentWorker,
    Pharmacist,
    Paramedic,
    PartnershipAnalyst,
    /// Links and unlinks people, reviews potential duplicates and the
    /// audit of its partnerships.
    DataSteward,
    Admin,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::CustodyOfficer,
        Role::PrisonOfficer,
        Role::CaratWorker,
        Role::DipWorker,
        Role::TreatmentWorker,
        Role::Pharmacist,
        Role::Paramedic,
        Role::PartnershipAnalyst,
        Role::DataSteward,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::CustodyOfficer => "custody_officer",
            Role::PrisonOfficer => "prison_officer",
            Role::CaratWorker => "carat_worker",
            Role::DipWorker => "dip_worker",
            Role::TreatmentWorker => "treatment_worker",
            Role::Pharmacist => "pharmacist",
            Role::Paramedic => "paramedic",
            Role::PartnershipAnalyst => "partnership_analyst",
            Role::DataSteward => "data_steward",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Something a caller asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A command RPC of an agency service, by its typed id (generated
    /// from the protos: `PrisonRpc::RecordReleaseDate`).
    Command(Rpc),
    /// Person-level pick-up rows (`ListPickups`, `WatchPickups`).
    ReadPickupList,
    /// Pick-up counts (`GetPickupSummary`).
    ReadPickupSummary,
    /// Overdose-training counts.
    ReadTrainingCounts,
    /// Harm-reduction activity counts (`GetActivity`).
    ReadActivity,
    /// Every partnership's counts side by side (`GetNationalComparison`,
    /// and what it gathers from the training and pick-up projections).
    ReadNationalComparison,
    /// One person's pick-up entry (`LookupPerson`); outside the caller's
    /// partnerships only by breaking the glass, with a reason.
    LookupPerson,
    /// Potential duplicate pairs (`ListPotentialDuplicates`).
    ReadPotentialDuplicates,
    /// The audit of person-level reads of a partnership.
    ReadAudit,
    /// Rebuilds, erasure, audit, projection status.
    Operate,
    /// Counts below the disclosure threshold as they are; without it they
    /// are withheld (`suppressed`), and so are percentages built on them.
    SeeSmallCounts,
    /// What a prison holds about a person's release (flagged imminent,
    /// triaged, naloxone on release) whether or not they consented to
    /// share it with treatment; without it, only while they consent.
    SeePrisonHeldDetails,
}

impl Action {
    /// What the action is, in words for an error message.
    pub fn describe(self) -> String {
        match self {
            Action::Command(rpc) => format!("call {}.{}", Agency::of(rpc).as_str(), rpc.name()),
            Action::ReadPickupList => "read the pick-up list (person-level rows)".into(),
            Action::ReadPickupSummary => "read pick-up summaries".into(),
            Action::ReadTrainingCounts => "read overdose-training counts".into(),
            Action::ReadActivity => "read harm-reduction activity".into(),
            Action::ReadNationalComparison => "read the national comparison".into(),
            Action::LookupPerson => "look up a person's pick-up entry".into(),
            Action::ReadPotentialDuplicates => "list potential duplicates".into(),
            Action::ReadAudit => "read the audit of person-level reads".into(),
            Action::Operate => "operate the hub (status, rebuilds, erasure, audit)".into(),
            Action::SeeSmallCounts => "see counts below the disclosure threshold".into(),
            Action::SeePrisonHeldDetails => {
                "see prison-held release details without consent to share them".into()
            }
        }
    }
}

impl Role {
    /// The contract's section 4 table.
    pub fn may(self, action: Action) -> bool {
        use Action::*;
        match (self, action) {
            (Role::Admin, _) => true,
            (Role::CustodyOfficer, Command(Rpc::Custody(_))) => true,
            (Role::PrisonOfficer, Command(Rpc::Prison(rpc))) => {
                rpc != PrisonRpc::FlagImminentRelease
            }
            (
                Role::CaratWorker,
                Command(Rpc::Prison(_))
                | ReadPickupList
                | ReadPickupSummary
                | LookupPerson
                | SeeSmallCounts
                | SeePrisonHeldDetails,
            ) => true,
            (
                Role::DipWorker,
                Command(Rpc::Treatment(
                    TreatmentRpc::ArrangeGatePickup
                    | TreatmentRpc::RecordGatePickup
                    | TreatmentRpc::RecordReferral,
                )),
            ) => true,
            (Role::DipWorker, Command(Rpc::Prison(PrisonRpc::FlagImminentRelease))) => true,
            (
                Role::DipWorker,
                ReadPickupList | ReadPickupSummary | LookupPerson | SeeSmallCounts
                | SeePrisonHeldDetails,
            ) => true,
            (
                Role::TreatmentWorker,
                Command(Rpc::Treatment(_))
                | ReadPickupList
                | ReadPickupSummary
                | LookupPerson
                | SeeSmallCounts,
            ) => true,
            (
                Role::DataSteward,
                Command(Rpc::Identity(_)) | ReadPotentialDuplicates | ReadAudit,
            ) => true,
            (Role::Pharmacist, Command(Rpc::Pharmacy(_))) => true,
            (Role::Paramedic, Command(Rpc::Ambulance(_))) => true,
            // Analysts read counts, with small ones withheld.
            (
                Role::PartnershipAnalyst,
                ReadTrainingCounts | ReadPickupSummary | ReadActivity | ReadNationalComparison,
            ) => true,
            _ => false,
        }
    }
}

/// Which partnerships a caller may act for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnershipScope {
    All,
    Only(Vec<String>),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub role: Role,
    pub org_code: String,
    pub partnerships: PartnershipScope,
}

impl Caller {
    pub fn may_act_for(&self, partnership_code: &str) -> bool {
        match &self.partnerships {
            PartnershipScope::All => true,
            PartnershipScope::Only(codes) => codes.iter().any(|c| c == partnership_code),
        }
    }

    /// Role × action, whatever the partnership: `PermissionDenied` naming
    /// the role and the action.
    pub fn may(&self, action: Action) -> Result<(), Error> {
        if self.role.may(action) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "role {} may not {}",
                self.role.as_str(),
                action.describe()
            )))
        }
    }

    /// Role × action, then partnership: `PermissionDenied` naming which.
    pub fn authorise(&self, action: Action, partnership_code: &str) -> Result<(), Error> {
        self.may(action)?;
        if !self.may_act_for(partnership_code) {
            return Err(Error::PermissionDenied(format!(
                "partnership_code: this token is not allowed to act for partnership {partnership_code:?}"
            )));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    #[serde(default)]
    token: Option<String>,
    /// Hex SHA-256 of the token: the file then holds no usable secret.
    #[serde(default)]
    token_sha256: Option<String>,
    user_id: String,
    role: String,
    org_code: String,
    partnerships: Vec<String>,
}

/// The SHA-256 of a bearer token: how the registry keeps and finds it.
pub fn token_digest(token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).into()
}

/// The callers named in `HUB_TOKENS_FILE`, found by their token's digest
/// (contract section 4). Plain `token` entries are digested on load; the
/// registry counts them, because a service off loopback must refuse them.
#[derive(Clone, Default)]
pub struct TokenRegistry {
    by_digest: HashMap<[u8; 32], Arc<Caller>>,
    plain_entries: usize,
}

impl std::fmt::Debug for TokenRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenRegistry({} tokens)", self.by_digest.len())
    }
}

/// The scope a list of partnership codes gives (`"*"` is all).
pub fn scope_of(partnerships: Vec<String>) -> PartnershipScope {
    if partnerships.iter().any(|p| p == "*") {
        PartnershipScope::All
    } else {
        PartnershipScope::Only(partnerships)
    }
}

/// The token of an `authorization` header value (`Bearer <token>`).
pub fn bearer(authorization: Option<&str>) -> Result<&str, Error> {
    let value = authorization.ok_or_else(|| {
        Error::Unauthenticated(
            "missing authorization header: send `authorization: Bearer <token>`".into(),
        )
    })?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Unauthenticated("authorization must be `Bearer <token>`".into()))
}

impl TokenRegistry {
    pub fn parse(json: &str, source: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::config("HUB_TOKENS_FILE", format!("{source}: {why}"));
        let file: TokensFile = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let mut by_digest = HashMap::new();
        let mut plain_entries = 0;
        for (i, t) in file.tokens.into_iter().enumerate() {
            let role = Role::parse(&t.role)
                .ok_or_else(|| bad(format!("tokens[{i}]: unknown role {:?}", t.role)))?;
            let digest = match (&t.token, &t.token_sha256) {
                (Some(token), None) => {
                    if token.len() < 16 {
                        return Err(bad(format!(
                            "tokens[{i}]: token shorter than 16 characters"
                        )));
                    }
                    plain_entries += 1;
                    token_digest(token)
                }
                (None, Some(hex_digest)) => {
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(hex_digest.trim(), &mut digest).map_err(|_| {
                        bad(format!(
                            "tokens[{i}]: token_sha256 must be 64 hex digits (the SHA-256 of the token)"
                        ))
                    })?;
                    digest
                }
                _ => {
                    return Err(bad(format!(
                        "tokens[{i}]: give exactly one of token and token_sha256"
                    )))
                }
            };
            if t.user_id.is_empty() || t.org_code.is_empty() {
                return Err(bad(format!(
                    "tokens[{i}]: user_id and org_code are required"
                )));
            }
            let caller = Caller {
                user_id: t.user_id,
                role,
                org_code: t.org_code,
                partnerships: scope_of(t.partnerships),
            };
            if by_digest.insert(digest, Arc::new(caller)).is_some() {
                return Err(bad(format!("tokens[{i}]: token appears twice")));
            }
        }
        Ok(Self {
            by_digest,
            plain_entries,
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config("HUB_TOKENS_FILE", format!("{}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// How many entries give the token itself rather than its digest.
    pub fn plain_entries(&self) -> usize {
        self.plain_entries
    }

    /// The caller whose token is `token`, if the file names it.
    pub fn find(&self, token: &str) -> Option<&Arc<Caller>> {
        self.by_digest.get(&token_digest(token))
    }

    /// The caller behind an `authorization` header value (`Bearer <token>`).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<&Arc<Caller>, Error> {
        self.find(bearer(authorization)?)
            .ok_or_else(|| Error::Unauthenticated("unknown token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"tokens": [
        {"token": "carat-token-0123456789", "user_id": "u-17", "role": "carat_worker", "org_code": "LEI", "partnerships": ["bradford"]},
        {"token": "admin-token-0123456789", "user_id": "u-1", "role": "admin", "org_code": "HUB", "partnerships": ["*"]}
    ]}"#;

    #[test]
    fn authenticates_bearer_tokens() {
        let reg = TokenRegistry::parse(JSON, "t").unwrap();
        let c = reg
            .authenticate(Some("Bearer carat-token-0123456789"))
            .unwrap();
        assert_eq!(c.role, Role::CaratWorker);
        assert_eq!(c.org_code, "LEI");
        assert!(matches!(
            reg.authenticate(None),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            reg.authenticate(Some("Bearer nope-nope-nope-nope")),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            reg.authenticate(Some("carat-token-0123456789")),
            Err(Error::Unauthenticated(_))
        ));
    }

    #[test]
    fn token_sha256_entries_are_found_by_digest_and_counted_apart() {
        let digest = hex::encode(token_digest("carat-token-0123456789"));
        let hashed = JSON.replace(
            r#""token": "carat-token-0123456789""#,
            &format!(r#""token_sha256": "{digest}""#),
        );
        let reg = TokenRegistry::parse(&hashed, "t").unwrap();
        assert_eq!(reg.plain_entries(), 1, "only the admin entry is plain");
        let c = reg
            .authenticate(Some("Bearer carat-token-0123456789"))
            .unwrap();
        assert_eq!(c.user_id, "u-17");
        assert!(reg.authenticate(Some(&format!("Bearer {digest}"))).is_err());
        let both = JSON.replace(
            r#""token": "carat-token-0123456789""#,
            &format!(r#""token": "carat-token-0123456789", "token_sha256": "{digest}""#),
        );
        let err = TokenRegistry::parse(&both, "t").unwrap_err().to_string();
        assert!(
            err.contains("exactly one of token and token_sha256"),
            "{err}"
        );
        let short = hashed.replace(&digest, "abcd");
        let err = TokenRegistry::parse(&short, "t").unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }

    #[test]
    fn refuses_unknown_roles_and_short_tokens() {
        let bad = JSON.replace("carat_worker", "wizard");
        assert!(TokenRegistry::parse(&bad, "t")
            .unwrap_err()
            .to_string()
            .contains("wizard"));
        let short = JSON.replace("carat-token-0123456789", "short");
        assert!(TokenRegistry::parse(&short, "t").is_err());
    }

    #[test]
    fn partnership_scope() {
        let reg = TokenRegistry::parse(JSON, "t").unwrap();
        let carat = reg
            .authenticate(Some("Bearer carat-token-0123456789"))
            .unwrap();
        let admin = reg
            .authenticate(Some("Bearer admin-token-0123456789"))
            .unwrap();
        let rpc = Action::Command(PrisonRpc::RecordReleaseDate.into());
        assert!(carat.authorise(rpc, "bradford").is_ok());
        assert!(matches!(
            carat.authorise(rpc, "leeds"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(admin.authorise(rpc, "leeds").is_ok());
    }

    #[test]
    fn role_table() {
        use Action::*;
        let flag = Command(PrisonRpc::FlagImminentRelease.into());
        let release = Command(PrisonRpc::RecordReleaseDate.into());
        assert!(Role::PrisonOfficer.may(release));
        assert!(!Role::PrisonOfficer.may(flag));
        assert!(Role::CaratWorker.may(flag));
        assert!(Role::DipWorker.may(flag));
        assert!(!Role::DipWorker.may(release));
        assert!(Role::DipWorker.may(Command(TreatmentRpc::ArrangeGatePickup.into())));
        assert!(!Role::DipWorker.may(Command(TreatmentRpc::RecordOverdoseTraining.into())));
        assert!(Role::TreatmentWorker.may(Command(TreatmentRpc::RecordOverdoseTraining.into())));
        assert!(!Role::CustodyOfficer.may(release));
        assert!(!Role::PartnershipAnalyst.may(ReadPickupList));
        assert!(Role::PartnershipAnalyst.may(ReadPickupSummary));
        assert!(Role::PartnershipAnalyst.may(ReadTrainingCounts));
        assert!(Role::PartnershipAnalyst.may(ReadActivity));
        assert!(!Role::PartnershipAnalyst.may(release));
        assert!(!Role::Pharmacist.may(ReadPickupList));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(role.may(Operate), role == Role::Admin);
            for action in [ReadActivity, ReadNationalComparison] {
                assert_eq!(
                    role.may(action),
                    matches!(role, Role::PartnershipAnalyst | Role::Admin),
                    "activity and the national comparison are the analysts' and admins' (contract sections 4, 5)"
                );
            }
            assert_eq!(
                role.may(Command(IdentityRpc::LinkPeople.into())),
                matches!(role, Role::DataSteward | Role::Admin)
            );
            assert_eq!(
                role.may(LookupPerson),
                matches!(
                    role,
                    Role::CaratWorker | Role::DipWorker | Role::TreatmentWorker | Role::Admin
                )
            );
        }
        assert!(Role::DataSteward.may(ReadPotentialDuplicates));
        assert!(Role::DataSteward.may(ReadAudit));
        assert!(!Role::DataSteward.may(ReadPickupList));
        assert!(!Role::CaratWorker.may(ReadPotentialDuplicates));
        for rpc in Rpc::all() {
            let agency = Agency::of(rpc);
            assert_eq!(
                Role::CustodyOfficer.may(Command(rpc)),
                agency == Agency::Custody
            );
            assert_eq!(
                Role::Pharmacist.may(Command(rpc)),
                agency == Agency::Pharmacy
            );
            assert_eq!(
                Role::Paramedic.may(Command(rpc)),
                agency == Agency::Ambulance
            );
            assert!(!Role::PartnershipAnalyst.may(Command(rpc)), "{rpc:?}");
        }
        // Treatment workers see prison-held details only with consent;
        // everyone else who reads pick-up lists sees them.
        for role in Role::ALL {
            if role.may(ReadPickupList) {
                assert_eq!(
                    role.may(SeePrisonHeldDetails),
                    role != Role::TreatmentWorker,
                    "{role:?}"
                );
            }
        }
        // Small counts are withheld from analysts, and from nobody else
        // who reads counts.
        for role in Role::ALL {
            if role.may(ReadPickupSummary) || role.may(ReadTrainingCounts) {
                assert_eq!(
                    role.may(SeeSmallCounts),
                    role != Role::PartnershipAnalyst,
                    "{role:?}"
                );
            }
        }
    }
}
