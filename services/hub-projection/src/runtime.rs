//! Running a projection: the [`Engine`] (one task owning its store, its
//! rebuilds, its live consumer; see [`engine`]), and the [`Projection`]
//! that serves queries on it (callers, read-your-writes, the audit trail).

use std::{path::PathBuf, sync::Arc};

use tonic::{Request, Status};

use hub_core::{
    auth::{Action, Caller},
    partnerships::PartnershipRegister,
    time::{london_today, FinancialYear},
    validate, Error,
};
use hub_runtime::{eventlog::EventLog, ApiError};
use hub_store::{KeyKind, Rows};

use crate::{consumer::ApplyFn, source::EventSource, trail::AuditTrail};

pub mod engine;
pub use engine::{Engine, Hold, Lag, Report, READ_YOUR_WRITES_TIMEOUT};

/// What a projection is made of (see [`Projection::open`]).
pub struct Parts {
    pub name: &'static str,
    /// Where its stores live (`HUB_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The version of the layout this code writes.
    pub schema: u32,
    /// The event log, for what the projection publishes.
    pub log: EventLog,
    /// Where it reads the events it applies.
    pub source: Arc<dyn EventSource>,
    /// How it folds one event into its store.
    pub apply: Arc<ApplyFn>,
    pub auth: Arc<hub_runtime::authn::Authenticator>,
    pub partnerships: PartnershipRegister,
    /// The audit trail of person-level reads (`None`: counts only).
    pub trail: Option<AuditTrail>,
}

/// A projection while it runs: the handle to its [`Engine`], and what
/// serving its queries needs besides (callers, the register, the audit
/// trail, the event log for what it publishes). Derefs to the engine.
pub struct Projection {
    engine: Engine,
    /// The event log, for what a projection publishes (erasures, audit).
    log: EventLog,
    auth: Arc<hub_runtime::authn::Authenticator>,
    partnerships: Arc<PartnershipRegister>,
    /// The audit trail of person-level reads; `None` in a projection that
    /// serves only counts (it holds no hub secret).
    trail: Option<AuditTrail>,
}

impl std::ops::Deref for Projection {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl Projection {
    /// Opens the engine (see [`Engine::open`]) and keeps what serving needs.
    pub fn open(parts: Parts) -> Result<Arc<Self>, Error> {
        let Parts {
            name,
            data_dir,
            schema,
            log,
            source,
            apply,
            auth,
            partnerships,
            trail,
        } = parts;
        Ok(Arc::new(Self {
            engine: Engine::open(name, &data_dir, schema, source, apply)?,
            log,
            auth,
            partnerships: Arc::new(partnerships),
            trail,
        }))
    }

    /// The engine, for what runs beside the queries (rebuilds, lag).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The partnership register it serves.
    pub fn partnerships(&self) -> &PartnershipRegister {
        &self.partnerships
    }

    /// The event log, for what the projection publishes.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// The authenticated caller of a request.
    pub fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.auth
            .authenticate(auth)
            .map(|caller| (*caller).clone())
            .map_err(|e| ApiError(e).into())
    }

    /// The caller, if an admin (status, rebuilds, erasure, audit).
    pub fn operator<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = self.caller(request)?;
        caller.may(Action::Operate).map_err(ApiError)?;
        Ok(caller)
    }

    /// Role, then partnership scope, then that the partnership exists.
    pub fn authorise(
        &self,
        caller: &Caller,
        action: Action,
        partnership_code: &str,
    ) -> Result<(), Status> {
        if !caller.role.may(action) || self.partnerships.get(partnership_code).is_some() {
            caller
                .authorise(action, partnership_code)
                .map_err(ApiError)?;
        }
        validate::partnership(&self.partnerships, partnership_code)
            .map_err(|d| ApiError(Error::invalid("partnership_code", d)))?;
        Ok(())
    }

    /// The common start of a query for a partnership's financial year of
    /// counts: who calls, that they may `action` for `partnership_code`,
    /// the year (`financial_year`, default the current one in London; a
    /// malformed one is `INVALID_ARGUMENT` naming the field), then
    /// read-your-writes (`min_sequence`).
    pub async fn year_query<T>(
        &self,
        request: &Request<T>,
        action: Action,
        partnership_code: &str,
        financial_year: &str,
        min_sequence: u64,
    ) -> Result<YearQuery, Status> {
        let caller = self.caller(request)?;
        self.authorise(&caller, action, partnership_code)?;
        self.year_of(caller, financial_year, min_sequence).await
    }

    /// The common start of a query for every partnership of the register
    /// (the national comparison): who calls, that their role may read it
    /// (whichever partnerships their token names: counts only, small ones
    /// withheld from analysts in every row), the year, read-your-writes.
    pub async fn national_query<T>(
        &self,
        request: &Request<T>,
        financial_year: &str,
        min_sequence: u64,
    ) -> Result<YearQuery, Status> {
        let caller = self.caller(request)?;
        caller
            .may(Action::ReadNationalComparison)
            .map_err(ApiError)?;
        self.year_of(caller, financial_year, min_sequence).await
    }

    /// `financial_year` (default the current one in London; a malformed
    /// one is `INVALID_ARGUMENT` naming the field), then read-your-writes.
    async fn year_of(
        &self,
        caller: Caller,
        financial_year: &str,
        min_sequence: u64,
    ) -> Result<YearQuery, Status> {
        let fy = if financial_year.is_empty() {
            FinancialYear::of(london_today())
        } else {
            FinancialYear::parse(financial_year)
                .map_err(|d| ApiError(Error::invalid("financial_year", d)))?
        };
        let applied_sequence = self.wait_for(min_sequence).await?;
        Ok(YearQuery {
            see_small_counts: caller.role.may(Action::SeeSmallCounts),
            caller,
            fy,
            applied_sequence,
        })
    }

    /// [`Self::year_query`], then the year's rows of `partnership_code`:
    /// its counters of the year (`Counter` under `partnership \0 year \0`)
    /// and its dated rows of kind `dated` (under `partnership \0`, every
    /// year: a period reads the latest before its end), read on the
    /// blocking pool.
    pub async fn year_rows<T>(
        &self,
        request: &Request<T>,
        action: Action,
        (partnership_code, financial_year, min_sequence): (&str, &str, u64),
        dated: KeyKind,
    ) -> Result<(YearQuery, Rows, Rows), Status> {
        let q = self
            .year_query(
                request,
                action,
                partnership_code,
                financial_year,
                min_sequence,
            )
            .await?;
        let (year, all) = hub_store::year_prefixes(partnership_code, &q.fy.to_string());
        let (counters, rows) = self
            .read(move |store| {
                Ok::<_, hub_store::Error>((
                    store.scan(KeyKind::Counter, &year)?,
                    store.scan(dated, &all)?,
                ))
            })
            .await?;
        Ok((q, counters, rows))
    }

    /// [`Self::national_query`], then [`Self::year_rows`]' rows of every
    /// partnership of the register, by code, read in one go on the
    /// blocking pool.
    pub async fn national_rows<T>(
        &self,
        request: &Request<T>,
        (financial_year, min_sequence): (&str, u64),
        dated: KeyKind,
    ) -> Result<(YearQuery, Vec<(String, Rows, Rows)>), Status> {
        let q = self
            .national_query(request, financial_year, min_sequence)
            .await?;
        let fy = q.fy.to_string();
        let mut codes: Vec<String> = self.partnerships.iter().map(|p| p.code.clone()).collect();
        codes.sort();
        let rows = self
            .read(move |store| {
                codes
                    .into_iter()
                    .map(|code| {
                        let (year, all) = hub_store::year_prefixes(&code, &fy);
                        let counters = store.scan(KeyKind::Counter, &year)?;
                        let dated = store.scan(dated, &all)?;
                        Ok::<_, hub_store::Error>((code, counters, dated))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok((q, rows))
    }

    /// Records a person-level read before its rows leave (see
    /// [`AuditTrail::record`]); if it cannot be recorded the read fails.
    pub async fn audit(
        &self,
        caller: &Caller,
        partnership: &str,
        rpc: &str,
        person_keys: Vec<String>,
    ) -> Result<(), Status> {
        self.audit_read(caller, partnership, rpc, person_keys, None)
            .await
    }

    /// [`Self::audit`], for a read by a caller whose token did not cover
    /// the partnership: `reason` is the event's id and the reason sealed
    /// under it.
    pub async fn audit_read(
        &self,
        caller: &Caller,
        partnership: &str,
        rpc: &str,
        person_keys: Vec<String>,
        reason: Option<(String, hub_proto::events::Sealed)>,
    ) -> Result<(), Status> {
        self.audit_trail()?
            .record(caller, partnership, rpc, &person_keys, reason)
            .await
            .map_err(|e| ApiError(e).into())
    }

    /// The audit trail, or an internal error in a projection without one.
    pub fn audit_trail(&self) -> Result<&AuditTrail, Status> {
        self.trail.as_ref().ok_or_else(|| {
            ApiError(Error::internal(format!(
                "{} keeps no audit trail of person-level reads",
                self.name()
            )))
            .into()
        })
    }
}

/// A query for a partnership's year, authorised (see
/// [`Projection::year_query`]).
#[derive(Debug, Clone)]
pub struct YearQuery {
    pub caller: Caller,
    pub fy: FinancialYear,
    /// What the reply is as of (at least the `min_sequence` asked for).
    pub applied_sequence: u64,
    /// Whether counts of 1 to 7 people are shown as they are; if not they
    /// are withheld (contract section 5).
    pub see_small_counts: bool,
}

#[cfg(test)]
mod tests;
