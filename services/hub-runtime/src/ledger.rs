//! The erasure ledger: every erasure, kept outside the event stream in the
//! JetStream KV bucket `hub_erasures` (file storage, as many replicas as the
//! stream), one entry per erasure (`e.<event_id>`: the `PersonErased` event
//! as it was published).
//!
//! The stream's own `PersonErased` events go with the stream: restoring a
//! backup taken before an erasure loses them, and with them the record of
//! which data keys must stay destroyed. The ledger survives that restore
//! (it is not restored over, and `hubctl backup` copies it as a file of its
//! own), and `hubctl restore` destroys again every key an erasure in it
//! names and puts back its event, so an erased name never comes back.

use async_nats::jetstream::kv;
use futures::StreamExt;
use prost::Message;

use hub_core::Error;
use hub_proto::events::Event;

use crate::{eventlog::EventLog, keystore};

pub const BUCKET: &str = "hub_erasures";
/// The bucket's description, as created.
pub const DESCRIPTION: &str = "Every erasure (PersonErased events): re-applied after a restore";

fn unavailable(e: impl Into<hub_core::error::Cause>) -> Error {
    Error::unavailable_from("the erasure ledger did not answer", e)
}

#[derive(Clone)]
pub struct ErasureLedger {
    kv: kv::Store,
}

impl std::fmt::Debug for ErasureLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasureLedger")
    }
}

impl ErasureLedger {
    pub async fn open(log: &EventLog) -> Result<Self, Error> {
        Ok(Self {
            kv: keystore::open_bucket(log, BUCKET, DESCRIPTION).await?,
        })
    }

    /// The ledger in a bucket already opened (hubctl).
    pub fn from_store(kv: kv::Store) -> Self {
        Self { kv }
    }

    /// Records `erasure` (a `PersonErased` event), before its keys are
    /// destroyed: an erasure the ledger does not hold has not begun.
    pub async fn record(&self, erasure: &Event) -> Result<(), Error> {
        self.kv
            .put(
                format!("e.{}", erasure.event_id),
                erasure.encode_to_vec().into(),
            )
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Every erasure held, oldest first (by `recorded_at`).
    pub async fn all(&self) -> Result<Vec<Event>, Error> {
        let mut keys = self.kv.keys().await.map_err(unavailable)?;
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            names.push(k.map_err(unavailable)?);
        }
        let mut out = Vec::new();
        for name in names.into_iter().filter(|n| n.starts_with("e.")) {
            if let Some(bytes) = self.kv.get(&name).await.map_err(unavailable)? {
                let event = Event::decode(bytes.as_ref()).map_err(|e| {
                    Error::internal_from(format!("erasure ledger entry {name} does not decode"), e)
                })?;
                out.push(event);
            }
        }
        out.sort_by_key(|e| {
            e.recorded_at
                .as_ref()
                .map(|t| (t.seconds, t.nanos))
                .unwrap_or_default()
        });
        Ok(out)
    }
}
