//! `hubctl`: the hub from the command line, for workers and operators.
//!
//! It reaches the services through the contract's settings: `HUB_TOKEN` (the
//! caller's bearer token) and one `HUB_<NAME>_ADDR` per service (defaults
//! as in the contract's table). Tables by default, `--json` for scripts.
//!
//! # Layout
//! - `main.rs`: the command tree and settings.
//! - [`record`]: one subcommand per command RPC, grouped by agency.
//! - [`batch`]: `<agency> record-batch --file`, bulk uploads.
//! - [`events`]: `events tail`, the stream decoded (still pseudonymous).
//! - [`backup`]: `backup` / `restore`, the stream and the key bucket.
//! - [`demo`]: the deterministic demo scenario behind `seed demo`.
//! - [`output`]: tables and JSON.
//!
//! Exit codes: 0 done; 1 the hub refused or failed (the message says why
//! and what to do); 2 the command line itself is wrong (clap's usage error).

mod backup;
mod batch;
mod demo;
mod events;
mod nats;
mod output;
mod record;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

use hub_proto::{
    admin::{
        admin_service_client::AdminServiceClient, ErasePersonRequest, GetRetentionStatusRequest,
        ListAuditRecordsRequest, ListKeyVersionsRequest, ListPersonAccessRequest,
        RetireKeyVersionRequest, RotateKeysRequest, VerifyAuditTrailRequest,
    },
    ambulance::ambulance_service_client::AmbulanceServiceClient,
    custody::custody_service_client::CustodyServiceClient,
    pharmacy::pharmacy_service_client::PharmacyServiceClient,
    prison::prison_service_client::PrisonServiceClient,
    projections::{
        activity_service_client::ActivityServiceClient,
        pickup_list_service_client::PickupListServiceClient,
        projection_status_service_client::ProjectionStatusServiceClient,
        training_counts_service_client::TrainingCountsServiceClient, GetActivityRequest,
        GetNationalComparisonRequest, GetPickupSummaryRequest, GetProjectionStatusRequest,
        GetTrainingCountsRequest, ListPickupsRequest, ListPotentialDuplicatesRequest,
        LookupPersonRequest, RebuildProjectionRequest,
    },
    treatment::treatment_service_client::TreatmentServiceClient,
};
use hub_runtime::tls::ClientTlsArgs as TlsArgs;
use tonic::{transport::Channel, Request};

#[derive(Parser)]
#[command(
    name = "hubctl",
    version,
    about = "Command line for the harm-reduction data-sharing hub"
)]
struct Cli {
    /// Your bearer token.
    #[arg(
        long,
        env = "HUB_TOKEN",
        hide_env_values = true,
        global = true,
        help_heading = "Connection"
    )]
    token: Option<String>,
    #[command(flatten, next_help_heading = "Connection")]
    tls: TlsArgs,
    /// prison-service address.
    #[arg(
        long,
        env = "HUB_PRISON_SERVICE_ADDR",
        default_value = "127.0.0.1:50052",
        global = true,
        help_heading = "Connection"
    )]
    prison_service_addr: String,
    /// pickup-projection address.
    #[arg(
        long,
        env = "HUB_PICKUP_PROJECTION_ADDR",
        default_value = "127.0.0.1:50061",
        global = true,
        help_heading = "Connection"
    )]
    pickup_projection_addr: String,
    /// custody-service address.
    #[arg(
        long,
        env = "HUB_CUSTODY_SERVICE_ADDR",
        default_value = "127.0.0.1:50051",
        global = true,
        help_heading = "Connection"
    )]
    custody_service_addr: String,
    /// pharmacy-service address.
    #[arg(
        long,
        env = "HUB_PHARMACY_SERVICE_ADDR",
        default_value = "127.0.0.1:50053",
        global = true,
        help_heading = "Connection"
    )]
    pharmacy_service_addr: String,
    /// treatment-service address.
    #[arg(
        long,
        env = "HUB_TREATMENT_SERVICE_ADDR",
        default_value = "127.0.0.1:50054",
        global = true,
        help_heading = "Connection"
    )]
    treatment_service_addr: String,
    /// ambulance-service address.
    #[arg(
        long,
        env = "HUB_AMBULANCE_SERVICE_ADDR",
        default_value = "127.0.0.1:50055",
        global = true,
        help_heading = "Connection"
    )]
    ambulance_service_addr: String,
    /// identity-service address.
    #[arg(
        long,
        env = "HUB_IDENTITY_SERVICE_ADDR",
        default_value = "127.0.0.1:50056",
        global = true,
        help_heading = "Connection"
    )]
    identity_service_addr: String,
    /// training-projection address.
    #[arg(
        long,
        env = "HUB_TRAINING_PROJECTION_ADDR",
        default_value = "127.0.0.1:50062",
        global = true,
        help_heading = "Connection"
    )]
    training_projection_addr: String,
    /// activity-projection address.
    #[arg(
        long,
        env = "HUB_ACTIVITY_PROJECTION_ADDR",
        default_value = "127.0.0.1:50063",
        global = true,
        help_heading = "Connection"
    )]
    activity_projection_addr: String,
    /// Print JSON instead of a table (one object per line for events tail).
    #[arg(long, global = true, help_heading = "Output")]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(subcommand)]
    Custody(record::Custody),
    #[command(subcommand)]
    Prison(record::Prison),
    #[command(subcommand)]
    Pharmacy(record::Pharmacy),
    #[command(subcommand)]
    Treatment(record::Treatment),
    #[command(subcommand)]
    Ambulance(record::Ambulance),
    /// Who is whom in a partnership (data stewards): potential duplicates,
    /// link, unlink.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// One person's current pick-up entry in a partnership. Outside the
    /// partnerships of your token this breaks the glass: --reason is
    /// required and the read is audited for that partnership.
    Lookup {
        #[arg(long)]
        partnership: String,
        #[command(flatten)]
        person: record::Person,
        /// Why you look (10-500 characters): required to break the glass.
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value_t = 0)]
        min_sequence: u64,
    },
    /// The prison-gate pick-up list.
    Pickups {
        #[arg(long)]
        partnership: String,
        /// YYYY-MM-DD (default: today in Europe/London).
        #[arg(long)]
        as_of: Option<String>,
        /// Days ahead to include (default 14).
        #[arg(long)]
        horizon: Option<u32>,
        /// Wait until this stream sequence has been applied.
        #[arg(long, default_value_t = 0)]
        min_sequence: u64,
    },
    /// Pick-up counts by status and alert, and continuity of care for a
    /// financial year (the pick-up read open to partnership analysts).
    PickupSummary {
        #[arg(long)]
        partnership: String,
        /// Financial year, e.g. 2026-27 (default: that of --as-of).
        #[arg(long)]
        fy: Option<String>,
        /// YYYY-MM-DD (default: today in Europe/London).
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long, default_value_t = 0)]
        min_sequence: u64,
    },
    /// Overdose-training counts for a financial year, by quarter.
    Training {
        #[arg(long)]
        partnership: String,
        /// Financial year, e.g. 2026-27 (default: the current one).
        #[arg(long)]
        fy: Option<String>,
        #[arg(long, default_value_t = 0)]
        min_sequence: u64,
    },
    /// Harm-reduction activity for a financial year, by quarter: needle
    /// exchange, custody advice, referrals and whether they reached
    /// treatment within 28 days, overdose attendances, naloxone kits.
    Activity {
        #[arg(long)]
        partnership: String,
        /// Financial year, e.g. 2026-27 (default: the current one).
        #[arg(long)]
        fy: Option<String>,
        /// Print CSV (as the dashboard's download) instead of a table;
        /// --json wins over it.
        #[arg(long)]
        csv: bool,
        #[arg(long, default_value_t = 0)]
        min_sequence: u64,
    },
    /// Every partnership side by side for a financial year (analysts and
    /// admins): England's totals and each headline figure's quartiles, or
    /// with --figure the partnerships ranked on one figure. Counts of 1 to
    /// 7 people are withheld from analysts in every row.
    National {
        /// Financial year, e.g. 2026-27 (default: the current one).
        #[arg(long)]
        fy: Option<String>,
        /// Rank the partnerships on this figure (a field of the JSON's
        /// rows, e.g. continuity_pct, needle_exchange_return_rate_pct).
        #[arg(long)]
        figure: Option<String>,
        /// Print CSV (as the dashboard's download) instead of a table;
        /// --json wins over it.
        #[arg(long)]
        csv: bool,
        #[arg(long, default_value_t = 0)]
        min_sequence: u64,
    },
    /// People (admin): erasure.
    Person {
        #[command(subcommand)]
        command: PersonCommand,
    },
    /// Who read person-level rows: of a partnership (--partnership), or of
    /// one person (--person: who saw them, when, how, why); `audit verify`
    /// checks a partnership's trail. Admins; data stewards for their
    /// partnerships.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[command(subcommand)]
        command: Option<AuditCommand>,
        /// The partnership whose reads to list (with --person: only there;
        /// admins may leave it out to search every partnership).
        #[arg(long)]
        partnership: Option<String>,
        /// NHS number, prison number, client code or PNC id (recognised by
        /// shape): every read whose rows included this person.
        #[arg(long)]
        person: Option<String>,
        /// Only reads that broke the glass (callers whose token did not
        /// cover the partnership), with their reasons.
        #[arg(long)]
        break_glass: bool,
        /// Only reads on or after this day (YYYY-MM-DD, London) or instant (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many records, oldest first.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Retention of personal data (admin): what expires when.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// The key-encryption keys that wrap people's data keys (admin):
    /// list, rotate, retire.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Projections: status and rebuilds (admin).
    Projection {
        #[command(subcommand)]
        command: ProjectionCommand,
    },
    /// Load data.
    Seed {
        #[command(subcommand)]
        command: SeedCommand,
    },
    /// The event log itself, decoded and still pseudonymous (reads NATS directly).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Copy the event stream and the person-keys bucket into a new folder
    /// (reads NATS directly, as hub-operator): everything the hub cannot
    /// rebuild. See docs/operations.md.
    Backup(backup::Backup),
    /// Put a backup into a NATS that has neither stream yet, checking every
    /// file first; then says what to do next (restart NATS, start the
    /// projections, then the agency services).
    Restore(backup::Restore),
    /// NATS for the hub (operators, as hub-operator; needs no token):
    /// `nats init` creates or checks the event stream and the buckets.
    Nats {
        #[command(subcommand)]
        command: nats::NatsCommand,
    },
    /// The hub secret (operators; needs no token).
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Print a shell completion script, e.g.
    /// `hubctl completions bash > /etc/bash_completion.d/hubctl`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Write a new hub secret (32 random bytes, mode 0600) to FILE, for
    /// HUB_SECRET_FILE. Refuses to replace an existing one: every pseudonym
    /// and every wrapped data key depends on it (docs/operations.md).
    Create { file: PathBuf },
}

#[derive(Subcommand)]
enum IdentityCommand {
    /// People who share a client code but not a strong identifier, and
    /// whom no data steward has linked or unlinked.
    Duplicates {
        #[arg(long)]
        partnership: String,
        #[arg(long, default_value_t = 0)]
        min_sequence: u64,
    },
    #[command(flatten)]
    Record(Box<record::Identity>),
}

/// A progress bar counting `unit`s, with rate and time left.
fn progress_bar(unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a partnership's audit trail link by link: the first removed,
    /// altered or forged record is named (exit 1 when broken).
    Verify {
        #[arg(long)]
        partnership: String,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// The retention period, how many people's data is held, and how many
    /// expire on each coming day.
    Status {
        /// Days of expiries to list, soonest first.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Every version, its state and how many data keys it wraps.
    List,
    /// Introduce a new version and re-wrap every data key under it, with
    /// progress; services keep serving meanwhile.
    Rotate {
        /// Finish an interrupted rotation (no new version).
        #[arg(long)]
        resume: bool,
    },
    /// Destroy a version no data key needs any more: copies of data keys
    /// wrapped under it (old backups) can never be opened again.
    Retire { version: u32 },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// The last events of the stream (or from --since / --from-sequence),
    /// and with --follow every new one as it is recorded.
    Tail(events::Tail),
}

#[derive(Subcommand)]
enum ProjectionCommand {
    /// Each projection's applied sequence and lag.
    Status,
    /// Replay the whole stream into a fresh store while the current one
    /// keeps serving, then switch readers over.
    Rebuild {
        #[arg(value_enum)]
        projection: Which,
    },
}

#[derive(Subcommand)]
enum PersonCommand {
    /// Make a person's name, date of birth and notes unrecoverable
    /// everywhere; their events and counts remain, pseudonymous.
    Erase {
        /// NHS number, prison number, client code or PNC id (recognised by shape).
        identifier: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Which {
    Pickup,
    Training,
    Activity,
}

#[derive(Subcommand)]
enum SeedCommand {
    /// A deterministic demo scenario, recorded through the public RPCs.
    /// Re-running it with the same seed records nothing new.
    Demo {
        /// Partnerships to fill, from the start of the demo list.
        #[arg(long, default_value_t = 2)]
        partnerships: usize,
        /// People per partnership.
        #[arg(long, default_value_t = 20)]
        people: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
}

/// `host:port` or a full URL.
/// A connection to hub process `name` at `addr` (`host:port`,
/// `http://…`, or `https://…` with the TLS settings in `tls`).
/// activity-projection's client (activity and the national comparison).
async fn activity_client(tls: &TlsArgs, addr: &str) -> Result<ActivityServiceClient<Channel>> {
    Ok(ActivityServiceClient::new(
        channel(tls, "activity-projection", addr).await?,
    ))
}

async fn channel(tls: &TlsArgs, name: &str, addr: &str) -> Result<Channel> {
    let setting = format!("HUB_{}_ADDR", name.to_uppercase().replace('-', "_"));
    tls.endpoint(&setting, addr)?
        .connect()
        .await
        .with_context(|| {
            format!(
                "cannot reach {name} at {addr} (is it running? set HUB_{}_ADDR)",
                name.to_uppercase().replace('-', "_")
            )
        })
}

pub struct Caller {
    token: String,
}

impl Caller {
    pub fn request<T>(&self, msg: T) -> Result<Request<T>> {
        let mut r = Request::new(msg);
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.token)
                .parse()
                .context("HUB_TOKEN has characters a header cannot carry")?,
        );
        Ok(r)
    }
}

/// A gRPC error as a person can act on it.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    let hint = match status.code() {
        tonic::Code::Unauthenticated => "\nhint: set HUB_TOKEN to your token",
        tonic::Code::PermissionDenied => "\nhint: your role or partnerships do not allow this",
        tonic::Code::Unavailable => {
            "\nhint: retry with the same --request-id; nothing is recorded twice"
        }
        _ => "",
    };
    anyhow::anyhow!("{text}{hint}")
}

/// Europe/London, where every day in the hub is counted.
pub fn london() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Europe/London").expect("the bundled tz database has Europe/London")
}

pub fn timestamp_now() -> prost_types::Timestamp {
    let t = jiff::Timestamp::now();
    prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: 0,
    }
}

/// A day (midnight in London) or an RFC 3339 instant.
fn parse_since(s: &str) -> Result<prost_types::Timestamp> {
    let t = if let Ok(t) = s.parse::<jiff::Timestamp>() {
        t
    } else {
        let day: jiff::civil::Date = s
            .parse()
            .with_context(|| format!("--since {s:?}: use YYYY-MM-DD or an RFC 3339 instant"))?;
        day.to_zoned(london())?.timestamp()
    };
    Ok(prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: 0,
    })
}

pub fn new_request_id() -> String {
    let t = jiff::Timestamp::now();
    format!("hubctl-{}-{}", t.as_nanosecond(), std::process::id())
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    // What needs no token: the shell completions, and the stream itself
    // (reached with NATS credentials, not a hub token).
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "hubctl", &mut std::io::stdout());
            return Ok(());
        }
        Command::Events {
            command: EventsCommand::Tail(tail),
        } => return events::tail(tail, cli.json).await,
        Command::Backup(b) => return backup::backup(b, cli.json).await,
        Command::Restore(r) => return backup::restore(r, cli.json).await,
        Command::Nats { command } => return nats::run(command, cli.json).await,
        Command::Secret {
            command: SecretCommand::Create { file },
        } => {
            hub_core::secret::HubSecret::create(&file)?;
            println!(
                "created {} (mode 0600); keep a copy where backups are kept",
                file.display()
            );
            return Ok(());
        }
        _ => {}
    }
    let Some(token) = cli.token.clone() else {
        bail!("no token: set HUB_TOKEN (or pass --token)");
    };
    let caller = Caller { token };
    match cli.command {
        Command::Completions { .. }
        | Command::Events { .. }
        | Command::Backup(_)
        | Command::Secret { .. }
        | Command::Nats { .. }
        | Command::Restore(_) => unreachable!("handled above"),
        Command::Custody(rpc) => {
            let channel = channel(&cli.tls, "custody-service", &cli.custody_service_addr).await?;
            output::outcome(rpc.send(channel, &caller).await?, cli.json)?;
        }
        Command::Prison(rpc) => {
            let channel = channel(&cli.tls, "prison-service", &cli.prison_service_addr).await?;
            output::outcome(rpc.send(channel, &caller).await?, cli.json)?;
        }
        Command::Pharmacy(rpc) => {
            let channel = channel(&cli.tls, "pharmacy-service", &cli.pharmacy_service_addr).await?;
            output::outcome(rpc.send(channel, &caller).await?, cli.json)?;
        }
        Command::Treatment(rpc) => {
            let channel =
                channel(&cli.tls, "treatment-service", &cli.treatment_service_addr).await?;
            output::outcome(rpc.send(channel, &caller).await?, cli.json)?;
        }
        Command::Ambulance(rpc) => {
            let channel =
                channel(&cli.tls, "ambulance-service", &cli.ambulance_service_addr).await?;
            output::outcome(rpc.send(channel, &caller).await?, cli.json)?;
        }
        Command::Identity(IdentityCommand::Record(rpc)) => {
            let channel = channel(&cli.tls, "identity-service", &cli.identity_service_addr).await?;
            output::outcome((*rpc).send(channel, &caller).await?, cli.json)?;
        }
        Command::Identity(IdentityCommand::Duplicates {
            partnership,
            min_sequence,
        }) => {
            let mut pickups = PickupListServiceClient::new(
                channel(&cli.tls, "pickup-projection", &cli.pickup_projection_addr).await?,
            );
            let reply = pickups
                .list_potential_duplicates(caller.request(ListPotentialDuplicatesRequest {
                    partnership_code: partnership,
                    min_sequence,
                })?)
                .await
                .map_err(explain)?
                .into_inner();
            output::duplicates(&reply, cli.json);
        }
        Command::Lookup {
            partnership,
            person,
            reason,
            min_sequence,
        } => {
            use record::IntoField;
            let mut pickups = PickupListServiceClient::new(
                channel(&cli.tls, "pickup-projection", &cli.pickup_projection_addr).await?,
            );
            let reply = pickups
                .lookup_person(caller.request(LookupPersonRequest {
                    partnership_code: partnership,
                    person: person.into_field(),
                    reason,
                    min_sequence,
                })?)
                .await
                .map_err(explain)?
                .into_inner();
            output::lookup(&reply, cli.json);
        }
        Command::Pickups {
            partnership,
            as_of,
            horizon,
            min_sequence,
        } => {
            let mut pickups = PickupListServiceClient::new(
                channel(&cli.tls, "pickup-projection", &cli.pickup_projection_addr).await?,
            );
            let req = ListPickupsRequest {
                partnership_code: partnership,
                as_of_date: as_of.unwrap_or_default(),
                horizon_days: horizon,
                min_sequence,
            };
            let reply = pickups
                .list_pickups(caller.request(req)?)
                .await
                .map_err(explain)?
                .into_inner();
            output::pickups(&reply, cli.json);
        }
        Command::PickupSummary {
            partnership,
            fy,
            as_of,
            min_sequence,
        } => {
            let mut pickups = PickupListServiceClient::new(
                channel(&cli.tls, "pickup-projection", &cli.pickup_projection_addr).await?,
            );
            let req = GetPickupSummaryRequest {
                partnership_code: partnership,
                as_of_date: as_of.unwrap_or_default(),
                financial_year: fy.unwrap_or_default(),
                min_sequence,
            };
            let s = pickups
                .get_pickup_summary(caller.request(req)?)
                .await
                .map_err(explain)?
                .into_inner();
            output::pickup_summary(&s, cli.json);
        }
        Command::Training {
            partnership,
            fy,
            min_sequence,
        } => {
            let mut training = TrainingCountsServiceClient::new(
                channel(
                    &cli.tls,
                    "training-projection",
                    &cli.training_projection_addr,
                )
                .await?,
            );
            let req = GetTrainingCountsRequest {
                partnership_code: partnership,
                financial_year: fy.unwrap_or_default(),
                min_sequence,
            };
            let c = training
                .get_training_counts(caller.request(req)?)
                .await
                .map_err(explain)?
                .into_inner();
            output::training(&c, cli.json);
        }
        Command::Activity {
            partnership,
            fy,
            csv,
            min_sequence,
        } => {
            let mut activity = activity_client(&cli.tls, &cli.activity_projection_addr).await?;
            let req = GetActivityRequest {
                partnership_code: partnership,
                financial_year: fy.unwrap_or_default(),
                min_sequence,
            };
            let a = activity
                .get_activity(caller.request(req)?)
                .await
                .map_err(explain)?
                .into_inner();
            let format = output::Format::of(cli.json, csv);
            output::activity(&a, format);
        }
        Command::National {
            fy,
            figure,
            csv,
            min_sequence,
        } => {
            let mut activity = activity_client(&cli.tls, &cli.activity_projection_addr).await?;
            let req = GetNationalComparisonRequest {
                financial_year: fy.unwrap_or_default(),
                min_sequence,
            };
            let c = activity
                .get_national_comparison(caller.request(req)?)
                .await
                .map_err(explain)?
                .into_inner();
            let format = output::Format::of(cli.json, csv);
            output::national(&c, figure.as_deref(), format)?;
        }
        Command::Projection {
            command: ProjectionCommand::Status,
        } => {
            let mut rows = Vec::new();
            for (name, addr) in [
                ("pickup-projection", &cli.pickup_projection_addr),
                ("training-projection", &cli.training_projection_addr),
                ("activity-projection", &cli.activity_projection_addr),
            ] {
                let mut status =
                    ProjectionStatusServiceClient::new(channel(&cli.tls, name, addr).await?);
                let s = status
                    .get_projection_status(caller.request(GetProjectionStatusRequest {})?)
                    .await
                    .map_err(explain)?
                    .into_inner();
                rows.push(s);
            }
            output::projection_status(&rows, cli.json);
        }
        Command::Projection {
            command: ProjectionCommand::Rebuild { projection },
        } => {
            let (name, addr) = match projection {
                Which::Pickup => ("pickup-projection", &cli.pickup_projection_addr),
                Which::Training => ("training-projection", &cli.training_projection_addr),
                Which::Activity => ("activity-projection", &cli.activity_projection_addr),
            };
            let mut status =
                ProjectionStatusServiceClient::new(channel(&cli.tls, name, addr).await?);
            let mut progress = status
                .rebuild_projection(caller.request(RebuildProjectionRequest {})?)
                .await
                .map_err(explain)?
                .into_inner();
            let bar = progress_bar("events");
            bar.set_message(format!("rebuilding {name}"));
            let mut last = None;
            while let Some(p) = progress.message().await.map_err(explain)? {
                bar.set_length(p.target_sequence);
                bar.set_position(p.applied_sequence.min(p.target_sequence));
                if p.switched {
                    bar.finish_with_message(format!("rebuilt {name}"));
                }
                last = Some(p);
            }
            match last {
                Some(p) if p.switched => println!(
                    "{name}: readers switched to the rebuilt store at sequence {} ({} events applied, {} parked)",
                    p.applied_sequence, p.events_applied, p.parked
                ),
                _ => bail!("the rebuild of {name} ended before switching readers over; the old store is still in use"),
            }
        }
        Command::Person {
            command: PersonCommand::Erase { identifier },
        } => {
            let mut admin = AdminServiceClient::new(
                channel(&cli.tls, "pickup-projection", &cli.pickup_projection_addr).await?,
            );
            let e = admin
                .erase_person(caller.request(ErasePersonRequest { identifier })?)
                .await
                .map_err(explain)?
                .into_inner();
            output::erasure(&e, cli.json);
        }
        Command::Audit {
            command: Some(AuditCommand::Verify { partnership }),
            ..
        } => {
            let mut admin = AdminServiceClient::new(
                channel(&cli.tls, "pickup-projection", &cli.pickup_projection_addr).await?,
            );
            let v = admin
                .verify_audit_trail(caller.request(VerifyAuditTrailRequest {
                    partnership_code: partnership,
                })?)
                .await
                .map_err(explain)?
                .into_inner();
            output::verification(&v, cli.json);
            if !v.intact {
                std::process::exit(1);
            }
        }
        Command::Audit {
            command: None,
            partnership,
            person,
            break_glass,
            since,
            limit,
        } => {
            let since = since.map(|s| parse_since(&s)).transpose()?;
            let mut admin = AdminServiceClient::new(
                channel(&cli.tls, "pickup-projection", &cli.pickup_projection_addr).await?,
            );
            match (person, partnership) {
                (Some(identifier), partnership) => {
                    if break_glass {
                        bail!("--break-glass lists a partnership's reads: leave out --person");
                    }
                    let reply = admin
                        .list_person_access(caller.request(ListPersonAccessRequest {
                            identifier,
                            partnership_code: partnership.unwrap_or_default(),
                            since,
                            limit,
                        })?)
                        .await
                        .map_err(explain)?
                        .into_inner();
                    output::person_access(&reply, cli.json);
                }
                (None, Some(partnership)) => {
                    let reply = admin
                        .list_audit_records(caller.request(ListAuditRecordsRequest {
                            partnership_code: partnership,
                            since,
                            limit,
                            break_glass_only: break_glass,
                        })?)
                        .await
                        .map_err(explain)?
                        .into_inner();
                    output::audit(&reply.records, cli.json);
                }
                (None, None) => bail!(
                    "give --partnership <code> (its reads), --person <identifier> (who saw them), or `audit verify --partnership <code>`"
                ),
            }
        }
        Command::Retention {
            command: RetentionCommand::Status { days },
        } => {
            let mut admin = AdminServiceClient::new(
                channel(&cli.tls, "pickup-projection", &cli.pickup_projection_addr).await?,
            );
            let s = admin
                .get_retention_status(caller.request(GetRetentionStatusRequest { limit: days })?)
                .await
                .map_err(explain)?
                .into_inner();
            output::retention(&s, cli.json);
        }
        Command::Keys { command } => {
            let mut admin = AdminServiceClient::new(
                channel(&cli.tls, "pickup-projection", &cli.pickup_projection_addr).await?,
            );
            let versions = match command {
                KeysCommand::List => admin
                    .list_key_versions(caller.request(ListKeyVersionsRequest {})?)
                    .await
                    .map_err(explain)?
                    .into_inner(),
                KeysCommand::Retire { version } => admin
                    .retire_key_version(caller.request(RetireKeyVersionRequest { version })?)
                    .await
                    .map_err(explain)?
                    .into_inner(),
                KeysCommand::Rotate { resume } => {
                    let mut progress = admin
                        .rotate_keys(caller.request(RotateKeysRequest { resume })?)
                        .await
                        .map_err(explain)?
                        .into_inner();
                    let bar = progress_bar("data keys");
                    let mut last = None;
                    while let Some(p) = progress.message().await.map_err(explain)? {
                        bar.set_message(format!("re-wrapping under version {}", p.version));
                        bar.set_length(p.total);
                        bar.set_position(p.rewrapped + p.skipped);
                        last = Some(p);
                    }
                    match last {
                        Some(p) if p.done => {
                            bar.finish_and_clear();
                            println!(
                                "every data key is wrapped under version {} ({} re-wrapped or already there, {} erased meanwhile)",
                                p.version, p.rewrapped, p.skipped
                            );
                        }
                        _ => bail!("the rotation stopped before it finished; run `hubctl keys rotate --resume`"),
                    }
                    admin
                        .list_key_versions(caller.request(ListKeyVersionsRequest {})?)
                        .await
                        .map_err(explain)?
                        .into_inner()
                }
            };
            output::key_versions(&versions, cli.json);
        }
        Command::Seed {
            command:
                SeedCommand::Demo {
                    partnerships,
                    people,
                    seed,
                },
        } => {
            let mut agencies = demo::Agencies {
                custody: CustodyServiceClient::new(
                    channel(&cli.tls, "custody-service", &cli.custody_service_addr).await?,
                ),
                prison: PrisonServiceClient::new(
                    channel(&cli.tls, "prison-service", &cli.prison_service_addr).await?,
                ),
                pharmacy: PharmacyServiceClient::new(
                    channel(&cli.tls, "pharmacy-service", &cli.pharmacy_service_addr).await?,
                ),
                treatment: TreatmentServiceClient::new(
                    channel(&cli.tls, "treatment-service", &cli.treatment_service_addr).await?,
                ),
                ambulance: AmbulanceServiceClient::new(
                    channel(&cli.tls, "ambulance-service", &cli.ambulance_service_addr).await?,
                ),
            };
            let summary = demo::seed(&mut agencies, &caller, partnerships, people, seed).await?;
            println!("{summary}");
        }
    }
    Ok(())
}
